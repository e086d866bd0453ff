"""External reads under load (issue 15 item 6): ``/external/`` with nginx's read cache
vs plain stac-fastapi-pgstac (``/api/``: uncached, one uvicorn worker), same request mix.

One private stack (own state folder under /tmp, free ports, the browser build cached in
the repo's ``.cache``) on ONE database: both runs read the same pgSTAC, through the same
nginx. ``--items`` synthetic items (``_synth.py``) are ingested with ``eomatch-ingest``'s
library call. The stack's settings, beyond the test defaults:

- rate limits raised (``stack.proxy.external_rate_per_s``/``external_burst`` and
  ``internal_rate_per_s``/``internal_burst`` 100000): at the defaults (50/s and 200/s
  per client address) nginx would answer 429 to a load test from one address;
- ``stack.proxy.external_cache_s``: the shipped default (``--cache-s`` to change);
- ``stack.api.workers`` 1 for both apps, one ``/api/`` process (the plain baseline);
  ``--external-replicas`` (default 2, the chosen setup) uvicorn processes of the external
  app (``stack.api.external_replicas``; ``stack.api.workers`` would add them to ``/api/``
  too).

The request mix, the same for both runs: landing page, ``/collections``, items pages
(collection x limit x month), item by id, ``GET /search`` by bbox + datetime (a 20 x 10
degree grid x months), cycling through the five kinds. The distinct URLs (``--urls``,
3000 by default, printed) are drawn once; each kind's URLs get a Zipf popularity
(exponent ``--zipf``, 1.0: the most popular of 1000 is asked ~1000x as often as the
last) and the readers draw from that, so a cache sees a realistic spread, not one URL.
The external run reports its hit ratio (``X-Cache-Status: HIT``). The internal run goes
first, then the external one; each after ``--warmup-s`` (5 s) of untimed reads of the
same mix, so both meet a warm database and the external run a cache as a running server
has it (with the default 10 s lifetime, copies expire during the timed run too).

The load generator is ``benchmarks/_load.py``, shared with ``replica_reads.py``: ONE
separate process pinned to one core (``os.sched_setaffinity``) running asyncio readers
over ``--concurrency`` keep-alive connections (gzip accepted), so the client cannot
starve the servers of both cores; nginx, the apps and PostgreSQL keep the other core
plus whatever the OS gives them. Its HTTP library is aiohttp by default here, not httpx
as in ``replica_reads.py``:
measured here, httpx spent ~3.4 ms of CPU per request, so on a shared core the client
itself was the ceiling (nginx's access log showed cache hits answered in 0 ms while the
client saw ~200 ms); aiohttp spends ~0.1-0.5 ms (``--client httpx`` to compare). The
table prints the client's CPU share and nginx's own time per request by cache status.

Prints per run and kind: requests, errors, req/s, p50/p95 latency; then the distinct
URLs, the hit ratio, whether the issue's goal (ratio >= 3, p95 <= 150 ms, no error) is
met, and last ``ratio=<external req/s / internal req/s>``. Exits 1 when any request
failed (req/s then counts successful answers only).

Measured once with the defaults (20,000 items, 20 s per run, 2 cores shared with other
jobs at a load average of 10-12): /api/ 82.0 req/s, p50 346 ms, p95 865 ms; /external/
1111.5 req/s, p50 17 ms, p95 99 ms, no error, hit ratio 0.933 (nginx: hits 0 ms, misses
p50 126 ms); ratio=13.560. With a 60 s lifetime no copy expires within the 25 s of
warm-up and timed reads: every miss is a first request for a URL, more than a server
running for longer would see with this mix. Other settings, one run each, in
docs/operations.md ("The external read cache"); with httpx as the client (10 s, one
external process) the ratio was 1.1-1.9, the client being the ceiling.

    .venv/bin/python benchmarks/external_load.py                  # 20000 items, 32 readers, 20 s each
    .venv/bin/python benchmarks/external_load.py --items 2000 --duration-s 5
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import time
from bisect import bisect_left
from contextlib import AbstractContextManager
from itertools import accumulate
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _synth  # noqa: E402
from _load import (  # noqa: E402
    CLIENTS,
    KINDS,
    REPO,
    failed_requests,
    finish,
    pct,
    print_kinds,
    run_load,
    started_stack,
)
from ingest_throughput import scratch_dir  # noqa: E402

from eomatch.settings import ProxySettings, Settings  # noqa: E402
from eomatch.stack.state import StatePaths  # noqa: E402

UNLIMITED_RATE = 100000
"""Per-client rate and burst of both APIs in this benchmark's stack (see the docstring)."""


def url_set(collections: list[str], ids: list[tuple[str, str]], months: list[str], n_urls: int,
            rng: random.Random) -> dict[str, list[str]]:
    """Distinct paths (under the API root) per kind, about ``n_urls`` in all, in a random
    popularity order (the first is the most popular)."""
    items_pages = [f"/collections/{c}/items?limit={lim}" + (f"&datetime={m}" if m else "")
                   for c in collections for lim in (10, 25) for m in ["", *months]]
    searches = [f"/search?bbox={lon},{lat},{lon + 20},{lat + 10}&datetime={m}&limit=10"
                for lon in range(-180, 180, 20) for lat in range(-80, 80, 10) for m in months]
    share = max(1, (n_urls - 2) // 3)
    by_kind = {
        "landing": ["/"],
        "collections": ["/collections"],
        "items": rng.sample(items_pages, min(share, len(items_pages))),
        "item": [f"/collections/{c}/items/{i}" for c, i in rng.sample(ids, min(share, len(ids)))],
    }
    by_kind["search"] = rng.sample(searches, min(max(1, n_urls - sum(map(len, by_kind.values()))), len(searches)))
    return by_kind


def request_mix(by_kind: dict[str, list[str]], n: int, zipf_s: float, rng: random.Random) -> list[tuple[str, str]]:
    """``n`` (kind, path) cycling through the kinds; within a kind the URL of popularity
    rank r is drawn with weight 1 / r**zipf_s."""
    cumulative = {k: list(accumulate(1.0 / (r + 1) ** zipf_s for r in range(len(v)))) for k, v in by_kind.items()}
    out = []
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        cum = cumulative[kind]
        out.append((kind, by_kind[kind][min(bisect_left(cum, rng.random() * cum[-1]), len(cum) - 1)]))
    return out


def _months(settings: Settings) -> list[str]:
    """Month windows (``start/end``) covering the ingested items' datetimes."""
    import psycopg

    from eomatch.stack.db import stack_credentials

    with psycopg.connect(stack_credentials(settings, "admin").dsn) as conn:
        lo, hi = conn.execute("SELECT min(datetime), max(datetime) FROM pgstac.items").fetchone()  # type: ignore[misc]
    out = []
    y, m = lo.year, lo.month
    while (y, m) <= (hi.year, hi.month):
        ny, nm = (y + 1, 1) if m == 12 else (y, m + 1)
        out.append(f"{y}-{m:02d}-01T00:00:00Z/{ny}-{nm:02d}-01T00:00:00Z")
        y, m = ny, nm
    return out


def _sample_ids(settings: Settings, n: int) -> list[tuple[str, str]]:
    import psycopg

    from eomatch.stack.db import stack_credentials

    with psycopg.connect(stack_credentials(settings, "admin").dsn) as conn:
        rows = conn.execute(  # a bounded sample, never the whole table
            "SELECT collection, id FROM pgstac.items TABLESAMPLE SYSTEM (20) LIMIT %s", (n,)
        ).fetchall()
    return [(str(c), str(i)) for c, i in rows]


def _start(args: argparse.Namespace) -> AbstractContextManager[Any]:
    """A running private stack for a block."""
    sys.path.insert(0, str(REPO / "tests"))
    from conftest import stack_settings  # type: ignore[import-not-found]

    def settings_for(state_dir: Path) -> Settings:
        return stack_settings(
            state_dir,
            api={"workers": 1, "internal_replicas": 1, "external_replicas": args.external_replicas},
            proxy={"external_rate_per_s": UNLIMITED_RATE, "external_burst": UNLIMITED_RATE,
                   "internal_rate_per_s": UNLIMITED_RATE, "internal_burst": UNLIMITED_RATE,
                   "external_cache_s": args.cache_s},
        )

    # a port taken meanwhile, or a supervisor hit by a signal meant for a stale pid of
    # another stack on this machine (pids recycle): start afresh
    return started_stack("eomatch-bench-external-load-", settings_for, ("already in use", "killed by"))


def nginx_times(log: Path, offset: int, root: str) -> dict[str, list[float]]:
    """nginx's own time per request (``rt=``, ms) under ``root`` by cache status, from the
    proxy's access log after ``offset``: what the server spent, without the client's
    share of the cores."""
    out: dict[str, list[float]] = {}
    with log.open("rb") as f:
        f.seek(offset)
        for line in f:
            text = line.decode(errors="replace")
            if f'"GET {root}' not in text or " rt=" not in text:
                continue
            rt = float(text.split(" rt=", 1)[1].split()[0]) * 1000
            status = text.rsplit(" cache=", 1)[1].strip() if " cache=" in text else ""
            out.setdefault(status or "none", []).append(rt)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", type=int, default=20000, help="items ingested before the reads")
    p.add_argument("--concurrency", type=int, default=32, help="concurrent readers")
    p.add_argument("--duration-s", type=float, default=20.0, help="length of each timed run")
    p.add_argument("--urls", type=int, default=3000, help="distinct URLs in the mix (about)")
    p.add_argument("--zipf", type=float, default=1.0, help="popularity exponent within each kind")
    p.add_argument("--cache-s", type=int, default=ProxySettings().external_cache_s,
                   help="stack.proxy.external_cache_s (default: the shipped default)")
    p.add_argument("--external-replicas", type=int, default=2,
                   help="stack.api.external_replicas (uvicorn processes of the external app; /api/ keeps 1)")
    p.add_argument("--warmup-s", type=float, default=5.0, help="untimed reads before each timed run")
    p.add_argument("--client", choices=CLIENTS, default="aiohttp",
                   help="the load generator's HTTP library (see the docstring)")
    p.add_argument("--seed", type=int, default=15)
    args = p.parse_args(argv)
    if len(os.sched_getaffinity(0)) < 2:
        print("warning: one core only: the load generator shares it with the servers", file=sys.stderr)

    from eomatch.ingest import ingest

    t0 = time.perf_counter()
    with _start(args) as stack:
        work = scratch_dir("eomatch-external-load-")
        try:
            base = stack.urls.base
            access_log = StatePaths(stack.settings.stack.state_dir).logs / "proxy-access.log"
            print(f"stack up in {time.perf_counter() - t0:.1f}s at {base}", flush=True)
            synth = _synth.generate(work / "catalogue", args.items, seed=args.seed)
            t0 = time.perf_counter()
            ingest(stack.settings, synth.root, quiet=True)
            print(f"ingested {synth.items} items in {time.perf_counter() - t0:.1f}s", flush=True)
            rng = random.Random(args.seed)
            ids = _sample_ids(stack.settings, args.urls) or list(synth.sample)
            by_kind = url_set(sorted(synth.collections), ids, _months(stack.settings), args.urls, rng)
            mix = request_mix(by_kind, 200_000, args.zipf, rng)
            distinct = sum(map(len, by_kind.values()))
            print(f"{distinct} distinct URLs (" + ", ".join(f"{k} {len(v)}" for k, v in by_kind.items())
                  + f"), Zipf exponent {args.zipf:g}; {len({p for _, p in mix[:50_000]})} of them in the first 50000 requests",
                  flush=True)

            results = {}
            for name, root in (("internal", "/api"), ("external", "/external")):
                # untimed, the same mix in another order: the database's pages (internal), the
                # cache (external) as a running server has them
                run_load(base + root, mix[::-1], args.concurrency, min(args.warmup_s, args.duration_s), args.client)
                offset = access_log.stat().st_size
                results[name] = run_load(base + root, mix, args.concurrency, args.duration_s, args.client)
                results[name]["nginx"] = nginx_times(access_log, offset, root)
                print(f"  {name}: {results[name]['kinds']['all']['ok'] / results[name]['elapsed_s']:.1f} req/s", flush=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    print(f"\n{args.items} items, {args.concurrency} readers, {args.duration_s:g} s per run, {distinct} distinct URLs; "
          f"external: stack.proxy.external_cache_s={args.cache_s}, {args.external_replicas} app process(es); "
          f"internal: uncached, 1 worker; one database, one nginx; {args.client} client pinned to one core")
    print(f"{'api':<10}{'kind':<12}{'ok':>7}{'errors':>8}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}")
    rps: dict[str, float] = {}
    for name, r in results.items():
        rps[name] = print_kinds(name, 10, r)
        if r["first_error"]:
            print(f"{name:<10}first error: {r['first_error'][0]}")
        print(f"{name:<10}client CPU {100 * r['client_cpu']:.0f}% of its core; nginx's time per request: "
              + ", ".join(f"{status} {len(v)} p50 {pct(v, 0.5):.1f} p95 {pct(v, 0.95):.1f} ms"
                          for status, v in sorted(r["nginx"].items())))
    ext = results["external"]
    hit_ratio = ext["hits"] / max(1, ext["kinds"]["all"]["ok"])
    ratio = rps["external"] / rps["internal"] if rps["internal"] else float("nan")
    errors = failed_requests(results.values())
    p95 = ext["kinds"]["all"]["p95_ms"]
    print(f"external hit ratio {hit_ratio:.3f} (X-Cache-Status: HIT)")
    met = ratio >= 3 and p95 is not None and p95 <= 150 and not errors
    print(f"goal (ratio >= 3, external p95 <= 150 ms, no error): {'met' if met else 'NOT met'}")
    return finish(errors, ratio)


if __name__ == "__main__":
    sys.exit(main())
