"""External read throughput with a read replica (``stack.db.replicas: 1``) vs without (0).

For each of ``replicas`` 0 and 1 this starts a private stack (own state folder under
/tmp, free ports, the browser build cached in the repo's ``.cache``), ingests
``--items`` synthetic items (``_synth.py``) with ``eomatch-ingest``'s library call,
then runs a fixed request mix against ``/external/`` through nginx (landing page,
``/collections``, an items page, an item by id, ``GET /search`` with bbox and
datetime) with ``--concurrency`` readers for ``--duration-s`` seconds: a bounded,
loopback-only load. Meanwhile (unless ``--ingest-items 0``) a second catalogue
(30,000 items by default: about as long as the reads here) is ingested into the
primary, in both runs alike: keeping external reads away from the
primary's write work is what the replica is for. Each stack is stopped and its folder
removed afterwards, also on failure.

The load generator (``benchmarks/_load.py``, shared with ``external_load.py``) is ONE
separate process pinned to one core (``os.sched_setaffinity``) running asyncio readers
with httpx (``--client aiohttp`` to change), so it cannot starve the servers of both cores. The servers (PostgreSQL primary and standby, the
uvicorn apps, nginx) and the concurrent ingest keep the other core plus whatever the
OS gives them: everything runs on the same 2 cores, so this measures isolation from
the primary's work, not added hardware. Prints a table of both runs (requests/s,
p50/p95 latency, errors, per request kind) and last
``ratio=<req/s with replica / req/s without>``; exits 1 when any request failed
(req/s then counts successful answers only).

Found with it (pgSTAC 0.10): on a standby every item read and search through
``/external/`` answers 500 (``cannot execute INSERT in a read-only transaction``):
pgSTAC's ``search()`` records each query in ``pgstac.searches`` unless the setting
``pgstac.readonly`` is true, and the stack does not set it for the read role.
``--pgstac-readonly`` sets it (``ALTER ROLE <read_user> SET pgstac.readonly``) in both
runs, to measure what the replica gives once that is fixed.

Measured once each (2 cores, a full test run using CPU at the same time; defaults):
as shipped, replicas=1 failed 1333 of 2216 reads (ratio=0.612 of successful answers);
with ``--pgstac-readonly`` 74.5 vs 91.2 req/s, p95 548 vs 405 ms (ratio=0.818: the
standby replays the ingest's WAL on the same cores); with ``--pgstac-readonly
--ingest-items 0`` 146.3 vs 122.8 req/s (ratio=1.191).

    .venv/bin/python benchmarks/replica_reads.py                 # 20000 items, 16 readers, 15 s
    .venv/bin/python benchmarks/replica_reads.py --pgstac-readonly
    .venv/bin/python benchmarks/replica_reads.py --items 2000 --duration-s 5
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import threading
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _synth  # noqa: E402
from _load import (  # noqa: E402
    CLIENTS,
    KINDS,
    REPO,
    LoadRun,
    db_port_for_standbys,
    failed_requests,
    finish,
    print_kinds,
    started_stack,
)
from ingest_throughput import scratch_dir  # noqa: E402

from eomatch.settings import Settings  # noqa: E402


def request_paths(collections: list[str], ids: list[tuple[str, str]], n: int, seed: int) -> list[tuple[str, str]]:
    """(kind, path under /external) cycling through the five kinds, fixed by ``seed``."""
    rng = random.Random(seed)
    out: list[tuple[str, str]] = []
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        if kind == "landing":
            path = "/"
        elif kind == "collections":
            path = "/collections"
        elif kind == "items":
            path = f"/collections/{rng.choice(collections)}/items?limit=10"
        elif kind == "item":
            cid, iid = rng.choice(ids)
            path = f"/collections/{cid}/items/{iid}"
        else:
            lon, lat = rng.uniform(-170.0, 140.0), rng.uniform(-60.0, 30.0)
            month = rng.randint(1, 11)
            bbox = f"{lon:.3f},{lat:.3f},{lon + 30:.3f},{lat + 30:.3f}"
            dt = f"2022-{month:02d}-01T00:00:00Z/2022-{month + 1:02d}-01T00:00:00Z"
            path = f"/search?bbox={bbox}&datetime={dt}&limit=10"
        out.append((kind, path))
    return out


def _standby_xacts(settings: Settings, replicas: int) -> int | None:
    """Transactions the standby has run (its own reads), to show the reads went there."""
    if replicas < 1:
        return None
    import psycopg

    from eomatch.stack.replica import replica_credentials

    with psycopg.connect(replica_credentials(settings, 1, "admin").dsn) as conn:
        (n,) = conn.execute(  # type: ignore[misc]
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    return int(n)


def measure(settings: Settings, base_url: str, replicas: int, args: argparse.Namespace) -> dict[str, Any]:
    """Ingest, then time the read mix (with the concurrent ingest) on one running stack."""
    import psycopg

    from eomatch.ingest import ingest
    from eomatch.stack.db import stack_credentials
    from eomatch.stack.replica import catch_up

    work = scratch_dir("eomatch-replica-reads-")
    try:
        synth = _synth.generate(work / "catalogue", args.items, seed=args.seed)
        t0 = time.perf_counter()
        ingest(settings, synth.root, quiet=True)
        print(f"  replicas={replicas}: ingested {synth.items} items in {time.perf_counter() - t0:.1f}s", flush=True)
        if args.pgstac_readonly:  # both runs alike; replicated to the standby like any DDL
            from psycopg import sql

            with psycopg.connect(stack_credentials(settings, "admin").dsn, autocommit=True) as conn:
                conn.execute(sql.SQL("ALTER ROLE {} SET pgstac.readonly = 'true'").format(
                    sql.Identifier(settings.stack.db.read_user)))
        if replicas:
            catch_up(settings, timeout_s=300)
        if args.pgstac_readonly:
            time.sleep(6.0)  # the external API renews pooled connections after 5 s idle
        with psycopg.connect(stack_credentials(settings, "admin").dsn) as conn:
            rows = conn.execute(  # bounded sample of ids for item-by-id reads
                "SELECT collection, id FROM pgstac.items TABLESAMPLE SYSTEM (5) LIMIT 500"
            ).fetchall()
        ids = [(str(c), str(i)) for c, i in rows] or list(synth.sample)
        paths = request_paths(sorted(synth.collections), ids, 5000, args.seed)

        extra = None
        if args.ingest_items:
            extra = _synth.generate(work / "extra", args.ingest_items, seed=args.seed + 1000)
        ingest_result: dict[str, Any] = {}

        def background_ingest() -> None:
            t = time.perf_counter()
            try:
                assert extra is not None
                ingest(settings, extra.root, quiet=True)
                ingest_result["items"] = extra.items
            except Exception as e:  # noqa: BLE001 - reported, the reads still count
                ingest_result["error"] = f"{type(e).__name__}: {e}"
            ingest_result["ingest_s"] = time.perf_counter() - t

        xacts_before = _standby_xacts(settings, replicas)
        load = LoadRun(base_url + "/external", paths, args.concurrency, args.duration_s, args.client)
        writer = threading.Thread(target=background_ingest, daemon=True) if extra else None
        time.sleep(1.0)  # the child is warming up; start the writes as the timed reads start
        if writer:
            writer.start()
        summary = load.result()
        if writer:
            writer.join()
        xacts_after = _standby_xacts(settings, replicas)
        summary["standby_xacts"] = None if xacts_before is None else (xacts_after or 0) - xacts_before
        summary["ingest"] = ingest_result
        return summary
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _start(replicas: int) -> AbstractContextManager[Any]:
    """A running private stack for a block; new free ports when one was taken meanwhile
    (other programs on this machine start servers too)."""
    sys.path.insert(0, str(REPO / "tests"))
    from conftest import stack_settings  # type: ignore[import-not-found]

    def settings_for(state_dir: Path) -> Settings:
        return stack_settings(
            state_dir, db={"port": db_port_for_standbys(replicas), "replicas": replicas},
            proxy={"external_rate_per_s": 100000, "external_burst": 100000},
        )

    return started_stack(f"eomatch-bench-replica-reads-{replicas}-", settings_for, ("already in use",),
                       note=f"replicas={replicas}: ")


def run_one(replicas: int, args: argparse.Namespace) -> dict[str, Any]:
    """Start a private stack with ``replicas`` standbys, measure, stop and remove it."""
    t0 = time.perf_counter()
    with _start(replicas) as stack:
        print(f"  replicas={replicas}: stack up in {time.perf_counter() - t0:.1f}s at {stack.urls.base}", flush=True)
        return measure(stack.settings, stack.urls.base, replicas, args)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", type=int, default=20000, help="items ingested before the reads")
    p.add_argument("--concurrency", type=int, default=16, help="concurrent readers")
    p.add_argument("--duration-s", type=float, default=15.0, help="length of the timed reads")
    p.add_argument("--ingest-items", type=int, default=30000,
                   help="items ingested into the primary during the reads (0: none)")
    p.add_argument("--client", choices=CLIENTS, default="httpx",
                   help="the load generator's HTTP library (external_load.py uses aiohttp)")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--pgstac-readonly", action="store_true",
                   help="set pgstac.readonly for the read role first (both runs): pgSTAC's search then "
                        "skips its INSERT into pgstac.searches, which a standby refuses")
    args = p.parse_args(argv)
    if len(os.sched_getaffinity(0)) < 2:
        print("warning: one core only: the load generator shares it with the servers", file=sys.stderr)

    results: dict[int, dict[str, Any]] = {}
    for replicas in (0, 1):
        results[replicas] = run_one(replicas, args)

    print(f"\n{args.items} items, {args.concurrency} readers, {args.duration_s:g} s, "
          f"{args.ingest_items} items ingested meanwhile"
          + (", pgstac.readonly set for the read role" if args.pgstac_readonly else ""))
    print(f"{'replicas':<9}{'kind':<12}{'ok':>7}{'errors':>8}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}")
    rps: dict[int, float] = {}
    for replicas, r in results.items():
        rps[replicas] = print_kinds(str(replicas), 9, r)
        ing = r["ingest"]
        ing_txt = (f"error {ing['error']}" if "error" in ing else
                   f"{ing['items']} items in {ing['ingest_s']:.1f}s" if ing else "none")
        print(f"{replicas:<9}concurrent ingest: {ing_txt}; standby transactions during reads: {r['standby_xacts']}")
        if r["first_error"]:
            print(f"{replicas:<9}first error: {r['first_error'][0]}")
    ratio = rps[1] / rps[0] if rps[0] else float("nan")
    return finish(failed_requests(results.values()), ratio)


if __name__ == "__main__":
    sys.exit(main())
