"""What ``numberMatched`` costs: pgSTAC's ``context`` off / auto / on, measured.

Writes a catalogue of N items with ``_synth.py``, ingests it into a fresh pgSTAC
database set up as the stack sets it up (queryables, partitions), then times
``pgstac.search`` (what both APIs' ``/search`` runs for every page) for a few
searches researchers and STAC Browser make, with ``pgstac.context`` set to each
value for the session. Prints the median latency per search and setting, whether a
total came back, and ends with ``ratio=<on latency / off latency>`` (median over
the searches).

    .venv/bin/python benchmarks/context_cost.py --items 6000
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _synth  # noqa: E402
from ingest_throughput import REPO, drop_database, eomatch_child, fresh_database, scratch_dir  # noqa: E402

from eomatch.settings import Settings, load_settings  # noqa: E402
from eomatch.stack.db import DbCredentials  # noqa: E402

SEARCHES: dict[str, dict[str, object]] = {
    "first page, all items": {"limit": 10},
    "cloud filter, sorted": {
        "limit": 10,
        "filter-lang": "cql2-json",
        "filter": {"op": "<", "args": [{"property": "matchup:max_cloud_cover"}, 30]},
        "sortby": [{"field": "matchup:abs_time_diff_s", "direction": "asc"}],
    },
    "time difference filter": {
        "limit": 10,
        "filter-lang": "cql2-json",
        "filter": {"op": "<", "args": [{"property": "matchup:abs_time_diff_s"}, 600]},
    },
    "a month": {"limit": 10, "datetime": "2022-03-01T00:00:00Z/2022-03-31T23:59:59Z"},
}
CONTEXTS = ("off", "auto", "on")


def time_search(creds: DbCredentials, context: str, body: dict[str, object], repeats: int) -> tuple[float, object]:
    """Median seconds of ``pgstac.search(body)`` with ``context`` set; the numberMatched it gave."""
    import psycopg

    with psycopg.connect(creds.dsn, autocommit=True) as conn:
        conn.execute("SELECT set_config('pgstac.context', %s, false)", (context,))
        doc = json.dumps(body)
        conn.execute("SELECT pgstac.search(%s::jsonb)", (doc,))  # plan and caches warm for every setting alike
        times = []
        matched: object = None
        for _ in range(repeats):
            t0 = time.perf_counter()
            row = conn.execute("SELECT pgstac.search(%s::jsonb)", (doc,)).fetchone()
            times.append(time.perf_counter() - t0)
            matched = (row[0] or {}).get("numberMatched") if row else None
    return statistics.median(times), matched


@contextlib.contextmanager
def database_only(state_dir: str | None, db_port: int | None) -> Iterator[Settings]:
    """A running stack's settings, else a private PostgreSQL+pgSTAC of its own (the APIs
    run pgstac.search; nothing else of the stack is needed to time it)."""
    if state_dir:
        overrides: dict[str, object] = {"stack": {"state_dir": state_dir, **({"db": {"port": db_port}} if db_port else {})}}
        yield load_settings(overrides=overrides, environ={})
        return
    sys.path.insert(0, str(REPO / "tests"))
    from conftest import private_database  # type: ignore[import-not-found]

    with private_database("eomatch-bench-") as settings:
        yield settings


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=6000, help="catalogue size (default 6000)")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--state-dir", help="use this running stack instead of starting one")
    ap.add_argument("--db-port", type=int, help="its database port")
    args = ap.parse_args(argv)
    work = scratch_dir("eomatch-context-bench-")
    ratios = []
    try:
        root = work / "catalogue"
        synth = _synth.generate(root, args.items, seed=3)
        with database_only(args.state_dir, args.db_port) as settings:
            creds = fresh_database(settings, f"bench_context_{synth.items}")
            try:
                loaded = eomatch_child(creds, root, None)
                print(f"{synth.items} items: {loaded['line']}")
                for name, body in SEARCHES.items():
                    got = {ctx: time_search(creds, ctx, body, args.repeats) for ctx in CONTEXTS}
                    cells = "  ".join(f"{ctx} {s * 1000:7.2f} ms (numberMatched={m})" for ctx, (s, m) in got.items())
                    print(f"{name:24s} {cells}")
                    ratios.append(got["on"][0] / got["off"][0])
            finally:
                drop_database(settings, creds.dbname)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"ratio={statistics.median(ratios):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
