"""Progress lines: per-update cost of ``eomatch.progress.Progress`` vs tqdm, same work, same run.

Both count the same updates into a non-terminal stream (what a log file or CI sees),
redrawing at most every 0.5 s, with a known total (percent and ETA): ours with
``interval_s=0.5``, tqdm with ``mininterval=0.5`` and its default ``miniters`` (which
skips even the clock for most updates). Also timed: counting bytes (``unit="B"``; tqdm
``unit_scale``/``unit_divisor=1024``) and silenced (``quiet=True``; tqdm ``disable=True``),
which is what ``-q`` and the libraries' callers pay.

    .venv/bin/python benchmarks/progress_overhead.py --updates 300000

Prints ``ratio=<tqdm s per update ÷ ours>`` (the counted-items case) last (> 1: ours is cheaper).
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Callable

from _timing import best_of
from tqdm import tqdm

from eomatch.progress import Progress


def ours(unit: str = "items", quiet: bool = False, step: int = 1) -> Callable[[int], None]:
    def run(n: int) -> None:
        with Progress("bench", total=n * step, unit=unit, quiet=quiet, stream=io.StringIO(), interval_s=0.5) as p:
            for _ in range(n):
                p.update(step)

    return run


def theirs(unit: str = "items", quiet: bool = False, step: int = 1) -> Callable[[int], None]:
    scale = {"unit_scale": True, "unit_divisor": 1024} if unit == "B" else {}

    def run(n: int) -> None:
        with tqdm(total=n * step, desc="bench", unit=unit, disable=quiet, file=io.StringIO(), mininterval=0.5,
                  ascii=True, dynamic_ncols=False, **scale) as p:  # fmt: skip
            for _ in range(n):
                p.update(step)

    return run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--updates", type=int, default=300_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    cases = {
        "items": ({}, {}),
        "bytes (64 KiB steps)": ({"unit": "B", "step": 65536}, {"unit": "B", "step": 65536}),
        "quiet / disabled": ({"quiet": True}, {"quiet": True}),
    }
    first_ratio = None
    for name, (kw_ours, kw_theirs) in cases.items():
        a = best_of(ours(**kw_ours), args.updates, args.repeat)
        b = best_of(theirs(**kw_theirs), args.updates, args.repeat)
        first_ratio = first_ratio if first_ratio is not None else b / a
        print(f"{name}: ours {a * 1e9:.0f} ns/update, tqdm {b * 1e9:.0f} ns/update ({b / a:.2f}x)")
    print(f"ratio={first_ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
