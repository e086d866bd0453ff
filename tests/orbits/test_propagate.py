"""SGP4 propagation, TEME -> Earth-fixed, geodetic conversion, interpolation."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyproj
import pytest
from sgp4.api import Satrec

from eomatch.orbits.propagate import (
    ecef_to_geodetic,
    gmst_rad,
    great_circle_km,
    ground_track,
    latlon_to_unit,
    nadir_unit,
    propagate_teme,
    to_jd,
    to_unix_s,
)
from eomatch.orbits.tle import PACKAGED_TLE_DIR, load_tles
from eomatch.settings import load_settings

SATS = load_settings(None, {}, environ={}).satellites


@pytest.fixture(scope="module")
def s2a():
    return load_tles([PACKAGED_TLE_DIR / "sentinel-2a-2022.tle"], SATS, ["S2A"])["Sentinel-2A"]


def test_gmst_matches_vallado_example() -> None:
    # Vallado, Fundamentals of Astrodynamics, example 3-5: 1992-08-20 12:14 UT1.
    t = to_unix_s(datetime(1992, 8, 20, 12, 14, tzinfo=UTC))
    jd, fr = to_jd(np.array([t]))
    assert np.degrees(gmst_rad(jd, fr))[0] == pytest.approx(152.578787810, abs=1e-6)


def test_each_time_uses_its_nearest_element_set(s2a) -> None:
    t = np.array([s2a.epochs_s[100] + 60.0, s2a.epochs_s[500] - 3600.0, s2a.epochs_s[900] + 7.5])
    r, _ = propagate_teme(s2a, t)
    for k, ti in enumerate(t):
        i = int(np.argmin(np.abs(s2a.epochs_s - ti)))
        es = s2a.element_sets[i]
        sat = Satrec.twoline2rv(es.line1, es.line2)
        jd, fr = to_jd(np.array([ti]))
        err, rr, _ = sat.sgp4(jd[0], fr[0])
        assert err == 0
        assert np.allclose(r[k], rr, atol=1e-6)


def test_geodetic_matches_pyproj(s2a) -> None:
    t = s2a.epochs_s[200] + np.arange(0, 6000, 7.0)
    track = ground_track(s2a, t)
    r, _ = propagate_teme(s2a, t)
    jd, fr = to_jd(t)
    from eomatch.orbits.propagate import teme_to_ecef

    ecef = teme_to_ecef(r, jd, fr)
    lon, lat, h = pyproj.Transformer.from_crs(4978, 4979, always_xy=True).transform(
        *(ecef.T * 1000.0)
    )
    assert np.abs(track.lat_deg - lat).max() < 1e-6
    assert np.abs(track.lon_deg - lon).max() < 1e-6
    assert np.abs(track.alt_km - h / 1000.0).max() < 1e-5
    # Sentinel-2A: ~786 km sun-synchronous, inclination 98.6 -> |lat| up to ~81.4.
    assert 770 < track.alt_km.min() and track.alt_km.max() < 830
    assert 81.0 < np.abs(track.lat_deg).max() < 81.7


def test_ecef_to_geodetic_known_points() -> None:
    a, b = 6378.137, 6356.752314245
    pts = np.array([[a + 700.0, 0, 0], [0, -(a + 10.0), 0], [0, 0, b + 500.0]])
    lat, lon, h = ecef_to_geodetic(pts)
    assert np.allclose(lat, [0, 0, 90], atol=1e-9)
    assert np.allclose(lon[:2], [0, -90], atol=1e-9)
    assert np.allclose(h, [700, 10, 500], atol=1e-6)


def test_interpolated_nadir_matches_direct_across_set_changes(s2a) -> None:
    # Two days at 1 s include several changes of element set.
    origin = s2a.epochs_s[300]
    t = origin + np.arange(0, 2 * 86400, 1.0)
    idx = s2a.nearest(t, warn=False)
    assert len(np.unique(idx)) >= 3
    direct = ground_track(s2a, t).unit
    interp = nadir_unit(s2a, t, 20.0, origin)
    assert great_circle_km(direct, interp).max() < 0.001  # under a metre


def test_unit_vectors_and_great_circle() -> None:
    u = latlon_to_unit(np.array([0.0, 0.0, 89.0]), np.array([0.0, 90.0, 179.0]))
    assert np.allclose(np.linalg.norm(u, axis=1), 1.0)
    d = great_circle_km(u[:1], u[1:2])[0]
    assert d == pytest.approx(np.pi / 2 * 6371.0088, rel=1e-12)
