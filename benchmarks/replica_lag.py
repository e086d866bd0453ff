"""Replication lag of a hot standby (``stack.db.replicas: 1``) while ``eomatch-ingest``
loads a catalogue into the primary.

Starts a stack with one standby (or uses ``--state-dir`` of a running one that has
one), writes a synthetic catalogue of ``--items`` items with ``_synth.py``, ingests it,
and samples the standby's lag (``eomatch.stack.replica.replica_state``: WAL bytes not
replayed, seconds behind) every ``--every-s`` meanwhile. After ingest returns it times
how long the standby takes to replay everything the primary wrote, and checks that the
standby holds the same number of items. The last line is
``max_lag_bytes=... max_lag_s=... catch_up_s=...``.

    .venv/bin/python benchmarks/replica_lag.py --items 20000
"""

from __future__ import annotations

import argparse
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _synth  # noqa: E402
from ingest_throughput import scratch_dir  # noqa: E402

from eomatch.settings import Settings, load_settings  # noqa: E402
from eomatch.stack.replica import catch_up, replica_credentials, replica_state  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _items(dsn: str) -> int:
    import psycopg

    with psycopg.connect(dsn) as conn:
        (n,) = conn.execute("SELECT count(*) FROM pgstac.items").fetchone()  # type: ignore[misc]
    return int(n)


def measure(settings: Settings, n_items: int, every_s: float, seed: int) -> dict[str, Any]:
    from eomatch.ingest import ingest
    from eomatch.pgstac import stack_credentials

    work = scratch_dir("eomatch-replica-lag-")
    try:
        synth = _synth.generate(work / "catalogue", n_items, seed=seed)
        samples: list[dict[str, Any]] = []
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                samples.append({"t": time.monotonic(), **replica_state(settings, 1)})
                done.wait(every_s)

        before = _items(stack_credentials(settings, "admin").dsn)
        sampler = threading.Thread(target=sample, daemon=True)
        t0 = time.monotonic()
        sampler.start()
        ingest(settings, synth.root, quiet=True)
        ingest_s = time.monotonic() - t0
        t1 = time.monotonic()
        caught = catch_up(settings, timeout_s=300)
        catch_up_s = time.monotonic() - t1
        done.set()
        sampler.join()
        on_primary = _items(stack_credentials(settings, "admin").dsn)
        on_standby = _items(replica_credentials(settings, 1, "admin").dsn)
        lag_b = [s["lag_bytes"] for s in samples if s.get("lag_bytes") is not None]
        lag_s = [s["lag_s"] for s in samples if s.get("lag_s") is not None]
        return {
            "items": synth.items, "loaded": on_primary - before, "ingest_s": round(ingest_s, 1),
            "items_per_s": round(synth.items / ingest_s), "samples": len(samples),
            "down_samples": sum(1 for s in samples if not s["ok"]),
            "max_lag_bytes": max(lag_b, default=None), "max_lag_s": max(lag_s, default=None),
            "median_lag_bytes": sorted(lag_b)[len(lag_b) // 2] if lag_b else None,
            "catch_up_s": round(catch_up_s, 3), "standby": caught,
            "same_count": on_primary == on_standby,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", type=int, default=20000)
    p.add_argument("--every-s", type=float, default=0.25)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--state-dir", help="a running stack with stack.db.replicas >= 1 (else one is started)")
    args = p.parse_args(argv)
    if args.state_dir:
        settings = load_settings(config=Path(args.state_dir) / "conf" / "settings.yaml", environ={})
        result = measure(settings, args.items, args.every_s, args.seed)
    else:
        sys.path.insert(0, str(REPO / "tests"))
        from _load import db_port_for_standbys
        from conftest import private_stack  # type: ignore[import-not-found]

        with private_stack("eomatch-bench-replica-", db={"port": db_port_for_standbys(1), "replicas": 1}) as stack:
            result = measure(stack.settings, args.items, args.every_s, args.seed)
    for key, value in result.items():
        print(f"{key}: {value}")
    print(f"max_lag_bytes={result['max_lag_bytes']} max_lag_s={result['max_lag_s']} catch_up_s={result['catch_up_s']}")
    return 0 if result["same_count"] else 1


if __name__ == "__main__":
    sys.exit(main())
