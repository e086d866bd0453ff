"""What the external API's href filter costs: the same requests against ``/api/``
and ``/external/`` through nginx, interleaved in one run.

    .venv/bin/python benchmarks/external_overhead.py            # own temporary stack
    .venv/bin/python benchmarks/external_overhead.py --base-url http://127.0.0.1:8000 \\
        --config /var/lib/eomatch/conf/settings.yaml            # a running stack

Loads ``--items`` items over two collections with pypgstac (the ingest role), each
with public and internal assets, so the filter has real work (``--public-only``:
public assets only, the filter's fast path). Prints p50/p95 per
API and request kind, and last ``ratio=<external p50 / internal p50>`` (target <= 1.10).
A stack reused with ``--base-url`` must allow the request rate (stack.proxy.external_rate_per_s).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from eomatch.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[1]
COLLECTIONS = ("bench-s2a-l9", "bench-s2b-l8")


def temp_stack_settings(state_dir: Path) -> Settings:
    from eomatch.stack.process import free_port

    return load_settings(
        overrides={
            "stack": {
                "state_dir": str(state_dir),
                "db": {"port": free_port()},
                "api": {"internal_port": free_port(), "external_port": free_port()},
                "proxy": {
                    "port": free_port(),
                    "browser_port": free_port(),
                    "tls_port": free_port(),
                    "internal_port": free_port(),
                    "external_rate_per_s": 100000,
                    "external_burst": 100000,
                },
                "browser": {"cache_dir": str(REPO / ".cache")},
            }
        },
        environ={},
    )


def collection(cid: str) -> dict[str, Any]:
    return {
        "type": "Collection",
        "stac_version": "1.1.0",
        "id": cid,
        "description": f"benchmark collection {cid}",
        "license": "CC-BY-4.0",
        "extent": {
            "spatial": {"bbox": [[-180.0, -60.0, 180.0, 60.0]]},
            "temporal": {"interval": [["2022-01-01T00:00:00Z", "2022-12-31T23:59:59Z"]]},
        },
        "links": [],
        "assets": {"thumbnail": {"href": "https://data.example.org/thumb.png", "roles": ["thumbnail"]},
                   "index": {"href": f"/npl-data/{cid}/index.json", "roles": ["metadata"]}},
    }


def items(cid: str, n: int, rng: random.Random, internal_assets: bool = True) -> Iterator[dict[str, Any]]:
    """Matchup-like items: a footprint, 6 public assets and (by default) 6 internal ones."""
    for i in range(n):
        lon, lat = rng.uniform(-170, 169), rng.uniform(-59, 59)
        w, s, e, n_ = lon, lat, lon + 0.9, lat + 0.9
        iid = f"{cid}-{i:05d}"
        assets: dict[str, Any] = {}
        for band in ("blue", "green", "red", "nir", "swir1", "swir2"):
            assets[band] = {
                "href": f"https://data.example.org/{cid}/{iid}/{band}.tif",
                "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                "roles": ["data"],
                "title": f"{band} band",
            }
            if not internal_assets:
                continue
            assets[f"{band}_local"] = {
                "href": f"file:///npl-data/products/{cid}/{iid}/{band}.tif",
                "type": "image/tiff; application=geotiff",
                "roles": ["data"],
            }
        yield {
            "type": "Feature",
            "stac_version": "1.1.0",
            "id": iid,
            "collection": cid,
            "geometry": {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n_], [w, n_], [w, s]]]},
            "bbox": [w, s, e, n_],
            "properties": {
                "datetime": f"2022-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:00:00Z",
                "platform": rng.choice(["Sentinel-2A", "Landsat-9"]),
                "eomatch:time_diff_s": rng.uniform(0, 1800),
                "eomatch:distance_km": rng.uniform(0, 100),
            },
            "assets": assets,
            "links": [],
        }


def load(dsn: str, n_items: int, seed: int, internal_assets: bool = True) -> dict[str, list[str]]:
    from pypgstac.db import PgstacDB
    from pypgstac.load import Loader, Methods

    rng = random.Random(seed)
    ids: dict[str, list[str]] = {}
    with PgstacDB(dsn=dsn) as db:
        loader = Loader(db=db)
        loader.load_collections(iter([collection(c) for c in COLLECTIONS]), insert_mode=Methods.upsert)
        for k, cid in enumerate(COLLECTIONS):
            count = n_items // len(COLLECTIONS) + (k < n_items % len(COLLECTIONS))
            docs = list(items(cid, count, rng, internal_assets))
            loader.load_items(iter(docs), insert_mode=Methods.upsert)
            ids[cid] = [d["id"] for d in docs]
    return ids


def request_set(ids: dict[str, list[str]], n: int, seed: int) -> list[tuple[str, str, str, dict[str, Any] | None]]:
    """(kind, method, path, body): half searches (GET and POST), half item-by-id."""
    rng = random.Random(seed)
    out: list[tuple[str, str, str, dict[str, Any] | None]] = []
    for i in range(n):
        cid = rng.choice(COLLECTIONS)
        if i % 2 == 0:
            iid = rng.choice(ids[cid])
            out.append(("item", "GET", f"/collections/{cid}/items/{iid}", None))
        else:
            lon, lat = rng.uniform(-170, 140), rng.uniform(-59, 30)
            bbox = [round(lon, 3), round(lat, 3), round(lon + 30, 3), round(lat + 30, 3)]
            if i % 4 == 1:
                path = f"/search?collections={cid}&bbox={','.join(map(str, bbox))}&limit=10"
                out.append(("search", "GET", path, None))
            else:
                out.append(("search", "POST", "/search", {"collections": [cid], "bbox": bbox, "limit": 10}))
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def run(base_url: str, ids: dict[str, list[str]], n: int, seed: int) -> dict[tuple[str, str], list[float]]:
    reqs = request_set(ids, n, seed)
    rng = random.Random(seed + 1)
    times: dict[tuple[str, str], list[float]] = {}
    prefixes = {"internal": base_url + "/api", "external": base_url + "/external"}
    with httpx.Client(timeout=30, headers={"Accept-Encoding": "gzip"}) as client:
        for _, method, path, body in reqs[: min(50, n)]:  # warm both apps and pools
            for prefix in prefixes.values():
                client.request(method, prefix + path, json=body)
        for kind, method, path, body in reqs:
            order = list(prefixes.items())
            rng.shuffle(order)  # neither API always goes first
            for api, prefix in order:
                t0 = time.perf_counter()
                r = client.request(method, prefix + path, json=body)
                _ = r.content
                dt_ms = (time.perf_counter() - t0) * 1000
                if r.status_code != 200:
                    raise SystemExit(f"{api} {method} {path} -> {r.status_code}: {r.text[:200]}")
                times.setdefault((api, kind), []).append(dt_ms)
                times.setdefault((api, "all"), []).append(dt_ms)
    return times


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base-url", help="proxy of a running stack (default: start a temporary one)")
    p.add_argument("--config", help="settings of that stack (for the ingest credentials)")
    p.add_argument("--items", type=int, default=2000)
    p.add_argument("--requests", type=int, default=500, help="requests per API")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--public-only", action="store_true",
                   help="items without internal assets (the filter's fast path: nothing to remove)")
    args = p.parse_args(argv)

    from eomatch.stack.db import stack_credentials

    with ExitStack() as held:
        if args.base_url:
            settings = load_settings(args.config)
            base_url = args.base_url.rstrip("/")
        else:
            sys.path.insert(0, str(REPO / "tests"))
            from conftest import private_stack  # type: ignore[import-not-found]

            t0 = time.perf_counter()
            stack = held.enter_context(private_stack("eomatch-bench-", settings=temp_stack_settings))
            settings = stack.settings
            base_url = stack.urls.base
            print(f"stack up in {time.perf_counter() - t0:.1f}s at {base_url}", flush=True)
        t0 = time.perf_counter()
        ids = load(stack_credentials(settings, "ingest").dsn, args.items, args.seed, not args.public_only)
        print(f"loaded {sum(map(len, ids.values()))} items in {time.perf_counter() - t0:.1f}s", flush=True)
        t0 = time.perf_counter()
        times = run(base_url, ids, args.requests, args.seed)
        print(f"{2 * args.requests} timed requests in {time.perf_counter() - t0:.1f}s")
        for kind in ("item", "search", "all"):
            for api in ("internal", "external"):
                v = times[(api, kind)]
                print(f"{api:<9} {kind:<7} n={len(v):<4} p50={pct(v, 0.5):7.2f} ms  p95={pct(v, 0.95):7.2f} ms"
                      f"  mean={statistics.fmean(v):7.2f} ms")
        ratio = pct(times[("external", "all")], 0.5) / pct(times[("internal", "all")], 0.5)
        print(f"ratio={ratio:.3f}")
        return 0


if __name__ == "__main__":
    sys.exit(main())
