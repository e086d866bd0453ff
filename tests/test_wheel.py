"""Installed from a wheel, eomatch works outside the repository.

As a user would: build the wheel (``pip wheel``), install it into a fresh venv in a
folder outside the repository, and from there run ``eomatch-stack up --demo``,
``eomatch-find`` for a Sentinel-3A pair (its TLEs must be in the wheel) and
``eomatch-query``. The venv reuses the project venv's site-packages for the
*dependencies* (a ``.pth`` file) so the test is quick and offline; eomatch itself
comes only from the wheel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import yaml
from conftest import REPO, make_state_dir, stack_settings

from eomatch.catalogue import MatchupCatalogue

pytestmark = pytest.mark.stack

PACKAGE_FILES = [
    "eomatch/stack/browser_pkg/package.json",
    "eomatch/stack/browser_pkg/package-lock.json",
    *(f"eomatch/stack/browser_pkg/{name}" for name in ("basemaps.config.js", "fields.config.js", "offline-patch.js")),
    "eomatch/schema/matchup.json",
    "eomatch/data/sites.yaml",
    "eomatch/data/naturalearth/land_110m.json",  # under every quicklook
    "eomatch/stack/templates/nginx-proxy.conf.j2",
    *(f"eomatch/data/tle/{name}-2022.tle" for name in
      ("sentinel-2a", "sentinel-2b", "landsat-8", "landsat-9", "sentinel-3a", "sentinel-3b")),
]  # fmt: skip


def _run(argv: list[str], cwd: Path, env: dict[str, str], timeout_s: float = 600) -> str:
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s)
    assert proc.returncode == 0, f"{' '.join(argv)} -> {proc.returncode}\n{proc.stderr[-3000:]}\n{proc.stdout[-2000:]}"
    return proc.stdout


def _build_wheel(base: Path) -> Path:
    """``pip wheel`` of a copy of the sources (the shared checkout gets no build/ folder)."""
    src = base / "src-copy"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    out = base / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)], cwd=base, env=dict(os.environ))
    (wheel,) = out.glob("eomatch-*.whl")
    return wheel


def _venv_with(wheel: Path, base: Path) -> Path:
    """A fresh venv: dependencies through a .pth on the project venv, eomatch from ``wheel``."""
    venv = base / "venv"
    python = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    subprocess.run([str(python), "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    (site,) = (venv / "lib").glob("python*/site-packages")
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "_eomatch_test_deps.pth").write_text("".join(f"{p}\n" for p in sorted(deps)))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EOMATCH_", "PYTHON"))}
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
         cwd=base, env=env)  # fmt: skip
    return venv


def test_wheel_installed_outside_the_repository_runs_stack_find_and_query() -> None:
    base = make_state_dir("eomatch-wheel-")  # under /tmp, 0755: the API user reads the venv
    state = base / "state"
    state.mkdir(mode=0o755)
    home = base / "home"  # a user's folder, far from the repository
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EOMATCH_", "PYTHON", "VIRTUAL_ENV"))}
    stack_up = False
    try:
        wheel = _build_wheel(base)
        names = set(zipfile.ZipFile(wheel).namelist())
        assert not [f for f in PACKAGE_FILES if f not in names], "missing from the wheel"
        venv = _venv_with(wheel, base)
        bin_dir = venv / "bin"
        env["PATH"] = os.pathsep.join([str(bin_dir), *(p for p in env.get("PATH", "").split(os.pathsep)
                                                       if not p.startswith(str(REPO)))])  # fmt: skip
        where = _run([str(bin_dir / "python"), "-c", "import eomatch; print(eomatch.__file__)"], home, env).strip()
        assert where.startswith(str(venv)) and not where.startswith(str(REPO)), where

        # the stack's ports and state through a config, as a user would write it; the
        # browser build is the repository's cached one (no two-minute npm build)
        settings = stack_settings(state)
        stack = settings.model_dump(mode="json")["stack"]
        run = {
            "stack": stack,
            "platforms": ["Sentinel-3A", "Sentinel-2A"],
            "start_time": "2022-05-21",
            "end_time": "2022-05-21",
            "matchup_catalogue": {"path": str(home / "s3-catalogue")},
        }
        (home / "run.yaml").write_text(yaml.safe_dump(run))
        env["EOMATCH_CONFIG"] = str(home / "run.yaml")
        up = _run([str(bin_dir / "eomatch-stack"), "up", "--demo"], home, env)
        stack_up = True
        assert "eomatch stack is up" in up and "demo: find: 3 events" in up

        found = _run([str(bin_dir / "eomatch-find"), "--config", "run.yaml", "--events-only", "-q"], home, env)
        assert found.startswith("find: ") and " 0 events" not in found, found
        _run([str(bin_dir / "eomatch-ingest"), "--config", "run.yaml", "-q"], home, env)
        s3_events = {e.id for e in MatchupCatalogue.open(home / "s3-catalogue").get_events()}
        assert s3_events

        api = f"http://127.0.0.1:{stack['proxy']['port']}"
        _run([str(bin_dir / "eomatch-query"), "--config", "run.yaml", "--api-url", f"{api}/api/",
              "--output", "mine", "-q"], home, env)  # fmt: skip
        mine = MatchupCatalogue.open(home / "mine")
        assert {e.id for e in mine.get_events()} == s3_events  # the config's platforms and day
        assert all("Sentinel-3A" in e.platforms for e in mine.get_events())
        _run([str(bin_dir / "eomatch-query"), "--api-url", f"{api}/external/", "--output", "demo",
              "--platforms", "S2A,L9", "--start-time", "2022-05-21", "--end-time", "2022-05-21", "-q"], home, env)  # fmt: skip
        demo = MatchupCatalogue.open(home / "demo")
        assert demo.count("matchup") > 0 and demo.count("event") > 0
    finally:
        if stack_up or (base / "venv" / "bin" / "eomatch-stack").exists():  # also after a failed start
            subprocess.run([str(base / "venv" / "bin" / "eomatch-stack"), "down"], cwd=home, env=env,
                           capture_output=True, timeout=300)  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)
