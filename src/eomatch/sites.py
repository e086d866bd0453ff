"""Calibration sites: the packaged table of well-known sites and the site model.

A site of ``find.sites`` is a disc (``{name, lon, lat, radius_km}``), a GeoJSON area
(``{name, geometry}``) or a bare name from ``data/sites.yaml`` (RadCalNet and CEOS
PICS, with sources cited there). Names are matched case-insensitively, ignoring
spaces, hyphens and underscores, so ``libya4`` is Libya-4; an unknown name is a
one-line error listing the closest known names.

This module reads no settings (``settings.py`` calls :func:`packaged_site` to resolve
names while it validates); :class:`Site` is what the orbit code measures distances to.
"""

from __future__ import annotations

import difflib
import functools
import math
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import shapely
import yaml
from shapely.geometry import Point, shape
from shapely.geometry.base import BaseGeometry

EARTH_RADIUS_KM = 6371.0088
"""Mean Earth radius, as in :mod:`eomatch.orbits.propagate` (kept here: this module sits below it)."""


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name).casefold()


@functools.cache
def packaged_sites() -> tuple[dict[str, Any], ...]:
    """Rows of the packaged table (``eomatch/data/sites.yaml``), in file order."""
    text = resources.files("eomatch").joinpath("data/sites.yaml").read_text(encoding="utf-8")
    rows = yaml.safe_load(text)["sites"]
    return tuple(dict(r) for r in rows)


@functools.cache
def _by_key() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for row in packaged_sites():
        for name in [row["name"], *row.get("aliases", [])]:
            out[_key(str(name))] = row
    return out


def packaged_site(name: str) -> dict[str, Any]:
    """The packaged site called ``name`` (or an alias) as ``{name, lon, lat, radius_km}``.

    Raises ``ValueError`` naming the closest known names when there is none: the
    settings turn it into their one-line error.
    """
    row = _by_key().get(_key(name))
    if row is None:
        names = [str(r["name"]) for r in packaged_sites()]
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5) or difflib.get_close_matches(
            _key(name), [_key(n) for n in names], n=3, cutoff=0.5
        )
        if close and _key(close[0]) == close[0]:  # matched on keys: show the real names
            close = [n for n in names if _key(n) in close]
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known sites: {', '.join(names)}"
        raise ValueError(f"unknown site '{name}'{hint} (or give {{name, lon, lat, radius_km}} or {{name, geometry}})")
    out = {"name": row["name"], "lon": float(row["lon"]), "lat": float(row["lat"])}
    if row.get("geometry") is not None:
        out["geometry"] = row["geometry"]
    else:
        out["radius_km"] = float(row["radius_km"])
    return out


def unit_vector(lat_deg: Any, lon_deg: Any) -> np.ndarray:
    """Points on the unit sphere (n, 3) of lat/lon in degrees."""
    lat = np.radians(np.asarray(lat_deg, dtype=np.float64))
    lon = np.radians(np.asarray(lon_deg, dtype=np.float64))
    return np.stack((np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)), axis=-1)


def _arc_km(u: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Great-circle km from unit vectors ``u`` (n, 3) to one unit vector (robust when tiny)."""
    cross = np.linalg.norm(np.cross(u, centre), axis=-1)
    return EARTH_RADIUS_KM * np.arctan2(cross, u @ centre)


@dataclass(frozen=True)
class Site:
    """A calibration site: a disc around a centre, or a polygon (lon/lat) with its centroid.

    ``reach_km`` bounds the site from its centre (the radius, or the farthest vertex of
    a polygon): searches use it to skip passes that cannot come close.
    """

    name: str
    lon: float
    lat: float
    radius_km: float = 0.0
    area: BaseGeometry | None = None

    @classmethod
    def from_spec(cls, spec: Any) -> Site:
        """From a ``settings.SiteSpec`` (or anything with its attributes)."""
        geometry = getattr(spec, "geometry", None)
        if geometry is not None:
            area = shapely.make_valid(shape(geometry))
            c = area.centroid
            return cls(str(spec.name), float(c.x), float(c.y), 0.0, area)
        return cls(str(spec.name), float(spec.lon), float(spec.lat), float(spec.radius_km or 0.0))

    @functools.cached_property
    def centre(self) -> np.ndarray:
        return unit_vector(self.lat, self.lon)

    @functools.cached_property
    def reach_km(self) -> float:
        if self.area is None:
            return self.radius_km
        xy = shapely.get_coordinates(self.area)
        return float(_arc_km(unit_vector(xy[:, 1], xy[:, 0]), self.centre).max(initial=0.0))

    @property
    def geometry(self) -> BaseGeometry:
        """The site as a lon/lat shape (a disc becomes a 64-gon; at least ~1 km across)."""
        if self.area is not None:
            return self.area
        r_km = max(self.radius_km, 0.5)
        bearings = np.linspace(0.0, 2.0 * math.pi, 65)
        d = r_km / EARTH_RADIUS_KM
        lat0, lon0 = math.radians(self.lat), math.radians(self.lon)
        lat = np.arcsin(math.sin(lat0) * math.cos(d) + math.cos(lat0) * math.sin(d) * np.cos(bearings))
        lon = lon0 + np.arctan2(
            np.sin(bearings) * math.sin(d) * math.cos(lat0), math.cos(d) - math.sin(lat0) * np.sin(lat)
        )
        lon_deg = (np.degrees(lon) + 180.0) % 360.0 - 180.0
        return shapely.Polygon(np.column_stack((lon_deg, np.degrees(lat))))

    def centre_distance_km(self, unit: np.ndarray) -> np.ndarray:
        """Great-circle km from ground points (unit vectors, (n, 3)) to the site centre."""
        return _arc_km(unit, self.centre)

    def distance_km(self, unit: np.ndarray) -> np.ndarray:
        """km from ground points (unit vectors) to the site area: 0 inside it.

        A polygon is measured in a local equidistant plane around its centroid
        (good to a fraction of a percent within a few hundred km of the site).
        """
        d_centre = self.centre_distance_km(unit)
        if self.area is None:
            return np.maximum(d_centre - self.radius_km, 0.0)
        lat = np.degrees(np.arctan2(unit[:, 2], np.hypot(unit[:, 0], unit[:, 1])))
        lon = np.degrees(np.arctan2(unit[:, 1], unit[:, 0]))
        points = shapely.points(*self._plane(lon, lat))
        poly = shapely.transform(self.area, lambda c: np.column_stack(self._plane(c[:, 0], c[:, 1])))
        return np.asarray(shapely.distance(points, poly), dtype=np.float64)

    def _plane(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k = math.pi / 180.0 * EARTH_RADIUS_KM
        dlon = (np.asarray(lon) - self.lon + 180.0) % 360.0 - 180.0
        return dlon * k * math.cos(math.radians(self.lat)), (np.asarray(lat) - self.lat) * k

    def contains(self, lon: float, lat: float) -> bool:
        """Whether a lon/lat point lies in the site (for tests and plots)."""
        if self.area is not None:
            return bool(self.area.covers(Point(lon, lat)))
        return bool(self.distance_km(unit_vector([lat], [lon]))[0] == 0.0)
