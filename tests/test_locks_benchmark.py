"""benchmarks/locks.py runs at a small size and ends with its ``ratio=`` line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "locks.py"


def test_locks_benchmark_measures_both_and_ends_with_a_ratio() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--n", "200", "--repeat", "1", "--rounds", "2"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert any(ln.startswith("uncontended acquire+release: ours") and "filelock" in ln for ln in lines)
    assert any(ln.startswith("contended non-blocking try: ours") and "filelock" in ln for ln in lines)
    assert lines[-1].startswith("ratio=") and float(lines[-1].removeprefix("ratio=")) > 0
