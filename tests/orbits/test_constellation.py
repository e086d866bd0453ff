"""The constellation search against today's per-pair search, compact regions, shared tracks."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import shapely
from scipy.spatial import cKDTree

from eomatch.orbits import CrossoverParams, load_tles, search_constellation
from eomatch.orbits.propagate import (
    EARTH_RADIUS_KM,
    TrackGrid,
    great_circle_km,
    ground_track,
    latlon_to_unit,
    nadir_unit,
    to_unix_s,
)
from eomatch.orbits.reference import reference_find_events
from eomatch.orbits.region import compact_region
from eomatch.orbits.tle import PACKAGED_TLE_DIR
from eomatch.settings import load_settings

SETTINGS = load_settings(None, {}, environ={})
START = datetime(2022, 3, 1, tzinfo=UTC)
END = START + timedelta(days=3)
PARAMS = CrossoverParams(space_diff_threshold_km=100.0, time_diff_threshold_s=1800.0)
# Six cross-collection pairs over all six satellites, each satellite in two of them.
PAIRS = [
    ("Sentinel-2A", "Landsat-8"),
    ("Sentinel-2A", "Sentinel-3B"),
    ("Sentinel-2B", "Landsat-9"),
    ("Sentinel-2B", "Sentinel-3A"),
    ("Landsat-8", "Sentinel-3A"),
    ("Landsat-9", "Sentinel-3B"),
]


@pytest.fixture(scope="module")
def tles():
    names = ["S2A", "S2B", "L8", "L9", "S3A", "S3B"]
    return load_tles([PACKAGED_TLE_DIR], SETTINGS.satellites, names)


@pytest.fixture(scope="module")
def reference(tles):
    """Today's path: each pair on its own, both satellites propagated for it, full regions."""
    return list(reference_find_events(tles, PAIRS, START, END, PARAMS))


@pytest.fixture(scope="module")
def compact(tles):
    return list(search_constellation(tles, PAIRS, START, END, PARAMS))


def _key(e):
    return (e.platform_a, e.platform_b, e.start_a)


SAMPLE_DEG = 0.002
"""Outlines are sampled every SAMPLE_DEG (at most 222 m): the sampled Hausdorff distance is
within half that of the true one, the slack the tolerance checks allow."""
SAMPLE_SLACK_KM = 0.5 * SAMPLE_DEG * 111.2


def _boundary_points(geom: shapely.Geometry, step_deg: float = SAMPLE_DEG) -> np.ndarray:
    """Unit vectors every ``step_deg`` along a lon/lat region's outline (edges straight in lon/lat)."""
    dense = shapely.segmentize(shapely.boundary(geom), step_deg)
    xy = shapely.get_coordinates(dense)
    return latlon_to_unit(xy[:, 1], xy[:, 0])


def _hausdorff_km(g1: shapely.Geometry, g2: shapely.Geometry) -> float:
    """Hausdorff distance of two outlines on the sphere, from dense samples of both."""
    p1, p2 = _boundary_points(g1), _boundary_points(g2)
    d12, _ = cKDTree(p2).query(p1)
    d21, _ = cKDTree(p1).query(p2)
    chord = max(float(d12.max()), float(d21.max()))
    return 2.0 * EARTH_RADIUS_KM * float(np.arcsin(min(1.0, chord / 2.0)))


def test_constellation_finds_the_same_events_as_each_pair_alone(tles, reference) -> None:
    full = list(search_constellation(tles, PAIRS, START, END, replace(PARAMS, full_regions=True)))
    assert len(reference) > 100
    assert len(full) == len(reference)
    pairs_found = {(e.platform_a, e.platform_b) for e in full}
    assert pairs_found == {(e.platform_a, e.platform_b) for e in reference}
    assert len(pairs_found) >= 5
    for got, want in zip(sorted(full, key=_key), sorted(reference, key=_key), strict=True):
        assert (got.platform_a, got.platform_b) == (want.platform_a, want.platform_b)
        for name in ("start_a", "end_a", "start_b", "end_b", "closest_a", "closest_b"):
            assert abs((getattr(got, name) - getattr(want, name)).total_seconds()) <= 1.0, name
        assert got.min_distance_km == pytest.approx(want.min_distance_km, abs=1e-6)
        assert got.region_area_km2 == pytest.approx(want.region_area_km2, rel=1e-9)
        assert got.region_tolerance_km == 0.0
        assert got.region.equals(want.region)


def test_compact_regions_stay_within_their_tolerance_of_the_full_ones(reference, compact) -> None:
    assert len(compact) == len(reference)
    pairs = list(zip(sorted(compact, key=_key), sorted(reference, key=_key), strict=True))
    for got, want in pairs:
        assert _key(got) == _key(want)
        assert shapely.get_num_coordinates(got.region) <= PARAMS.region_max_vertices
        assert got.region.is_valid
    at_one_km = 0
    for got, want in pairs[::6]:  # every sixth event: dense outlines of long events are slow
        if got.region_tolerance_km == 0.0:  # already small enough: the full region itself
            assert got.region.equals(want.region)
            continue
        assert got.region_tolerance_km >= PARAMS.region_tolerance_km
        assert _hausdorff_km(got.region, want.region) <= got.region_tolerance_km + SAMPLE_SLACK_KM
        at_one_km += got.region_tolerance_km == PARAMS.region_tolerance_km
    assert at_one_km > 0  # the stated 1 km is what most short events get


def test_compact_region_leaves_small_regions_alone_and_bounds_large_ones() -> None:
    small = shapely.box(10.0, 60.0, 11.0, 61.0)
    assert compact_region(small, 1.0, 64) == (small, 0.0)
    # A wiggly 2000 km long band at 70 N: hundreds of vertices, most of them redundant.
    lon = np.linspace(0.0, 50.0, 800)
    lat = 70.0 + 0.2 * np.sin(lon / 5.0)
    band = shapely.Polygon(np.vstack((np.column_stack((lon, lat)), np.column_stack((lon, lat + 1.0))[::-1])))
    out, tol_km = compact_region(band, 1.0, 64)
    assert shapely.get_num_coordinates(out) <= 64
    assert tol_km >= 1.0
    assert _hausdorff_km(out, band) <= tol_km + SAMPLE_SLACK_KM


def test_track_grid_equals_direct_propagation(tles) -> None:
    sat = tles["Sentinel-3A"]
    origin = to_unix_s(START)
    grid = TrackGrid(sat, origin, 20.0)
    k = np.arange(0, 500)
    unit, lat, lon = grid.nodes(k)
    direct = ground_track(sat, origin + k * 20.0)
    np.testing.assert_array_equal(unit, direct.unit)
    np.testing.assert_array_equal(lat, direct.lat_deg)
    t = origin + np.arange(200.0, 9000.0, 1.0)
    np.testing.assert_array_equal(grid.fine_unit(t), nadir_unit(sat, t, 20.0, origin))
    propagated = grid.nodes_propagated
    grid.fine_unit(t[:100])  # nodes held: no SGP4 again
    assert grid.nodes_propagated == propagated
    grid.forget_before(300)
    assert grid.k0 == 300
    np.testing.assert_array_equal(grid.fine_unit(t), nadir_unit(sat, t, 20.0, origin))


def test_track_grid_fine_samples_are_computed_once_and_equal_fine_unit(tles) -> None:
    """Pairs sharing a satellite ask for overlapping stretches: each sample is made once."""
    sat = tles["Landsat-9"]
    origin = to_unix_s(START)
    grid = TrackGrid(sat, origin, 20.0)
    first = np.arange(1000, 3000)
    second = np.concatenate((np.arange(2500, 4000), np.arange(500, 800)))  # overlaps, before, after
    direct = TrackGrid(sat, origin, 20.0)
    for idx in (first, second, first[::7]):
        np.testing.assert_array_equal(grid.fine_unit_at(idx, 1.0), direct.fine_unit(origin + idx * 1.0))
    assert grid.fine_computed == np.unique(np.concatenate((first, second))).size
    grid.forget_before(150)  # node 150 = fine index 3000: earlier samples are dropped...
    assert grid.fine_lo == 3000
    again = np.arange(2990, 3010)
    np.testing.assert_array_equal(grid.fine_unit_at(again, 1.0), direct.fine_unit(origin + again * 1.0))
    assert grid.fine_computed == np.unique(np.concatenate((first, second))).size + 10  # ...and made again


def test_track_grid_max_step_is_the_largest_node_to_node_distance(tles) -> None:
    sat = tles["Sentinel-2B"]
    origin = to_unix_s(START)
    grid = TrackGrid(sat, origin, 20.0)
    direct = ground_track(sat, origin + np.arange(100, 400) * 20.0).unit
    want = np.nanmax(great_circle_km(direct[1:], direct[:-1]))
    assert grid.max_step_km(100, 400) == want
    assert 100.0 < want < 200.0  # about 7 km/s for 20 s
    assert grid.max_step_km(100, 400) == want  # again from the memo, for the next pair
    assert grid.max_step_km(5, 6) == 0.0  # one node: no step


def test_track_grid_fine_samples_across_an_element_set_change(tles) -> None:
    """Around a change of the nearest TLE the samples are propagated directly, as nadir_unit does."""
    sat = tles["Sentinel-3A"]
    switch = 0.5 * (sat.epochs_s[40] + sat.epochs_s[41])  # the nearest set changes here
    origin = float(np.floor(switch / 20.0) * 20.0) - 2000.0
    grid = TrackGrid(sat, origin, 20.0)
    t = origin + np.arange(0.0, 4000.0, 1.0)
    sets = sat.nearest(t, warn=False)
    assert sets[0] != sets[-1]
    np.testing.assert_array_equal(grid.fine_unit(t), nadir_unit(sat, t, 20.0, origin))
    np.testing.assert_array_equal(grid.fine_unit(t[:1500]), nadir_unit(sat, t[:1500], 20.0, origin))
