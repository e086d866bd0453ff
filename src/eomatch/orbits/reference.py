"""Grouping of brute-force crossover hits into events.

The test suite and ``benchmarks/crossovers.py`` check :func:`find_crossovers`
against slow, obviously-correct searches at 1 s steps. Those searches differ in
how they enumerate hits (all pairs vs one comparison per time shift) but must
group the hits with the same rules as each other, so the rules live here once:
hits far apart in either satellite's time are different events, and a long group
is cut where satellite A crosses the equator (two passes over the same region).

It also keeps the per-pair crossover search as it was before the constellation
search (issue 15 item 7): :func:`reference_find_events` propagates both satellites
of each pair on its own from the TLEs (:func:`~eomatch.orbits.propagate.nadir_unit`,
:func:`~eomatch.orbits.propagate.ground_track`), finds coarse candidates with a
KD-tree and keeps full-precision regions. Everything else (clustering, the 1 s
refinement, grouping, regions, filters) is :class:`~eomatch.orbits.crossovers.PairSearch`,
shared with the new search, so the two differ only in what that change replaced.
The equivalence test and ``benchmarks/constellation.py`` run it next to
:func:`eomatch.orbits.crossovers.search_constellation`; nothing else uses it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from datetime import datetime

import numpy as np
from scipy.spatial import cKDTree
from shapely.geometry.base import BaseGeometry

from eomatch.orbits.crossovers import Crossover, CrossoverParams, PairSearch
from eomatch.orbits.propagate import (
    EARTH_RADIUS_KM,
    great_circle_km,
    ground_track,
    nadir_unit,
    to_unix_s,
)
from eomatch.orbits.tle import TleSet


def split_hits(a: np.ndarray, b: np.ndarray, gap: float) -> list[np.ndarray]:
    """Index groups of hit points ``(a[i], b[i])`` with no gap > ``gap`` in either coordinate."""
    groups: list[np.ndarray] = []
    todo = [np.arange(a.size)]
    while todo:
        idx = todo.pop()
        for key in (a, b):
            order = idx[np.argsort(key[idx], kind="stable")]
            cuts = np.flatnonzero(np.diff(key[order]) > gap) + 1
            if cuts.size:
                todo.extend(np.split(order, cuts))
                break
        else:
            groups.append(idx)
    return groups


def group_hits(ia: np.ndarray, ib: np.ndarray, north_a: np.ndarray, period_s: float) -> list[np.ndarray]:
    """Hit indices grouped into events.

    ``ia``/``ib`` are the 1 s sample indices of satellites A and B for each hit;
    ``north_a[k]`` says whether A is in the northern hemisphere at sample ``k``.
    """
    gap = 0.1 * period_s
    events: list[np.ndarray] = []
    for g in split_hits(ia, ib, gap):
        if ia[g].max() - ia[g].min() <= 0.25 * period_s:
            events.append(g)
            continue
        order = g[np.argsort(ia[g], kind="stable")]
        north = north_a[ia[order]]
        for piece in np.split(order, np.flatnonzero(north[1:] != north[:-1]) + 1):
            events.extend(piece[s] for s in split_hits(ia[piece], ib[piece], gap))
    return events


# --- the search --------------------------------------------------------------------


class _ReferencePairSearch(PairSearch):
    """The per-pair search: own propagation from the TLEs, KD-tree coarse pass, full regions."""

    def fine_track(self, side: str, fine_idx: np.ndarray) -> np.ndarray:
        """Nadir unit vectors on the fine grid, interpolated between coarse-grid SGP4 nodes."""
        tles = self.a if side == "a" else self.b
        return nadir_unit(tles, self.times(fine_idx), self.m * self.fs, self.start_s)

    def coarse_candidates(self, chunk: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """See :meth:`PairSearch.coarse_candidates`: this pair's own SGP4 nodes, a KD-tree
        in (x, y, z, scaled time) with the Chebyshev metric."""
        m = self.m
        k0 = chunk * self.chunk_c
        ka = np.arange(k0, min(k0 + self.chunk_c, self.n_coarse))
        kb = np.arange(max(0, k0 - self.pad_c), min(self.n_coarse, ka[-1] + 1 + self.pad_c))
        ga = ground_track(self.a, self.times(ka * m))
        gb = ground_track(self.b, self.times(kb * m))
        va = np.isfinite(ga.unit).all(axis=1)
        vb = np.isfinite(gb.unit).all(axis=1)
        empty = np.empty(0, dtype=np.int64)
        if va.sum() == 0 or vb.sum() == 0:
            return empty, empty, np.empty(0, dtype=bool)
        step_a = np.nanmax(great_circle_km(ga.unit[1:], ga.unit[:-1])) if ka.size > 1 else 0.0
        step_b = np.nanmax(great_circle_km(gb.unit[1:], gb.unit[:-1])) if kb.size > 1 else 0.0
        self.margin_km = 0.5 * (step_a + step_b) * 1.05 + 1.0
        r_km = min(self.d_km + self.margin_km, math.pi * EARTH_RADIUS_KM)
        r_chord = 2.0 * math.sin(r_km / (2.0 * EARTH_RADIUS_KM))
        dt_tol = self.t_max_s + m * self.fs
        scale = r_chord / dt_tol
        ia_all, ib_all = np.flatnonzero(va), np.flatnonzero(vb)
        ta = (ka[ia_all] - k0) * (m * self.fs * scale)
        tb = (kb[ib_all] - k0) * (m * self.fs * scale)
        tree_a = cKDTree(np.column_stack((ga.unit[ia_all], ta)))
        tree_b = cKDTree(np.column_stack((gb.unit[ib_all], tb)))
        pairs = tree_a.sparse_distance_matrix(tree_b, r_chord, p=np.inf, output_type="ndarray")
        i = ia_all[pairs["i"]]
        j = ib_all[pairs["j"]]
        chord = np.linalg.norm(ga.unit[i] - gb.unit[j], axis=1)
        keep = (chord <= r_chord) & (np.abs(kb[j] - ka[i]) * m * self.fs <= dt_tol)
        i, j = i[keep], j[keep]
        if self.bbox is not None:
            near = self.near_bbox(ga.lat_deg[i], ga.lon_deg[i]) | self.near_bbox(
                gb.lat_deg[j], gb.lon_deg[j]
            )
        else:
            near = np.ones(i.size, dtype=bool)
        return ka[i] * m, kb[j] * m, near

    def finish_region(self, region: BaseGeometry) -> tuple[BaseGeometry, float]:
        """Regions stay full (the per-pair search had no compaction)."""
        return region, 0.0


def reference_find_events(
    tles: dict[str, TleSet],
    pairs: Sequence[tuple[str, str]],
    start: datetime,
    end: datetime,
    params: CrossoverParams,
) -> Iterator[Crossover]:
    """Events of each pair in turn, each pair searched on its own (the old ``find_events``)."""
    start_s, end_s = to_unix_s(start), to_unix_s(end)
    for a, b in pairs:
        yield from _ReferencePairSearch(tles[a], tles[b], start_s, end_s, params).run()
