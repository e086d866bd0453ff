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
KD-tree, refines in blocks of 128 a times against every b time their candidates
point to, maps each track piece's region to lon/lat on its own, and keeps
full-precision regions. Everything else (clustering, grouping, filters) is
:class:`~eomatch.orbits.crossovers.PairSearch`, shared with the new search, so the
two differ only in what the constellation search and its speed-ups replaced.
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

from eomatch.orbits.crossovers import (
    Crossover,
    CrossoverParams,
    PairInputs,
    PairSearch,
    merge_region_parts,
)
from eomatch.orbits.propagate import (
    EARTH_RADIUS_KM,
    great_circle_km,
    ground_track,
    nadir_unit,
    to_unix_s,
)
from eomatch.orbits.region import overlap_region
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

_BLOCK = 128
"""A times compared per block in the old refinement."""


def _union_of_ranges(ranges: list[tuple[int, int]]) -> np.ndarray:
    """Sorted unique integers covered by inclusive ranges (merged, no sort of the values)."""
    merged: list[list[int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return np.concatenate([np.arange(lo, hi + 1) for lo, hi in merged])


def _row_runs(ok: np.ndarray, dot: np.ndarray) -> tuple[np.ndarray, ...]:
    """(row, first column, last column, best dot) of each run of True in each row.

    Rows almost always hold one run; those are read off with argmax, the rest
    with a diff along the row.
    """
    cnt = ok.sum(axis=1)
    rows = np.flatnonzero(cnt)
    okr = ok[rows]
    masked = np.where(okr, dot[rows], -2.0)
    first = okr.argmax(axis=1)
    last = ok.shape[1] - 1 - okr[:, ::-1].argmax(axis=1)
    single = (last - first + 1) == cnt[rows]
    if single.all():
        return rows, first, last, masked.max(axis=1)
    multi = np.flatnonzero(~single)
    edges = np.diff(okr[multi].view(np.int8), axis=1, prepend=0, append=0)
    mr, c0 = np.nonzero(edges == 1)
    _, c1 = np.nonzero(edges == -1)
    c1 = c1 - 1
    best_m = np.array(
        [masked[multi[r], a : b + 1].max() for r, a, b in zip(mr, c0, c1, strict=True)]
    )
    keep = np.flatnonzero(single)
    return (
        np.concatenate((rows[keep], rows[multi[mr]])),
        np.concatenate((first[keep], c0)),
        np.concatenate((last[keep], c1)),
        np.concatenate((masked[keep].max(axis=1), best_m)),
    )


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

    def hit_runs(
        self, cand_a: np.ndarray, cand_b: np.ndarray, clusters: list[np.ndarray]
    ) -> tuple[list[tuple[np.ndarray, ...]], np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """See :meth:`PairSearch.hit_runs`: the refinement as it was, a times in blocks of
        ``_BLOCK``, each compared with every b time the candidates near it point to."""
        m, last = self.m, self.n_fine - 1
        t_lim = int(math.floor(self.t_max_s / self.fs + 1e-9))
        tasks: list[tuple[int, int, int, int, int]] = []
        for ci, c in enumerate(clusters):
            order = np.argsort(cand_a[c], kind="stable")
            ia, ib = cand_a[c][order], cand_b[c][order]
            a0, a1 = max(0, int(ia[0]) - m), min(last, int(ia[-1]) + m)
            for r0 in range(a0, a1 + 1, _BLOCK):
                r1 = min(a1, r0 + _BLOCK - 1)
                lo = int(np.searchsorted(ia, r0 - m, "left"))
                hi = int(np.searchsorted(ia, r1 + m, "right"))
                if lo == hi:
                    continue
                b0 = max(0, int(ib[lo:hi].min()) - m, r0 - t_lim)
                b1 = min(last, int(ib[lo:hi].max()) + m, r1 + t_lim)
                if b0 <= b1:
                    tasks.append((ci, r0, r1, b0, b1))
        if not tasks:
            return None
        idx_a = _union_of_ranges([(t[1], t[2]) for t in tasks])
        idx_b = _union_of_ranges([(t[3], t[4]) for t in tasks])
        track_a = self.fine_track("a", idx_a)
        track_b = self.fine_track("b", idx_b)
        runs: dict[int, list[tuple[np.ndarray, ...]]] = {}
        for ci, r0, r1, b0, b1 in tasks:
            pa0 = int(np.searchsorted(idx_a, r0))
            pb0 = int(np.searchsorted(idx_b, b0))
            ua = track_a[pa0 : pa0 + (r1 - r0 + 1)]
            ub = track_b[pb0 : pb0 + (b1 - b0 + 1)]
            dot = ua @ ub.T
            ka = np.arange(r0, r1 + 1)
            kb = np.arange(b0, b1 + 1)
            ok = dot >= self.cos_d
            if b0 < r1 - t_lim or b1 > r0 + t_lim:  # some pairs too far apart in time
                ok &= np.abs(kb[None, :] - ka[:, None]) <= t_lim
            if not ok.any():
                continue
            rows, c0, c1, best = _row_runs(ok, dot)
            runs.setdefault(ci, []).append((ka[rows], kb[c0], kb[c1], best))
        if not runs:
            return None
        merged = [tuple(np.concatenate([p[i] for p in parts]) for i in range(4)) for parts in runs.values()]
        return merged, idx_a, track_a, idx_b, track_b

    def regions(
        self, seg_lists: list[list[tuple[np.ndarray, np.ndarray]]]
    ) -> list[tuple[BaseGeometry, float]]:
        """See :meth:`PairSearch.regions`: each piece through :func:`overlap_region` alone."""
        out: list[tuple[BaseGeometry, float]] = []
        for segs in seg_lists:
            geoms: list[BaseGeometry] = []
            area_km2 = 0.0
            for seg_a, seg_b in segs:
                seg_a = seg_a[np.isfinite(seg_a).all(axis=1)]
                seg_b = seg_b[np.isfinite(seg_b).all(axis=1)]
                if len(seg_a) < 2 or len(seg_b) < 2:
                    continue
                geom, area = overlap_region(
                    seg_a, seg_b, 0.5 * self.sw_a, 0.5 * self.sw_b, pad_km=self.pad_km
                )
                if not geom.is_empty:
                    geoms.append(geom)
                    area_km2 += area
            out.append((merge_region_parts(geoms), area_km2))
        return out

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
        yield from _ReferencePairSearch(PairInputs(tles[a], tles[b], start_s, end_s, params)).run()
