"""Vectorised SGP4 propagation and ground tracks.

Times are UNIX seconds (float64, UTC) throughout: cheap to do arithmetic on and
exact enough (sub-microsecond) for 1 s stepping. Positions come out of SGP4 in
the TEME frame; a rotation by Greenwich mean sidereal time gives Earth-fixed
coordinates (polar motion, ~10 m, is neglected), then WGS84 geodetic lat/lon.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from eomatch.orbits.tle import JD_UNIX_EPOCH, TleSet

log = logging.getLogger(__name__)

WGS84_A_KM = 6378.137
WGS84_F = 1.0 / 298.257223563
WGS84_E2 = WGS84_F * (2.0 - WGS84_F)
WGS84_B_KM = WGS84_A_KM * (1.0 - WGS84_F)
EARTH_RADIUS_KM = 6371.0088
"""Mean Earth radius: ground distances are great-circle arcs on this sphere."""


def to_unix_s(when: datetime) -> float:
    """Aware or naive (taken as UTC) datetime -> UNIX seconds."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def from_unix_s(t: float) -> datetime:
    """UNIX seconds -> aware UTC datetime (microseconds rounded)."""
    return datetime.fromtimestamp(round(float(t), 6), tz=UTC)


def to_jd(times_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """UNIX seconds -> (whole Julian day ending in .5, day fraction) as SGP4 wants."""
    days = np.asarray(times_s, dtype=np.float64) / 86400.0
    whole = np.floor(days)
    return whole + JD_UNIX_EPOCH, days - whole


def gmst_rad(jd: np.ndarray, fr: np.ndarray) -> np.ndarray:
    """Greenwich mean sidereal time (IAU 1982), UT1 taken as UTC."""
    t_cent = ((np.asarray(jd) - 2451545.0) + np.asarray(fr)) / 36525.0
    sec = (
        67310.54841
        + (876600.0 * 3600.0 + 8640184.812866) * t_cent
        + 0.093104 * t_cent**2
        - 6.2e-6 * t_cent**3
    )
    return np.mod(np.mod(sec, 86400.0) / 240.0 * np.pi / 180.0, 2.0 * np.pi)


def teme_to_ecef(r_teme_km: np.ndarray, jd: np.ndarray, fr: np.ndarray) -> np.ndarray:
    """Rotate TEME positions (n, 3) into the Earth-fixed frame."""
    g = gmst_rad(jd, fr)
    c, s = np.cos(g), np.sin(g)
    x, y, z = r_teme_km[:, 0], r_teme_km[:, 1], r_teme_km[:, 2]
    return np.column_stack((c * x + s * y, -s * x + c * y, z))


def propagate_teme(tles: TleSet, times_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TEME positions (n, 3) km and velocities km/s, each time with its nearest-epoch set.

    One ``sgp4_array`` call per element set in use; failed points (decay) are NaN.
    """
    t = np.asarray(times_s, dtype=np.float64)
    n = t.size
    r = np.full((n, 3), np.nan)
    v = np.full((n, 3), np.nan)
    if n == 0:
        return r, v
    jd, fr = to_jd(t)
    idx = tles.nearest(t)
    order = np.argsort(idx, kind="stable")
    sorted_idx = idx[order]
    bounds = np.flatnonzero(np.diff(sorted_idx)) + 1
    starts = np.concatenate(([0], bounds))
    ends = np.concatenate((bounds, [n]))
    failed = 0
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        sel = order[a:b]
        sat = tles.satrecs[int(sorted_idx[a])]
        err, rr, vv = sat.sgp4_array(jd[sel], fr[sel])
        ok = err == 0
        failed += int((~ok).sum())
        rr[~ok] = np.nan
        vv[~ok] = np.nan
        r[sel] = rr
        v[sel] = vv
    if failed:
        log.warning("%s: SGP4 failed for %d of %d times", tles.name, failed, n)
    return r, v


def ecef_to_geodetic(r_ecef_km: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """WGS84 geodetic latitude, longitude (degrees) and height (km) of ECEF points."""
    x, y, z = r_ecef_km[:, 0], r_ecef_km[:, 1], r_ecef_km[:, 2]
    lon = np.arctan2(y, x)
    p = np.hypot(x, y)
    # Bowring's start, then two Newton-like refinements: sub-millimetre at LEO heights.
    ep2 = WGS84_E2 / (1.0 - WGS84_E2)
    theta = np.arctan2(z * WGS84_A_KM, p * WGS84_B_KM)
    lat = np.arctan2(
        z + ep2 * WGS84_B_KM * np.sin(theta) ** 3, p - WGS84_E2 * WGS84_A_KM * np.cos(theta) ** 3
    )
    for _ in range(2):
        sin_lat = np.sin(lat)
        n_rad = WGS84_A_KM / np.sqrt(1.0 - WGS84_E2 * sin_lat**2)
        lat = np.arctan2(z + WGS84_E2 * n_rad * sin_lat, p)
    sin_lat, cos_lat = np.sin(lat), np.cos(lat)
    n_rad = WGS84_A_KM / np.sqrt(1.0 - WGS84_E2 * sin_lat**2)
    h = p * cos_lat + z * sin_lat - WGS84_A_KM**2 / n_rad
    return np.degrees(lat), np.degrees(lon), h


def latlon_to_unit(lat_deg: np.ndarray, lon_deg: np.ndarray) -> np.ndarray:
    """Points on the unit sphere (n, 3) for geodetic lat/lon used as spherical coordinates."""
    lat = np.radians(lat_deg)
    lon = np.radians(lon_deg)
    cl = np.cos(lat)
    return np.column_stack((cl * np.cos(lon), cl * np.sin(lon), np.sin(lat)))


def unit_to_latlon(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`latlon_to_unit` (inputs need not be normalised)."""
    lat = np.degrees(np.arctan2(u[:, 2], np.hypot(u[:, 0], u[:, 1])))
    lon = np.degrees(np.arctan2(u[:, 1], u[:, 0]))
    return lat, lon


def great_circle_km(u1: np.ndarray, u2: np.ndarray) -> np.ndarray:
    """Ground distance between unit vectors (rows), robust for tiny angles."""
    cross = np.linalg.norm(np.cross(u1, u2), axis=-1)
    dot = np.sum(u1 * u2, axis=-1)
    return EARTH_RADIUS_KM * np.arctan2(cross, dot)


@dataclass
class GroundTrack:
    """Sub-satellite points of one satellite at given times."""

    times_s: np.ndarray
    lat_deg: np.ndarray
    lon_deg: np.ndarray
    alt_km: np.ndarray
    unit: np.ndarray
    """(n, 3) nadir points on the unit sphere; rows are NaN where SGP4 failed."""

    def __len__(self) -> int:
        return int(self.times_s.size)


def cubic_unit(
    u: np.ndarray, n_m1: np.ndarray, n_0: np.ndarray, n_1: np.ndarray, n_2: np.ndarray
) -> np.ndarray:
    """Unit vectors at fraction ``u`` between nodes ``n_0`` and ``n_1`` (cubic Lagrange on four).

    One formula for :func:`nadir_unit` and :meth:`TrackGrid.fine_unit`, so the
    per-pair and the shared tracks stay bit-identical.
    """
    w_m1 = -u * (u - 1) * (u - 2) / 6.0
    w_0 = (u + 1) * (u - 1) * (u - 2) / 2.0
    w_1 = -(u + 1) * u * (u - 2) / 2.0
    w_2 = (u + 1) * u * (u - 1) / 6.0
    out = w_m1 * n_m1 + w_0 * n_0 + w_1 * n_1 + w_2 * n_2
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def nadir_unit(
    tles: TleSet, times_s: np.ndarray, step_s: float | None = None, origin_s: float = 0.0
) -> np.ndarray:
    """Nadir points on the unit sphere (n, 3), optionally interpolated.

    With ``step_s`` SGP4 runs only at nodes ``origin_s + k * step_s`` and each
    time is a cubic Lagrange interpolation of the four nodes around it (then
    renormalised): for 20-30 s steps the error is centimetres, at a small
    fraction of SGP4's cost. Times whose nearest element set differs from any of
    their nodes' (around each change of set) are propagated directly, so results
    match the direct path across set changes.
    """
    t = np.asarray(times_s, dtype=np.float64)
    if not step_s:
        return ground_track(tles, t).unit
    if t.size == 0:
        return np.empty((0, 3))
    k = np.floor((t - origin_s) / step_s).astype(np.int64)
    u = (((t - origin_s) - k * step_s) / step_s)[:, None]
    nodes = np.unique(np.concatenate((k - 1, k, k + 1, k + 2)))
    node_t = origin_s + nodes * step_s
    node_u = ground_track(tles, node_t).unit
    p0 = np.searchsorted(nodes, k)
    out = cubic_unit(u, node_u[p0 - 1], node_u[p0], node_u[p0 + 1], node_u[p0 + 2])
    idx_t = tles.nearest(t, warn=False)
    idx_n = tles.nearest(node_t, warn=False)
    same = (idx_n[p0 - 1] == idx_t) & (idx_n[p0 + 2] == idx_t)
    if not same.all():
        out[~same] = ground_track(tles, t[~same]).unit
    return out


def ground_track(tles: TleSet, times_s: np.ndarray) -> GroundTrack:
    """Propagate and convert to nadir points (geodetic lat/lon, unit vectors)."""
    t = np.asarray(times_s, dtype=np.float64)
    r_teme, _ = propagate_teme(tles, t)
    jd, fr = to_jd(t)
    r_ecef = teme_to_ecef(r_teme, jd, fr)
    lat, lon, alt = ecef_to_geodetic(r_ecef)
    return GroundTrack(t, lat, lon, alt, latlon_to_unit(lat, lon))


class TrackGrid:
    """One satellite's nadir points on the grid ``origin_s + k * step_s``, computed once.

    A constellation search asks for the same satellite's coarse track in every
    pair it takes part in, and interpolates its fine track between the same
    nodes: the grid propagates each node once and keeps a sliding window of
    them (``forget_before`` drops the past), so memory stays flat over a year.
    Values equal :func:`ground_track` and :func:`nadir_unit` with the same
    ``step_s`` and ``origin_s`` (same SGP4 calls at the same times).
    """

    def __init__(self, tles: TleSet, origin_s: float, step_s: float) -> None:
        self.tles = tles
        self.origin_s = float(origin_s)
        self.step_s = float(step_s)
        self.k0 = 0
        self.unit = np.empty((0, 3))
        self.lat_deg = np.empty(0)
        self.lon_deg = np.empty(0)
        self.set_index = np.empty(0, dtype=np.int64)
        self.nodes_propagated = 0
        """How many nodes SGP4 ran for (each once while they stay in the window)."""
        self.fine_step_s = 0.0
        self.fine_lo = 0
        self.fine = np.empty((0, 3))
        self.fine_held = np.empty(0, dtype=bool)
        self.fine_computed = 0
        """How many fine samples :meth:`fine_unit_at` interpolated (each once while held)."""
        self._derived: dict[tuple[Any, ...], Any] = {}
        """Values :meth:`derived` keeps for the satellite's other pairs (the last 16)."""

    @property
    def k1(self) -> int:
        """One past the last node held."""
        return self.k0 + int(self.unit.shape[0])

    def node_times(self, k: np.ndarray) -> np.ndarray:
        return self.origin_s + np.asarray(k, dtype=np.int64) * self.step_s

    def ensure(self, k_lo: int, k_hi: int) -> None:
        """Hold nodes ``k_lo .. k_hi - 1`` (propagating only those not held yet)."""
        if k_hi <= k_lo:
            return
        if self.unit.shape[0] == 0 or k_lo > self.k1 or k_hi < self.k0:
            self._replace(k_lo, k_hi)
            return
        if k_lo < self.k0:
            self._prepend(k_lo)
        if k_hi > self.k1:
            self._append(k_hi)

    def forget_before(self, k: int) -> None:
        """Drop nodes before ``k``: the search has moved past them."""
        cut = min(max(0, k - self.k0), self.unit.shape[0])
        if cut:
            self.k0 += cut
            self.unit = self.unit[cut:]
            self.lat_deg = self.lat_deg[cut:]
            self.lon_deg = self.lon_deg[cut:]
            self.set_index = self.set_index[cut:]
        if self.fine_step_s:
            fine_k = int((k * self.step_s) // self.fine_step_s)
            cut = min(max(0, fine_k - self.fine_lo), self.fine.shape[0])
            if cut:
                self.fine_lo += cut
                self.fine = self.fine[cut:]
                self.fine_held = self.fine_held[cut:]

    def _compute(self, k_lo: int, k_hi: int) -> tuple[np.ndarray, ...]:
        t = self.node_times(np.arange(k_lo, k_hi))
        g = ground_track(self.tles, t)
        self.nodes_propagated += int(t.size)
        return g.unit, g.lat_deg, g.lon_deg, self.tles.nearest(t, warn=False)

    def _replace(self, k_lo: int, k_hi: int) -> None:
        self.k0 = k_lo
        self.unit, self.lat_deg, self.lon_deg, self.set_index = self._compute(k_lo, k_hi)

    def _prepend(self, k_lo: int) -> None:
        new = self._compute(k_lo, self.k0)
        self.k0 = k_lo
        self._join(new, first=True)

    def _append(self, k_hi: int) -> None:
        self._join(self._compute(self.k1, k_hi), first=False)

    def _join(self, new: tuple[np.ndarray, ...], first: bool) -> None:
        old = (self.unit, self.lat_deg, self.lon_deg, self.set_index)
        both = [np.concatenate((n, o) if first else (o, n)) for n, o in zip(new, old, strict=True)]
        self.unit, self.lat_deg, self.lon_deg, self.set_index = both

    def nodes(self, k: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(unit, lat, lon) of nodes ``k`` (made available first if needed)."""
        k = np.asarray(k, dtype=np.int64)
        if k.size == 0:
            return np.empty((0, 3)), np.empty(0), np.empty(0)
        self.ensure(int(k.min()), int(k.max()) + 1)
        i = k - self.k0
        return np.take(self.unit, i, axis=0), self.lat_deg[i], self.lon_deg[i]

    def fine_unit(self, times_s: np.ndarray) -> np.ndarray:
        """Nadir unit vectors at any times: :func:`nadir_unit` from the held nodes."""
        t = np.asarray(times_s, dtype=np.float64)
        if t.size == 0:
            return np.empty((0, 3))
        k = np.floor((t - self.origin_s) / self.step_s).astype(np.int64)
        u = (((t - self.origin_s) - k * self.step_s) / self.step_s)[:, None]
        self.ensure(int(k.min()) - 1, int(k.max()) + 3)
        i = k - self.k0
        node = self.unit
        # np.take gathers rows several times faster than node[i] (same values).
        out = cubic_unit(
            u,
            np.take(node, i - 1, axis=0),
            np.take(node, i, axis=0),
            np.take(node, i + 1, axis=0),
            np.take(node, i + 2, axis=0),
        )
        # The nearest set never decreases with time, so a time between two nodes of the
        # same set has that set too: :func:`nadir_unit`'s test without a search per time.
        sets = self.set_index
        lo, hi = int(i.min()), int(i.max())
        if sets[lo - 1] == sets[hi + 2]:  # one set over the whole span (the usual case)
            return out
        same = sets[i - 1] == sets[i + 2]
        if not same.all():
            out[~same] = ground_track(self.tles, t[~same]).unit
        return out

    def max_step_km(self, k_lo: int, k_hi: int) -> float:
        """Largest ground distance between consecutive nodes ``k_lo .. k_hi - 1`` (NaN-aware).

        What the coarse step can hide, which every pair of this satellite needs for the
        same span of a chunk: computed once per span (the last few are kept).
        """
        def largest() -> float:
            if k_hi - k_lo <= 1:
                return 0.0
            u, _, _ = self.nodes(np.arange(k_lo, k_hi))
            return np.nanmax(great_circle_km(u[1:], u[:-1]))

        return self.derived(("max_step_km", k_lo, k_hi), largest)

    def derived(self, key: tuple[Any, ...], make: Callable[[], Any]) -> Any:
        """``make()``, kept under ``key`` for the other pairs of this satellite (the last few).

        For values derived from the nodes of a span of a chunk, which every pair of
        the satellite needs again (the caller puts the span in the key).
        """
        if key not in self._derived:
            if len(self._derived) >= 16:
                self._derived.pop(next(iter(self._derived)))
            self._derived[key] = make()
        return self._derived[key]

    def fine_unit_at(self, fine_idx: np.ndarray, fine_step_s: float) -> np.ndarray:
        """:meth:`fine_unit` at times ``origin_s + fine_idx * fine_step_s``, each computed once.

        A satellite's pairs ask for overlapping stretches of its fine track (and a
        pair's regions for samples its refinement already had): samples are kept in
        a window beside the nodes, dropped with them by :meth:`forget_before`. Rows
        are computed row by row alike, so a sample is the same whichever call made it.
        """
        idx = np.asarray(fine_idx, dtype=np.int64)
        if idx.size == 0:
            return np.empty((0, 3))
        if fine_step_s != self.fine_step_s:
            self.fine_step_s = float(fine_step_s)
            self.fine = np.empty((0, 3))
            self.fine_held = np.empty(0, dtype=bool)
        self._hold_fine(int(idx.min()), int(idx.max()) + 1)
        pos = idx - self.fine_lo
        missing = pos[~self.fine_held[pos]]
        if missing.size:
            times = self.origin_s + (missing + self.fine_lo).astype(np.float64) * self.fine_step_s
            self.fine[missing] = self.fine_unit(times)
            self.fine_held[missing] = True
            self.fine_computed += int(missing.size)
        return np.take(self.fine, pos, axis=0)

    def _hold_fine(self, lo: int, hi: int) -> None:
        """Make the fine window cover ``lo .. hi - 1`` (room to spare at the end)."""
        held_hi = self.fine_lo + self.fine.shape[0]
        if self.fine.shape[0] and lo >= self.fine_lo and hi <= held_hi:
            return
        if self.fine.shape[0] == 0 or lo >= held_hi or hi <= self.fine_lo:
            new_lo, keep = lo, 0
        else:
            new_lo, keep = min(lo, self.fine_lo), self.fine.shape[0]
        new_hi = max(hi, held_hi + max(hi - lo, held_hi - self.fine_lo) if keep else hi)
        fine = np.empty((new_hi - new_lo, 3))
        held = np.zeros(new_hi - new_lo, dtype=bool)
        if keep:
            at = self.fine_lo - new_lo
            fine[at : at + keep] = self.fine
            held[at : at + keep] = self.fine_held
        self.fine_lo, self.fine, self.fine_held = new_lo, fine, held
