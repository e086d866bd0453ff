"""Search at scale: the researcher query set through the internal API at 100k and at 1M items.

Starts one private stack per size, side by side (PostgreSQL+pgSTAC as ``eomatch-stack
up`` sets it up: queryables with their indexes, ``context`` auto; both APIs under
uvicorn; nginx; each its own database), writes realistic catalogues with ``_synth.py``
(the 100k catalogue is the first groups of the 1M one, same seed) on tmpfs, and loads
each straight into its stack's database with pypgstac's ``Loader`` (the items
transformed exactly as ``eomatch-ingest`` sends them; collections partitioned by
``ingest.partition_trunc`` first, as ingest does; ``ANALYZE`` after). The fast path, not
``eomatch-ingest`` itself: ingest's own throughput at 1M is ``ingest_throughput.py``'s
job.

Then it times, one request at a time (concurrency 1, so latency is the server's),
through nginx on ``/api/`` (no key: reads need none), round-robin over the types below,
each request asked of every size back to back (the smaller first in even rounds, the
larger first in odd ones), so a load spike of this shared machine weighs on both sizes
alike:

* ``item by id``: ``GET /collections/{c}/items/{id}`` of random items;
* ``pair month``: ``POST /search`` one matchup collection, the month of a random matchup;
* ``bbox+datetime``: ``GET /search?bbox&datetime``, 4x4 degrees around a random item, its month;
* ``cql2``: ``POST /search`` one matchup collection, CQL2-JSON
  ``matchup:abs_time_diff_s < 600 AND matchup:overlap_fraction > 0.5``;
* ``sort by dt``: ``POST /search`` one matchup collection, ``sortby`` ``matchup:abs_time_diff_s``;
* ``events by day``: ``GET /collections/{events}/items?datetime=<day of a random event>``.

Every parameter is drawn from the smallest catalogue (a prefix of the larger ones, so
every size holds what is asked; a new draw per request); pages of 20; the first
``--warmup`` rounds are left out. Prints one table per size (p50, p95, what
``numberMatched`` said), how ``numberMatched`` compares with exact counts at the largest
size, the median per query type of the pair ratios (the same request's time at the
largest size / at the smallest, measured back to back: the figure the machine's noise
moves least) as ``pair_ratio=<max over types>``, and last ``ratio=<max over query types
of p50(largest) / p50(smallest)>`` (issue 15's definition). ``--browser`` then times
STAC Browser pages on every stack, interleaved the same way (``browser_scale.py``).

Measured before the stacks ran side by side (one stack, 100k then 1M; docs/operations.md,
"At a million items", has the tables): ``ratio=`` 1.16, 1.80 and 0.52 in three runs; the
spread is the machine (item by id, one index lookup, moved as much). EXPLAIN: every page
query is index-backed and under 2 ms at 1M; what grows is the count behind
numberMatched. Side by side (this form, one run, load average 1.5-3.5): ``ratio=1.31``
(bbox + month), ``pair_ratio=1.21``; STAC Browser at 1M 0.89 / 1.77 / 1.39 s.

    .venv/bin/python benchmarks/search_scale.py --use 100000=/dev/shm/cat100k \\
        --use 1000000=/dev/shm/cat1m --browser
    .venv/bin/python benchmarks/search_scale.py --sizes 100000,1000000 --browser
    .venv/bin/python benchmarks/search_scale.py --sizes 2000,10000 --requests 10   # a quick look
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _synth  # noqa: E402
from ingest_throughput import local_stack, scratch_dir, write_db_form  # noqa: E402

from eomatch.pgstac import stack_credentials  # noqa: E402
from eomatch.settings import Settings  # noqa: E402

PAGE = 20
PRODUCT_COLLECTIONS = ("S2_MSI_L1C", "LANDSAT_C2L1", "S3_OLCI_L1B")
CQL2 = {
    "op": "and",
    "args": [
        {"op": "<", "args": [{"property": "matchup:abs_time_diff_s"}, 600]},
        {"op": ">", "args": [{"property": "matchup:overlap_fraction"}, 0.5]},
    ],
}
QUERY_TYPES = ("item by id", "pair month", "bbox+datetime", "cql2", "sort by dt", "events by day")


@dataclass
class Request:
    method: str
    path: str
    body: dict[str, Any] | None = None
    params: dict[str, Any] | None = None


@dataclass
class Timings:
    seconds: list[float] = field(default_factory=list)
    matched: list[int | None] = field(default_factory=list)
    returned: list[int] = field(default_factory=list)

    def pct(self, q: float) -> float:
        s = sorted(self.seconds)
        return s[min(len(s) - 1, round(q * (len(s) - 1)))]


# ----------------------------------------------------------------------------- loading


def load(settings: Settings, root: Path, work: Path, partition_trunc: str) -> tuple[float, int]:
    """Load a catalogue into the stack's database (fast path); (seconds, items in the database)."""
    import psycopg
    from pypgstac.db import PgstacDB
    from pypgstac.load import Loader, Methods

    creds = stack_credentials(settings, "ingest")
    t0 = time.perf_counter()
    ndjson = work / "items.ndjson"
    collections = write_db_form(root, ndjson)
    with psycopg.connect(creds.dsn, autocommit=True) as conn:
        known = {r[0] for r in conn.execute("SELECT id FROM pgstac.collections")}
    new = [c for c in collections if c["id"] not in known]
    with PgstacDB(dsn=creds.dsn) as db:
        loader = Loader(db=db)
        if new:
            loader.load_collections(iter(new), insert_mode=Methods.insert)
    with psycopg.connect(creds.dsn, autocommit=True) as conn:
        # as ingest does: partitioned by time from the first item on
        conn.execute(
            "UPDATE pgstac.collections SET partition_trunc = %s WHERE id = ANY(%s) AND partition_trunc IS NULL",
            (partition_trunc, [c["id"] for c in new]),
        )
    with PgstacDB(dsn=creds.dsn) as db:
        Loader(db=db).load_items(str(ndjson), insert_mode=Methods.ignore)
    ndjson.unlink()
    with psycopg.connect(creds.dsn, autocommit=True) as conn:
        conn.execute("ANALYZE pgstac.items")
        count = int(conn.execute("SELECT count(*) FROM pgstac.items").fetchone()[0])  # type: ignore[index]
    admin = stack_credentials(settings, "admin")
    with psycopg.connect(admin.dsn, autocommit=True) as conn:
        # pgSTAC keeps each search's count (numberMatched) for context_stats_ttl and loaded
        # items do not invalidate it: start from none, so every search counts what is loaded
        conn.execute("DELETE FROM pgstac.search_wheres")
    return time.perf_counter() - t0, count


# ----------------------------------------------------------------------------- the query set


def _kind(cid: str) -> str:
    if cid in PRODUCT_COLLECTIONS:
        return "product"
    return "event" if cid.startswith("matchup-events-") else "matchup"


def _month(dt: datetime) -> str:
    start = dt.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=32)).replace(day=1)
    return f"{start:%Y-%m-%dT%H:%M:%SZ}/{end - timedelta(seconds=1):%Y-%m-%dT%H:%M:%SZ}"


def _sample(conn: Any, n: int, kinds: tuple[str, ...], collections: list[str], rng: random.Random) -> list[tuple]:
    """``n`` random items (collection, id, datetime, lon, lat) of the given kinds."""
    wanted = [c for c in collections if _kind(c) in kinds]
    total = int(conn.execute("SELECT count(*) FROM pgstac.items WHERE collection = ANY(%s)", (wanted,)).fetchone()[0])
    pct = min(100.0, 100.0 * 20 * n / max(total, 1))
    rows = conn.execute(
        "SELECT collection, id, datetime, ST_X(ST_Centroid(geometry)), ST_Y(ST_Centroid(geometry))"
        f" FROM pgstac.items TABLESAMPLE BERNOULLI ({pct}) REPEATABLE (%s) WHERE collection = ANY(%s)",
        (rng.randint(0, 2**31), wanted),
    ).fetchall()
    rng.shuffle(rows)
    if len(rows) < n:
        rows = (rows * (n // max(len(rows), 1) + 1))[:n]
    return rows[:n]


def query_set(settings: Settings, n: int, seed: int) -> dict[str, list[Request]]:
    """``n`` requests of each type, parameters drawn from what the database holds."""
    import psycopg

    rng = random.Random(seed)
    creds = stack_credentials(settings, "ingest")
    with psycopg.connect(creds.dsn, autocommit=True) as conn:
        collections = sorted(r[0] for r in conn.execute("SELECT id FROM pgstac.collections"))
        pairs = [c for c in collections if _kind(c) == "matchup"]
        items = _sample(conn, n, ("product", "event", "matchup"), collections, rng)
        matchups = _sample(conn, n, ("matchup",), collections, rng)
        anywhere = _sample(conn, n, ("product", "event", "matchup"), collections, rng)
        events = _sample(conn, n, ("event",), collections, rng)
    out: dict[str, list[Request]] = {t: [] for t in QUERY_TYPES}
    for k in range(n):
        c, i, *_ = items[k]
        out["item by id"].append(Request("GET", f"/collections/{c}/items/{i}"))
        c, _, dt, _, _ = matchups[k]
        out["pair month"].append(Request("POST", "/search", {"collections": [c], "datetime": _month(dt), "limit": PAGE}))
        _, _, dt, lon, lat = anywhere[k]
        bbox = f"{max(-180, lon - 2):.3f},{max(-90, lat - 2):.3f},{min(180, lon + 2):.3f},{min(90, lat + 2):.3f}"
        out["bbox+datetime"].append(Request("GET", "/search", params={"bbox": bbox, "datetime": _month(dt), "limit": PAGE}))
        body = {"collections": [rng.choice(pairs)], "filter-lang": "cql2-json", "filter": CQL2, "limit": PAGE}
        out["cql2"].append(Request("POST", "/search", body))
        sortby = [{"field": "properties.matchup:abs_time_diff_s", "direction": "asc"}]
        out["sort by dt"].append(Request("POST", "/search", {"collections": [rng.choice(pairs)], "sortby": sortby,
                                                             "limit": PAGE}))  # fmt: skip
        c, _, dt, _, _ = events[k]
        day = f"{dt:%Y-%m-%d}T00:00:00Z/{dt:%Y-%m-%d}T23:59:59Z"
        out["events by day"].append(Request("GET", f"/collections/{c}/items", params={"datetime": day, "limit": PAGE}))
    return out


def run_interleaved(apis: dict[int, str], requests: dict[str, list[Request]],
                    warmup: int) -> tuple[dict[int, dict[str, Timings]], dict[str, list[float]]]:
    """Every request against every size back to back, one at a time: per round and query
    type the same request goes to each size, the order reversed every other round, so a
    load spike on the shared machine hits both sizes alike. The first ``warmup`` rounds
    are not kept. Returns the timings per size and, per type, the pair ratios
    (largest size's seconds / smallest's, one per kept round)."""
    import httpx

    sizes = sorted(apis)
    timings = {size: {t: Timings() for t in requests} for size in sizes}
    pair_ratios: dict[str, list[float]] = {t: [] for t in requests}
    rounds = min(len(v) for v in requests.values())
    clients = {size: httpx.Client(base_url=api, timeout=120) for size, api in apis.items()}
    try:
        for k in range(rounds):
            order = sizes if k % 2 == 0 else sizes[::-1]
            for name, reqs in requests.items():
                r = reqs[k]
                seconds_by_size: dict[int, float] = {}
                for size in order:
                    t0 = time.perf_counter()
                    resp = clients[size].request(r.method, r.path, json=r.body, params=r.params)
                    body = resp.content
                    seconds = time.perf_counter() - t0
                    if resp.status_code != 200:
                        raise SystemExit(f"{name} at {size:,}: {r.method} {r.path} {r.body or r.params} answered "
                                         f"{resp.status_code}: {body[:300]!r}")  # fmt: skip
                    if k < warmup:
                        continue
                    doc = json.loads(body)
                    timings[size][name].seconds.append(seconds)
                    timings[size][name].matched.append(doc.get("numberMatched"))
                    timings[size][name].returned.append(len(doc.get("features", [])) if "features" in doc else 1)
                    seconds_by_size[size] = seconds
                if seconds_by_size:
                    pair_ratios[name].append(seconds_by_size[sizes[-1]] / seconds_by_size[sizes[0]])
    finally:
        for client in clients.values():
            client.close()
    return timings, pair_ratios


def table(label: str, timings: dict[str, Timings]) -> str:
    lines = [f"[{label}]", f"{'query':16s} {'n':>4s} {'p50 ms':>8s} {'p95 ms':>8s} {'returned':>9s}  numberMatched"]
    for name, t in timings.items():
        known = [m for m in t.matched if m is not None]
        if not known:
            nm = "absent" if name != "item by id" else "-"
        else:
            nm = f"given {len(known)}/{len(t.matched)}, median {statistics.median(known):,.0f}"
        lines.append(f"{name:16s} {len(t.seconds):4d} {t.pct(0.5) * 1000:8.1f} {t.pct(0.95) * 1000:8.1f} "
                     f"{statistics.mean(t.returned):9.1f}  {nm}")  # fmt: skip
    return "\n".join(lines)


def number_matched_check(settings: Settings, api: str, requests: dict[str, list[Request]], n: int = 5) -> list[str]:
    """numberMatched against exact SQL counts: the whole database, and a few pair months."""
    import httpx
    import psycopg

    creds = stack_credentials(settings, "ingest")
    out = []
    with httpx.Client(base_url=api, timeout=120) as client, psycopg.connect(creds.dsn, autocommit=True) as conn:
        total = int(conn.execute("SELECT count(*) FROM pgstac.items").fetchone()[0])  # type: ignore[index]
        t0 = time.perf_counter()
        doc = client.get("/search", params={"limit": 1}).json()
        ms = (time.perf_counter() - t0) * 1000
        out.append(f"all items: numberMatched={doc.get('numberMatched')} exact={total} ({ms:.0f} ms)")
        for r in requests["pair month"][:n]:
            assert r.body is not None
            lo, hi = r.body["datetime"].split("/")
            exact = int(conn.execute(
                "SELECT count(*) FROM pgstac.items WHERE collection = %s AND datetime <= %s AND end_datetime >= %s",
                (r.body["collections"][0], hi, lo),
            ).fetchone()[0])  # type: ignore[index]  # fmt: skip
            got = client.post("/search", json=r.body).json().get("numberMatched")
            out.append(f"pair month {r.body['collections'][0]} {lo[:7]}: numberMatched={got} exact={exact}")
        exact_sql = {
            "cql2": "SELECT count(*) FROM pgstac.items WHERE collection = %s"
                    " AND (content->'properties'->>'matchup:abs_time_diff_s')::float < 600"
                    " AND (content->'properties'->>'matchup:overlap_fraction')::float > 0.5",
            "sort by dt": "SELECT count(*) FROM pgstac.items WHERE collection = %s",
        }  # fmt: skip
        for name, sql in exact_sql.items():
            for r in requests[name][:2]:
                assert r.body is not None
                cid = r.body["collections"][0]
                exact = int(conn.execute(sql, (cid,)).fetchone()[0])  # type: ignore[index]
                got = client.post("/search", json=r.body).json().get("numberMatched")
                out.append(f"{name} {cid}: numberMatched={got} exact={exact}")
    return out


def explain(settings: Settings, requests: dict[str, list[Request]]) -> list[str]:
    """The plan pgSTAC's search runs for the first POST search of each type (its WHERE and
    ORDER BY from ``search_query``, ``EXPLAIN ANALYZE`` of the page query), and its count
    (``where_stats``, as ``context`` auto decides: pgSTAC's planner estimate of rows and
    cost, whether it counted, how long, the exact count): why a type is slow and whether
    ``context_estimated_count``/``_cost`` choose well. Also the largest collection's whole
    item list, the count STAC Browser's collection page asks for."""
    import psycopg

    admin = stack_credentials(settings, "admin")
    out = []
    with psycopg.connect(admin.dsn, autocommit=True) as conn:
        conn.execute("SET search_path = pgstac, public")
        largest = conn.execute("SELECT collection FROM items GROUP BY 1 ORDER BY count(*) DESC LIMIT 1").fetchone()
        bodies = [(name, reqs[0].body) for name, reqs in requests.items() if reqs[0].body is not None]
        if largest is not None:
            bodies.append((f"browser list {largest[0]}", {"collections": [largest[0]], "limit": PAGE}))
        for name, body in bodies:
            row = conn.execute("SELECT _where, orderby FROM search_query(%s::jsonb)", (json.dumps(body),)).fetchone()
            assert row is not None
            where, orderby = row
            conn.execute("DELETE FROM search_wheres")
            t0 = time.perf_counter()
            conn.execute("SELECT where_stats(%s, false)", (where,))
            count_ms = (time.perf_counter() - t0) * 1000
            est_rows, est_cost, counted = conn.execute(
                "SELECT estimated_count, estimated_cost, total_count FROM search_wheres WHERE _where = %s", (where,)
            ).fetchone() or (None, None, None)  # fmt: skip
            exact = counted
            if exact is None:
                exact = conn.execute(f"SELECT count(*) FROM items WHERE {where}").fetchone()[0]  # type: ignore[index]
            how = "counted" if counted is not None else "estimate given"
            plan = conn.execute(
                f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) SELECT * FROM items WHERE {where}"
                f" ORDER BY {orderby} LIMIT {PAGE + 1}"
            ).fetchall()
            lines = [r[0] for r in plan]
            nodes = [ln.strip() for ln in lines if "Scan" in ln or "Append" in ln or "Sort" in ln][:4]
            total = next((ln for ln in lines if ln.startswith("Execution Time")), "")
            out.append(f"{name}: where_stats {count_ms:.1f} ms ({how}; planner estimate {est_rows} rows, "
                       f"cost {est_cost or 0:.0f}; exact {exact}); page {total}; " + " | ".join(nodes))  # fmt: skip
    return out


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000,1000000", help="catalogue sizes, ascending (default 100000,1000000)")
    ap.add_argument("--requests", type=int, default=60, help="measured requests per query type and size")
    ap.add_argument("--warmup", type=int, default=5, help="rounds of requests left out first")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--use", action="append", default=[], metavar="SIZE=PATH",
                    help="an already written catalogue of that size (same seed), e.g. 1000000=/dev/shm/cat")
    ap.add_argument("--browser", action="store_true", help="then time STAC Browser pages (browser_scale.py)")
    ap.add_argument("--browser-loads", type=int, default=5)
    ap.add_argument("--explain", action="store_true", help="print pgSTAC's plans for the POST searches per size")
    ap.add_argument("-q", "--quiet", action="store_true", help="no generator progress lines")
    args = ap.parse_args(argv)
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
        given = {int(k): Path(v) for k, v in (u.split("=", 1) for u in args.use)}
    except ValueError:
        ap.error("--sizes takes numbers separated by commas, --use SIZE=PATH")
    if sizes != sorted(sizes) or sizes[0] < 1:
        ap.error("--sizes must be positive and ascending")
    for size, path in given.items():
        if not (path / "catalog.json").is_file():
            ap.error(f"--use {size}={path}: no catalog.json there")
    if len(sizes) < 2:
        ap.error("--sizes needs at least two sizes to compare")
    unknown = sorted(set(given) - set(sizes))
    if unknown:
        ap.error(f"--use {unknown[0]}=...: {unknown[0]} is not one of --sizes {args.sizes}")
    work = scratch_dir("eomatch-search-scale-")
    notes: list[str] = []
    try:
        with ExitStack() as stacks:
            # one private stack per size, side by side (own database, APIs and nginx), so
            # both sizes are measured at the same moments of the machine's load
            settings_by_size = {size: stacks.enter_context(local_stack()) for size in sizes}
            apis = {size: f"http://127.0.0.1:{st.stack.proxy.port}/api" for size, st in settings_by_size.items()}
            counts: dict[int, int] = {}
            for size in sizes:
                root = given.get(size)
                if root is None:
                    root = work / f"cat-{size}"
                    synth = _synth.generate(root, size, seed=args.seed, shape="realistic", quiet=args.quiet)
                    print(f"[{size:,}] wrote {synth.items:,} items in {synth.seconds:.0f} s "
                          f"({synth.items / synth.seconds:,.0f} items/s, {synth.bytes_written / 2**30:.2f} GiB)",
                          flush=True)  # fmt: skip
                settings = settings_by_size[size]
                seconds, counts[size] = load(settings, root, work, settings.ingest.partition_trunc)
                print(f"[{size:,}] loaded with pypgstac Loader in {seconds:.0f} s: its database holds "
                      f"{counts[size]:,} items", flush=True)  # fmt: skip
                if root.parent == work:
                    shutil.rmtree(root)  # tmpfs is memory; the next size is written afresh
            # parameters drawn from the smallest catalogue, a prefix of the larger ones: the
            # same request is asked of every size
            reqs = query_set(settings_by_size[sizes[0]], args.requests + args.warmup, args.seed + sizes[0])
            results, pair_ratios = run_interleaved(apis, reqs, args.warmup)
            for size in sizes:
                print(table(f"{counts[size]:,} items", results[size]), flush=True)
            if args.explain:
                for size in sizes:
                    for line in explain(settings_by_size[size], reqs):
                        print(f"  plan at {counts[size]:,}: {line}", flush=True)
            notes = number_matched_check(settings_by_size[sizes[-1]], apis[sizes[-1]], reqs)
            if args.browser:
                import browser_scale

                labelled = [(f"{counts[size]:,} items", settings_by_size[size]) for size in sizes]
                lines = browser_scale.report(labelled, loads=args.browser_loads, seed=args.seed).splitlines()
                browser_ratio = lines.pop().replace("ratio=", "browser_ratio=")
                print("\n".join([*lines, browser_ratio]), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("numberMatched (context auto) at the largest size:")
    for line in notes:
        print(f"  {line}")
    small, large = results[sizes[0]], results[sizes[-1]]
    pairs = {name: statistics.median(pair_ratios[name]) for name in QUERY_TYPES}
    print("median of per-pair ratios (same request, both sizes back to back): "
          + ", ".join(f"{k} {v:.2f}" for k, v in pairs.items()))  # fmt: skip
    print(f"pair_ratio={max(pairs.values()):.2f}")
    ratios: dict[str, float] = {name: large[name].pct(0.5) / small[name].pct(0.5) for name in QUERY_TYPES}
    worst = max(ratios, key=lambda k: ratios[k])
    print("p50 ratios: " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()) + f" (worst: {worst})")
    print(f"ratio={ratios[worst]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
