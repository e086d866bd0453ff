"""Batched lon/lat mapping of regions: the same geometries, bit for bit, as one at a time."""

from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon

from eomatch.orbits.propagate import latlon_to_unit
from eomatch.orbits.region import (
    LocalPlane,
    overlap_region,
    overlap_regions,
    plane_to_lonlat,
    planes_to_lonlat,
)


def _plane(lat: float, lon: float) -> LocalPlane:
    return LocalPlane(latlon_to_unit(np.array([lat]), np.array([lon]))[0])


def _cases() -> list[tuple[shapely.Geometry, LocalPlane]]:
    """Geometries in their planes: the common case and each one the batch hands back."""
    square = shapely.box(-0.01, -0.01, 0.01, 0.01)
    return [
        (square, _plane(45.0, 10.0)),  # plain polygon
        (shapely.box(-0.05, -0.002, 0.08, 0.004), _plane(-20.0, 60.0)),  # long, segmentized
        (square, _plane(0.0, 179.95)),  # across the antimeridian: split in two
        (square, _plane(89.9, 0.0)),  # the pole inside: closed through it
        (Polygon(shapely.box(-0.02, -0.02, 0.02, 0.02).exterior, [square.exterior]), _plane(30.0, -40.0)),
        (MultiPolygon([square, shapely.box(0.02, 0.02, 0.03, 0.03)]), _plane(-60.0, 120.0)),
        (shapely.box(-0.003, -0.003, 0.003, 0.003), _plane(10.0, -179.999)),  # lon wraps along the ring
    ]


def test_batched_mapping_equals_one_at_a_time() -> None:
    cases = _cases()
    batched = planes_to_lonlat([g for g, _ in cases], [p for _, p in cases])
    assert len(batched) == len(cases)
    for got, (geom, plane) in zip(batched, cases, strict=True):
        want = plane_to_lonlat(geom, plane)
        assert shapely.to_wkb(got) == shapely.to_wkb(want)
    assert isinstance(batched[2], MultiPolygon)  # the antimeridian case really was split
    assert batched[3].bounds[3] == 90.0  # and the pole case reaches the pole


def test_overlap_regions_equal_overlap_region_each() -> None:
    """Two crossing tracks, pieces of them, one pair that never meets (padded)."""
    lat = np.linspace(-2.0, 2.0, 40)
    a = latlon_to_unit(lat, np.full(40, 30.0) + 0.3 * lat)
    b = latlon_to_unit(lat, np.full(40, 30.0) - 0.3 * lat)
    far = latlon_to_unit(lat, np.full(40, 33.0))
    pieces = [(a, b), (a[:20], b[10:30]), (a, far)]
    got = overlap_regions(pieces, 50.0, 60.0, pad_km=51.0)
    for (geom, area), (seg_a, seg_b) in zip(got, pieces, strict=True):
        want_geom, want_area = overlap_region(seg_a, seg_b, 50.0, 60.0, pad_km=51.0)
        assert area == want_area
        assert shapely.to_wkb(geom) == shapely.to_wkb(want_geom)
    assert not got[0][0].is_empty and got[0][1] > 0


def test_overlap_regions_equal_overlap_region_each_long_short_and_polar_pieces() -> None:
    """Pieces longer than the thinning limit, two-point pieces, near a pole, never meeting."""
    lat = np.linspace(-3.0, 3.0, 150)
    a = latlon_to_unit(lat, np.full(150, -70.0) + 0.4 * lat)
    b = latlon_to_unit(lat, np.full(150, -70.0) - 0.4 * lat)
    polar_lat = np.linspace(86.0, 88.5, 70)
    pa = latlon_to_unit(polar_lat, np.linspace(0.0, 40.0, 70))
    pb = latlon_to_unit(polar_lat, np.linspace(60.0, 10.0, 70))
    far = latlon_to_unit(lat, np.full(150, -68.0))  # 89+ km from a: meets only padded
    pieces = [(a, b), (a[70:72], b[60:90]), (pa, pb), (a, far), (a[:61], b[:59])]
    for pad_km in (0.0, 40.0):
        got = overlap_regions(pieces, 30.0, 45.0, pad_km=pad_km)
        for (geom, area), (seg_a, seg_b) in zip(got, pieces, strict=True):
            want_geom, want_area = overlap_region(seg_a, seg_b, 30.0, 45.0, pad_km=pad_km)
            assert area == want_area
            assert shapely.to_wkb(geom) == shapely.to_wkb(want_geom)
        assert got[3][0].is_empty == (pad_km == 0.0)  # far apart: only the padded strips meet
    assert not got[2][0].is_empty


def test_pole_in_the_bounds_but_outside_the_polygon_is_mapped_in_the_batch(monkeypatch) -> None:
    """A bent strip whose bounding box holds the pole's image, not the pole: the fast path."""
    plane = _plane(88.0, 0.0)
    pole = plane.forward(np.array([[0.0, 0.0, 1.0]]))[0]
    x, y = float(pole[0]), float(pole[1])
    # An L on the centre's side of the pole, its corner just past it (pole towards -y here).
    bent = Polygon([(x - 0.002, y + 0.02), (x + 0.02, y + 0.02), (x + 0.02, y - 0.002),
                    (x + 0.018, y - 0.002), (x + 0.018, y + 0.018), (x - 0.002, y + 0.018)])
    assert bent.bounds[0] < x < bent.bounds[2] and not bent.contains(shapely.Point(x, y))
    want = plane_to_lonlat(bent, plane)
    calls: list[object] = []

    def one_at_a_time(geom, p):  # noqa: ANN001, ANN202 - a spy on the slow path
        calls.append(geom)
        return plane_to_lonlat(geom, p)

    monkeypatch.setattr("eomatch.orbits.region.plane_to_lonlat", one_at_a_time)
    got = planes_to_lonlat([bent], [plane])
    assert shapely.to_wkb(got[0]) == shapely.to_wkb(want)
    assert calls == []


def test_regions_across_the_antimeridian_are_cut_in_the_batch(monkeypatch) -> None:
    """Rings that wrap in longitude are unwrapped and split without the one-at-a-time path."""
    cases = [c for i, c in enumerate(_cases()) if i in (2, 6)]  # across ±180, wrapping along the ring
    want = [plane_to_lonlat(g, p) for g, p in cases]
    calls: list[object] = []

    def one_at_a_time(geom, p):  # noqa: ANN001, ANN202 - a spy on the slow path
        calls.append(geom)
        return plane_to_lonlat(geom, p)

    monkeypatch.setattr("eomatch.orbits.region.plane_to_lonlat", one_at_a_time)
    got = planes_to_lonlat([g for g, _ in cases], [p for _, p in cases])
    assert [shapely.to_wkb(g) for g in got] == [shapely.to_wkb(w) for w in want]
    assert all(isinstance(g, MultiPolygon) for g in got)  # really cut at ±180
    assert calls == []
