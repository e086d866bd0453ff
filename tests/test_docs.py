"""The documentation builds, and every command and Python example in the guides runs.

Guides show commands in ```bash blocks with the default URLs (``http://127.0.0.1:8000``), where
``make demo`` serves the stack with the demo catalogue. The test loads the demo into the session
stack, then runs each guide's bash blocks in order in one bash session per guide, and after them
the guide's ```python blocks in order as one script of the venv's Python, both with the session
stack's settings (``EOMATCH_CONFIG``) and its proxy URL substituted, in one scratch folder per
guide. A block whose first line is ``# not run: <reason>`` is skipped (Docker, ``make``,
destructive server steps, product rasters that are not on this machine).
"""

from __future__ import annotations

import argparse
import html
import importlib
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
VENV_BIN = REPO / ".venv" / "bin"
GUIDES = [
    "index.md", "getting-started.md", "researchers.md", "pipeline.md", "analysis-results.md",
    "data-model.md", "operations.md",
]  # fmt: skip


def guide_blocks(name: str, lang: str = "bash") -> list[str]:
    """The runnable ```{lang} blocks of a guide, in order."""
    path = DOCS / name
    if not path.exists():
        return []
    block = re.compile(rf"^```{lang}[ \t]*\n(.*?)^```", re.S | re.M)
    return [b for b in block.findall(path.read_text()) if not b.lstrip().startswith("# not run")]


# --- the generated command-line reference ---------------------------------------------------


class _Caught(BaseException):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser


def script_parser(target: str) -> argparse.ArgumentParser:
    """The parser a console script (``module:function``) builds, caught before it parses."""
    module, _, attr = target.partition(":")
    main = getattr(importlib.import_module(module), attr)

    def catch(self: argparse.ArgumentParser, *_: Any, **__: Any) -> Any:
        raise _Caught(self)

    with mock.patch.object(argparse.ArgumentParser, "parse_known_args", catch):
        try:
            main(["--help"])
        except _Caught as caught:
            return caught.parser
    raise AssertionError(f"{target} did not parse its arguments with argparse")


def with_subcommands(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from with_subcommands(sub)


def words(text: str) -> str:
    return " ".join(text.split())


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(VENV_BIN / "mkdocs"), "build", "--strict", "-q", "-d", str(tmp_path / "site")],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    page = (tmp_path / "site" / "cli" / "index.html").read_text()
    cli = words(html.unescape(re.sub(r"<[^>]+>", "", page)))
    # The CLI reference is generated from --help: the usage of every console script of
    # pyproject.toml and of each of its subcommands (however deep) is there.
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert "eomatch-simulate" in scripts and len(scripts) >= 9
    expected: dict[str, str] = {}
    with mock.patch.dict(os.environ, {"COLUMNS": "80"}):
        for name, target in scripts.items():
            parser = script_parser(target)
            assert parser.prog == name, f"{target} calls itself {parser.prog!r}, not {name!r}"
            for p in with_subcommands(parser):
                expected[p.prog] = words(p.format_usage())
    assert {"eomatch-stack keys add", "eomatch-stack db-setup", "eomatch-tle fetch"} <= set(expected)
    missing = [prog for prog, usage in expected.items() if usage not in cli]
    assert not missing, f"not in the generated CLI reference: {missing}"


# --- the guides ------------------------------------------------------------------------------


def test_every_guide_has_commands() -> None:
    for name in GUIDES:
        assert (DOCS / name).exists(), f"docs/{name} is missing"
    assert sum(len(guide_blocks(n)) for n in GUIDES) >= 5
    assert sum(len(guide_blocks(n, "python")) for n in GUIDES) >= 3


@pytest.fixture(scope="module")
def demo_stack(running_stack):  # type: ignore[no-untyped-def]
    """The session stack as ``make demo`` leaves it: the demo catalogue loaded (idempotent)."""
    from eomatch.demo import load_demo

    load_demo(running_stack.settings, quiet=True)
    return running_stack


def _numbered(script: str) -> str:
    return "\n".join(f"{i:4} {line}" for i, line in enumerate(script.splitlines(), 1))


@pytest.mark.stack
@pytest.mark.parametrize("guide", GUIDES)
def test_guide_commands_run_against_the_stack(guide: str, demo_stack, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proxy = demo_stack.base_url.removeprefix("http://")
    bash = "\n".join(b.replace("127.0.0.1:8000", proxy) for b in guide_blocks(guide))
    python = "\n".join(b.replace("127.0.0.1:8000", proxy) for b in guide_blocks(guide, "python"))
    if not bash and not python:
        pytest.skip(f"{guide} shows no runnable command or Python")
    settings_file = demo_stack.paths.conf / "settings.yaml"
    env = dict(os.environ)
    st = demo_stack.settings.stack
    env.update(
        PATH=f"{VENV_BIN}:{env.get('PATH', '')}",
        EOMATCH_CONFIG=str(settings_file),
        # Whatever config file a guide passes, commands find this stack (env beats YAML).
        EOMATCH_STACK__STATE_DIR=str(st.state_dir),
        EOMATCH_STACK__DB__PORT=str(st.db.port),
        EOMATCH_STACK__PROXY__PORT=str(st.proxy.port),
        EOMATCH_STACK__PROXY__BROWSER_PORT=str(st.proxy.browser_port),
        EOMATCH_STACK__API__INTERNAL_PORT=str(st.api.internal_port),
        EOMATCH_STACK__API__EXTERNAL_PORT=str(st.api.external_port),
    )
    for fixture in ("examples",):
        if (REPO / fixture).exists():
            shutil.copytree(REPO / fixture, tmp_path / fixture)
    runs = [("bash", ["bash", "-euo", "pipefail", "-c", bash], bash)]
    runs.append(("python", [str(VENV_BIN / "python"), "-c", python], python))
    for lang, argv, script in runs:
        if not script:
            continue
        proc = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, (
            f"{guide}: the {lang} blocks failed:\n{_numbered(script)}\n"
            f"--- stderr ---\n{proc.stderr[-4000:]}\n--- stdout ---\n{proc.stdout[-2000:]}"
        )
        sys.stdout.write(proc.stdout[-500:])
