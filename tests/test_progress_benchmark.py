"""benchmarks/progress_overhead.py runs at a small size and ends with its ``ratio=`` line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "progress_overhead.py"


def test_progress_benchmark_measures_both_and_ends_with_a_ratio() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--updates", "2000", "--repeat", "1"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert [ln.split(":")[0] for ln in lines[:-1]] == ["items", "bytes (64 KiB steps)", "quiet / disabled"]
    assert all("ours" in ln and "tqdm" in ln for ln in lines[:-1])
    assert lines[-1].startswith("ratio=") and float(lines[-1].removeprefix("ratio=")) > 0
