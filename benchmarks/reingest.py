"""First ingest vs an unchanged re-run with ``--since last`` (the scheduled-ingest case).

Writes a catalogue of N items with ``_synth.py``, ingests it into a fresh pgSTAC
database, then runs again with ``since="last"`` (nothing changed: only the
directory walk and a few queries are left) and, for information, a full
unchanged re-run without ``since`` (every file read and hashed, none parsed), and a
``since`` re-run after ``--lost`` items were deleted from the database behind
ingest's back (the markers' sums differ: the collection's ids are read from pgSTAC
and the lost items sent again). Each run is timed inside its own child process. The
last line is ``ratio=<first run s / re-run s>`` (target >= 20).

    .venv/bin/python benchmarks/reingest.py --items 100000
    .venv/bin/python benchmarks/reingest.py --catalogue /dev/shm/cat   # one _synth.py wrote before
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _synth  # noqa: E402
from ingest_throughput import (  # noqa: E402
    drop_database,
    eomatch_child,
    fresh_database,
    item_counts,
    local_stack,
    scratch_dir,
)

from eomatch.stack.db import DbCredentials  # noqa: E402


def delete_some(creds: DbCredentials, n: int) -> int:
    """Delete ``n`` items straight in pgSTAC (as a restore or an API client could); how many went."""
    import psycopg

    with psycopg.connect(creds.dsn, autocommit=True) as conn:
        cur = conn.execute(
            "DELETE FROM pgstac.items WHERE (collection, id) IN "
            "(SELECT collection, id FROM pgstac.items ORDER BY md5(id) LIMIT %s)",
            (n,),
        )
        return cur.rowcount


def count_items(root: Path) -> int:
    """Item files of an existing catalogue (streamed)."""
    from eomatch.catalogue import MatchupCatalogue

    return sum(1 for _ in MatchupCatalogue.open(root).iter_item_paths())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=100_000, help="catalogue size (default 100000)")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--state-dir", help="use this running stack instead of starting one")
    ap.add_argument("--db-port", type=int, help="its database port")
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--lost", type=int, default=100, help="items deleted from the database before the last run")
    ap.add_argument(
        "--catalogue", type=Path, help="an existing catalogue (kept; its ingest state is removed first) instead of --items"
    )
    args = ap.parse_args(argv)
    work = scratch_dir("eomatch-reingest-bench-")
    try:
        if args.catalogue:
            root = args.catalogue
            for state in (root / ".eomatch").glob("ingest-*"):  # a first ingest starts with no memory
                state.unlink()
            n_items = count_items(root)
            print(f"{root}: {n_items} items", file=sys.stderr)
        else:
            root = work / "catalogue"
            synth = _synth.generate(root, args.items, seed=args.seed)
            n_items = synth.items
            print(f"wrote {synth.items} items in {synth.seconds:.1f}s", file=sys.stderr)
        with local_stack(args.state_dir, args.db_port) as settings:
            creds = fresh_database(settings, f"bench_reingest_{n_items}")
            try:
                first = eomatch_child(creds, root, args.batch_size)
                rerun = eomatch_child(creds, root, args.batch_size, since="last")
                full = eomatch_child(creds, root, args.batch_size)
                counts = item_counts(creds)
                deleted = delete_some(creds, args.lost)
                repair = eomatch_child(creds, root, args.batch_size, since="last")
                repaired_counts = item_counts(creds)
            finally:
                drop_database(settings, creds.dbname)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if first["new"] != n_items or sum(counts.values()) != n_items:
        raise SystemExit(f"first run loaded {first['new']} items, database holds {counts}; expected {n_items}")
    if rerun["new"] + rerun["updated"]:
        raise SystemExit(f"the --since last re-run changed items: {rerun['line']}")
    if full["new"] + full["updated"] or full["unchanged"] != n_items:
        raise SystemExit(f"the full re-run was not a no-op: {full['line']}")
    print(f"first ingest:           {first['seconds']:.2f}s  {first['line']} (peak RSS {first['peak_rss_mib']:.0f} MiB, CPU {first['cpu_s']:.0f}s)")
    print(f"re-run --since last:    {rerun['seconds']:.2f}s  {rerun['line']}")
    print(f"re-run, full unchanged: {full['seconds']:.2f}s  {full['line']}")
    if repair["new"] != deleted or repaired_counts != counts:
        raise SystemExit(f"after deleting {deleted} items the --since last run did not restore them: {repair['line']}")
    print(f"re-run --since last, {deleted} deleted in the database: {repair['seconds']:.2f}s  {repair['line']}")
    print(f"full unchanged re-run is {first['seconds'] / full['seconds']:.1f}x faster than the first ingest")
    print(f"ratio={first['seconds'] / rerun['seconds']:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
