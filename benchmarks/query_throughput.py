"""eomatch-query vs plain pystac-client iteration of the same search.

Loads N items (events, matchups and their products, 1:1:2, with the links the
closure follows) straight into pgSTAC with pypgstac, then times
``eomatch.query.query`` into an empty folder (which writes every item to disk)
against ``pystac_client`` ``items_as_dicts()`` over the same search (no
writing), page size 1000 for both. Best of ``--repeat`` runs each. The paging layer
of eomatch-query alone (``eomatch.query.ApiIO``: pystac-client's ``StacApiIO`` with
eomatch's retry policy and error lines) is timed too, without writing.

    python benchmarks/query_throughput.py --items 20000
    python benchmarks/query_throughput.py --items 20000 --state-dir /tmp/eomatch-x --base-url http://127.0.0.1:8000

Prints ``ratio=<eomatch items/s ÷ pystac-client items/s>`` last (target ≥ 0.6).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


def _href(collection: str, item_id: str) -> str:
    return f"collections/{collection}/items/{item_id}"


def make_items(n_items: int, tag: str) -> tuple[list[dict[str, Any]], Iterator[dict[str, Any]]]:
    """Collections and a stream of ``n_items`` items: per group 1 event, 1 matchup, 2 products."""
    s2, ls = f"S2B{tag}", f"LSB{tag}"
    pair = f"{ls}-Landsat-9-vs-{s2}-S2A"
    events = f"matchup-events-{pair}"
    collections = [
        {"type": "Collection", "id": c, "stac_version": "1.0.0", "description": c, "license": "proprietary",
         "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]}, "temporal": {"interval": [["2022-01-01T00:00:00Z", None]]}},
         "links": []}
        for c in (s2, ls, pair, events)
    ]  # fmt: skip
    t0 = datetime(2022, 1, 1, tzinfo=UTC)

    def poly(lon: float, lat: float, size: float) -> dict[str, Any]:
        w, s, e, n = lon, lat, lon + size, lat + size
        return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}

    def iso(t: datetime) -> str:
        return t.strftime("%Y-%m-%dT%H:%M:%SZ")

    def item(coll: str, iid: str, t: datetime, lon: float, lat: float, size: float, props: dict[str, Any],
             links: list[dict[str, Any]], assets: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
        return {
            "type": "Feature", "stac_version": "1.0.0", "id": iid, "collection": coll,
            "geometry": poly(lon, lat, size), "bbox": [lon, lat, lon + size, lat + size],
            "properties": {"datetime": iso(t), "updated": iso(datetime.now(UTC)), **props},
            "links": links, "assets": assets,
        }  # fmt: skip

    def stream() -> Iterator[dict[str, Any]]:
        for g in range(n_items // 4):
            t = t0 + timedelta(minutes=97 * g)
            lon, lat = -170 + (g * 7.3) % 340, -60 + (g * 3.1) % 120
            pa, pb, mid, eid = f"S2A_{tag}_{g}", f"LC09_{tag}_{g}", f"matchup-{tag}-{g}", f"event-{tag}-{g}"
            data = {"type": "image/tiff; application=geotiff", "roles": ["data"]}
            yield item(s2, pa, t, lon, lat, 1.0, {"platform": "Sentinel-2A", "matchup:type": "product"}, [],
                       {"red": {"href": f"https://example.org/{pa}/B04.tif", **data}})  # fmt: skip
            yield item(ls, pb, t + timedelta(minutes=8), lon + 0.3, lat + 0.3, 1.0,
                       {"platform": "Landsat-9", "matchup:type": "product"}, [],
                       {"red": {"href": f"s3://usgs-landsat/{pb}/B4.TIF", **data}})  # fmt: skip
            yield item(pair, mid, t + timedelta(minutes=4), lon + 0.3, lat + 0.3, 0.7,
                       {"matchup:type": "matchup", "matchup:products": [pb, pa], "matchup:event_id": eid,
                        "matchup:platforms": ["Landsat-9", "Sentinel-2A"], "matchup:collections": [ls, s2],
                        "matchup:time_diff_s": -480.0, "matchup:abs_time_diff_s": 480.0},
                       [{"rel": "derived_from", "href": _href(ls, pb), "type": "application/json"},
                        {"rel": "derived_from", "href": _href(s2, pa), "type": "application/json"},
                        {"rel": "related", "href": _href(events, eid), "type": "application/json", "matchup:role": "event"}],
                       {})  # fmt: skip
            yield item(events, eid, t + timedelta(minutes=4), lon - 1, lat - 1, 3.0,
                       {"matchup:type": "event", "start_datetime": iso(t - timedelta(minutes=10)),
                        "end_datetime": iso(t + timedelta(minutes=20)),
                        "matchup:platforms": ["Landsat-9", "Sentinel-2A"], "matchup:collections": [ls, s2]},
                       [{"rel": "related", "href": _href(pair, mid), "type": "application/json", "matchup:role": "matchup"}],
                       {})  # fmt: skip

    return collections, stream()


def time_pystac(api: str, collections: list[str], page: int) -> tuple[int, float]:
    from pystac_client import Client

    t = time.perf_counter()
    client = Client.open(api)
    n = sum(1 for _ in client.search(collections=collections, limit=page).items_as_dicts())
    return n, time.perf_counter() - t


def time_paging(settings: Any, api: str, collections: list[str], page: int) -> tuple[int, float]:
    from eomatch.query import ApiIO

    t = time.perf_counter()
    io = ApiIO(settings.query, reached=True, search=True)
    params = {"collections": ",".join(collections), "limit": page}
    n = sum(len(p["features"]) for p in io.get_pages(f"{api}search", "GET", params))
    io.close()
    return n, time.perf_counter() - t


def time_eomatch(settings: Any, api: str, collections: list[str], out: Path) -> tuple[int, float, Any]:
    from eomatch.query import query

    t = time.perf_counter()
    summary = query(settings, api, out, collections=collections, quiet=True)
    return summary.searched, time.perf_counter() - t, summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20000)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--base-url", help="reuse a running stack at this proxy URL (needs --state-dir)")
    parser.add_argument("--state-dir", help="state folder of the running stack (for its ingest credentials)")
    parser.add_argument("--db-port", type=int, help="database port of the running stack (stack.db.port)")
    parser.add_argument("--workdir", help="where the output catalogues go (default: a temp folder)")
    args = parser.parse_args()

    from conftest import make_state_dir, stack_settings

    from eomatch.settings import load_settings
    from eomatch.stack.db import stack_credentials

    stack = None
    if args.base_url:
        if not args.state_dir:
            parser.error("--base-url needs --state-dir")
        stack_over: dict[str, Any] = {"state_dir": args.state_dir}
        if args.db_port:
            stack_over["db"] = {"port": args.db_port}
        settings = load_settings(overrides={"stack": stack_over}, environ={})
        base = args.base_url.rstrip("/")
    else:
        from eomatch.stack import Stack

        settings = stack_settings(make_state_dir("eomatch-bench-"))
        stack = Stack(settings, quiet=True)
        base = f"http://127.0.0.1:{settings.stack.proxy.port}"
    settings.query.page_size = args.page_size
    work = Path(args.workdir or tempfile.mkdtemp(prefix="eomatch-qbench-"))
    try:
        if stack is not None:  # inside the try: a stack that fails to come up is stopped too
            print("starting a stack…", flush=True)
            stack.up()
        from pypgstac.db import PgstacDB
        from pypgstac.load import Loader, Methods

        tag = uuid.uuid4().hex[:6]
        cols, items = make_items(args.items, tag)
        t = time.perf_counter()
        with PgstacDB(dsn=stack_credentials(settings, "ingest").dsn) as db:
            loader = Loader(db=db)
            loader.load_collections(iter(cols), insert_mode=Methods.upsert)
            loader.load_items(items, insert_mode=Methods.upsert)
        print(f"loaded {args.items} items in {time.perf_counter() - t:.1f}s", flush=True)
        api = f"{base}/api/"
        coll_ids = [c["id"] for c in cols]
        best_p = best_e = best_g = float("inf")
        for r in range(args.repeat):
            n_p, s_p = time_pystac(api, coll_ids, args.page_size)
            n_g, s_g = time_paging(settings, api, coll_ids, args.page_size)
            best_g = min(best_g, s_g)
            out = work / f"out-{r}"
            n_e, s_e, summary = time_eomatch(settings, api, coll_ids, out)
            print(f"run {r}: pystac-client {n_p} items in {s_p:.2f}s ({n_p / s_p:,.0f}/s); "
                  f"eomatch-query {n_e} items in {s_e:.2f}s ({n_e / s_e:,.0f}/s) "
                  f"[{summary.closure} linked, {summary.relinked} relinked]", flush=True)  # fmt: skip
            if n_p != n_e or n_g != n_e or n_e != args.items // 4 * 4:
                print(f"error: counts differ (pystac {n_p}, eomatch {n_e}, paging {n_g})", file=sys.stderr)
                return 1
            best_p, best_e = min(best_p, s_p), min(best_e, s_e)
            shutil.rmtree(out, ignore_errors=True)
        rate_p, rate_e = n_p / best_p, n_e / best_e
        print(f"pystac-client items_as_dicts: {rate_p:,.0f} items/s (best of {args.repeat})")
        print(f"eomatch-query paging only:    {n_e / best_g:,.0f} items/s (best of {args.repeat})")
        print(f"eomatch-query to disk:        {rate_e:,.0f} items/s (best of {args.repeat})")
        print(f"ratio={rate_e / rate_p:.3f}")
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
        if stack is not None:
            stack.down()
            shutil.rmtree(settings.stack.state_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
