"""The documentation builds, and every command shown in the guides runs against the real stack.

Guides show commands in ```bash blocks with the default URLs (``http://127.0.0.1:8000``). The
test runs each guide's blocks in order in one bash session per guide, with the session stack's
settings (``EOMATCH_CONFIG``) and its proxy URL substituted, in a scratch folder. A block whose
first line is ``# not run: <reason>`` is skipped (Docker, ``make``, destructive server steps).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
GUIDES = ["getting-started.md", "researchers.md", "pipeline.md", "analysis-results.md", "operations.md"]
BLOCK = re.compile(r"^```bash[^\n]*\n(.*?)^```", re.S | re.M)


def guide_blocks(name: str) -> list[str]:
    path = DOCS / name
    if not path.exists():
        return []
    blocks = [b for b in BLOCK.findall(path.read_text())]
    return [b for b in blocks if not b.lstrip().startswith("# not run")]


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(REPO / ".venv" / "bin" / "mkdocs"), "build", "--strict", "-q", "-d", str(tmp_path / "site")],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    cli = (tmp_path / "site" / "cli" / "index.html").read_text()
    # The CLI reference is generated from --help: every command's usage line is there.
    for command in ("eomatch-stack", "eomatch-ingest", "eomatch-query", "eomatch-add-asset", "eomatch-find"):
        assert f"usage: {command}" in cli


def test_every_guide_has_commands() -> None:
    for name in GUIDES:
        assert (DOCS / name).exists(), f"docs/{name} is missing"
    assert sum(len(guide_blocks(n)) for n in GUIDES) >= 5


@pytest.mark.stack
@pytest.mark.parametrize("guide", GUIDES)
def test_guide_commands_run_against_the_stack(guide: str, running_stack, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    blocks = guide_blocks(guide)
    if not blocks:
        pytest.skip(f"{guide} shows no runnable command")
    settings_file = running_stack.paths.conf / "settings.yaml"
    proxy = running_stack.base_url.removeprefix("http://")
    script = "\n".join(b.replace("127.0.0.1:8000", proxy) for b in blocks)
    env = dict(os.environ)
    st = running_stack.settings.stack
    env.update(
        PATH=f"{REPO / '.venv' / 'bin'}:{env.get('PATH', '')}",
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
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, f"{guide} commands failed:\n{script}\n--- stderr ---\n{proc.stderr[-4000:]}\n--- stdout ---\n{proc.stdout[-2000:]}"
    sys.stdout.write(proc.stdout[-500:])
