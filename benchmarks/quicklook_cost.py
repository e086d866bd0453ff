"""What quicklooks cost ``eomatch-find``: the demo's find with them and without, same run.

The demo's simulated archive (:mod:`eomatch.demo`: Sentinel-2A x Landsat-9 over the
US, 2022-05-20..23) is written once; then ``find`` runs into fresh catalogues,
alternating ``find.quicklooks`` on and off, ``--repeat`` times each; the best time of
each is kept (the machine is shared; the best is the least disturbed). Also printed:
CPU seconds (find and its quicklook worker), the number and sizes of the PNGs written
and the drawing time per figure.

    .venv/bin/python benchmarks/quicklook_cost.py --repeat 3

Prints ``ratio=<with / without>`` last (issue 12 asks for at most 1.20).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from eomatch.demo import DEMO_BBOX, DEMO_END, DEMO_PLATFORMS, DEMO_START, demo_settings
from eomatch.find import find
from eomatch.settings import Settings, load_settings
from eomatch.simulate import simulate_archive


def run_find(base: Settings, archive: Path, out: Path, quicklooks: bool) -> tuple[float, float, int]:
    """Wall and CPU seconds (this process and its finished workers) of one find into a new
    catalogue under ``out``; and how many matchups it found."""
    cat = out / f"cat-{quicklooks}-{time.monotonic_ns()}"
    run = demo_settings(base, archive, cat)
    run = run.model_copy(update={"find": run.find.model_copy(update={"quicklooks": quicklooks})})
    cpu0, t0 = _cpu_s(), time.perf_counter()
    summary = find(run, quiet=True)
    seconds, cpu_s = time.perf_counter() - t0, _cpu_s() - cpu0
    if summary.failures:
        raise SystemExit(f"find failed: {summary.failures[0]}")
    return seconds, cpu_s, summary.matchups


def _cpu_s() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each kind (best kept)")
    args = parser.parse_args()
    base = load_settings(environ={})
    work = Path(tempfile.mkdtemp(prefix="eomatch-quicklook-bench-"))
    try:
        west, south, east, north = DEMO_BBOX
        archive = simulate_archive(work / "archive", DEMO_PLATFORMS, DEMO_START, DEMO_END,
                                   bbox=(west, south, east, north), settings=base)  # fmt: skip
        # one untimed run each: TLE parsing, imports and the land file are loaded once per process
        run_find(base, archive, work, True)
        run_find(base, archive, work, False)
        with_s, without_s, with_cpu, without_cpu = [], [], [], []
        matchups = 0
        for _ in range(args.repeat):
            s, cpu, matchups = run_find(base, archive, work, True)
            with_s.append(s)
            with_cpu.append(cpu)
            s, cpu, _ = run_find(base, archive, work, False)
            without_s.append(s)
            without_cpu.append(cpu)
        pngs = sorted(p.stat().st_size for p in work.glob("cat-True-*/**/*.png"))
        per_run = len(pngs) // (args.repeat + 1)
        best_with, best_without = min(with_s), min(without_s)
        print(f"demo find: {matchups} matchups, {per_run} quicklooks per run; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (the worker needs a free one)")
        print(f"without quicklooks: best {best_without:.3f} s (median {statistics.median(without_s):.3f} s)")
        print(f"with quicklooks:    best {best_with:.3f} s (median {statistics.median(with_s):.3f} s)")
        print(f"CPU (find + quicklook workers): best {min(without_cpu):.3f} s without, {min(with_cpu):.3f} s with")
        if pngs:
            print(f"PNG bytes: min {pngs[0]}, median {int(statistics.median(pngs))}, max {pngs[-1]}")
            print(f"drawing: {(best_with - best_without) / max(per_run, 1) * 1000:.2f} ms per quicklook (difference of bests)")
        print(f"ratio={best_with / best_without:.3f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
