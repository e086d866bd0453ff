"""Swath strips and their overlap, as lon/lat polygons that behave at ±180° and the poles.

Geometry is done in a gnomonic plane centred on the event (great circles are
straight lines there, and nothing wraps), then mapped back to lon/lat with
longitudes unwrapped along each ring and split at the antimeridian into a
MultiPolygon. A ring that encircles a pole is closed through the pole.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import shapely
from shapely import affinity
from shapely.geometry import MultiPolygon, Polygon, box
from shapely.geometry.base import BaseGeometry

from eomatch.orbits.propagate import EARTH_RADIUS_KM, unit_to_latlon

_EMPTY = Polygon()
"""An empty polygon (geometries are immutable, so one can stand for every track without a strip)."""

MAX_SEGMENT_KM = 50.0
"""Edges are densified to this length before leaving the gnomonic plane."""


class LocalPlane:
    """Gnomonic projection about a centre point on the unit sphere."""

    def __init__(self, centre_unit: np.ndarray) -> None:
        cx, cy, cz = (float(v) for v in centre_unit)
        norm = math.sqrt(cx * cx + cy * cy + cz * cz)
        cx, cy, cz = cx / norm, cy / norm, cz / norm
        # east = ref x c, with ref the pole axis unless the centre is near a pole
        if abs(cz) < 0.9:
            ex, ey, ez = -cy, cx, 0.0
        else:
            ex, ey, ez = 0.0, -cz, cy
        en = math.sqrt(ex * ex + ey * ey + ez * ez)
        ex, ey, ez = ex / en, ey / en, ez / en
        nx, ny, nz = cy * ez - cz * ey, cz * ex - cx * ez, cx * ey - cy * ex
        self.centre = np.array([cx, cy, cz])
        self.east = np.array([ex, ey, ez])
        self.north = np.array([nx, ny, nz])

    def forward(self, u: np.ndarray) -> np.ndarray:
        """Unit vectors (n, 3) -> plane coordinates (n, 2), in Earth radii near the centre."""
        d = u @ self.centre
        d = np.where(d > 1e-6, d, np.nan)  # the far hemisphere has no image
        return np.column_stack(((u @ self.east) / d, (u @ self.north) / d))

    def inverse(self, xy: np.ndarray) -> np.ndarray:
        u = self.centre + xy[:, :1] * self.east + xy[:, 1:2] * self.north
        return u / np.linalg.norm(u, axis=1, keepdims=True)


def swath_edges(track_unit: np.ndarray, half_width_km: float) -> tuple[np.ndarray, np.ndarray]:
    """Left and right swath edges of a nadir track (n >= 2 points), on the sphere."""
    p = track_unit
    d = np.empty_like(p)
    d[1:-1] = p[2:] - p[:-2]
    d[0] = p[1] - p[0]
    d[-1] = p[-1] - p[-2]
    px, py, pz = p[:, 0], p[:, 1], p[:, 2]
    dx, dy, dz = d[:, 0], d[:, 1], d[:, 2]
    cross = np.column_stack((py * dz - pz * dy, pz * dx - px * dz, px * dy - py * dx))
    cross /= np.linalg.norm(cross, axis=1, keepdims=True)
    ang = half_width_km / EARTH_RADIUS_KM
    return np.cos(ang) * p + np.sin(ang) * cross, np.cos(ang) * p - np.sin(ang) * cross


def strip_polygon(track_unit: np.ndarray, half_width_km: float, plane: LocalPlane) -> BaseGeometry:
    """The swath strip of a track segment as a polygon in ``plane``."""
    left, right = swath_edges(track_unit, half_width_km)
    ring = plane.forward(np.concatenate((left, right[::-1])))
    ring = ring[np.isfinite(ring).all(axis=1)]
    if len(ring) < 3:
        return Polygon()
    poly = shapely.polygons(ring)
    if not shapely.is_valid(poly):
        poly = shapely.make_valid(poly)
    return poly


def _thin(track: np.ndarray, max_points: int = 60) -> np.ndarray:
    """Keep the ends and an even subset: strips need shape, not every second."""
    if len(track) <= max_points:
        return track
    return track[_thin_index(len(track), max_points)]


@functools.lru_cache(maxsize=1024)
def _thin_index(n: int, max_points: int) -> np.ndarray:
    """The rows :func:`_thin` keeps of ``n`` (a few lengths recur: computed once each)."""
    idx = np.unique(np.linspace(0, n - 1, max_points).round().astype(int))
    idx.flags.writeable = False
    return idx


def overlap_region(
    track_a: np.ndarray,
    track_b: np.ndarray,
    half_width_a_km: float,
    half_width_b_km: float,
    pad_km: float = 0.0,
) -> tuple[BaseGeometry, float]:
    """Intersection of two swath strips, as lon/lat geometry, and its area in km².

    When the strips do not meet (narrow swaths, or a swath-mode threshold), both
    are widened by ``pad_km`` so that the region still marks where the event is.
    """
    inter, plane = _plane_overlap(track_a, track_b, half_width_a_km, half_width_b_km, pad_km)
    if inter.is_empty:
        return inter, 0.0
    area_km2 = float(inter.area) * EARTH_RADIUS_KM**2
    return plane_to_lonlat(inter, plane), area_km2


def overlap_regions(
    pieces: Sequence[tuple[np.ndarray, np.ndarray]],
    half_width_a_km: float,
    half_width_b_km: float,
    pad_km: float = 0.0,
) -> list[tuple[BaseGeometry, float]]:
    """:func:`overlap_region` of many pairs of track pieces, the same results.

    Each piece keeps its own plane, but the strips of all pieces are built
    together (:func:`_strips`) and intersected in one vectorised call, and all
    intersections go to lon/lat at once (:func:`planes_to_lonlat`): per piece,
    the numpy and shapely call overhead was most of the time of a region.
    """
    n = len(pieces)
    if n == 0:
        return []
    thinned = [(_thin(track_a), _thin(track_b)) for track_a, track_b in pieces]
    planes = [LocalPlane(np.vstack((ta, tb)).mean(axis=0)) for ta, tb in thinned]
    tracks_a = [ta for ta, _ in thinned]
    tracks_b = [tb for _, tb in thinned]
    inters = _strip_overlaps(tracks_a, tracks_b, planes, half_width_a_km, half_width_b_km)
    if pad_km > 0:
        redo = [i for i, g in enumerate(inters) if g.is_empty or not g.area > 0]
        if redo:
            padded = _strip_overlaps(
                [tracks_a[i] for i in redo],
                [tracks_b[i] for i in redo],
                [planes[i] for i in redo],
                half_width_a_km + pad_km,
                half_width_b_km + pad_km,
            )
            for i, g in zip(redo, padded, strict=True):
                inters[i] = g
    out: list[tuple[BaseGeometry, float]] = []
    kept: list[BaseGeometry] = []
    kept_planes: list[LocalPlane] = []
    for inter, plane in zip(inters, planes, strict=True):
        out.append((inter, 0.0 if inter.is_empty else float(inter.area) * EARTH_RADIUS_KM**2))
        if not inter.is_empty:
            kept.append(inter)
            kept_planes.append(plane)
    mapped = iter(planes_to_lonlat(kept, kept_planes))
    return [(geom if geom.is_empty else next(mapped), area) for geom, area in out]


def _strip_overlaps(
    tracks_a: Sequence[np.ndarray],
    tracks_b: Sequence[np.ndarray],
    planes: Sequence[LocalPlane],
    half_width_a_km: float,
    half_width_b_km: float,
) -> list[BaseGeometry]:
    """Polygonal intersection of the strips of each (a, b) pair of tracks, each in its plane."""
    strips_a = _strips(tracks_a, half_width_a_km, planes)
    strips_b = _strips(tracks_b, half_width_b_km, planes)
    return [_polygons_only(g) for g in shapely.intersection(strips_a, strips_b)]


def _strips(tracks: Sequence[np.ndarray], half_width_km: float, planes: Sequence[LocalPlane]) -> np.ndarray:
    """:func:`strip_polygon` of each track (n >= 2 points) in its plane, as an array of polygons.

    The swath edges of all tracks are one element-wise computation (the same
    arithmetic as :func:`swath_edges`, so the same bits); the projection stays
    per track, since a matrix-vector product may round differently in a batch.
    """
    sizes = np.array([len(t) for t in tracks])
    ends = np.cumsum(sizes)
    starts = ends - sizes
    p = np.concatenate(tracks)
    d = np.empty_like(p)
    d[1:-1] = p[2:] - p[:-2]
    d[starts] = p[starts + 1] - p[starts]
    d[ends - 1] = p[ends - 1] - p[ends - 2]
    px, py, pz = p[:, 0], p[:, 1], p[:, 2]
    dx, dy, dz = d[:, 0], d[:, 1], d[:, 2]
    cross = np.column_stack((py * dz - pz * dy, pz * dx - px * dz, px * dy - py * dx))
    cross /= np.linalg.norm(cross, axis=1, keepdims=True)
    ang = half_width_km / EARTH_RADIUS_KM
    left = np.cos(ang) * p + np.sin(ang) * cross
    right = np.cos(ang) * p - np.sin(ang) * cross
    rings: list[np.ndarray] = []
    ring_of: list[int] = []
    for k, (s0, s1, plane) in enumerate(zip(starts.tolist(), ends.tolist(), planes, strict=True)):
        ring = plane.forward(np.concatenate((left[s0:s1], right[s0:s1][::-1])))
        ring = ring[np.isfinite(ring).all(axis=1)]
        if len(ring) >= 3:
            rings.append(ring)
            ring_of.append(k)
    out = np.full(len(tracks), _EMPTY, dtype=object)  # Polygon() parses WKT: make it once
    if rings:
        counts = np.array([len(r) for r in rings])
        polys = shapely.polygons(shapely.linearrings(np.concatenate(rings), indices=np.repeat(np.arange(len(rings)), counts)))
        bad = ~shapely.is_valid(polys)
        if bad.any():
            polys[bad] = shapely.make_valid(polys[bad])
        out[np.array(ring_of)] = polys
    return out


def _plane_overlap(
    track_a: np.ndarray,
    track_b: np.ndarray,
    half_width_a_km: float,
    half_width_b_km: float,
    pad_km: float,
) -> tuple[BaseGeometry, LocalPlane]:
    """The strips' intersection in the event's gnomonic plane, and that plane."""
    ta, tb = _thin(track_a), _thin(track_b)
    plane = LocalPlane(np.vstack((ta, tb)).mean(axis=0))
    inter: BaseGeometry = Polygon()
    for extra in (0.0, pad_km):
        pa = strip_polygon(ta, half_width_a_km + extra, plane)
        pb = strip_polygon(tb, half_width_b_km + extra, plane)
        inter = pa.intersection(pb)
        inter = _polygons_only(inter)
        if not inter.is_empty and inter.area > 0:
            break
        if pad_km <= 0:
            break
    return inter, plane


def _polygons_only(geom: BaseGeometry) -> BaseGeometry:
    if isinstance(geom, Polygon | MultiPolygon):
        return geom
    parts = [g for g in getattr(geom, "geoms", []) if isinstance(g, Polygon) and not g.is_empty]
    if not parts:
        return Polygon()
    return parts[0] if len(parts) == 1 else MultiPolygon(parts)


def _ring_lonlat(coords: np.ndarray, plane: LocalPlane, pole: int) -> np.ndarray:
    """Plane ring -> (lon unwrapped along the ring, lat); closed through the pole if ``pole``."""
    lat, lon = unit_to_latlon(plane.inverse(coords))
    lon = np.degrees(np.unwrap(np.radians(lon)))
    if pole:
        lat_pole = 90.0 * pole
        lon = np.concatenate((lon, [lon[-1], lon[0]]))
        lat = np.concatenate((lat, [lat_pole, lat_pole]))
    return np.column_stack((lon, lat))


def plane_to_lonlat(geom: BaseGeometry, plane: LocalPlane) -> BaseGeometry:
    """Map plane polygons to lon/lat, split at ±180° (never a globe-spanning polygon)."""
    dense = shapely.segmentize(geom, MAX_SEGMENT_KM / EARTH_RADIUS_KM)
    polys = list(dense.geoms) if isinstance(dense, MultiPolygon) else [dense]
    poles = []
    for sign in (1, -1):
        xy = plane.forward(np.array([[0.0, 0.0, float(sign)]]))[0]
        if np.isfinite(xy).all():
            poles.append((sign, xy))
    pieces: list[Polygon] = []
    for poly in polys:
        pole = 0
        minx, miny, maxx, maxy = poly.bounds
        for sign, xy in poles:
            inside_box = minx <= xy[0] <= maxx and miny <= xy[1] <= maxy
            if inside_box and poly.contains(shapely.Point(xy)):
                pole = sign
        shell = _ring_lonlat(np.asarray(poly.exterior.coords)[:-1], plane, pole)
        ref = shell[:, 0].mean()
        holes = []
        for ring in poly.interiors:
            h = _ring_lonlat(np.asarray(ring.coords)[:-1], plane, 0)
            h[:, 0] += 360.0 * np.round((ref - h[:, 0].mean()) / 360.0)
            holes.append(h)
        ll = Polygon(shell, holes) if holes else shapely.polygons(shell)
        if not shapely.is_valid(ll):
            ll = shapely.make_valid(ll)
        pieces.extend(split_antimeridian(ll))
    return _joined(pieces)


def _joined(pieces: list[Polygon]) -> BaseGeometry:
    """The pieces with an area, as one (Multi)Polygon."""
    pieces = [p for p in pieces if not p.is_empty and p.area > 0]
    if not pieces:
        return Polygon()
    return pieces[0] if len(pieces) == 1 else MultiPolygon(pieces)


def planes_to_lonlat(geoms: Sequence[BaseGeometry], planes: Sequence[LocalPlane]) -> list[BaseGeometry]:
    """:func:`plane_to_lonlat` of each geometry in its own plane, bit-identical, in few calls.

    Polygons without holes and without a pole inside are mapped all at once with
    the same element-wise arithmetic; those that are valid in lon/lat within ±180°
    (most) are done, the others are cut at the antimeridian one by one from there.
    The rest (holes, a pole inside) goes one by one through :func:`plane_to_lonlat`.
    """
    n = len(geoms)
    if n == 0:
        return []
    out: list[BaseGeometry | None] = [None] * n
    arr = np.empty(n, dtype=object)
    arr[:] = list(geoms)
    dense = shapely.segmentize(arr, MAX_SEGMENT_KM / EARTH_RADIUS_KM)
    centre = np.array([p.centre for p in planes])
    east = np.array([p.east for p in planes])
    north = np.array([p.north for p in planes])
    simple = (shapely.get_type_id(dense) == 3) & (shapely.get_num_interior_rings(dense) == 0)
    # A pole's image, where it has one (forward() of (0, 0, ±1) is exactly this).
    cz = centre[:, 2]
    has_pole = np.abs(cz) > 1e-6
    with np.errstate(divide="ignore", invalid="ignore"):
        px, py = east[:, 2] / cz, north[:, 2] / cz
    minx, miny, maxx, maxy = shapely.bounds(dense).T
    near_pole = np.flatnonzero(simple & has_pole & (minx <= px) & (px <= maxx) & (miny <= py) & (py <= maxy))
    if near_pole.size:  # only a pole really inside needs the ring closed through it
        simple[near_pole] = ~shapely.contains_xy(dense[near_pole], px[near_pole], py[near_pole])
    idx_simple = np.flatnonzero(simple)
    if idx_simple.size:
        rings = shapely.get_exterior_ring(dense[idx_simple])
        xy, ring = shapely.get_coordinates(rings, return_index=True)
        closing = np.r_[ring[1:] != ring[:-1], True]  # each ring's repeated first point
        xy, ring = xy[~closing], ring[~closing]
        g = idx_simple[ring]
        u = np.take(centre, g, axis=0) + xy[:, :1] * np.take(east, g, axis=0) + xy[:, 1:2] * np.take(north, g, axis=0)
        u = u / np.linalg.norm(u, axis=1, keepdims=True)
        lat, lon = unit_to_latlon(u)
        rad0 = np.radians(lon)
        rad = rad0.copy()
        step = np.diff(rad)
        inner = ring[1:] == ring[:-1]
        wraps = np.zeros(idx_simple.size, dtype=bool)
        wraps[ring[1:][inner & ~(np.abs(step) < np.pi)]] = True
        # np.unwrap without a wrap adds 0.0 to every point after the first (-0.0 -> 0.0).
        rad[1:][inner] = rad[1:][inner] + 0.0
        lon = np.degrees(rad)
        ll = shapely.polygons(shapely.linearrings(np.column_stack((lon, lat)), indices=ring))
        ll_minx, _, ll_maxx, _ = shapely.bounds(ll).T
        valid = shapely.is_valid(ll)
        fast = ~wraps & valid & (ll_minx >= -180.0) & (ll_maxx <= 180.0)
        keep = ~shapely.is_empty(ll) & (shapely.area(ll) > 0)
        for k in np.flatnonzero(fast).tolist():
            out[int(idx_simple[k])] = ll[k] if keep[k] else Polygon()
        # Across the antimeridian (or invalid in lon/lat): what plane_to_lonlat does after
        # its ring mapping, which is the one above (np.unwrap itself where a ring wraps).
        starts = np.searchsorted(ring, np.arange(idx_simple.size + 1))
        for k in np.flatnonzero(~fast).tolist():
            if wraps[k]:
                s0, s1 = int(starts[k]), int(starts[k + 1])
                shell = np.column_stack((np.degrees(np.unwrap(rad0[s0:s1])), lat[s0:s1]))
                geom, ok = shapely.polygons(shell), None
            else:
                geom, ok = ll[k], bool(valid[k])
            if not (shapely.is_valid(geom) if ok is None else ok):
                geom = shapely.make_valid(geom)
            out[int(idx_simple[k])] = _joined(split_antimeridian(geom))
    for i in range(n):
        if out[i] is None:
            out[i] = plane_to_lonlat(geoms[i], planes[i])
    return [g for g in out if g is not None]


def split_antimeridian(geom: BaseGeometry) -> list[Polygon]:
    """Cut a lon/lat geometry with unwrapped longitudes into pieces within [-180, 180]."""
    minx, _, maxx, _ = geom.bounds
    if minx >= -180.0 and maxx <= 180.0:
        part = _polygons_only(geom)
        return [
            p for p in (part.geoms if isinstance(part, MultiPolygon) else [part]) if not p.is_empty
        ]
    out: list[Polygon] = []
    k_lo = int(np.floor((minx + 180.0) / 360.0))
    k_hi = int(np.floor((maxx + 180.0) / 360.0))
    for k in range(k_lo, k_hi + 1):
        shift = 360.0 * k
        part = geom.intersection(box(-180.0 + shift, -90.0, 180.0 + shift, 90.0))
        part = affinity.translate(part, xoff=-shift) if k else part
        part = _polygons_only(part)
        out.extend(list(part.geoms) if isinstance(part, MultiPolygon) else [part])
    return [p for p in out if not p.is_empty]


def crosses_antimeridian(geom: BaseGeometry) -> bool:
    """True when a split region touches both +180 and -180."""
    if geom.is_empty:
        return False
    minx, _, maxx, _ = geom.bounds
    return minx <= -180.0 + 1e-9 and maxx >= 180.0 - 1e-9


def bbox_geometry(
    min_lat: float | None,
    max_lat: float | None,
    min_lon: float | None,
    max_lon: float | None,
) -> BaseGeometry | None:
    """Site box in lon/lat; None when unbounded. ``min_lon > max_lon`` wraps over ±180."""
    if min_lat is None and max_lat is None and min_lon is None and max_lon is None:
        return None
    s = -90.0 if min_lat is None else float(min_lat)
    n = 90.0 if max_lat is None else float(max_lat)
    w = -180.0 if min_lon is None else float(min_lon)
    e = 180.0 if max_lon is None else float(max_lon)
    if w <= e:
        return box(w, s, e, n)
    return MultiPolygon([box(w, s, 180.0, n), box(-180.0, s, e, n)])


KM_PER_DEG = math.radians(1.0) * EARTH_RADIUS_KM
"""Ground length of one degree of latitude (and the most one degree of longitude can be)."""


COMPACT_DECIMALS = 6
"""Compact regions' coordinates are rounded to this many decimals of a degree."""


def compact_region(
    geom: BaseGeometry, tolerance_km: float, max_vertices: int
) -> tuple[BaseGeometry, float]:
    """A region with at most ``max_vertices`` coordinates, within a ground tolerance of ``geom``.

    Full regions carry a vertex every 50 km of edge and every track sample (hundreds
    per event), which is what made event tables huge. Douglas-Peucker runs in
    lon/lat with longitudes scaled by the cosine of the region's lowest latitude:
    there one scaled degree is never shorter on the ground than ``KM_PER_DEG``, so
    a tolerance of ``tolerance_km / KM_PER_DEG`` keeps every point of either outline
    within ``tolerance_km`` of the other (Hausdorff distance, on the sphere).
    A region that needs more than ``max_vertices`` at that tolerance (half-orbit
    events of pairs that share a ground track) is simplified at twice the
    tolerance, and so on; the tolerance used is returned with the region.

    GEOS may also drop a ring's first vertex when it lies within the tolerance of
    its simplified neighbours, which can put the removed stretch up to twice the
    tolerance away (seen: 1.05 km at 1 km); simplifying at half the tolerance
    keeps the stated one. Coordinates are then rounded to ``COMPACT_DECIMALS``
    (0.11 m at most, on top of the tolerance).
    """
    if geom.is_empty or shapely.get_num_coordinates(geom) <= max_vertices:
        return geom, 0.0
    _, min_lat, _, max_lat = geom.bounds
    lat0 = 0.0 if min_lat <= 0.0 <= max_lat else min(abs(min_lat), abs(max_lat))
    scale = np.array([max(math.cos(math.radians(lat0)), 1e-6), 1.0])
    scaled = shapely.transform(geom, lambda xy: xy * scale)
    n_parts = shapely.get_num_geometries(geom)
    tol_km = float(tolerance_km)
    while True:
        tol_deg = 0.5 * tol_km / KM_PER_DEG
        out = shapely.simplify(scaled, tol_deg, preserve_topology=False)
        if (
            out.is_empty
            or shapely.get_num_geometries(out) != n_parts
            or not shapely.is_valid(out)
        ):
            out = shapely.simplify(scaled, tol_deg, preserve_topology=True)
        n = shapely.get_num_coordinates(out)
        if n <= max_vertices or tol_km > 1e5:
            break
        # Vertices of a smooth outline go as tolerance^-1/2: jump close, then double.
        tol_km *= 2.0 ** max(1, math.floor(math.log2((n / max_vertices) ** 2)))
    out = shapely.transform(out, lambda xy: xy / scale)
    # Coordinates to 1e-6 degree (<= 0.11 m): WKT prints them in half the characters.
    rounded = shapely.transform(out, lambda xy: np.round(xy, COMPACT_DECIMALS))
    if shapely.is_valid(rounded) and shapely.get_num_geometries(rounded) == n_parts:
        out = rounded
    return out, tol_km


__all__ = [
    "KM_PER_DEG",
    "LocalPlane",
    "bbox_geometry",
    "compact_region",
    "crosses_antimeridian",
    "overlap_region",
    "overlap_regions",
    "plane_to_lonlat",
    "planes_to_lonlat",
    "split_antimeridian",
    "strip_polygon",
    "swath_edges",
]
