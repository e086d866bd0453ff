"""``scripts/bootstrap.sh`` without root: missing system packages are named, with the fix."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("runuser") is None, reason="needs root to run as 'nobody'")
def test_missing_packages_without_root_is_one_line_naming_them() -> None:
    import tempfile

    # A world-readable copy (pytest's tmp_path is private to root): if the script went
    # further than it should, it would work in this copy, never in the repository.
    with tempfile.TemporaryDirectory(dir="/tmp") as top:
        root = Path(top)
        root.chmod(0o755)
        (root / "scripts").mkdir()
        shutil.copy(REPO / "scripts" / "bootstrap.sh", root / "scripts" / "bootstrap.sh")
        fake = root / "bin"
        fake.mkdir()
        # dpkg reports nginx and chromium as not installed; everything else as present
        (fake / "dpkg").write_text('#!/bin/sh\ncase "$2" in nginx|chromium) exit 1;; esac\nexit 0\n')
        (fake / "dpkg").chmod(0o755)
        proc = subprocess.run(
            ["runuser", "-u", "nobody", "--", "env", f"PATH={fake}:/usr/bin:/bin", "bash", str(root / "scripts" / "bootstrap.sh")],
            cwd="/", stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
        )
        assert not (root / ".venv").exists()
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: root is needed to install: nginx chromium"), proc.stderr
    assert "sudo apt-get install -y nginx chromium" in lines[0]
