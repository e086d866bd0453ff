"""A simulated product archive: provider-like STAC items along the real ground tracks.

For demos and tests without network access. Products are laid along each
satellite's ground track propagated from its TLEs (``eomatch.orbits``):

- Landsat: WRS-2-like scenes, 185 km x 180 km, 248 rows per orbit (one every
  ~24 s), row 60 on the descending node; path from the node longitude; ids like
  ``LC09_L1TP_{path:03d}{row:03d}_{date}_{date}_02_T1_SIM``.
- Sentinel-2: granules of ~110 km squares, three across the 290 km swath, one
  row every ~110 km of track; ids like
  ``S2A_MSIL1C_{datetime}_N0400_R{orbit:03d}_T{tile}_{datetime}_SIM``.

Only products whose centre is in daylight (solar elevation > 0) are made. Items
spell the platform as the provider does (``LANDSAT_9``, ``sentinel-2a``) so the
registry's platform mapping is exercised, say ``"eomatch:simulated": true``, and
carry an ``https://`` thumbnail on a fake host under example.com plus data
assets that are ``file:///npl-data/...`` for half of the items and ``https://``
for the others. They are written as a static STAC catalogue, one collection per
provider collection, which :class:`eomatch.providers.StaticProvider` searches.
Ids are deterministic, so simulating again gives the same files.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from shapely.geometry import Polygon, box
from shapely.geometry.base import BaseGeometry

from eomatch import jsonio
from eomatch.errors import ConfigError
from eomatch.ids import product_label
from eomatch.items import EO_EXTENSION_URL
from eomatch.model import (
    STAC_VERSION,
    format_datetime,
    geojson,
    normalize_geometry,
    relative_href,
    to_utc,
)
from eomatch.orbits.propagate import (
    EARTH_RADIUS_KM,
    from_unix_s,
    ground_track,
    propagate_teme,
    to_unix_s,
    unit_to_latlon,
)
from eomatch.orbits.sun import solar_elevation_deg
from eomatch.orbits.tle import PACKAGED_TLE_DIR, TleSet, find_satellite, load_tles, tle_search_paths
from eomatch.progress import Progress
from eomatch.settings import ProviderSpec, SatelliteSpec, Settings

SIM_HOST = "https://sim-archive.example.com"
"""Fake public host of the simulated https:// assets."""
NPL_ROOT = "/npl-data/simulated"
"""Where the simulated file:// assets would live on the shared drive."""
SAMPLE_STEP_S = 10.0
_COG = "image/tiff; application=geotiff; profile=cloud-optimized"
_JSON = "application/json"


@dataclass(frozen=True)
class FrameGrid:
    """How one instrument cuts its track into products."""

    kind: str
    length_km: float
    width_km: float
    rows_per_orbit: int
    cross_offsets_km: tuple[float, ...]
    duration_s: float
    paths: int
    """Number of repeat-cycle paths (WRS-2: 233, Sentinel-2 relative orbits: 143)."""
    path1_node_lon_deg: float
    """Descending-node longitude of path / relative orbit 1."""


LANDSAT_GRID = FrameGrid("wrs2", 180.0, 185.0, 248, (0.0,), 24.0, 233, -64.6)
SENTINEL2_GRID = FrameGrid("s2", 110.0, 110.0, 364, (-100.0, 0.0, 100.0), 16.0, 143, -56.5)

_BANDS = "CDEFGHJKLMNPQRSTUVWX"
_COLS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
_ROWS = "ABCDEFGHJKLMNPQRSTUV"


def grid_for(sat: SatelliteSpec) -> FrameGrid:
    """The frame grid of a satellite: Landsat scenes or Sentinel-2 granules."""
    name = sat.name.lower()
    if name.startswith("landsat"):
        return LANDSAT_GRID
    if name.startswith("sentinel-2"):
        return SENTINEL2_GRID
    raise ConfigError(f"no simulated archive for platform {sat.name} (Landsat and Sentinel-2 only)")


@dataclass
class Frame:
    """One simulated product before it becomes an item."""

    time_s: float
    lat_deg: float
    lon_deg: float
    footprint: BaseGeometry
    path: int
    row: int
    column: int


# --------------------------------------------------------------------------- geometry


def _argument_of_latitude(tles: TleSet, times_s: np.ndarray) -> np.ndarray:
    """Angle from the ascending node along the orbit (radians, unwrapped: grows monotonically)."""
    r, v = propagate_teme(tles, times_s)
    h = np.cross(r, v)
    h /= np.linalg.norm(h, axis=1, keepdims=True)
    node = np.cross(np.array([0.0, 0.0, 1.0]), h)
    node /= np.linalg.norm(node, axis=1, keepdims=True)
    w = np.cross(h, node)
    u = np.arctan2(np.sum(r * w, axis=1), np.sum(r * node, axis=1))
    return np.unwrap(u)


def _offset(p: np.ndarray, along: np.ndarray, cross: np.ndarray, a_km: float, c_km: float) -> np.ndarray:
    q = p + math.tan(a_km / EARTH_RADIUS_KM) * along + math.tan(c_km / EARTH_RADIUS_KM) * cross
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def _frame_polygon(q: np.ndarray, along: np.ndarray, cross: np.ndarray, grid: FrameGrid) -> BaseGeometry:
    half_l, half_w = grid.length_km / 2, grid.width_km / 2
    corners = np.vstack(
        [
            _offset(q, along, cross, sa * half_l, sc * half_w)
            for sa, sc in ((1, 1), (1, -1), (-1, -1), (-1, 1))
        ]
    )
    lat, lon = unit_to_latlon(corners)
    return normalize_geometry(Polygon(np.column_stack((lon, lat))))


def _site(bbox: Sequence[float] | None) -> BaseGeometry | None:
    if bbox is None:
        return None
    if len(bbox) != 4:
        raise ConfigError("bbox must be [west, south, east, north]")
    w, s, e, n = (float(v) for v in bbox)
    if w <= e:
        return box(w, s, e, n)
    return box(w, s, 180.0, n).union(box(-180.0, s, e, n))


def frames(
    tles: TleSet, grid: FrameGrid, start: datetime, end: datetime, bbox: Sequence[float] | None = None
) -> Iterator[Frame]:
    """Daylight frames of one satellite whose centre time is in [start, end], meeting ``bbox``."""
    t0, t1 = to_unix_s(to_utc(start)), to_unix_s(to_utc(end))
    pad = tles.period_s
    ts = np.arange(t0 - pad, t1 + pad + SAMPLE_STEP_S, SAMPLE_STEP_S)
    big_u = _argument_of_latitude(tles, ts)
    step = 2 * math.pi / grid.rows_per_orbit
    # Row 60 sits on the descending node (u = pi); row 1 is 59 rows before it.
    base = math.pi - 59 * step
    k_lo = math.ceil((big_u[0] - base) / step)
    k_hi = math.floor((big_u[-1] - base) / step)
    k = np.arange(k_lo, k_hi + 1)
    times = np.interp(base + k * step, big_u, ts)
    keep = (times >= t0) & (times <= t1)
    k, times = k[keep], times[keep]
    if k.size == 0:
        return
    rows = np.mod(k, grid.rows_per_orbit) + 1
    orbit = np.floor_divide(k, grid.rows_per_orbit)
    node_t = np.interp(2 * math.pi * orbit + math.pi, big_u, ts)  # row 60: base + 59 steps
    node_lon = ground_track(tles, node_t).lon_deg
    width = 360.0 / grid.paths
    paths = np.mod(np.round(np.mod(grid.path1_node_lon_deg - node_lon, 360.0) / width).astype(int), grid.paths) + 1
    track = ground_track(tles, np.concatenate((times - 1.0, times, times + 1.0)))
    n = times.size
    before, p, after = track.unit[:n], track.unit[n : 2 * n], track.unit[2 * n :]
    along = after - before
    along -= np.sum(along * p, axis=1, keepdims=True) * p
    along /= np.linalg.norm(along, axis=1, keepdims=True)
    cross = np.cross(p, along)
    site = _site(bbox)
    reach_deg = math.degrees((max(grid.cross_offsets_km) + grid.width_km) / EARTH_RADIUS_KM) + 1.0
    for col, off in enumerate(grid.cross_offsets_km):
        centres = _offset(p, along, cross, 0.0, off) if off else p
        lat, lon = unit_to_latlon(centres)
        day = solar_elevation_deg(times, lat, lon) > 0.0
        if site is not None:
            w, s, e, nn = site.bounds
            day &= (lat >= s - reach_deg) & (lat <= nn + reach_deg)
        for i in np.flatnonzero(day).tolist():
            q = centres[i]
            cross_q = np.cross(q, along[i])
            cross_q /= np.linalg.norm(cross_q)
            along_q = np.cross(cross_q, q)
            poly = _frame_polygon(q, along_q, cross_q, grid)
            if poly.is_empty or (site is not None and not poly.intersects(site)):
                continue
            yield Frame(float(times[i]), float(lat[i]), float(lon[i]), poly, int(paths[i]), int(rows[i]), col)


# --------------------------------------------------------------------------- items


def _hash_unit(text: str) -> float:
    return int(hashlib.sha1(text.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def _tile_name(lat: float, lon: float) -> str:
    """An MGRS-looking tile code for a point (``32UNE`` style; not a real MGRS conversion)."""
    zone = int((lon + 180.0) // 6.0) % 60 + 1
    band = _BANDS[min(len(_BANDS) - 1, max(0, int((lat + 80.0) // 8.0)))]
    col = _COLS[(int(((lon + 180.0) % 6.0) / 0.75) + ((zone - 1) % 3) * 8) % len(_COLS)]
    row = _ROWS[int(math.floor(lat * 111.0 / 100.0)) % len(_ROWS)]
    return f"{zone:02d}{band}{col}{row}"


def provider_spelling(sat: SatelliteSpec, spec: ProviderSpec) -> str:
    """How the provider writes the platform: the registry key mapping to it (USGS writes upper case)."""
    for value, canonical in spec.platform_values.items():
        if canonical.casefold() == sat.name.casefold():
            return value.upper() if sat.name.lower().startswith("landsat") else value
    return sat.name


def _product_id(sat: SatelliteSpec, grid: FrameGrid, frame: Frame) -> str:
    when = from_unix_s(round(frame.time_s))
    if grid.kind == "wrs2":
        digits = "".join(ch for ch in sat.name if ch.isdigit()) or "0"
        day = when.strftime("%Y%m%d")
        return f"LC{int(digits):02d}_L1TP_{frame.path:03d}{frame.row:03d}_{day}_{day}_02_T1_SIM"
    stamp = when.strftime("%Y%m%dT%H%M%S")
    tile = _tile_name(frame.lat_deg, frame.lon_deg)
    return f"{sat.token}_MSIL1C_{stamp}_N0400_R{frame.path:03d}_T{tile}_{stamp}_SIM"


def make_item(
    sat: SatelliteSpec, spec: ProviderSpec, grid: FrameGrid, frame: Frame, item_id: str | None = None
) -> dict[str, Any]:
    """The provider-style STAC item of one frame."""
    item_id = item_id or _product_id(sat, grid, frame)
    centre = from_unix_s(frame.time_s)
    half = grid.duration_s / 2
    day = centre.strftime("%Y/%m/%d")
    local = _hash_unit(item_id + "|local") < 0.5
    base_https = f"{SIM_HOST}/{spec.collection}/{day}/{item_id}"
    base_file = f"file://{NPL_ROOT}/{spec.collection}/{day}/{item_id}"
    assets: dict[str, Any] = {
        "thumbnail": {
            "href": f"{base_https}/{item_id}_thumb.jpg",
            "type": "image/jpeg",
            "title": "Thumbnail (simulated)",
            "roles": ["thumbnail"],
        },
        "metadata": {
            "href": f"{base_https}/{item_id}_metadata.json",
            "type": _JSON,
            "title": "Product metadata (simulated)",
            "roles": ["metadata"],
        },
    }
    for key in spec.data_assets or ["data"]:
        base = base_file if local else base_https
        assets[key] = {
            "href": f"{base}/{item_id}_{key.upper()}.TIF",
            "type": _COG,
            "title": f"{key} band (simulated)",
            "roles": ["data"],
        }
    props: dict[str, Any] = {
        "datetime": format_datetime(centre),
        "start_datetime": format_datetime(from_unix_s(frame.time_s - half)),
        "end_datetime": format_datetime(from_unix_s(frame.time_s + half)),
        "title": f"{sat.name} {product_label(item_id)} {centre:%Y-%m-%d %H:%M} UTC",
        "platform": provider_spelling(sat, spec),
        "instruments": [sat.instrument.lower()],
        "eo:cloud_cover": round(100.0 * _hash_unit(item_id) ** 2, 2),
        "view:sun_elevation": round(
            float(solar_elevation_deg(frame.time_s, frame.lat_deg, frame.lon_deg)), 3
        ),
        "eomatch:simulated": True,
    }
    if grid.kind == "wrs2":
        props.update({"landsat:wrs_path": f"{frame.path:03d}", "landsat:wrs_row": f"{frame.row:03d}"})
    else:
        props.update(
            {"sat:relative_orbit": frame.path, "s2:mgrs_tile": _tile_name(frame.lat_deg, frame.lon_deg)}
        )
    geom = frame.footprint
    return {
        "type": "Feature",
        "stac_version": STAC_VERSION,
        "stac_extensions": [EO_EXTENSION_URL],  # for eo:cloud_cover, as real providers list it
        "id": item_id,
        "collection": spec.collection,
        "geometry": geojson(geom),
        "bbox": [float(v) for v in geom.bounds],
        "properties": props,
        "links": [],
        "assets": assets,
    }


# --------------------------------------------------------------------------- the archive


def _collection_of(sat: SatelliteSpec, providers: dict[str, ProviderSpec]) -> str:
    for coll in sat.collections:
        if coll in providers:
            return coll
    raise ConfigError(f"platform {sat.name}: none of its collections {sat.collections} has a provider")


def _tles(settings: Settings | None, sats: Sequence[SatelliteSpec]) -> dict[str, TleSet]:
    paths = tle_search_paths(settings) if settings is not None else [PACKAGED_TLE_DIR]
    max_age = settings.tle_max_age_days if settings is not None else 3.0
    return load_tles(paths, list(sats), [s.name for s in sats], max_age)


def simulate_archive(
    out_dir: str | Path,
    platforms: Sequence[str],
    start: datetime | str,
    end: datetime | str,
    bbox: Sequence[float] | None = None,
    *,
    settings: Settings | None = None,
    quiet: bool = True,
) -> Path:
    """Write a static STAC catalogue of simulated products; returns its ``catalog.json``.

    ``platforms`` are registry names or aliases; each platform's items go to the
    provider collection of its first product collection that has a provider
    (``settings.providers``, else the defaults). Re-running adds to the same
    catalogue and rewrites identical items.
    """
    from eomatch.settings import default_providers, default_satellites

    satellites = list(settings.satellites) if settings is not None else default_satellites()
    providers = dict(settings.providers) if settings is not None else default_providers()
    start_dt, end_dt = to_utc(start), to_utc(end)
    if end_dt <= start_dt:
        raise ConfigError(f"end {format_datetime(end_dt)} is not after start {format_datetime(start_dt)}")
    sats: list[SatelliteSpec] = []
    for name in platforms:
        sat = find_satellite(name, satellites)
        if all(s.name != sat.name for s in sats):
            sats.append(sat)
    grids = {s.name: grid_for(s) for s in sats}
    tles = _tles(settings, sats)
    root = Path(out_dir).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    # Progress in days of the period simulated, per satellite; items so far ride along.
    window_days = (end_dt - start_dt).total_seconds() / 86400.0
    n_items = 0
    progress = Progress("simulate", total=window_days * len(sats), unit="days", decimals=1, quiet=quiet,
                        note=lambda: f"{n_items} items")  # fmt: skip
    for sat in sats:
        reported_days = 0.0
        coll = _collection_of(sat, providers)
        spec = providers[coll]
        grid = grids[sat.name]
        seen: set[str] = set()
        for frame in frames(tles[sat.name], grid, start_dt, end_dt, bbox):
            item_id = _product_id(sat, grid, frame)
            if item_id in seen:  # two granules with one tile code at one time
                item_id = item_id.replace("_SIM", f"_{frame.column}_SIM")
            seen.add(item_id)
            item = make_item(sat, spec, grid, frame, item_id)
            day = to_utc(item["properties"]["datetime"])
            rel = f"{spec.collection}/{day:%Y}/{day:%m}/{day:%d}/{item_id}.json"
            item["links"] = [
                {"rel": "root", "href": relative_href(rel, "catalog.json"), "type": _JSON},
                {"rel": "parent", "href": relative_href(rel, f"{spec.collection}/collection.json"), "type": _JSON},
                {"rel": "collection", "href": relative_href(rel, f"{spec.collection}/collection.json"), "type": _JSON},
            ]
            jsonio.write_json_atomic(root / rel, item)
            written.setdefault(spec.collection, []).append((rel, item))
            n_items += 1
            covered = min(window_days, (day - start_dt).total_seconds() / 86400.0)
            if covered > reported_days:
                progress.update(covered - reported_days)
                reported_days = covered
        progress.update(window_days - reported_days)
    progress.close()
    for sat in sats:
        spec = providers[_collection_of(sat, providers)]
        written.setdefault(spec.collection, [])
    for coll, items in written.items():
        _write_collection(root, coll, items)
    _write_catalog(root, sorted(written))
    return root / "catalog.json"


def _write_collection(root: Path, coll: str, items: list[tuple[str, dict[str, Any]]]) -> None:
    path = root / coll / "collection.json"
    old = jsonio.read_json(path) if path.is_file() else {}
    links = [lk for lk in old.get("links") or [] if lk.get("rel") == "item"]
    have = {lk.get("href") for lk in links}
    for rel, _ in items:
        href = relative_href(f"{coll}/collection.json", rel)
        if href not in have:
            links.append({"rel": "item", "href": href, "type": _JSON})
            have.add(href)
    ext = (old.get("extent") or {})
    bboxes = [b for b in (ext.get("spatial") or {}).get("bbox") or [] if b] if old else []
    interval = ((ext.get("temporal") or {}).get("interval") or [[None, None]])[0] if old else [None, None]
    for _, item in items:
        b = item["bbox"]
        if bboxes:
            o = bboxes[0]
            bboxes[0] = [min(o[0], b[0]), min(o[1], b[1]), max(o[2], b[2]), max(o[3], b[3])]
        else:
            bboxes = [list(b)]
        t0, t1 = item["properties"]["start_datetime"], item["properties"]["end_datetime"]
        interval = [
            t0 if interval[0] is None or t0 < interval[0] else interval[0],
            t1 if interval[1] is None or t1 > interval[1] else interval[1],
        ]
    doc = {
        "type": "Collection",
        "id": coll,
        "stac_version": STAC_VERSION,
        "stac_extensions": [],
        "title": f"{coll} (simulated)",
        "description": f"Simulated products of {coll} along real 2022 ground tracks (eomatch.simulate).",
        "license": "proprietary",
        "extent": {
            "spatial": {"bbox": bboxes or [[-180.0, -90.0, 180.0, 90.0]]},
            "temporal": {"interval": [interval]},
        },
        "links": [
            {"rel": "root", "href": "../catalog.json", "type": _JSON},
            {"rel": "parent", "href": "../catalog.json", "type": _JSON},
            *links,
        ],
    }
    jsonio.write_json_atomic(path, doc)


def _write_catalog(root: Path, collections: Sequence[str]) -> None:
    path = root / "catalog.json"
    old = jsonio.read_json(path) if path.is_file() else {}
    children = {lk.get("href") for lk in old.get("links") or [] if lk.get("rel") == "child"}
    children |= {f"./{c}/collection.json" for c in collections}
    doc = {
        "type": "Catalog",
        "id": "eomatch-simulated-archive",
        "stac_version": STAC_VERSION,
        "title": "Simulated product archive",
        "description": "Products simulated along real ground tracks, for eomatch demos and tests.",
        "links": [
            {"rel": "root", "href": "./catalog.json", "type": _JSON},
            *({"rel": "child", "href": h, "type": _JSON} for h in sorted(children)),
        ],
    }
    jsonio.write_json_atomic(path, doc)


def simulated_providers(
    settings: Settings, archive: str | Path, platforms: Sequence[str]
) -> dict[str, ProviderSpec]:
    """The settings' provider registry with the simulated platforms' collections pointed at ``archive``."""
    providers = {k: v.model_copy() for k, v in settings.providers.items()}
    for name in platforms:
        sat = find_satellite(name, settings.satellites)
        coll = _collection_of(sat, providers)
        providers[coll] = providers[coll].model_copy(update={"url": str(archive)})
    return providers

