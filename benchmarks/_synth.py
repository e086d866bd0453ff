"""Fast generator of realistic matchup catalogues for benchmarks.

``MatchupCatalogue`` writes a few hundred items/s (locks, index, merges); a
benchmark of 100,000 items needs the files faster. This writes them directly in
the catalogue's exact layout::

    catalog.json
    {collection}/collection.json
    {collection}/{YYYY}/{MM}/{DD}/{id}.json

with the item dicts built by :mod:`eomatch.model` (events, matchups, products,
their ``related``/``derived_from`` links and assets), serialised with orjson, in
a few worker processes. :func:`verify` opens the result with
``MatchupCatalogue`` and reads a sample back.

    .venv/bin/python benchmarks/_synth.py /tmp/cat --items 6000
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from shapely.geometry import box

from eomatch.model import (
    JSON_MEDIA_TYPE,
    STAC_VERSION,
    Matchup,
    MatchupEvent,
    Product,
    default_relpath,
    format_datetime,
    relative_href,
    structural_links,
)
from eomatch.platforms import default_satellites

ITEMS_PER_GROUP = 6
"""One event, two matchups, three products (one Sentinel-2A, two Landsat-9)."""
T0 = datetime(2022, 1, 1, tzinfo=UTC)
YEAR_S = 365 * 86400


@dataclass
class SynthCatalogue:
    """What :func:`generate` wrote."""

    root: Path
    items: int
    collections: dict[str, str]
    """collection id -> kind (product / event / matchup)."""
    per_collection: dict[str, int]
    sample: list[tuple[str, str]] = field(default_factory=list)
    """(collection, id) of a few items, one group of each worker."""
    seconds: float = 0.0


def _group(i: int, n_groups: int, rng: random.Random, sats: Any) -> list[dict[str, Any]]:
    """The six items of group ``i``, spread evenly over 2022."""
    t = T0 + timedelta(seconds=int(i * YEAR_S / max(n_groups, 1)) + rng.randint(0, 600))
    lon, lat = rng.uniform(-175.0, 170.0), rng.uniform(-70.0, 65.0)
    day = f"{t:%Y/%m/%d}"
    event = MatchupEvent.create(
        platform_a="Sentinel-2A", collection_a="S2_MSI_L1C",
        platform_b="Landsat-9", collection_b="LANDSAT_C2L1",
        start=t - timedelta(minutes=5), end=t + timedelta(minutes=25),
        region=box(lon - 0.5, lat - 0.5, lon + 3.5, lat + 3.5),
        min_distance_km=rng.uniform(0.0, 100.0), time_diff_s=rng.uniform(0.0, 1800.0),
        solar_elevation_deg=rng.uniform(5.0, 70.0), satellites=sats,
    )  # fmt: skip
    s2_id = f"S2A_MSIL1C_{t:%Y%m%dT%H%M%S}_N0400_R{i % 143:03d}_T{i:07d}"
    s2 = Product.create(
        id=s2_id, collection="S2_MSI_L1C", platform="Sentinel-2A", instrument="MSI",
        geometry=box(lon, lat, lon + 1.0, lat + 0.9), start=t, end=t + timedelta(seconds=5),
        properties={"eo:cloud_cover": round(rng.uniform(0, 100), 2), "proj:epsg": 32600 + (i % 60) + 1},
        assets={
            **{b: {"href": f"./{s2_id}_{b}.tif", "type": "image/tiff; application=geotiff", "roles": ["data"]}
               for b in ("B02", "B03", "B04", "B08")},
            "nfs": {"href": f"/npl-data/products/S2_MSI_L1C/{day}/{s2_id}.SAFE.zip", "roles": ["data"]},
            "thumbnail": {"href": f"https://example.com/s2/{s2_id}.jpg", "type": "image/jpeg", "roles": ["thumbnail"]},
        },
    ).to_dict()  # fmt: skip
    items: list[dict[str, Any]] = []
    for j in range(2):
        tl = t + timedelta(minutes=6 + 7 * j)
        l9_id = f"LC09_L1TP_{i:07d}{j}_{tl:%Y%m%d}_02_T1"
        l9 = Product.create(
            id=l9_id, collection="LANDSAT_C2L1", platform="Landsat-9", instrument="OLI-2",
            geometry=box(lon + 0.3 + 0.2 * j, lat + 0.2, lon + 1.6 + 0.2 * j, lat + 1.4), start=tl,
            properties={"eo:cloud_cover": round(rng.uniform(0, 100), 2), "landsat:wrs_path": i % 233},
            assets={
                "red": {"href": f"./{l9_id}_B4.TIF", "type": "image/tiff; application=geotiff", "roles": ["data"]},
                "nir08": {"href": f"./{l9_id}_B5.TIF", "type": "image/tiff; application=geotiff", "roles": ["data"]},
                "mtl": {"href": f"https://example.com/l9/{l9_id}_MTL.json", "type": "application/json", "roles": ["metadata"]},
                "nfs": {"href": f"file:///npl-data/products/LANDSAT_C2L1/{day}/{l9_id}.tar", "roles": ["data"]},
            },
        ).to_dict()  # fmt: skip
        matchup = Matchup.create(event, s2, l9, satellites=sats)
        matchup.assets["comparison"] = {
            "href": f"/npl-data/analysis/{day}/{matchup.id}_comparison.nc",
            "type": "application/netcdf", "roles": ["data"],
        }  # fmt: skip
        items += [l9, matchup.to_dict()]
    items += [s2, event.to_dict()]
    return items


def _kind(item: dict[str, Any]) -> str:
    return str(item["properties"].get("matchup:type", "product"))


def _write_range(args: tuple[str, int, int, int, int]) -> dict[str, Any]:
    """Worker: write groups [lo, hi); return per-collection counts, extents, item paths."""
    root_s, lo, hi, n_groups, seed = args
    root = Path(root_s)
    sats = default_satellites()
    made_dirs: set[str] = set()
    out: dict[str, Any] = {"collections": {}, "sample": []}
    for i in range(lo, hi):
        rng = random.Random(seed * 1_000_003 + i)
        for item in _group(i, n_groups, rng, sats):
            rel = default_relpath(item)
            item["links"] = structural_links(rel) + item["links"]
            folder = os.path.dirname(rel)
            if folder not in made_dirs:
                os.makedirs(root / folder, exist_ok=True)
                made_dirs.add(folder)
            with open(root / rel, "wb") as fh:
                fh.write(orjson.dumps(item, option=orjson.OPT_INDENT_2) + b"\n")
            coll = item["collection"]
            info = out["collections"].setdefault(
                coll, {"kind": _kind(item), "count": 0, "bbox": list(item["bbox"]), "t": [None, None], "rels": []}
            )
            info["count"] += 1
            b = info["bbox"]
            ib = item["bbox"]
            info["bbox"] = [min(b[0], ib[0]), min(b[1], ib[1]), max(b[2], ib[2]), max(b[3], ib[3])]
            props = item["properties"]
            start, end = props.get("start_datetime") or props["datetime"], props.get("end_datetime") or props["datetime"]
            info["t"][0] = start if info["t"][0] is None else min(info["t"][0], start)
            info["t"][1] = end if info["t"][1] is None else max(info["t"][1], end)
            info["rels"].append(rel)
            if i == lo:
                out["sample"].append((coll, item["id"]))
    return out


def _collection_doc(cid: str, info: dict[str, Any]) -> dict[str, Any]:
    """collection.json as MatchupCatalogue writes it, with the item links pystac walks."""
    here = f"{cid}/collection.json"
    return {
        "type": "Collection",
        "id": cid,
        "stac_version": STAC_VERSION,
        "stac_extensions": [],
        "title": cid,
        "description": f"Synthetic {info['kind']} items of {cid}.",
        "license": "proprietary",
        "matchup:type": info["kind"],
        "extent": {
            "spatial": {"bbox": [info["bbox"]]},
            "temporal": {"interval": [[format_datetime(info["t"][0]), format_datetime(info["t"][1])]]},
        },
        "links": [
            {"rel": "root", "href": "../catalog.json", "type": JSON_MEDIA_TYPE},
            {"rel": "parent", "href": "../catalog.json", "type": JSON_MEDIA_TYPE},
        ]
        + [{"rel": "item", "href": relative_href(here, rel), "type": JSON_MEDIA_TYPE} for rel in info["rels"]],
    }


def generate(
    root: str | os.PathLike[str], items: int, seed: int = 1, workers: int | None = None
) -> SynthCatalogue:
    """Write a catalogue of about ``items`` items (rounded up to whole groups of 6) at ``root``."""
    t0 = time.perf_counter()
    root = Path(root).resolve()
    if (root / "catalog.json").exists():
        raise FileExistsError(f"{root} already holds a catalogue")
    root.mkdir(parents=True, exist_ok=True)
    n_groups = max(1, math.ceil(items / ITEMS_PER_GROUP))
    workers = max(1, min(workers or os.cpu_count() or 1, n_groups))
    step = math.ceil(n_groups / workers)
    tasks = [(str(root), lo, min(lo + step, n_groups), n_groups, seed) for lo in range(0, n_groups, step)]
    if len(tasks) == 1:
        results = [_write_range(tasks[0])]
    else:
        with multiprocessing.get_context("fork").Pool(len(tasks)) as pool:
            results = pool.map(_write_range, tasks)
    merged: dict[str, dict[str, Any]] = {}
    sample: list[tuple[str, str]] = []
    for res in results:
        sample += res["sample"]
        for cid, info in res["collections"].items():
            m = merged.get(cid)
            if m is None:
                merged[cid] = info
                continue
            m["count"] += info["count"]
            m["rels"] += info["rels"]
            b, ib = m["bbox"], info["bbox"]
            m["bbox"] = [min(b[0], ib[0]), min(b[1], ib[1]), max(b[2], ib[2]), max(b[3], ib[3])]
            m["t"] = [min(m["t"][0], info["t"][0]), max(m["t"][1], info["t"][1])]
    for cid, info in merged.items():
        with open(root / cid / "collection.json", "wb") as fh:
            fh.write(orjson.dumps(_collection_doc(cid, info), option=orjson.OPT_INDENT_2) + b"\n")
    title = "synthetic eomatch catalogue"
    catalog = {
        "type": "Catalog",
        "id": "eomatch-catalogue",
        "stac_version": STAC_VERSION,
        "description": f"{n_groups * ITEMS_PER_GROUP} synthetic matchup items (benchmarks).",
        "title": title,
        "links": [{"rel": "root", "href": "./catalog.json", "type": JSON_MEDIA_TYPE, "title": title}]
        + [
            {"rel": "child", "href": f"./{cid}/collection.json", "type": JSON_MEDIA_TYPE, "title": cid}
            for cid in sorted(merged)
        ],
    }
    with open(root / "catalog.json", "wb") as fh:
        fh.write(orjson.dumps(catalog, option=orjson.OPT_INDENT_2) + b"\n")
    return SynthCatalogue(
        root=root,
        items=sum(m["count"] for m in merged.values()),
        collections={cid: m["kind"] for cid, m in merged.items()},
        per_collection={cid: m["count"] for cid, m in merged.items()},
        sample=sample,
        seconds=time.perf_counter() - t0,
    )


def verify(synth: SynthCatalogue) -> None:
    """Open the result as a MatchupCatalogue and read the sample back (AssertionError if wrong).

    The first lookup builds the catalogue's id index (one scan of every file).
    """
    from eomatch.catalogue import MatchupCatalogue

    cat = MatchupCatalogue.open(synth.root)
    try:
        assert cat.count() == synth.items, (cat.count(), synth.items)
        for cid, count in synth.per_collection.items():
            assert cat.count(collection=cid) == count, (cid, cat.count(collection=cid), count)
        for cid, item_id in synth.sample:
            item = cat.get_item(item_id, cid)
            assert item["id"] == item_id and item["collection"] == cid
            if synth.collections[cid] == "matchup":
                a, b = cat.get_matchup(item_id).products()
                assert {a["id"], b["id"]} == set(item["properties"]["matchup:products"])
            if synth.collections[cid] == "event":
                assert cat.get_event(item_id).matchup_set, f"event {item_id} has no matchups"
    finally:
        cat.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--items", type=int, default=6000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-verify", action="store_true")
    args = ap.parse_args(argv)
    synth = generate(args.root, args.items, seed=args.seed)
    rate = synth.items / synth.seconds if synth.seconds else 0.0
    print(f"wrote {synth.items} items in {len(synth.collections)} collections to {synth.root} "
          f"in {synth.seconds:.1f}s ({rate:,.0f} items/s)")  # fmt: skip
    if not args.no_verify:
        t = time.perf_counter()
        verify(synth)
        print(f"verified with MatchupCatalogue in {time.perf_counter() - t:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
