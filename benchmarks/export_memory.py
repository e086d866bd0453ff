"""Memory of ``eomatch-export`` stays flat as the catalogue grows (it streams).

Writes two synthetic catalogues (``--small`` and ``--large`` matchups; each group of
6 items holds 2 matchups), then exports each in every format under ``tracemalloc``
and prints the peak of Python allocations during the export and the rate. The index is
built before tracing (its rebuild is the catalogue's cost, not the export's). The
last line is ``ratio=<large peak / small peak>`` (worst format); streaming keeps it
near 1 where a whole-catalogue list would make it ``large / small``.

    .venv/bin/python benchmarks/export_memory.py --small 2000 --large 20000
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _synth import ITEMS_PER_GROUP, generate  # noqa: E402

from eomatch.catalogue import MatchupCatalogue  # noqa: E402
from eomatch.export import FORMATS, export_matchups  # noqa: E402

MATCHUPS_PER_GROUP = 2


def warm_up(work: Path, formats: list[str]) -> None:
    """One tiny export per format before tracing: first-use imports are not the export's memory."""
    root = work / "warm-up"
    generate(root, ITEMS_PER_GROUP, workers=1)
    with MatchupCatalogue.open(root) as cat:
        for fmt in formats:
            export_matchups(cat, work / f"warm-up.{fmt}", fmt)
    shutil.rmtree(root)


def peak_bytes(root: Path, fmt: str, out: Path, batch_rows: int) -> tuple[int, int, float]:
    """(rows, peak traced bytes, seconds) of one export."""
    cat = MatchupCatalogue.open(root)
    cat.count()  # index built (or checked) before tracing
    tracemalloc.start()
    t0 = time.perf_counter()
    summary = export_matchups(cat, out, fmt, batch_rows=batch_rows)
    seconds = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    cat.close()
    return summary.rows, peak, seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", type=int, default=2000, help="matchups in the small catalogue")
    ap.add_argument("--large", type=int, default=20000, help="matchups in the large catalogue")
    ap.add_argument("--batch-rows", type=int, default=10_000, help="rows per batch / row group")
    ap.add_argument("--formats", default=",".join(FORMATS))
    args = ap.parse_args(argv)
    formats = args.formats.split(",")
    work = Path(tempfile.mkdtemp(prefix="eomatch-export-bench-"))
    warm_up(work, formats)
    worst = 0.0
    try:
        peaks: dict[str, dict[int, int]] = {}
        for n in (args.small, args.large):
            root = work / f"cat-{n}"
            synth = generate(root, n * ITEMS_PER_GROUP // MATCHUPS_PER_GROUP)
            print(f"catalogue of {synth.items:,} items written in {synth.seconds:.1f} s", flush=True)
            for fmt in formats:
                rows, peak, seconds = peak_bytes(root, fmt, work / f"m-{n}.{fmt}", args.batch_rows)
                peaks.setdefault(fmt, {})[n] = peak
                print(f"{fmt:8} {rows:>9,} matchups  peak {peak / 2**20:7.1f} MiB  "
                      f"{rows / seconds:8,.0f} matchups/s (under tracemalloc)", flush=True)  # fmt: skip
            shutil.rmtree(root)
        for _fmt, by_n in peaks.items():
            worst = max(worst, by_n[args.large] / max(by_n[args.small], 1))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"ratio={worst:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
