"""Solar elevation from the NOAA low-precision solar position formulas.

Good to about 0.01 degree between 1800 and 2100: plenty to tell day from night
at an event, with no ephemeris file to download.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np

from eomatch.orbits.propagate import to_unix_s


def solar_elevation_deg(
    times: np.ndarray | float | datetime,
    lat_deg: np.ndarray | float,
    lon_deg: np.ndarray | float,
) -> np.ndarray:
    """Geometric solar elevation (no refraction) in degrees.

    ``times`` are UNIX seconds (UTC) or a datetime; arrays broadcast together.
    """
    t = np.asarray(to_unix_s(times) if isinstance(times, datetime) else times, dtype=np.float64)
    lat = np.radians(np.asarray(lat_deg, dtype=np.float64))
    lon = np.asarray(lon_deg, dtype=np.float64)

    jd = t / 86400.0 + 2440587.5
    jc = (jd - 2451545.0) / 36525.0
    mean_long = np.mod(280.46646 + jc * (36000.76983 + jc * 0.0003032), 360.0)
    mean_anom = 357.52911 + jc * (35999.05029 - 0.0001537 * jc)
    ecc = 0.016708634 - jc * (0.000042037 + 0.0000001267 * jc)
    m_rad = np.radians(mean_anom)
    centre = (
        np.sin(m_rad) * (1.914602 - jc * (0.004817 + 0.000014 * jc))
        + np.sin(2 * m_rad) * (0.019993 - 0.000101 * jc)
        + np.sin(3 * m_rad) * 0.000289
    )
    true_long = mean_long + centre
    omega = np.radians(125.04 - 1934.136 * jc)
    app_long = np.radians(true_long - 0.00569 - 0.00478 * np.sin(omega))
    obliq0 = 23.0 + (26.0 + (21.448 - jc * (46.815 + jc * (0.00059 - jc * 0.001813))) / 60.0) / 60.0
    obliq = np.radians(obliq0 + 0.00256 * np.cos(omega))
    decl = np.arcsin(np.sin(obliq) * np.sin(app_long))

    y = np.tan(obliq / 2.0) ** 2
    l0 = np.radians(mean_long)
    eot_min = 4.0 * np.degrees(
        y * np.sin(2 * l0)
        - 2 * ecc * np.sin(m_rad)
        + 4 * ecc * y * np.sin(m_rad) * np.cos(2 * l0)
        - 0.5 * y * y * np.sin(4 * l0)
        - 1.25 * ecc * ecc * np.sin(2 * m_rad)
    )
    minutes_utc = np.mod(t, 86400.0) / 60.0
    true_solar_min = np.mod(minutes_utc + eot_min + 4.0 * lon, 1440.0)
    hour_angle = np.radians(true_solar_min / 4.0 - 180.0)
    cos_zen = np.sin(lat) * np.sin(decl) + np.cos(lat) * np.cos(decl) * np.cos(hour_angle)
    return 90.0 - np.degrees(np.arccos(np.clip(cos_zen, -1.0, 1.0)))
