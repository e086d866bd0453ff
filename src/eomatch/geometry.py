"""Footprints on the globe: antimeridian splitting, overlaps, areas and STAC bboxes.

Footprints that cross ±180° arrive in several shapes (already split, longitudes
past 180, a jump from 179 to -179); :func:`normalize_geometry` turns them all
into one form so intersections in lon/lat are right, and :func:`stac_bbox`
writes STAC's west > east box for them rather than a box around the globe.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import shapely
from shapely.geometry import MultiPolygon, Polygon, box, mapping, shape
from shapely.geometry.base import BaseGeometry

from eomatch.errors import MatchupError

_WORLD = box(-180.0, -90.0, 180.0, 90.0)
_EAST_OF_180 = box(180.0, -90.0, 540.0, 90.0)
_GEOD = None


def _geod() -> Any:
    global _GEOD
    if _GEOD is None:
        from pyproj import Geod

        _GEOD = Geod(ellps="WGS84")
    return _GEOD


def polygons(geom: BaseGeometry) -> list[Polygon]:
    """The polygons of any geometry (collections flattened; points and lines dropped)."""
    if geom.is_empty:
        return []
    if isinstance(geom, Polygon):
        return [geom]
    if isinstance(geom, MultiPolygon):
        return list(geom.geoms)
    if hasattr(geom, "geoms"):
        return [p for g in geom.geoms for p in polygons(g)]
    return []


def _split_part(poly: Polygon) -> list[Polygon]:
    """Cut one polygon that wraps across ±180° into pieces inside [-180, 180]."""
    minx, _, maxx, _ = poly.bounds
    if maxx - minx > 180.0 and _has_jump(poly):
        # Written with a jump at the antimeridian (179 -> -179): unwrap to 0..360.
        # (A wide region that never jumps, e.g. around a pole, is left as it is.)
        poly = shapely.transform(poly, lambda xy: _shift_negative(xy))
        minx, _, maxx, _ = poly.bounds
    if minx >= -180.0 and maxx <= 180.0:
        return [poly]
    if minx < -180.0:
        poly = _translate(poly, 360.0)
    west = poly.intersection(_WORLD)
    east = _translate(poly.intersection(_EAST_OF_180), -360.0)
    return polygons(west) + polygons(east)


def _has_jump(poly: Polygon) -> bool:
    """Consecutive vertices more than 180 degrees of longitude apart."""
    import numpy as np

    for ring in (poly.exterior, *poly.interiors):
        x = np.asarray(ring.coords)[:, 0]
        if x.size > 1 and bool(np.any(np.abs(np.diff(x)) > 180.0)):
            return True
    return False


def _shift_negative(xy: Any) -> Any:
    xy = xy.copy()
    xy[:, 0] = xy[:, 0] % 360.0
    return xy


def _translate(geom: BaseGeometry, dx: float) -> BaseGeometry:
    from shapely import affinity

    return affinity.translate(geom, xoff=dx)


def normalize_geometry(geom: BaseGeometry | Mapping[str, Any]) -> BaseGeometry:
    """A valid (Multi)Polygon inside [-180, 180], split at the antimeridian.

    Footprints that cross ±180° arrive either already split (a MultiPolygon, the
    STAC convention), with longitudes past 180, or with a jump from 179 to -179;
    all three become the split MultiPolygon so intersections in lon/lat are right.
    """
    if isinstance(geom, Mapping):
        try:
            geom = shape(geom)
        except Exception as exc:  # shapely raises several types on bad GeoJSON
            raise MatchupError(f"invalid GeoJSON geometry: {exc}") from None
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
    parts: list[Polygon] = []
    for poly in polygons(geom):
        parts.extend(p for p in _split_part(poly) if not p.is_empty and p.area > 0)
    if not parts:
        return Polygon()
    if len(parts) == 1:
        return parts[0]
    polys = polygons(shapely.unary_union(parts))
    return polys[0] if len(polys) == 1 else MultiPolygon(polys)


def geodesic_area_km2(geom: BaseGeometry) -> float:
    """Area on the WGS84 ellipsoid in km² (pyproj.Geod), whatever the winding."""
    total = 0.0
    for poly in polygons(geom):
        area, _ = _geod().geometry_area_perimeter(poly)
        total += abs(area)
    return total / 1e6


def intersect_footprints(geom_a: BaseGeometry, geom_b: BaseGeometry) -> BaseGeometry:
    """The polygonal part of the intersection of two normalized footprints."""
    inter = normalize_geometry(geom_a).intersection(normalize_geometry(geom_b))
    polys = [p for p in polygons(inter) if p.area > 0]
    if not polys:
        return Polygon()
    return polys[0] if len(polys) == 1 else MultiPolygon(polys)


def geojson(geom: BaseGeometry) -> dict[str, Any]:
    """GeoJSON of a (Multi)Polygon with counter-clockwise outer rings (RFC 7946)."""
    from shapely.geometry.polygon import orient

    polys = [orient(p, sign=1.0) for p in polygons(geom)]
    if len(polys) == 1:
        return dict(mapping(polys[0]))
    return dict(mapping(MultiPolygon(polys)))


def stac_bbox(geom: BaseGeometry) -> list[float]:
    """STAC bbox; a geometry split at the antimeridian gets west > east (STAC's
    convention) rather than a box around the whole globe."""
    minx, miny, maxx, maxy = (float(v) for v in geom.bounds)
    polys = polygons(geom)
    if len(polys) > 1 and maxx >= 180.0 - 1e-9 and minx <= -180.0 + 1e-9:
        # Move the western-hemisphere parts east by 360° and see if the box shrinks.
        shifted = [(b[0] + 360.0, b[2] + 360.0) if b[2] <= 0.0 else (b[0], b[2]) for b in (p.bounds for p in polys)]
        west, east = min(w for w, _ in shifted), max(e for _, e in shifted)
        if east - west < maxx - minx and east > 180.0:
            return [west, miny, east - 360.0, maxy]
    return [minx, miny, maxx, maxy]
