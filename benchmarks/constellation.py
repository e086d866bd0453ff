"""Crossovers of a whole constellation: the shared-track search vs today's per-pair path.

The six packaged satellites (Sentinel-2A/B, Landsat-8/9, Sentinel-3A/B), the 12
cross-collection pairs, 100 km / 1800 s, nadir, from 2022-01-01 (the packaged
TLEs). Both paths write what ``eomatch-find --events-only --format csv`` writes
(one CSV row per event, region as WKT) to a file in a temporary folder:

- new: :func:`eomatch.orbits.search_constellation` (each satellite propagated
  once per chunk for all its pairs, compact regions) over ``--days`` (365);
- old: :func:`eomatch.orbits.reference.reference_find_events` (each pair on its
  own, both satellites propagated for it, full regions) over ``--old-days``
  (default: ``--days``); when shorter, its time is scaled per day (said so below).

On the old path's days the new path must find the same events (pairs, start and
end times within 1 s). Prints wall times, events, output bytes and peak memory;
the last line is ``ratio=<old s/day / new s/day>``.

Measured with ``--days 14 --workers 1`` on the shared 2-core machine (load average
6-10, so CPU times are inflated; compare within a run): new 9.5 s CPU (15.4 s
wall), old 16.4 s CPU (26.0 s wall), the same 2975 events, CSV 4.1 MB vs 33.6 MB,
CPU ratio 1.72, ``ratio=1.69``, new path peak RSS 176 MiB. Before the batched
refinement and regions the two paths took about the same CPU (11.3 s vs 11.1 s
on a quiet machine).

The whole year, ``--days 365 --old-days 14 --workers 2``: 74.7 s wall and 146 s
of CPU on a quiet machine before the per-satellite fine samples, ``np.take``
gathers, batched strips and half-step narrowing; after them, at load average
1.2-1.7 (mostly quiet): 54.7 s wall, 106.3 s of CPU with the workers, 77 276
events, CSV 107 692 521 bytes (byte-identical to the year before those changes),
old path 9.2 s CPU for 14 days, CPU ratio 2.27, ``ratio=4.42 per day``, peak
RSS 114 MiB (largest worker 228 MiB); an earlier run at load 0.2-1.5: 56.2 s
wall, 109.8 s of CPU.
"""

from __future__ import annotations

import argparse
import csv
import resource
import sys
import tempfile
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from eomatch.orbits import (
    EVENT_COLUMNS,
    Crossover,
    CrossoverParams,
    load_tles,
    search_constellation,
)
from eomatch.orbits.propagate import to_unix_s
from eomatch.orbits.reference import reference_find_events
from eomatch.orbits.tle import PACKAGED_TLE_DIR
from eomatch.settings import load_settings

GROUPS = [["Sentinel-2A", "Sentinel-2B"], ["Landsat-8", "Landsat-9"], ["Sentinel-3A", "Sentinel-3B"]]
PAIRS = [
    (a, b)
    for i, ga in enumerate(GROUPS)
    for gb in GROUPS[i + 1 :]
    for a in ga
    for b in gb
]
"""The 12 cross-collection pairs (satellites of one collection are not paired)."""


def write_csv(events: Iterable[Crossover], path: Path) -> tuple[int, list[tuple[float, ...]]]:
    """Write events as the CLI does; return the count and (pair, times) keys."""
    keys: list[tuple[float, ...]] = []
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(EVENT_COLUMNS))
        writer.writeheader()
        for event in events:
            writer.writerow(event.to_row("wkt"))
            keys.append(_key(event))
    return len(keys), keys


def _key(e: Crossover) -> tuple:
    return (e.platform_a, e.platform_b, to_unix_s(e.start_a), to_unix_s(e.end_a), to_unix_s(e.start_b), to_unix_s(e.end_b))


def _children_cpu_s() -> float:
    """CPU seconds of finished child processes (the new path's workers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def same_events(new: list[tuple], old: list[tuple]) -> tuple[bool, float]:
    """Same count and pairs, times within 1 s; the largest time difference."""
    new, old = sorted(new), sorted(old)
    if len(new) != len(old):
        return False, float("inf")
    worst = 0.0
    for x, y in zip(new, old, strict=True):
        if x[:2] != y[:2]:
            return False, float("inf")
        worst = max(worst, *(abs(p - q) for p, q in zip(x[2:], y[2:], strict=True)))
    return worst <= 1.0, worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=365.0, help="days for the new path (default 365)")
    parser.add_argument("--old-days", type=float, help="days for today's per-pair path (default: --days)")
    parser.add_argument("--start", default="2022-01-01", help="first day (default 2022-01-01)")
    parser.add_argument(
        "--workers", type=int, default=2, help="processes for the new path (find.orbit_workers; default 2)"
    )
    args = parser.parse_args(argv)
    old_days = args.days if args.old_days is None else min(args.old_days, args.days)

    settings = load_settings(None, {}, environ={})
    names = sorted({n for pair in PAIRS for n in pair})
    tles = load_tles([PACKAGED_TLE_DIR], settings.satellites, names)
    params = CrossoverParams(space_diff_threshold_km=100.0, time_diff_threshold_s=1800.0)
    start = datetime.fromisoformat(args.start).replace(tzinfo=UTC)

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        t = time.perf_counter()
        cpu0 = time.process_time()
        new_end = start + timedelta(days=args.days)
        events = search_constellation(tles, PAIRS, start, new_end, params, workers=args.workers)
        n_new, _ = write_csv(events, out / "new.csv")
        new_s = time.perf_counter() - t
        new_cpu_s = time.process_time() - cpu0 + _children_cpu_s()
        new_bytes = (out / "new.csv").stat().st_size
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        worker_peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0

        old_end = start + timedelta(days=old_days)
        t = time.perf_counter()
        cpu0 = time.process_time()
        n_old, old_keys = write_csv(reference_find_events(tles, PAIRS, start, old_end, params), out / "old.csv")
        old_s = time.perf_counter() - t
        old_cpu_s = time.process_time() - cpu0
        old_bytes = (out / "old.csv").stat().st_size
        # The new path again on the old path's days (cheap next to either run).
        _, new_keys = write_csv(search_constellation(tles, PAIRS, start, old_end, params), out / "again.csv")
        agree, worst = same_events(new_keys, old_keys)

    new_per_day, old_per_day = new_s / args.days, old_s / old_days
    print(f"pairs: {len(PAIRS)} ({', '.join(f'{a}x{b}' for a, b in PAIRS)})")
    print(
        f"new (shared tracks, compact regions, {args.workers} process(es)): {new_s:.1f} s for {args.days:g} d"
        f" (CPU {new_cpu_s:.1f} s), {n_new} events, CSV {new_bytes} bytes"
    )
    scaled = "" if old_days == args.days else f" (scaled per day to {old_per_day * args.days:.1f} s for {args.days:g} d)"
    print(
        f"old (per pair, full regions): {old_s:.1f} s for {old_days:g} d{scaled} (CPU {old_cpu_s:.1f} s),"
        f" {n_old} events, CSV {old_bytes} bytes"
    )
    print(f"same events on the old path's {old_days:g} d: {agree} (largest time difference {worst:.0f} s)")
    print(f"new path peak memory (ru_maxrss): {peak_mib:.0f} MiB, largest worker {worker_peak_mib:.0f} MiB")
    per = "" if old_days == args.days else " per day"
    print(f"CPU ratio (old CPU s/day / new CPU s/day, workers included): {old_cpu_s / old_days / (new_cpu_s / args.days):.2f}")
    print("(wall times; on a shared machine compare within one run only)")
    print(f"ratio={old_per_day / new_per_day:.2f}{per}")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
