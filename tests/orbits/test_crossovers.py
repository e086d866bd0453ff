"""Crossover search against a brute-force reference, plus regions and filters."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pyproj
import pytest
import shapely
from shapely.geometry import MultiPolygon, Point, box

from eomatch.errors import ConfigError
from eomatch.orbits import (
    EVENT_COLUMNS,
    CrossoverParams,
    events_to_rows,
    find_crossovers,
    load_tles,
)
from eomatch.orbits.propagate import EARTH_RADIUS_KM, ground_track, latlon_to_unit, to_unix_s
from eomatch.orbits.reference import group_hits
from eomatch.orbits.region import bbox_geometry, overlap_region
from eomatch.orbits.tle import PACKAGED_TLE_DIR
from eomatch.settings import load_settings

SETTINGS = load_settings(None, {}, environ={})
DAY = datetime(2022, 5, 21, tzinfo=UTC)
DIST_KM, TIME_S = 100.0, 1800
PARAMS = CrossoverParams(space_diff_threshold_km=DIST_KM, time_diff_threshold_s=TIME_S)
GEOD = pyproj.Geod(ellps="WGS84")


@pytest.fixture(scope="module")
def tles():
    return load_tles([PACKAGED_TLE_DIR], SETTINGS.satellites, ["S2A", "L9"])


@pytest.fixture(scope="module")
def day_events(tles):
    return list(find_crossovers(PARAMS, "S2A", "L9", DAY, DAY + timedelta(days=1), tles=tles))


@pytest.fixture(scope="module")
def reference(tles):
    """Brute force: both tracks at 1 s; every pair of times within TIME_S; plain grouping."""
    a, b = tles["Sentinel-2A"], tles["Landsat-9"]
    n = 86401
    t = to_unix_s(DAY) + np.arange(n, dtype=np.float64)
    ua, ub = ground_track(a, t).unit, ground_track(b, t).unit
    cos_d = np.cos(DIST_KM / EARTH_RADIUS_KM)
    hit_a, hit_b, hit_dot = [], [], []
    rows = 1000
    for i0 in range(0, n, rows):
        i1 = min(n, i0 + rows)
        j0, j1 = max(0, i0 - TIME_S), min(n, i1 + TIME_S)
        dot = ua[i0:i1] @ ub[j0:j1].T
        ii = np.arange(i0, i1)[:, None]
        jj = np.arange(j0, j1)[None, :]
        hi, hj = np.nonzero((dot >= cos_d) & (np.abs(jj - ii) <= TIME_S))
        hit_a.append(hi + i0)
        hit_b.append(hj + j0)
        hit_dot.append(dot[hi, hj])
    ia, ib, dots = np.concatenate(hit_a), np.concatenate(hit_b), np.concatenate(hit_dot)
    period = min(a.period_s, b.period_s)
    events = []
    for p in group_hits(ia, ib, ua[:, 2] >= 0, period):
        best = p[np.argmax(dots[p])]
        mid = ua[ia[best]] + ub[ib[best]]
        events.append(
            {
                "start_a": t[ia[p].min()],
                "end_a": t[ia[p].max()],
                "start_b": t[ib[p].min()],
                "end_b": t[ib[p].max()],
                "min_km": EARTH_RADIUS_KM * np.arccos(min(1.0, dots[best])),
                "time_diff_s": float(ib[best] - ia[best]),
                "mid_lat": np.degrees(np.arcsin(mid[2] / np.linalg.norm(mid))),
                "mid_lon": np.degrees(np.arctan2(mid[1], mid[0])),
            }
        )
    return sorted(events, key=lambda e: e["start_a"])


def test_same_events_as_brute_force(day_events, reference) -> None:
    assert len(reference) >= 5
    assert len(day_events) == len(reference)
    inside = 0
    for ev, ref in zip(day_events, reference, strict=True):
        for key in ("start_a", "end_a", "start_b", "end_b"):
            assert abs(to_unix_s(getattr(ev, key)) - ref[key]) <= 1.0, (key, ev, ref)
        assert ev.min_distance_km == pytest.approx(ref["min_km"], abs=0.05)
        assert abs(ev.time_diff_s - ref["time_diff_s"]) <= 30
        assert ev.min_distance_km <= DIST_KM and abs(ev.time_diff_s) <= TIME_S
        pt = Point(ref["mid_lon"], ref["mid_lat"])
        assert not ev.region.is_empty
        assert ev.region.distance(pt) < 1.0
        inside += ev.region.buffer(1e-6).contains(pt)
    assert inside >= 0.9 * len(reference)


def test_chunk_boundaries_do_not_change_events(tles) -> None:
    start, end = DAY + timedelta(hours=6), DAY + timedelta(days=1, hours=18)
    whole = list(find_crossovers(PARAMS, "S2A", "L9", start, end, tles=tles))
    small = replace(PARAMS, chunk_s=5003.0)
    chunked = list(find_crossovers(small, "S2A", "L9", start, end, tles=tles))
    assert len(whole) > 10
    key = [(e.start_a, e.end_a, e.start_b, e.end_b, e.closest_a) for e in whole]
    assert key == [(e.start_a, e.end_a, e.start_b, e.end_b, e.closest_a) for e in chunked]


def test_events_are_ordered_and_times_aware(day_events) -> None:
    starts = [e.start_a for e in day_events]
    assert starts == sorted(starts)
    for e in day_events:
        assert e.start_a.tzinfo is not None and e.start_a.utcoffset() == timedelta(0)
        assert e.start_a <= e.closest_a <= e.end_a and e.start_b <= e.closest_b <= e.end_b
        assert e.platform_a == "Sentinel-2A" and e.platform_b == "Landsat-9"


def test_swath_mode_finds_a_superset(tles, day_events) -> None:
    half = DAY + timedelta(hours=12)
    nadir = [e for e in day_events if e.end_a <= half]
    swath = list(
        find_crossovers(replace(PARAMS, use_swath=True), "S2A", "L9", DAY, half, tles=tles)
    )
    assert len(swath) >= 1
    for e in nadir:
        assert any(s.start_a <= e.start_a and e.end_a <= s.end_a for s in swath)
    assert sum((s.end_a - s.start_a).total_seconds() for s in swath) > sum(
        (e.end_a - e.start_a).total_seconds() for e in nadir
    )


# --- regions --------------------------------------------------------------------------


def _track(
    lat0: float, lon0: float, heading_deg: float, length_km: float, n: int = 60
) -> np.ndarray:
    """Great-circle track through (lat0, lon0) with a heading, centred on that point."""
    lons, lats, _ = GEOD.fwd(
        np.full(n, lon0),
        np.full(n, lat0),
        np.full(n, heading_deg),
        np.linspace(-length_km / 2, length_km / 2, n) * 1000.0,
    )
    return latlon_to_unit(np.asarray(lats), np.asarray(lons))


def _geod_area_km2(geom) -> float:
    return abs(GEOD.geometry_area_perimeter(geom)[0]) / 1e6


def test_region_across_antimeridian_is_split_not_global() -> None:
    a = _track(0.0, 180.0, 10.0, 600)
    b = _track(0.0, 179.9, -10.0, 600)
    region, area = overlap_region(a, b, 92.5, 145.0)
    assert isinstance(region, MultiPolygon)
    xs = [p.bounds for p in region.geoms]
    assert all(-180 <= x0 and x1 <= 180 and x1 - x0 < 10 for x0, _, x1, _ in xs)
    assert min(x0 for x0, *_ in xs) == pytest.approx(-180) and max(
        x[2] for x in xs
    ) == pytest.approx(180)
    assert _geod_area_km2(region) == pytest.approx(area, rel=0.03)


def test_region_over_the_pole_is_a_cap() -> None:
    a = _track(89.0, 0.0, 90.0, 1500)
    b = _track(89.2, 30.0, 100.0, 1500)
    region, area = overlap_region(a, b, 635.0, 635.0)
    assert not region.is_empty
    for lon in (-179.0, -90.0, 0.0, 45.0, 170.0):
        assert region.contains(Point(lon, 89.8))
    minx, _, maxx, maxy = region.bounds
    assert (minx, maxx, maxy) == pytest.approx((-180, 180, 90))
    assert _geod_area_km2(region) == pytest.approx(area, rel=0.05)


def test_real_polar_and_antimeridian_events(day_events) -> None:
    polar = [e for e in day_events if abs(e.centre_lat_deg) > 75]
    assert polar
    for e in polar:
        towards_pole = Point(e.centre_lon_deg, e.centre_lat_deg + np.sign(e.centre_lat_deg) * 0.5)
        assert e.region.contains(towards_pole)
        assert _geod_area_km2(e.region) == pytest.approx(e.region_area_km2, rel=0.1)
    crossing = [e for e in day_events if e.crosses_antimeridian]
    assert crossing
    for e in crossing:
        assert isinstance(e.region, MultiPolygon)
        for part in e.region.geoms:
            x0, _, x1, _ = part.bounds
            assert -180 <= x0 and x1 <= 180 and x1 - x0 < 180
    for e in day_events:
        assert e.region.is_valid


# --- filters --------------------------------------------------------------------------


def _starts(events) -> list[datetime]:
    return [e.start_a for e in events]


def _run(tles, **kw):
    return list(
        find_crossovers(replace(PARAMS, **kw), "S2A", "L9", DAY, DAY + timedelta(days=1), tles=tles)
    )


def test_site_bbox_keeps_events_whose_region_meets_it(tles, day_events) -> None:
    target = next(
        e for e in day_events if abs(e.centre_lat_deg) < 78 and not e.crosses_antimeridian
    )
    lat, lon = target.centre_lat_deg, target.centre_lon_deg
    got = _run(tles, min_lat=lat - 1, max_lat=lat + 1, min_lon=lon - 1, max_lon=lon + 1)
    site = box(lon - 1, lat - 1, lon + 1, lat + 1)
    assert target.start_a in _starts(got)
    assert _starts(got) == [e.start_a for e in day_events if e.region.intersects(site)]
    assert len(got) < len(day_events)


def test_bbox_over_antimeridian_and_zero_bounds(tles, day_events) -> None:
    got = _run(tles, min_lon=170.0, max_lon=-170.0)
    site = MultiPolygon([box(170, -90, 180, 90), box(-180, -90, -170, 90)])
    want = [e.start_a for e in day_events if e.region.intersects(site)]
    assert want and _starts(got) == want
    north = _run(tles, min_lat=0.0)
    want_n = [e.start_a for e in day_events if e.region.intersects(box(-180, 0, 180, 90))]
    assert _starts(north) == want_n and 0 < len(want_n) < len(day_events)
    assert bbox_geometry(0.0, None, None, None).bounds == (-180.0, 0.0, 180.0, 90.0)
    assert bbox_geometry(None, None, None, None) is None


def test_night_and_antimeridian_exclusion(tles, day_events) -> None:
    day_only = _run(tles, exclude_night_events=True, min_solar_elevation_deg=5.0)
    want = [e.start_a for e in day_events if e.solar_elevation_deg >= 5.0]
    assert _starts(day_only) == want and 0 < len(want) < len(day_events)
    no_anti = _run(tles, exclude_antimeridian_events=True)
    want = [e.start_a for e in day_events if not e.crosses_antimeridian]
    assert _starts(no_anti) == want and len(want) < len(day_events)


# --- API edges ------------------------------------------------------------------------


def test_rows_for_csv_and_json(day_events) -> None:
    rows = list(events_to_rows(day_events[:3]))
    assert list(rows[0]) == list(EVENT_COLUMNS)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=EVENT_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    back = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert back[0]["start_a"].endswith("Z")
    assert shapely.from_wkt(back[0]["region"]).equals(day_events[0].region)
    js = next(events_to_rows(day_events[:1], geometry="geojson"))
    assert js["region"]["type"] in ("Polygon", "MultiPolygon")
    assert js["min_distance_km"] == pytest.approx(day_events[0].min_distance_km, abs=1e-6)


def test_settings_entry_point_and_errors(tles) -> None:
    settings = load_settings(
        None,
        {
            "start_time": "2022-05-21T00:00:00Z",
            "end_time": "2022-05-21T03:00:00Z",
            "space_diff_threshold": DIST_KM,
            "time_diff_threshold": TIME_S,
            "tle_paths": [str(PACKAGED_TLE_DIR)],
            "tle_cache_dir": "/nonexistent-eomatch-cache",
        },
        environ={},
    )
    events = list(find_crossovers(settings, "sentinel-2a", "LANDSAT_9"))
    assert 2 <= len(events) <= 5
    with pytest.raises(ConfigError, match="unknown platform 'Foo'"):
        find_crossovers(settings, "Foo", "L9")
    with pytest.raises(ConfigError, match="both Landsat-9"):
        find_crossovers(settings, "LS9", "L9")
    with pytest.raises(ConfigError, match="needs TLEs"):
        find_crossovers(PARAMS, "S2A", "L9", DAY, DAY + timedelta(days=1))
    with pytest.raises(ConfigError, match="not after"):
        find_crossovers(PARAMS, "S2A", "L9", DAY, DAY, tles=tles)
