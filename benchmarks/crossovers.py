"""Crossover search: eomatch's coarse KD-tree + 1 s refinement vs the per-time-shift baseline.

Sentinel-2A x Landsat-9, 100 km / 1800 s, nadir, on the packaged 2022 TLEs.

Baseline (the honest straightforward method): propagate both satellites at 1 s
with the same SGP4 arrays, then for every time shift within ±1800 s compare the
two tracks with one vectorised numpy operation, collect the hits and group them
into events with the same rules. Timed on ``--days`` days, reported per day.
eomatch: ``find_crossovers`` over ``--year-days`` days of 2022 (the whole year by
default), reported per day, with the peak memory of that run.

Both must find the same events on the shared days. The last line is
``ratio=<baseline s/day / eomatch s/day>`` (target >= 20).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from datetime import UTC, datetime, timedelta

import numpy as np

from eomatch.orbits import CrossoverParams, find_crossovers, load_tles
from eomatch.orbits.propagate import EARTH_RADIUS_KM, ground_track, to_unix_s
from eomatch.orbits.reference import group_hits
from eomatch.orbits.tle import PACKAGED_TLE_DIR
from eomatch.settings import SatelliteSpec

DIST_KM = 100.0
TIME_S = 1800
SATELLITES = [
    SatelliteSpec(name="Sentinel-2A", norad_id=40697, swath_km=290, instrument="MSI"),
    SatelliteSpec(name="Landsat-9", norad_id=49260, swath_km=185, instrument="OLI-2"),
]


def baseline_events(tles_a, tles_b, start: datetime, days: float) -> list[tuple[float, ...]]:
    """Every time shift in ±TIME_S, one vectorised comparison each; hits -> events."""
    t0 = to_unix_s(start)
    n = int(days * 86400) + 1
    t = t0 + np.arange(n, dtype=np.float64)
    ua = ground_track(tles_a, t).unit
    ub = ground_track(tles_b, t).unit
    cos_d = np.cos(DIST_KM / EARTH_RADIUS_KM)
    hit_a, hit_b = [], []
    for shift in range(-TIME_S, TIME_S + 1):
        if shift >= 0:
            ok = np.einsum("ij,ij->i", ua[: n - shift], ub[shift:]) >= cos_d
            i = np.flatnonzero(ok)
        else:
            ok = np.einsum("ij,ij->i", ua[-shift:], ub[: n + shift]) >= cos_d
            i = np.flatnonzero(ok) - shift
        hit_a.append(i)
        hit_b.append(i + shift)
    ia = np.concatenate(hit_a)
    ib = np.concatenate(hit_b)
    period = min(tles_a.period_s, tles_b.period_s)
    events = [
        (t[ia[p].min()], t[ia[p].max()], t[ib[p].min()], t[ib[p].max()])
        for p in group_hits(ia, ib, ua[:, 2] >= 0, period)
    ]
    return sorted(events)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=2.0, help="days for the baseline (default 2)")
    parser.add_argument(
        "--year-days", type=float, default=365.0, help="days for eomatch (default 365)"
    )
    parser.add_argument(
        "--start", default="2022-05-21", help="first shared day (default 2022-05-21)"
    )
    args = parser.parse_args(argv)

    tles = load_tles([PACKAGED_TLE_DIR], SATELLITES, ["Sentinel-2A", "Landsat-9"])
    a, b = tles["Sentinel-2A"], tles["Landsat-9"]
    params = CrossoverParams(space_diff_threshold_km=DIST_KM, time_diff_threshold_s=TIME_S)

    # eomatch over the year first, so ru_maxrss is that run's peak.
    year0 = datetime(2022, 1, 1, tzinfo=UTC)
    year1 = year0 + timedelta(days=args.year_days)
    t = time.perf_counter()
    n_year = sum(
        1 for _ in find_crossovers(params, "Sentinel-2A", "Landsat-9", year0, year1, tles=tles)
    )
    eo_s = time.perf_counter() - t
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    eo_per_day = eo_s / args.year_days

    start = datetime.fromisoformat(args.start).replace(tzinfo=UTC)
    end = start + timedelta(days=args.days)
    eo_events = sorted(
        (to_unix_s(e.start_a), to_unix_s(e.end_a), to_unix_s(e.start_b), to_unix_s(e.end_b))
        for e in find_crossovers(params, "Sentinel-2A", "Landsat-9", start, end, tles=tles)
    )
    t = time.perf_counter()
    base_events = baseline_events(a, b, start, args.days)
    base_s = time.perf_counter() - t
    base_per_day = base_s / args.days

    worst = max(
        (
            max(abs(x - y) for x, y in zip(e, r, strict=True))
            for e, r in zip(eo_events, base_events, strict=False)
        ),
        default=0.0,
    )
    agree = len(eo_events) == len(base_events) and worst <= 1.0
    print(f"shared days: {args.start} + {args.days:g} d")
    print(f"baseline events: {len(base_events)}")
    print(f"eomatch events: {len(eo_events)}")
    print(f"agree: {agree} (largest start/end difference {worst:.0f} s)")
    print(f"baseline: {base_s:.2f} s for {args.days:g} d = {base_per_day:.3f} s/day")
    print(
        f"eomatch: {eo_s:.2f} s for {args.year_days:g} d ({n_year} events) = {eo_per_day:.4f} s/day"
    )
    print(f"eomatch peak memory (ru_maxrss, year run): {peak_mib:.0f} MiB")
    print(f"ratio={base_per_day / eo_per_day:.1f}")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
