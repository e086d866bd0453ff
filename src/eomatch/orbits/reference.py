"""Grouping of brute-force crossover hits into events.

The test suite and ``benchmarks/crossovers.py`` check :func:`find_crossovers`
against slow, obviously-correct searches at 1 s steps. Those searches differ in
how they enumerate hits (all pairs vs one comparison per time shift) but must
group the hits with the same rules as each other, so the rules live here once:
hits far apart in either satellite's time are different events, and a long group
is cut where satellite A crosses the equator (two passes over the same region).

It also keeps, frozen, the per-pair crossover search as it was before the
constellation search (issue 15 item 7): :func:`reference_search_pair` propagates
both satellites for each pair on its own and builds full-precision regions. The
equivalence test and ``benchmarks/constellation.py`` run it next to
:func:`eomatch.orbits.crossovers.search_constellation`; nothing else uses it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from datetime import datetime

import numpy as np
from scipy.spatial import cKDTree
from shapely import unary_union
from shapely.geometry import GeometryCollection, MultiPolygon, Point, Polygon
from shapely.geometry.base import BaseGeometry

from eomatch.orbits.crossovers import Crossover, CrossoverParams
from eomatch.orbits.propagate import (
    EARTH_RADIUS_KM,
    from_unix_s,
    great_circle_km,
    ground_track,
    nadir_unit,
    to_unix_s,
    unit_to_latlon,
)
from eomatch.orbits.region import bbox_geometry, crosses_antimeridian, overlap_region
from eomatch.orbits.sun import solar_elevation_deg
from eomatch.orbits.tle import TleSet
from eomatch.progress import Progress

_BLOCK = 128
_REGION_PIECE_S = 600.0
_REGION_RUN_GAP_S = 60.0
_REGION_POINTS = 40


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


def _split_groups(
    a_lo: np.ndarray,
    a_hi: np.ndarray,
    b_lo: np.ndarray,
    b_hi: np.ndarray,
    gap: float,
) -> list[np.ndarray]:
    """Split sets of (a interval, b interval) boxes wherever a projection has a gap > ``gap``.

    Recursive projection splitting: cheap, and for hits separated by a fraction
    of an orbit it equals connected components at that tolerance. Points are
    boxes with ``lo == hi``.
    """
    out: list[np.ndarray] = []
    stack = [np.arange(a_lo.size)] if a_lo.size else []
    while stack:
        idx = stack.pop()
        for lo, hi in ((a_lo, a_hi), (b_lo, b_hi)):
            order = np.argsort(lo[idx], kind="stable")
            lo_s = lo[idx][order]
            reach = np.maximum.accumulate(hi[idx][order])
            cuts = np.flatnonzero(lo_s[1:] - reach[:-1] > gap) + 1
            if cuts.size:
                stack.extend(np.split(idx[order], cuts))
                break
        else:
            out.append(idx)
    out.sort(key=lambda g: int(a_lo[g].min()))
    return out


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


class _PairSearch:
    """State of one (a, b) search: grids, thresholds, the coarse-pass carry."""

    def __init__(
        self, tles_a: TleSet, tles_b: TleSet, start_s: float, end_s: float, params: CrossoverParams
    ) -> None:
        self.a, self.b, self.p = tles_a, tles_b, params
        self.start_s = start_s
        self.span_days = (end_s - start_s) / 86400.0
        self.fs = float(params.fine_step_s)
        self.n_fine = int(math.floor((end_s - start_s) / self.fs + 1e-9)) + 1
        self.m = max(1, int(round(params.coarse_step_s / self.fs)))
        self.n_coarse = (self.n_fine - 1) // self.m + 2
        self.chunk_c = max(1, int(round(params.chunk_s / (self.m * self.fs))))
        self.t_max_s = float(params.time_diff_threshold_s)
        self.pad_c = int(math.ceil(self.t_max_s / (self.m * self.fs))) + 1
        self.sw_a = float(tles_a.satellite.swath_km)
        self.sw_b = float(tles_b.satellite.swath_km)
        self.d_km = float(params.space_diff_threshold_km)
        if params.use_swath:
            self.d_km += 0.5 * (self.sw_a + self.sw_b)
        self.cos_d = math.cos(min(self.d_km / EARTH_RADIUS_KM, math.pi))
        self.gap_f = params.merge_gap_fraction * min(tles_a.period_s, tles_b.period_s) / self.fs
        self.cluster_gap_f = self.gap_f + 2 * self.m
        self.long_f = params.long_event_fraction * min(tles_a.period_s, tles_b.period_s) / self.fs
        self.pad_km = 0.5 * float(params.space_diff_threshold_km) + 1.0
        self.margin_km = 0.0
        self.bbox = bbox_geometry(params.min_lat, params.max_lat, params.min_lon, params.max_lon)

    @property
    def n_chunks(self) -> int:
        return (self.n_coarse + self.chunk_c - 1) // self.chunk_c

    def times(self, fine_idx: np.ndarray) -> np.ndarray:
        return self.start_s + fine_idx.astype(np.float64) * self.fs

    def fine_track(self, tles: TleSet, fine_idx: np.ndarray) -> np.ndarray:
        """Nadir unit vectors on the fine grid, interpolated between coarse-grid SGP4 nodes."""
        return nadir_unit(tles, self.times(fine_idx), self.m * self.fs, self.start_s)

    # coarse pass ---------------------------------------------------------------------

    def coarse_candidates(self, chunk: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Fine indices (a, b) of coarse sample pairs that may hide a hit nearby.

        The third array flags pairs near the site box (all True without one): a
        cluster is refined only if one of its pairs is, so events are never clipped.
        """
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
            near = self._near_bbox(ga.lat_deg[i], ga.lon_deg[i]) | self._near_bbox(
                gb.lat_deg[j], gb.lon_deg[j]
            )
        else:
            near = np.ones(i.size, dtype=bool)
        return ka[i] * m, kb[j] * m, near

    def _near_bbox(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """Coarse points close enough to the site box for the region to reach it."""
        p = self.p
        margin_km = self.margin_km + 0.5 * max(self.sw_a, self.sw_b) + self.d_km + 10.0
        mdeg = math.degrees(margin_km / EARTH_RADIUS_KM)
        s = (-90.0 if p.min_lat is None else p.min_lat) - mdeg
        n = (90.0 if p.max_lat is None else p.max_lat) + mdeg
        ok = (lat >= s) & (lat <= n)
        if p.min_lon is None and p.max_lon is None:
            return ok
        w = -180.0 if p.min_lon is None else p.min_lon
        e = 180.0 if p.max_lon is None else p.max_lon
        width = (e - w) % 360.0 if w != e else 0.0
        if w > e:
            width = e - w + 360.0
        elif w < e:
            width = e - w
        polar = max(abs(s), abs(n))
        if polar >= 89.0:
            return ok
        ldeg = mdeg / math.cos(math.radians(polar))
        if width + 2 * ldeg >= 360.0:
            return ok
        return ok & (np.mod(lon - (w - ldeg), 360.0) <= width + 2 * ldeg)

    # refinement ------------------------------------------------------------------------

    def refine(
        self, cand_a: np.ndarray, cand_b: np.ndarray, clusters: list[np.ndarray]
    ) -> list[Crossover]:
        """Exact 1 s hits near each cluster's candidates, grouped into events.

        A times are taken in blocks; each block is compared only with the B times
        that candidates near it point to, so long near-parallel stretches stay cheap.
        """
        if not clusters:
            return []
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
            return []
        idx_a = _union_of_ranges([(t[1], t[2]) for t in tasks])
        idx_b = _union_of_ranges([(t[3], t[4]) for t in tasks])
        track_a = self.fine_track(self.a, idx_a)
        track_b = self.fine_track(self.b, idx_b)
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
        skeletons = []
        for parts in runs.values():
            ka, kb0, kb1, best = (np.concatenate([p[i] for p in parts]) for i in range(4))
            z_a = track_a[np.searchsorted(idx_a, ka), 2]
            for g in self.group_runs(ka, kb0, kb1, z_a):
                r = int(g[int(np.argmax(best[g]))])
                i_best = int(ka[r])
                pa = track_a[int(np.searchsorted(idx_a, i_best))]
                pb0 = int(np.searchsorted(idx_b, kb0[r]))
                seg_b = track_b[pb0 : pb0 + int(kb1[r] - kb0[r]) + 1]
                j_off = int(np.argmax(seg_b @ pa))
                j_best = int(kb0[r]) + j_off
                pieces = self._region_pieces(ka[g], kb0[g], kb1[g])
                skeletons.append((ka[g], kb0[g], kb1[g], i_best, j_best, pa, seg_b[j_off], pieces))
        # One interpolation call per satellite for all region outlines of the batch.
        samples = [
            (self._samples(p[0], p[1]), self._samples(p[2], p[3]))
            for sk in skeletons
            for p in sk[7]
        ]
        all_a = np.unique(np.concatenate([sa for sa, _ in samples])) if samples else idx_a[:0]
        all_b = np.unique(np.concatenate([sb for _, sb in samples])) if samples else idx_b[:0]
        ua_all = self.fine_track(self.a, all_a)
        ub_all = self.fine_track(self.b, all_b)
        events: list[Crossover] = []
        pos = 0
        for ka_g, kb0_g, kb1_g, i_best, j_best, pa, pb, pieces in skeletons:
            segs = []
            for sa, sb in samples[pos : pos + len(pieces)]:
                segs.append(
                    (ua_all[np.searchsorted(all_a, sa)], ub_all[np.searchsorted(all_b, sb)])
                )
            pos += len(pieces)
            region, area_km2 = self._region(segs)
            event = self._event(ka_g, kb0_g, kb1_g, i_best, j_best, pa, pb, region, area_km2)
            if event is not None:
                events.append(event)
        events.sort(key=lambda e: e.start_a)
        return events

    def group_runs(
        self, ka: np.ndarray, kb0: np.ndarray, kb1: np.ndarray, z_a: np.ndarray
    ) -> list[np.ndarray]:
        """Runs of hits -> events: split on gaps, then cut long events at a's equator crossings."""
        out: list[np.ndarray] = []
        for g in _split_groups(ka, ka, kb0, kb1, self.gap_f):
            if int(ka[g].max() - ka[g].min()) <= self.long_f:
                out.append(g)
                continue
            order = g[np.argsort(ka[g], kind="stable")]
            north = z_a[order] >= 0.0
            cuts = np.flatnonzero(north[1:] != north[:-1]) + 1
            for piece in np.split(order, cuts):
                sub = _split_groups(ka[piece], ka[piece], kb0[piece], kb1[piece], self.gap_f)
                out.extend(piece[s] for s in sub)
        out.sort(key=lambda g: int(ka[g].min()))
        return out

    def _samples(self, k0: int, k1: int) -> np.ndarray:
        """At most ``_REGION_POINTS`` fine indices spanning k0..k1 (at least two)."""
        if k1 - k0 < 1:
            k0, k1 = max(0, k0 - 1), min(self.n_fine - 1, k1 + 1)
        n = min(k1 - k0 + 1, _REGION_POINTS)
        return np.unique(np.linspace(k0, k1, n).round().astype(np.int64))

    def _region_pieces(
        self, ka: np.ndarray, kb0: np.ndarray, kb1: np.ndarray
    ) -> list[tuple[int, int, int, int]]:
        """Fine-index ranges (a0, a1, b0, b1) whose swath strips make up the event's region.

        Long events are cut into pieces of a's track, each paired with the stretches
        of b's track it meets, so every piece fits one local projection.
        """
        a_lo, a_hi = int(ka.min()), int(ka.max())
        b_lo, b_hi = int(kb0.min()), int(kb1.max())
        piece_f = max(1, int(_REGION_PIECE_S / self.fs))
        if a_hi - a_lo <= piece_f and b_hi - b_lo <= piece_f:
            return [(a_lo, a_hi, b_lo, b_hi)]
        pieces: list[tuple[int, int, int, int]] = []
        run_gap = max(1, int(_REGION_RUN_GAP_S / self.fs))
        order = np.argsort(ka, kind="stable")
        ka_s, lo_s, hi_s = ka[order], kb0[order], kb1[order]
        for p0 in range(a_lo, a_hi + 1, piece_f):
            p1 = min(a_hi, p0 + piece_f)
            sel = slice(int(np.searchsorted(ka_s, p0)), int(np.searchsorted(ka_s, p1, "right")))
            if sel.start == sel.stop:
                continue
            for g in _split_groups(lo_s[sel], hi_s[sel], lo_s[sel], hi_s[sel], run_gap):
                q0 = max(b_lo, int(lo_s[sel][g].min()) - run_gap)
                q1 = min(b_hi, int(hi_s[sel][g].max()) + run_gap)
                pieces.append((p0, p1, q0, q1))
        return pieces

    def _region(self, segs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[BaseGeometry, float]:
        """Union of the strip overlaps of each (a, b) pair of track pieces."""
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
        if not geoms:
            return Polygon(), 0.0
        if len(geoms) == 1:
            return geoms[0], area_km2
        merged = unary_union(geoms)
        if isinstance(merged, GeometryCollection):
            polys = [g for g in merged.geoms if isinstance(g, Polygon | MultiPolygon)]
            merged = unary_union(polys) if polys else Polygon()
        return merged, area_km2

    def _event(
        self,
        ka: np.ndarray,
        kb0: np.ndarray,
        kb1: np.ndarray,
        i_best: int,
        j_best: int,
        pa: np.ndarray,
        pb: np.ndarray,
        region: BaseGeometry,
        area_km2: float,
    ) -> Crossover | None:
        p = self.p
        min_km = float(great_circle_km(pa[None], pb[None])[0])
        lat_c, lon_c = unit_to_latlon((pa + pb)[None])
        t_a_best = self.start_s + i_best * self.fs
        t_b_best = self.start_s + j_best * self.fs
        anti = crosses_antimeridian(region)
        if p.exclude_antimeridian_events and anti:
            return None
        if self.bbox is not None:
            target = region if not region.is_empty else Point(float(lon_c[0]), float(lat_c[0]))
            if not target.intersects(self.bbox):
                return None
        sun = float(solar_elevation_deg(0.5 * (t_a_best + t_b_best), lat_c[0], lon_c[0]))
        if p.exclude_night_events and sun < p.min_solar_elevation_deg:
            return None
        ta = self.times(np.array([ka.min(), ka.max()]))
        tb = self.times(np.array([kb0.min(), kb1.max()]))
        return Crossover(
            platform_a=self.a.name,
            platform_b=self.b.name,
            start_a=from_unix_s(ta[0]),
            end_a=from_unix_s(ta[1]),
            start_b=from_unix_s(tb[0]),
            end_b=from_unix_s(tb[1]),
            closest_a=from_unix_s(t_a_best),
            closest_b=from_unix_s(t_b_best),
            min_distance_km=min_km,
            time_diff_s=t_b_best - t_a_best,
            centre_lat_deg=float(lat_c[0]),
            centre_lon_deg=float(lon_c[0]),
            region=region,
            region_area_km2=area_km2,
            solar_elevation_deg=sun,
            crosses_antimeridian=anti,
        )

    # driver ------------------------------------------------------------------------------

    def run(self, progress: Progress | None = None) -> Iterator[Crossover]:
        carry_a = np.empty(0, dtype=np.int64)
        carry_b = np.empty(0, dtype=np.int64)
        carry_near = np.empty(0, dtype=bool)
        # Progress counts days of the window searched: a caller summing several
        # pairs sets the total itself; alone, the total is this window.
        n_chunks = self.n_chunks
        if progress is not None and progress.total is None:
            progress.total = self.span_days
        reported_days = 0.0
        for chunk in range(n_chunks):
            ca, cb, cn = self.coarse_candidates(chunk)
            cand_a = np.concatenate((carry_a, ca))
            cand_b = np.concatenate((carry_b, cb))
            near = np.concatenate((carry_near, cn))
            clusters = _split_groups(cand_a, cand_a, cand_b, cand_b, self.cluster_gap_f)
            if chunk == n_chunks - 1:
                ready, held = clusters, []
            else:
                chunk_end_f = min(self.n_coarse, (chunk + 1) * self.chunk_c) * self.m
                limit = chunk_end_f - self.cluster_gap_f - self.m
                ready = [c for c in clusters if cand_a[c].max() < limit]
                held = [c for c in clusters if cand_a[c].max() >= limit]
            if held:
                keep = np.concatenate(held)
                carry_a, carry_b, carry_near = cand_a[keep], cand_b[keep], near[keep]
            else:
                carry_a = carry_b = np.empty(0, dtype=np.int64)
                carry_near = np.empty(0, dtype=bool)
            ready = [c for c in ready if near[c].any()]
            yield from self.refine(cand_a, cand_b, ready)
            if progress is not None:
                covered = self.span_days * (chunk + 1) / n_chunks
                progress.update(covered - reported_days)
                reported_days = covered


def _union_of_ranges(ranges: list[tuple[int, int]]) -> np.ndarray:
    """Sorted unique integers covered by inclusive ranges (merged, no sort of the values)."""
    merged: list[list[int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return np.concatenate([np.arange(lo, hi + 1) for lo, hi in merged])


def reference_search_pair(
    tles_a: TleSet,
    tles_b: TleSet,
    start: datetime,
    end: datetime,
    params: CrossoverParams,
    progress: Progress | None = None,
) -> Iterator[Crossover]:
    """Today's per-pair search: both satellites propagated for this pair alone, full regions."""
    search = _PairSearch(tles_a, tles_b, to_unix_s(start), to_unix_s(end), params)
    return search.run(progress)


def reference_find_events(
    tles: dict[str, TleSet],
    pairs: Sequence[tuple[str, str]],
    start: datetime,
    end: datetime,
    params: CrossoverParams,
) -> Iterator[Crossover]:
    """Events of each pair in turn, each pair searched on its own (the old ``find_events``)."""
    for a, b in pairs:
        yield from reference_search_pair(tles[a], tles[b], start, end, params)
