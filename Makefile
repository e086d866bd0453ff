# The two commands of the README: `make demo` and `make test`. Each installs what it needs.
SHELL := /bin/bash
export EOMATCH_STACK__BROWSER__CACHE_DIR ?= $(CURDIR)/.cache
PYTEST_ARGS ?=

.PHONY: demo test bootstrap down status docs lint bench screenshots

bootstrap:
	@bash scripts/bootstrap.sh

demo: bootstrap
	.venv/bin/eomatch-stack up --demo

down:
	.venv/bin/eomatch-stack down

status:
	.venv/bin/eomatch-stack status

test: bootstrap
	.venv/bin/ruff check src tests benchmarks
	.venv/bin/pytest $(PYTEST_ARGS)

# Refresh the researchers' guide's pictures of STAC Browser (taken by a test on the demo).
screenshots: bootstrap
	.venv/bin/pytest -q tests/stack/test_screenshots.py tests/stack/test_quicklooks_browser.py --screenshots-dir docs/img/screenshots

docs: bootstrap
	.venv/bin/mkdocs build --strict

lint: bootstrap
	.venv/bin/ruff check src tests benchmarks
