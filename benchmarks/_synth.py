"""Fast generator of realistic matchup catalogues for benchmarks, streamed to disk.

``MatchupCatalogue`` writes a few hundred items/s (locks, index, merges); a
benchmark of 1,000,000 items needs the files faster. This writes them directly in
the catalogue's exact layout::

    catalog.json
    {collection}/collection.json
    {collection}/{YYYY}/{MM}/{DD}/{id}.json

with the item dicts built by :mod:`eomatch.model` (events, matchups, products,
their ``related``/``derived_from`` links and assets), serialised with orjson, by
worker processes that each take small chunks of groups (one group is one event with
its products and matchups). Nothing holds the whole catalogue: a chunk's item links
go to a scratch file and collection.json is streamed from those at the end.
:func:`verify` opens the result with ``MatchupCatalogue`` and reads a sample back.

Two shapes (``shape=``):

``simple`` (the default of :func:`generate`, kept for the tests that count on it)
    groups of exactly 6 items (one Sentinel-2A x Landsat-9 event, two matchups, three
    products) spread over 2022, so ``items`` is met exactly.
``realistic`` (the CLI's default)
    the six packaged satellites (Sentinel-2A/2B, Landsat-8/9, Sentinel-3A/3B) in the
    12 cross-collection pairs the crossover search makes (S2 x Landsat, S2 x S3,
    Landsat x S3; same-collection partners fly the same orbit phased apart and never
    meet within the time threshold, so they make no events), weighted by swath width
    (wider swaths meet more often), 2019-2024 (Landsat-9 pairs from November 2021).
    Each event is the overlap of two near-parallel descending swaths (200-1400 km
    along track, a ~20-vertex polygon); its products are what covers that region:
    Sentinel-2 110 km MGRS tiles clipped to the MSI swath, Landsat ~185 km WRS-2
    scenes, Sentinel-3 OLCI 3-minute frames of the 1270 km swath; its matchups are
    every product pair whose footprints overlap inside the region, with acquisition
    times from the pass times plus along-track offsets (abs_time_diff_s spread up to
    the 1800 s threshold), cloud cover drawn per event (a third clear, a long tail)
    and varied per product. An event with its products and matchups is ~10-150
    items (mean ~40). Each group sits in its own (day, WRS-2 path) slot, so product
    ids are unique and group ``i`` is the same whatever ``items`` is: the first
    groups of a 1M catalogue are exactly a 100k catalogue of the same seed.

    .venv/bin/python benchmarks/_synth.py /dev/shm/cat --items 1000000
    .venv/bin/python benchmarks/_synth.py /tmp/cat --items 6000 --shape simple

Measured (realistic, --items 1000000, 2 workers on this VM's 2 cores shared with other
jobs, load average ~10): 985,206 items (28,183 events, 486,248 matchups, 470,775
products; the size lands within ~2 % of the request) in 1779 s (554 items/s; the real
Matchup builder's intersections and geodesic areas are most of it), 2.9 GiB of JSON,
4.0 GiB on tmpfs (a 4 KiB page per file); the 100k catalogue took 351 s beside it.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from shapely.geometry import Polygon, box

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
from eomatch.platforms import default_satellites, platform_token
from eomatch.progress import Progress, format_bytes

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
    """(collection, id) of a few items, one group of each chunk of work."""
    seconds: float = 0.0
    shape: str = "simple"
    groups: int = 0
    """Groups written (one event each, with its matchups and products)."""
    bytes_written: int = 0
    """Bytes of JSON written (item files, collection.json, catalog.json)."""
    files: int = 0


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


# ----------------------------------------------------------------------------- realistic shape

PERIOD_START = datetime(2019, 1, 1, tzinfo=UTC)
PERIOD_DAYS = 2192
"""2019-01-01 .. 2024-12-31."""
WRS_PATHS = 233
SLOTS = PERIOD_DAYS * WRS_PATHS
"""One (day, WRS-2 path) slot per group: ids stay unique and a group does not depend on N."""
SLOT_STRIDE = 104_729
"""A prime that divides neither 2192 nor 233: i -> i * stride mod SLOTS is one-to-one."""
LANDSAT9_FROM = datetime(2021, 11, 1, tzinfo=UTC)
GROUND_SPEED_KM_S = 6.8
THRESHOLD_S = 1800.0
KM_PER_DEG = 111.32
LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
LAT_BANDS = "CDEFGHJKLMNPQRSTUVWX"
LOCAL_TIME_H = {"S2_MSI_L1C": 10.5, "LANDSAT_C2L1": 10.2, "S3_OLCI_L1B": 10.0}
"""Mean local solar time of the descending node of each family (sun-synchronous orbits)."""


class _Frame:
    """A local flat frame at (lon0, lat0) whose x runs along the ground track (km)."""

    def __init__(self, lon0: float, lat0: float, heading_deg: float) -> None:
        self.lon0, self.lat0 = lon0, lat0
        h = math.radians(heading_deg)
        self.ux, self.uy = math.sin(h), math.cos(h)  # along track, (east, north)
        self.vx, self.vy = math.cos(h), -math.sin(h)  # across track

    def lonlat(self, along_km: float, across_km: float) -> tuple[float, float]:
        east = along_km * self.ux + across_km * self.vx
        north = along_km * self.uy + across_km * self.vy
        lat = self.lat0 + north / KM_PER_DEG
        lon = self.lon0 + east / (KM_PER_DEG * math.cos(math.radians(lat)))
        return round(lon, 5), round(lat, 5)

    def polygon(self, a0: float, a1: float, c0: float, c1: float, steps: int = 1) -> Polygon:
        """The track-aligned rectangle [a0, a1] x [c0, c1] in lon/lat, long edges in ``steps``."""
        edge = [a0 + (a1 - a0) * k / steps for k in range(steps + 1)]
        ring = [self.lonlat(a, c0) for a in edge] + [self.lonlat(a, c1) for a in reversed(edge)]
        return Polygon(ring)


def _cross_pairs(sats: Any) -> list[tuple[Any, Any, float]]:
    """The 12 cross-collection pairs in canonical order, weighted by summed swath width."""
    pairs = []
    for a in range(len(sats)):
        for b in range(a + 1, len(sats)):
            sa, sb = sats[a], sats[b]
            if sa.collections[0] == sb.collections[0]:
                continue
            key = lambda s: f"{s.collections[0]}-{platform_token(s.name, sats)}"  # noqa: E731
            first, second = sorted((sa, sb), key=key)
            pairs.append((first, second, float(first.swath_km + second.swath_km)))
    return pairs


def _cloud(rng: random.Random) -> float:
    """An event's cloud cover: a third (nearly) clear, the rest a long tail up to 100 %."""
    if rng.random() < 0.33:
        return rng.uniform(0.0, 3.0)
    return 100.0 * rng.betavariate(0.7, 1.4)


def _footprints(kind: str, frame: _Frame, centre_c: float, swath_km: float, a_lo: float, a_hi: float,
                rng: random.Random, path: int) -> list[tuple[float, float, float, float, Polygon, dict[str, Any]]]:
    """(along start/end km, across start/end km, lon/lat polygon, naming) of the products of
    one swath that cover along-track [a_lo, a_hi]."""
    half = swath_km / 2
    out = []
    if kind == "S2_MSI_L1C":
        # 110 km MGRS tiles on a 100 km grid (north-aligned), clipped to the MSI swath
        strip = frame.polygon(a_lo - 150, a_hi + 150, centre_c - half, centre_c + half, 6)
        lon0, lat0 = frame.lon0, frame.lat0
        cos0 = math.cos(math.radians(lat0))
        minx, miny, maxx, maxy = strip.bounds
        gx0 = math.floor((minx - lon0) * KM_PER_DEG * cos0 / 100)
        gy0 = math.floor((miny - lat0) * KM_PER_DEG / 100)
        gx1 = math.ceil((maxx - lon0) * KM_PER_DEG * cos0 / 100)
        gy1 = math.ceil((maxy - lat0) * KM_PER_DEG / 100)
        for gy in range(gy0, gy1):
            for gx in range(gx0, gx1):
                x0, y0 = gx * 100.0, gy * 100.0
                lat_lo, lat_hi = lat0 + y0 / KM_PER_DEG, lat0 + (y0 + 110) / KM_PER_DEG
                tile = box(lon0 + x0 / (KM_PER_DEG * cos0), lat_lo, lon0 + (x0 + 110) / (KM_PER_DEG * cos0), lat_hi)
                clipped = tile.intersection(strip)
                if clipped.is_empty or clipped.area < 0.02 * tile.area or clipped.geom_type != "Polygon":
                    continue
                clipped = clipped.simplify(0.0005)
                # along-track position of the tile's centre (projection onto the track)
                ce, cn = (x0 + 55) * 1.0, (y0 + 55) * 1.0
                along = ce * frame.ux + cn * frame.uy
                across = ce * frame.vx + cn * frame.vy
                out.append((along - 55, along + 55, across - 55, across + 55, clipped, {"gx": gx, "gy": gy}))
    elif kind == "LANDSAT_C2L1":
        phase = rng.uniform(0, 165)
        k0 = math.floor((a_lo - phase - 90) / 165)
        k1 = math.ceil((a_hi - phase + 90) / 165)
        for k in range(k0, k1 + 1):
            a = phase + k * 165
            if a + 90 < a_lo or a - 90 > a_hi:
                continue
            poly = frame.polygon(a - 90, a + 90, centre_c - 92.5, centre_c + 92.5)
            out.append((a - 90, a + 90, centre_c - 92.5, centre_c + 92.5, poly, {"k": k, "path": path}))
    else:  # S3 OLCI EFR: 3-minute frames of the full swath
        frame_km = 180 * GROUND_SPEED_KM_S
        phase = rng.uniform(0, frame_km)
        k0 = math.floor((a_lo - phase) / frame_km) - 1
        for k in range(k0, k0 + 8):
            a0 = phase + k * frame_km
            if a0 + frame_km < a_lo:
                continue
            if a0 > a_hi:
                break
            poly = frame.polygon(a0, a0 + frame_km, centre_c - half, centre_c + half, 4)
            out.append((a0, a0 + frame_km, centre_c - half, centre_c + half, poly, {"k": k}))
    return out


def _product_item(kind: str, sat: Any, i: int, n: int, fp: tuple[Any, ...], t_pass: datetime, day: str,
                  cloud: float, rng: random.Random, frame: _Frame) -> dict[str, Any]:
    """One product of group ``i`` (its ``n``-th), named like the provider names them."""
    a0, a1, _, _, poly, naming = fp
    start = t_pass + timedelta(seconds=a0 / GROUND_SPEED_KM_S)
    end = t_pass + timedelta(seconds=a1 / GROUND_SPEED_KM_S)
    cover = round(min(100.0, max(0.0, cloud * rng.uniform(0.6, 1.4) + rng.gauss(0.0, 4.0))), 2)
    lon, lat = poly.centroid.x, poly.centroid.y
    zone = int((lon + 180) // 6) % 60 + 1
    epsg = (32600 if lat >= 0 else 32700) + zone
    tok = platform_token(sat.name)
    if kind == "S2_MSI_L1C":
        band = LAT_BANDS[min(19, max(0, int((lat + 80) // 8)))]
        tile = f"{zone:02d}{band}{LETTERS[naming['gx'] % 24]}{LETTERS[naming['gy'] % 20]}"
        proc = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=i * 64 + n)
        pid = f"{tok}_MSIL1C_{t_pass:%Y%m%dT%H%M%S}_N0500_R{(i % 143) + 1:03d}_T{tile}_{proc:%Y%m%dT%H%M%S}"
        title = f"{sat.name} MSI L1C T{tile} {start:%Y-%m-%d %H:%M}"
        props = {"proj:epsg": epsg, "s2:mgrs_tile": tile, "sat:relative_orbit": (i % 143) + 1}
        assets = {
            **{b: {"href": f"./{pid}_{b}.jp2", "type": "image/jp2", "roles": ["data"], "title": f"Band {b}"}
               for b in ("B02", "B03", "B04", "B08")},
            "nfs": {"href": f"/npl-data/products/S2_MSI_L1C/{day}/{pid}.SAFE.zip", "type": "application/zip",
                    "roles": ["data"]},
            "thumbnail": {"href": f"./{pid}-ql.jpg", "type": "image/jpeg", "roles": ["thumbnail"]},
        }  # fmt: skip
        instrument = "MSI"
    elif kind == "LANDSAT_C2L1":
        path = naming["path"]
        row = (int(60 - frame.lat0 / 1.45) + naming["k"]) % 248 + 1  # descending: rows grow southwards
        lcode = "LC09" if sat.name == "Landsat-9" else "LC08"
        proc = start + timedelta(days=5 + (i % 11))
        pid = f"{lcode}_L1TP_{path:03d}{row:03d}_{start:%Y%m%d}_{proc:%Y%m%d}_02_T1"
        title = f"{sat.name} OLI path {path} row {row} {start:%Y-%m-%d %H:%M}"
        props = {"proj:epsg": epsg, "landsat:wrs_path": f"{path:03d}", "landsat:wrs_row": f"{row:03d}"}
        assets = {
            "red": {"href": f"./{pid}_B4.TIF", "type": "image/tiff; application=geotiff", "roles": ["data"]},
            "nir08": {"href": f"./{pid}_B5.TIF", "type": "image/tiff; application=geotiff", "roles": ["data"]},
            "mtl": {"href": f"https://landsatlook.usgs.gov/data/collection02/level-1/{pid}_MTL.json",
                    "type": "application/json", "roles": ["metadata"]},
            "nfs": {"href": f"file:///npl-data/products/LANDSAT_C2L1/{day}/{pid}.tar", "type": "application/x-tar",
                    "roles": ["data"]},
            "thumbnail": {"href": f"./{pid}_thumb_small.jpeg", "type": "image/jpeg", "roles": ["thumbnail"]},
        }  # fmt: skip
        instrument = sat.instrument
    else:
        proc = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=i * 64 + n)
        orbit = (i % 385) + 1
        pid = (f"{tok}_OL_1_EFR____{start:%Y%m%dT%H%M%S}_{end:%Y%m%dT%H%M%S}_{proc:%Y%m%dT%H%M%S}"
               f"_0179_{(i % 90) + 1:03d}_{orbit:03d}_{(naming['k'] % 9) * 180:04d}_MAR_O_NT_004")
        title = f"{sat.name} OLCI EFR orbit {orbit} {start:%Y-%m-%d %H:%M}"
        props = {"sat:relative_orbit": orbit}
        assets = {
            "product": {"href": f"/npl-data/products/S3_OLCI_L1B/{day}/{pid}.SEN3.zip", "type": "application/zip",
                        "roles": ["data"]},
            "thumbnail": {"href": f"./{pid}-quicklook.jpg", "type": "image/jpeg", "roles": ["thumbnail"]},
        }  # fmt: skip
        instrument = "OLCI"
    props["title"] = title
    return Product.create(
        id=pid, collection=kind, platform=sat.name, instrument=instrument, geometry=poly, start=start,
        end=end, properties=props, assets=assets, cloud_cover=cover,
    ).to_dict()  # fmt: skip


def _realistic_group(i: int, seed: int, sats: Any, pairs: list[tuple[Any, Any, float]]) -> list[dict[str, Any]]:
    """Group ``i``: one event of a cross-collection pair, its products and matchups."""
    rng = random.Random(seed * 1_000_003 + i)
    slot = (i * SLOT_STRIDE + seed * 7919) % SLOTS
    day_n, path = divmod(slot, WRS_PATHS)
    day0 = PERIOD_START + timedelta(days=day_n)
    usable = [p for p in pairs if day0 >= LANDSAT9_FROM or "Landsat-9" not in (p[0].name, p[1].name)]
    sat_a, sat_b, _ = rng.choices(usable, weights=[w for *_, w in usable])[0]
    kind_a, kind_b = sat_a.collections[0], sat_b.collections[0]
    along_km = min(1400.0, max(200.0, rng.lognormvariate(math.log(520.0), 0.5)))
    overlap_km = rng.uniform(0.3, 1.0) * min(sat_a.swath_km, sat_b.swath_km)
    offset_km = (sat_a.swath_km / 2 + sat_b.swath_km / 2 - overlap_km) * rng.choice((-1.0, 1.0))
    c_a, c_b = 0.0, offset_km
    lat = rng.uniform(-58.0, 62.0)
    ext_km = max(along_km / 2, sat_a.swath_km, sat_b.swath_km) + 200
    lat_edge = min(85.0, abs(lat) + ext_km / KM_PER_DEG)
    half_lon = ext_km / (KM_PER_DEG * math.cos(math.radians(lat_edge)))
    lon = ((-64.6 - (path * 360.0 / WRS_PATHS)) + 180.0) % 360.0 - 180.0
    lon = max(-179.0 + half_lon, min(179.0 - half_lon, lon))
    frame = _Frame(lon, lat, rng.uniform(188.0, 196.0))
    utc_h = (LOCAL_TIME_H[kind_a] - lon / 15.0) % 24.0
    t_a = day0 + timedelta(hours=utc_h, seconds=rng.uniform(-300, 300))
    dt_s = rng.uniform(-(THRESHOLD_S - 200.0), THRESHOLD_S - 200.0)
    t_b = t_a + timedelta(seconds=dt_s)
    a_lo, a_hi = -along_km / 2, along_km / 2
    lo_c = max(c_a - sat_a.swath_km / 2, c_b - sat_b.swath_km / 2)
    hi_c = min(c_a + sat_a.swath_km / 2, c_b + sat_b.swath_km / 2)
    region = frame.polygon(a_lo, a_hi, lo_c, hi_c, 9)
    cloud = _cloud(rng)
    decl = 23.44 * math.sin(2 * math.pi * (day0.timetuple().tm_yday - 81) / 365.0)
    sun = max(2.0, min(75.0, 90.0 - abs(lat - decl) - rng.uniform(12.0, 20.0)))
    half_s = along_km / 2 / GROUND_SPEED_KM_S
    event = MatchupEvent.create(
        platform_a=sat_a.name, collection_a=kind_a, platform_b=sat_b.name, collection_b=kind_b,
        start=min(t_a, t_b) - timedelta(seconds=half_s), end=max(t_a, t_b) + timedelta(seconds=half_s),
        region=region, min_distance_km=abs(offset_km), time_diff_s=dt_s, solar_elevation_deg=sun,
        satellites=sats,
    )  # fmt: skip
    day = f"{day0:%Y/%m/%d}"
    side_a = _footprints(kind_a, frame, c_a, sat_a.swath_km, a_lo, a_hi, rng, path + 1)
    side_b = _footprints(kind_b, frame, c_b, sat_b.swath_km, a_lo, a_hi, rng, path + 1)
    prods_a = [_product_item(kind_a, sat_a, i, n, fp, t_a, day, cloud, rng, frame) for n, fp in enumerate(side_a)]
    prods_b = [_product_item(kind_b, sat_b, i, 32 + n, fp, t_b, day, cloud, rng, frame)
               for n, fp in enumerate(side_b)]  # fmt: skip
    kept_a: set[int] = set()
    kept_b: set[int] = set()
    matchups = []
    for ia, fa in enumerate(side_a):
        in_region = fa[4].intersection(region)
        if in_region.is_empty:
            continue
        for ib, fb in enumerate(side_b):
            shared = in_region.intersection(fb[4])
            if shared.is_empty or shared.area < 1e-4:
                continue
            try:
                m = Matchup.create(event, prods_a[ia], prods_b[ib], satellites=sats)
            except Exception:  # noqa: BLE001 - a sliver that vanishes in lon/lat: no matchup, as in find
                continue
            if m.abs_time_diff_s is not None and m.abs_time_diff_s > THRESHOLD_S:
                continue
            m.assets["comparison"] = {
                "href": f"/npl-data/analysis/{day}/{m.id}_comparison.nc",
                "type": "application/netcdf", "roles": ["data"], "title": "Comparison of the pair",
            }  # fmt: skip
            matchups.append(m.to_dict())
            kept_a.add(ia)
            kept_b.add(ib)
    products = [prods_a[k] for k in sorted(kept_a)] + [prods_b[k] for k in sorted(kept_b)]
    return [*products, *matchups, event.to_dict()]


# ----------------------------------------------------------------------------- writing, streamed


def _kind(item: dict[str, Any]) -> str:
    return str(item["properties"].get("matchup:type", "product"))


def _group_items(shape: str, i: int, n_groups: int, seed: int, sats: Any, pairs: Any) -> list[dict[str, Any]]:
    if shape == "realistic":
        return _realistic_group(i, seed, sats, pairs)
    return _group(i, n_groups, random.Random(seed * 1_000_003 + i), sats)


def _write_chunk(args: tuple[str, str, int, int, int, int, int, str]) -> dict[str, Any]:
    """Worker: write groups [lo, hi); item links go to ``links_dir/{chunk}/{collection}``.

    Returns per-collection counts, bboxes and time spans, a sample and the bytes written.
    """
    root_s, links_s, chunk, lo, hi, n_groups, seed, shape = args
    root = Path(root_s)
    sats = default_satellites()
    pairs = _cross_pairs(sats)
    made_dirs: set[str] = set()
    out: dict[str, Any] = {"chunk": chunk, "collections": {}, "sample": [], "bytes": 0, "groups": hi - lo}
    links: dict[str, Any] = {}
    chunk_dir = Path(links_s) / f"{chunk:07d}"
    chunk_dir.mkdir(parents=True, exist_ok=True)
    try:
        for i in range(lo, hi):
            for item in _group_items(shape, i, n_groups, seed, sats, pairs):
                rel = default_relpath(item)
                item["links"] = structural_links(rel) + item["links"]
                folder = os.path.dirname(rel)
                if folder not in made_dirs:
                    os.makedirs(root / folder, exist_ok=True)
                    made_dirs.add(folder)
                data = orjson.dumps(item, option=orjson.OPT_INDENT_2) + b"\n"
                with open(root / rel, "wb") as fh:
                    fh.write(data)
                out["bytes"] += len(data)
                coll = item["collection"]
                info = out["collections"].get(coll)
                if info is None:
                    info = out["collections"][coll] = {
                        "kind": _kind(item), "count": 0, "bbox": list(item["bbox"]), "t": [None, None],
                    }  # fmt: skip
                    links[coll] = open(chunk_dir / coll, "w")  # noqa: SIM115 - closed below
                    out["sample"].append((coll, item["id"]))
                info["count"] += 1
                b, ib = info["bbox"], item["bbox"]
                info["bbox"] = [min(b[0], ib[0]), min(b[1], ib[1]), max(b[2], ib[2]), max(b[3], ib[3])]
                props = item["properties"]
                start = props.get("start_datetime") or props["datetime"]
                end = props.get("end_datetime") or props["datetime"]
                info["t"][0] = start if info["t"][0] is None else min(info["t"][0], start)
                info["t"][1] = end if info["t"][1] is None else max(info["t"][1], end)
                links[coll].write(rel + "\n")
    finally:
        for fh in links.values():
            fh.close()
    return out


def _item_links(cid: str, chunks: list[Path]) -> Iterator[bytes]:
    """collection.json's item links, one JSON object per line, from the chunks' link files in order."""
    here = f"{cid}/collection.json"
    for chunk_dir in chunks:
        path = chunk_dir / cid
        if not path.exists():
            continue
        with open(path) as fh:
            for line in fh:
                rel = line.rstrip("\n")
                yield orjson.dumps({"rel": "item", "href": relative_href(here, rel), "type": JSON_MEDIA_TYPE})


def _write_collection(root: Path, cid: str, info: dict[str, Any], chunks: list[Path]) -> int:
    """collection.json as MatchupCatalogue writes it, with the item links pystac walks,
    streamed (a 1M-item collection's links never sit in memory); atomic. Returns bytes."""
    head = {
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
    }
    fixed = [
        {"rel": "root", "href": "../catalog.json", "type": JSON_MEDIA_TYPE},
        {"rel": "parent", "href": "../catalog.json", "type": JSON_MEDIA_TYPE},
    ]
    target = root / cid / "collection.json"
    tmp = target.with_name(".collection.json.tmp")
    written = 0
    with open(tmp, "wb") as fh:
        text = orjson.dumps(head, option=orjson.OPT_INDENT_2)[:-2]  # without the closing "\n}"
        parts = [text, b',\n  "links": [\n    ', b",\n    ".join(orjson.dumps(lk) for lk in fixed)]
        for part in parts:
            written += fh.write(part)
        for link in _item_links(cid, chunks):
            written += fh.write(b",\n    " + link)
        written += fh.write(b"\n  ]\n}\n")
    os.replace(tmp, target)
    return written


def _mean_group_items(shape: str, seed: int, probe: int = 60) -> float:
    """Items per group, from the first ``probe`` groups (the same groups the run writes)."""
    if shape != "realistic":
        return float(ITEMS_PER_GROUP)
    sats = default_satellites()
    pairs = _cross_pairs(sats)
    sizes = [len(_realistic_group(i, seed, sats, pairs)) for i in range(probe)]
    return max(1.0, sum(sizes) / len(sizes))


def generate(
    root: str | os.PathLike[str],
    items: int,
    seed: int = 1,
    workers: int | None = None,
    *,
    shape: str = "simple",
    quiet: bool = True,
    chunk_groups: int | None = None,
) -> SynthCatalogue:
    """Write a catalogue of about ``items`` items at ``root``.

    ``shape="simple"``: whole groups of 6 (``items`` rounded up to them).
    ``shape="realistic"``: as many groups as make ``items`` at the mean group size of the
    first groups (the total lands within a few percent; ``SynthCatalogue.items`` is exact).
    ``quiet=False`` prints progress lines (rate, ETA) to stderr.
    """
    if shape not in ("simple", "realistic"):
        raise ValueError(f"shape must be 'simple' or 'realistic', not {shape!r}")
    if items < 1:
        raise ValueError(f"items must be at least 1, not {items}")
    t0 = time.perf_counter()
    root = Path(root).resolve()
    if (root / "catalog.json").exists():
        raise FileExistsError(f"{root} already holds a catalogue")
    root.mkdir(parents=True, exist_ok=True)
    mean = _mean_group_items(shape, seed)
    n_groups = max(1, math.ceil(items / mean))
    if shape == "realistic" and n_groups > SLOTS:
        raise ValueError(f"at most {SLOTS} groups (~{int(SLOTS * mean):,} items) fit the 2019-2024 slots")
    workers = max(1, min(workers or os.cpu_count() or 1, n_groups))
    if chunk_groups is None:
        chunk_groups = max(1, min(math.ceil(n_groups / workers), math.ceil(2000 / mean)))
    links_dir = Path(tempfile.mkdtemp(prefix=".synth-links-", dir=root.parent))
    tasks = [
        (str(root), str(links_dir), k, lo, min(lo + chunk_groups, n_groups), n_groups, seed, shape)
        for k, lo in enumerate(range(0, n_groups, chunk_groups))
    ]
    merged: dict[str, dict[str, Any]] = {}
    sample: list[tuple[str, str]] = []
    written = 0
    progress = Progress("synth", total=round(n_groups * mean), quiet=quiet, stream=sys.stderr, interval_s=2.0)
    try:
        if len(tasks) == 1 or workers == 1:
            results: Iterator[dict[str, Any]] = map(_write_chunk, tasks)
            pool = None
        else:
            pool = multiprocessing.get_context("fork").Pool(workers)
            results = pool.imap_unordered(_write_chunk, tasks)
        try:
            for res in results:
                sample += res["sample"][:3]
                written += res["bytes"]
                n = 0
                for cid, info in res["collections"].items():
                    n += info["count"]
                    m = merged.get(cid)
                    if m is None:
                        merged[cid] = info
                        continue
                    m["count"] += info["count"]
                    b, ib = m["bbox"], info["bbox"]
                    m["bbox"] = [min(b[0], ib[0]), min(b[1], ib[1]), max(b[2], ib[2]), max(b[3], ib[3])]
                    m["t"] = [min(m["t"][0], info["t"][0]), max(m["t"][1], info["t"][1])]
                progress.update(n)
        finally:
            if pool is not None:
                pool.close()
                pool.join()
        progress.close()
        chunks = [links_dir / f"{k:07d}" for k in range(len(tasks))]
        for cid, info in merged.items():
            written += _write_collection(root, cid, info, chunks)
    finally:
        shutil.rmtree(links_dir, ignore_errors=True)
    total = sum(m["count"] for m in merged.values())
    title = "synthetic eomatch catalogue"
    catalog = {
        "type": "Catalog",
        "id": "eomatch-catalogue",
        "stac_version": STAC_VERSION,
        "description": f"{total} synthetic matchup items (benchmarks, {shape} shape).",
        "title": title,
        "links": [{"rel": "root", "href": "./catalog.json", "type": JSON_MEDIA_TYPE, "title": title}]
        + [
            {"rel": "child", "href": f"./{cid}/collection.json", "type": JSON_MEDIA_TYPE, "title": cid}
            for cid in sorted(merged)
        ],
    }
    data = orjson.dumps(catalog, option=orjson.OPT_INDENT_2) + b"\n"
    tmp = root / ".catalog.json.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, root / "catalog.json")  # last: a catalogue that has catalog.json is whole
    written += len(data)
    return SynthCatalogue(
        root=root,
        items=total,
        collections={cid: m["kind"] for cid, m in merged.items()},
        per_collection={cid: m["count"] for cid, m in merged.items()},
        sample=sample,
        seconds=time.perf_counter() - t0,
        shape=shape,
        groups=n_groups,
        bytes_written=written,
        files=total + len(merged) + 1,
    )


def verify(synth: SynthCatalogue, sample: int | None = None) -> None:
    """Open the result as a MatchupCatalogue and read the sample back (AssertionError if wrong).

    The first lookup builds the catalogue's id index (one scan of every file).
    ``sample`` limits how many of the sample items are read back.
    """
    from eomatch.catalogue import MatchupCatalogue

    cat = MatchupCatalogue.open(synth.root)
    try:
        assert cat.count() == synth.items, (cat.count(), synth.items)
        for cid, count in synth.per_collection.items():
            assert cat.count(collection=cid) == count, (cid, cat.count(collection=cid), count)
        for cid, item_id in synth.sample[:sample]:
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
    ap.add_argument("root", type=Path, help="where to write the catalogue (a new folder; /dev/shm is fastest)")
    ap.add_argument("--items", type=int, default=6000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--shape", choices=("realistic", "simple"), default="realistic")
    ap.add_argument("--workers", type=int, default=None, help="worker processes (default: one per core)")
    ap.add_argument("--no-verify", action="store_true")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    args = ap.parse_args(argv)
    if args.items < 1:
        ap.error(f"--items must be at least 1, not {args.items}")
    if (args.root / "catalog.json").exists():
        ap.error(f"{args.root} already holds a catalogue")
    synth = generate(args.root, args.items, seed=args.seed, workers=args.workers, shape=args.shape,
                     quiet=args.quiet)  # fmt: skip
    rate = synth.items / synth.seconds if synth.seconds else 0.0
    kinds: dict[str, int] = {}
    for cid, count in synth.per_collection.items():
        kinds[synth.collections[cid]] = kinds.get(synth.collections[cid], 0) + count
    mix = ", ".join(f"{kinds.get(k, 0):,} {k}s" for k in ("event", "matchup", "product"))
    print(f"wrote {synth.items:,} items ({mix}) in {len(synth.collections)} collections to {synth.root} "
          f"in {synth.seconds:.1f}s ({rate:,.0f} items/s, {format_bytes(synth.bytes_written)} of JSON)")  # fmt: skip
    if not args.no_verify:
        t = time.perf_counter()
        verify(synth, sample=60)
        print(f"verified with MatchupCatalogue in {time.perf_counter() - t:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
