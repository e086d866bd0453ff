"""benchmarks/quicklook_cost.py runs once each way and ends with its ``ratio=`` line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "quicklook_cost.py"


def test_quicklook_benchmark_times_both_and_ends_with_a_ratio() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--repeat", "1"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert any(ln.startswith("without quicklooks: best") for ln in lines)
    assert any(ln.startswith("with quicklooks:") for ln in lines)
    sizes = next(ln for ln in lines if ln.startswith("PNG bytes:"))
    assert int(sizes.rsplit("max ", 1)[1]) < 60_000, sizes  # a few KB each, never a photo
    assert lines[-1].startswith("ratio=") and float(lines[-1].removeprefix("ratio=")) > 0
