"""Solar elevation against known geometry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from eomatch.orbits.propagate import to_unix_s
from eomatch.orbits.sun import solar_elevation_deg


def _day(y: int, m: int, d: int) -> np.ndarray:
    return to_unix_s(datetime(y, m, d, tzinfo=UTC)) + np.arange(0, 86400, 30.0)


def test_equinox_noon_at_equator_is_overhead_and_midnight_is_below() -> None:
    t = _day(2022, 3, 20)
    elev = solar_elevation_deg(t, 0.0, 0.0)
    assert 89.5 < elev.max() <= 90.0
    # Solar noon at Greenwich is within ~8 min of 12:00 UTC (equation of time).
    noon = t[np.argmax(elev)]
    assert abs(noon - to_unix_s(datetime(2022, 3, 20, 12, tzinfo=UTC))) < 10 * 60
    assert solar_elevation_deg(datetime(2022, 3, 20, tzinfo=UTC), 0.0, 0.0) < -85.0


def test_solstice_noon_elevation_is_90_minus_lat_plus_tilt() -> None:
    t = _day(2022, 6, 21)
    assert solar_elevation_deg(t, 51.5, -0.1).max() == pytest.approx(90 - 51.5 + 23.44, abs=0.2)
    t = _day(2022, 12, 21)
    assert solar_elevation_deg(t, 51.5, -0.1).max() == pytest.approx(90 - 51.5 - 23.44, abs=0.2)


def test_polar_night_and_midnight_sun() -> None:
    assert solar_elevation_deg(_day(2022, 12, 21), 80.0, 20.0).max() < 0
    assert solar_elevation_deg(_day(2022, 6, 21), 80.0, 20.0).min() > 0


def test_local_noon_moves_with_longitude() -> None:
    t = _day(2022, 9, 1)
    t_east = t[np.argmax(solar_elevation_deg(t, 10.0, 90.0))]
    t_west = t[np.argmax(solar_elevation_deg(t, 10.0, -90.0))]
    assert (t_west - t_east) == pytest.approx(12 * 3600, abs=120)


def test_datetime_and_array_inputs_agree() -> None:
    when = datetime(2022, 5, 21, 10, 30, tzinfo=UTC)
    lats = np.array([-60.0, 0.0, 45.0])
    a = solar_elevation_deg(when, lats, 10.0)
    b = solar_elevation_deg(np.full(3, to_unix_s(when)), lats, np.full(3, 10.0))
    assert np.allclose(a, b)
    later = solar_elevation_deg(when + timedelta(hours=12), 0.0, 10.0)
    assert a[1] > 0 > later
