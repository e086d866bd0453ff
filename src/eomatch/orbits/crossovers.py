"""Crossover events: when and where two satellites see the same ground at nearly the same time.

The condition for a pair of times (t_a, t_b) is ``|t_b - t_a| <= time_diff_threshold_s``
and great-circle distance between the nadir points ``<= space_diff_threshold_km``
(plus the mean of the two swath widths when ``use_swath``). An **event** is one
connected set of such pairs, on a 1 s grid; hits closer than a fraction of an
orbit (``merge_gap_fraction``) in both satellites' times belong to the same
overpass, so consecutive orbits give separate events.

How it scales, instead of comparing the two tracks for every time shift:

1. coarse pass, one day at a time: both tracks at ``coarse_step_s``; coarse pairs
   close in space and time, with a margin covering what the coarse step can hide
   (:func:`_close_in_band`: blocks of nodes whose bounding balls are far apart are
   never compared, the rest in one batched matrix product);
2. candidate pairs are grouped into clusters (gaps > a fraction of an orbit);
3. the clusters of a chunk are refined at ``fine_step_s`` (1 s) together
   (:meth:`PairSearch.hit_runs`): every hit lies within half a coarse step of a
   candidate, so each a time is compared only with the b times around its own
   nearest node's candidates, narrowed to b samples (every half coarse step) that
   come close to it, in a few batched matrix products; then event bounds, closest
   approach and overlap regions (all of a chunk's strips built and mapped to
   lon/lat together).

For a whole constellation, :func:`search_constellation` walks the period once,
chunk by chunk, and runs every pair on that chunk: each satellite's coarse nodes
are propagated once into a :class:`~eomatch.orbits.propagate.TrackGrid` and
shared by all its pairs, and so are its fine samples (each interpolated once,
:meth:`~eomatch.orbits.propagate.TrackGrid.fine_unit_at`), its coarse-pass blocks
and its largest node step for a chunk (:meth:`~eomatch.orbits.propagate.TrackGrid.derived`).
Regions are compact by default (:func:`~eomatch.orbits.region.compact_region`:
at most ``region_max_vertices`` within ``region_tolerance_km``); ``full_regions``
keeps every vertex. :mod:`eomatch.orbits.reference` keeps the per-pair search
this replaced, to compare against: both subclass :class:`PairSearch` (clustering,
grouping, filters, the chunk walk); the reference keeps its own propagation, its
KD-tree coarse pass, the refinement in blocks of 128 a times and one region
mapping per track piece.

Measured (``benchmarks/constellation.py``, six satellites, 12 pairs, 100 km /
1800 s, on a 2-core machine shared with other jobs, so only in-run comparisons
count): 14 days, one process, load average 6-10: the same 2975 events, CPU 9.5 s
vs 16.4 s for the per-pair path (the shared-track search before the batched
refinement and regions took about as long as the per-pair path: 11.3 s vs 11.1 s
on a quiet machine); the CSV is 4.1 MB instead of 33.6 MB. On 7 days the CSV,
compact or full regions, is byte-identical to the one before those changes. The
CPU is now spread over the 1 s refinement (~35%), regions (~25%), the coarse pass
with propagation (~15%), the fine tracks (~12%) and the events' compaction and
fields (~12%). ``eomatch-find --events-only --format csv`` for 2022 with two
processes: 77 276 events, 108 MB (byte-identical between runs), 175 s of CPU at
load average 4-6 (5 min 9 s wall there; 221 s at load 8-10; before: 290 s of CPU
and 3 min 33 s wall on a mostly idle machine).

Then (same outputs, byte for byte, on 7 and 14 days and the whole year): fine
samples, blocks and node steps shared per satellite, rows gathered with
``np.take`` (several times faster than fancy indexing of (n, 3) arrays), strips
built together, antimeridian regions cut from the batch mapping, the refinement's
boxes narrowed at half-step samples (23% fewer dot products). 14 days, one
process, load average about 2, interleaved runs: 3.55-3.66 s of CPU instead of
4.69-4.92 s (-25%). The year with two processes (``benchmarks/constellation.py
--days 365 --old-days 14 --workers 2``, two runs at load average 0.2-1.7):
54.7-56.2 s wall, 106-110 s of CPU with the workers (was 74.7 s and 146 s). The CPU is now the 1 s
refinement (~37%: the boxes ~15%, their narrowing ~11%), regions (~22%), the
coarse pass (~12%, half of it SGP4), compaction (~9%) and the fine tracks (~7%).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import numpy as np
from shapely import unary_union
from shapely.geometry import GeometryCollection, MultiPolygon, Point, Polygon, mapping
from shapely.geometry.base import BaseGeometry

from eomatch.errors import ConfigError
from eomatch.orbits.propagate import (
    EARTH_RADIUS_KM,
    TrackGrid,
    from_unix_s,
    great_circle_km,
    to_unix_s,
    unit_to_latlon,
)
from eomatch.orbits.region import (
    bbox_geometry,
    compact_region,
    crosses_antimeridian,
    overlap_regions,
)
from eomatch.orbits.sun import solar_elevation_deg
from eomatch.orbits.tle import TleSet, find_satellite, load_tles_for
from eomatch.progress import Progress
from eomatch.settings import Settings

log = logging.getLogger(__name__)

_CAP = 32
"""Nodes per block of the coarse pass (blocks far apart are never compared)."""
_BATCH_ELEMENTS = 1 << 21
"""Largest (a time, b time) matrix of one batched product in the refinement (16 MiB of dots)."""
_NARROW_SAMPLES_PER_STEP = 2
"""b samples per coarse step that the refinement's boxes are narrowed with."""
_REGION_PIECE_S = 600.0
_REGION_RUN_GAP_S = 60.0
_REGION_POINTS = 40


@dataclass(frozen=True)
class CrossoverParams:
    """Search parameters; ``from_settings`` maps the ``eomatch-find`` keys."""

    space_diff_threshold_km: float = 100.0
    time_diff_threshold_s: float = 1800.0
    use_swath: bool = False
    min_lat: float | None = None
    max_lat: float | None = None
    min_lon: float | None = None
    max_lon: float | None = None
    exclude_night_events: bool = False
    min_solar_elevation_deg: float = 0.0
    exclude_antimeridian_events: bool = False
    coarse_step_s: float = 20.0
    fine_step_s: float = 1.0
    chunk_s: float = 86400.0
    """Length of the coarse-pass chunks: memory stays flat however long the period."""
    merge_gap_fraction: float = 0.1
    """Hits further apart than this fraction of the shorter orbital period are separate events."""
    long_event_fraction: float = 0.25
    """Events longer than this fraction of an orbit are cut where satellite a crosses the equator
    (pairs that share a ground track stay close for whole orbits: one event per half orbit)."""
    full_regions: bool = False
    """Keep every vertex of the regions; by default they are compacted (below)."""
    region_tolerance_km: float = 1.0
    """Compact regions stay within this ground distance of the full ones (Hausdorff)..."""
    region_max_vertices: int = 64
    """...with at most this many coordinates; a region that needs more at that tolerance
    is simplified at 2x, 4x, ... the tolerance (the event's ``region_tolerance_km``)."""

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> CrossoverParams:
        values: dict[str, Any] = {
            "space_diff_threshold_km": settings.find.space_diff_threshold,
            "time_diff_threshold_s": settings.find.time_diff_threshold,
            "use_swath": settings.find.use_swath,
            "min_lat": settings.find.min_lat,
            "max_lat": settings.find.max_lat,
            "min_lon": settings.find.min_lon,
            "max_lon": settings.find.max_lon,
            "exclude_night_events": settings.find.exclude_night_events,
            "min_solar_elevation_deg": settings.find.min_solar_elevation_deg,
            "exclude_antimeridian_events": settings.find.exclude_antimeridian_events,
            "full_regions": settings.find.full_regions,
        }
        values.update(overrides)
        return cls(**values)


@dataclass(frozen=True)
class Crossover:
    """One crossover event between satellites a and b.

    Times are aware UTC datetimes on the fine grid. ``min_distance_km`` is the
    nadir-to-nadir distance at closest approach (also in swath mode);
    ``time_diff_s`` is ``t_b - t_a`` there. The centre is the midpoint of the two
    nadir points at closest approach. ``region`` is the overlap of the two swath
    strips over the event's intervals (lon/lat, split at ±180°), compacted unless
    ``full_regions``: every point of it is within ``region_tolerance_km`` of the
    full region and back (0.0: the full region itself). ``region_area_km2`` is
    always the full region's area.
    """

    platform_a: str
    platform_b: str
    start_a: datetime
    end_a: datetime
    start_b: datetime
    end_b: datetime
    closest_a: datetime
    closest_b: datetime
    min_distance_km: float
    time_diff_s: float
    centre_lat_deg: float
    centre_lon_deg: float
    region: BaseGeometry
    region_area_km2: float
    solar_elevation_deg: float
    crosses_antimeridian: bool
    region_tolerance_km: float = 0.0

    def to_row(self, geometry: str = "wkt") -> dict[str, Any]:
        """Flat dict for CSV/JSON: ISO times, plain floats, region as WKT or GeoJSON."""
        row: dict[str, Any] = {}
        for name in _FIELD_NAMES:
            value = getattr(self, name)
            if isinstance(value, datetime):
                value = value.isoformat().replace("+00:00", "Z")
            elif isinstance(value, BaseGeometry):
                value = value.wkt if geometry == "wkt" else mapping(value)
            elif isinstance(value, float):
                value = round(value, 6)
            row[name] = value
        return row


_FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Crossover))


EVENT_COLUMNS: tuple[str, ...] = _FIELD_NAMES
"""Column order of :func:`events_to_rows` (CSV header)."""


def events_to_rows(events: Iterable[Crossover], geometry: str = "wkt") -> Iterator[dict[str, Any]]:
    """Rows for ``--events-only`` output; ``geometry`` is ``"wkt"`` (CSV) or ``"geojson"``."""
    if geometry not in ("wkt", "geojson"):
        raise ConfigError(f"unknown geometry format '{geometry}' (use wkt or geojson)")
    for event in events:
        yield event.to_row(geometry)


# --- public entry point -----------------------------------------------------------


def find_crossovers(
    config: Settings | CrossoverParams,
    platform_a: str,
    platform_b: str,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    tles: Mapping[str, TleSet] | None = None,
    progress: Progress | None = None,
) -> Iterator[Crossover]:
    """All crossover events of two platforms between ``start`` and ``end`` (both inclusive).

    ``config`` is the full :class:`Settings` (thresholds, filters, registry, TLE
    paths, and ``start_time``/``end_time`` as defaults) or a bare
    :class:`CrossoverParams`, in which case ``tles`` (from :func:`load_tles`) is
    required. Platform names may be aliases. Events come out chunk by chunk,
    sorted by ``start_a`` within each day.
    """
    if isinstance(config, Settings):
        params = CrossoverParams.from_settings(config)
        satellites = list(config.satellites)
        start = start if start is not None else config.start_time
        end = end if end is not None else config.end_time
        if tles is None:
            tles = load_tles_for(config, [platform_a, platform_b])
    else:
        params = config
        if tles is None:
            raise ConfigError("find_crossovers needs TLEs (tles=load_tles(...)) without Settings")
        satellites = [ts.satellite for ts in tles.values()]
    if start is None or end is None:
        raise ConfigError("start_time and end_time are required to search crossovers")
    if to_unix_s(end) <= to_unix_s(start):
        raise ConfigError(f"end_time {end.isoformat()} is not after start_time {start.isoformat()}")
    sat_a = find_satellite(platform_a, satellites)
    sat_b = find_satellite(platform_b, satellites)
    if sat_a.name == sat_b.name:
        raise ConfigError(f"platform_a and platform_b are both {sat_a.name}")
    for sat in (sat_a, sat_b):
        if sat.name not in tles:
            raise ConfigError(f"no TLE for platform {sat.name} (NORAD {sat.norad_id})")
    return search_pair(tles[sat_a.name], tles[sat_b.name], start, end, params, progress)


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
    # The same boxes on both axes (region pieces) need one projection: the second finds what the first did.
    projections = ((a_lo, a_hi),) if b_lo is a_lo and b_hi is a_hi else ((a_lo, a_hi), (b_lo, b_hi))
    while stack:
        idx = stack.pop()
        for lo, hi in projections:
            lo_i = lo[idx]
            order = np.argsort(lo_i, kind="stable")
            lo_s = lo_i[order]
            reach = np.maximum.accumulate(lo_s if hi is lo else hi[idx][order])
            cuts = np.flatnonzero(lo_s[1:] - reach[:-1] > gap) + 1
            if cuts.size:
                moved = idx[order]
                bounds = [0, *cuts.tolist(), moved.size]
                stack.extend(moved[s0:s1] for s0, s1 in zip(bounds[:-1], bounds[1:], strict=True))
                break
        else:
            out.append(idx)
    out.sort(key=lambda g: int(a_lo[g].min()))
    return out


def _blocks(u: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, ...]:
    """Rows of ``u`` in blocks of ``_CAP`` (zero-padded), each block's centre, radius and k span.

    Chord length is a metric, so no point of a block is nearer another block's points
    than the distance of the centres less both radii.
    """
    n = len(u)
    n_blk = -(-n // _CAP)
    padded = np.zeros((n_blk * _CAP, 3))
    padded[:n] = u
    padded = padded.reshape(n_blk, _CAP, 3)
    count = np.minimum(_CAP, n - np.arange(n_blk) * _CAP)
    centre = padded.sum(axis=1) / count[:, None]
    dist = np.linalg.norm(padded - centre[:, None, :], axis=2)
    dist[np.arange(_CAP)[None, :] >= count[:, None]] = 0.0
    first = np.arange(n_blk) * _CAP
    return padded, centre, dist.max(axis=1), k[first], k[first + count - 1]


def _close_in_band(
    ua: np.ndarray,
    ub: np.ndarray,
    ka: np.ndarray,
    kb: np.ndarray,
    band: int,
    r_chord: float,
    blocks: tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Rows (i, j) with ``|kb[j] - ka[i]| <= band`` whose unit vectors may be within ``r_chord``.

    ``ka``/``kb`` ascending; pairs come out sorted by (i, j). Both tracks are cut into
    blocks of ``_CAP`` nodes (``blocks``: :func:`_blocks` of each, if already made);
    only block pairs whose bounding balls come within ``r_chord`` and whose times
    overlap the band are compared, in one batched matrix product: a superset of the
    exact test (chord <= r_chord) that the caller applies, for a tenth of the
    products of comparing every node with its whole band.
    """
    cos_lo = 1.0 - 0.5 * r_chord * r_chord - 1e-9
    empty = np.empty(0, dtype=np.int64)
    if ka.size == 0 or kb.size == 0:
        return empty, empty
    blocks_a, blocks_b = blocks if blocks is not None else (_blocks(ua, ka), _blocks(ub, kb))
    blk_a, c_a, rad_a, lo_a, hi_a = blocks_a
    blk_b, c_b, rad_b, lo_b, hi_b = blocks_b
    # Centre distances from squared norms: off by 1e-8 at most, well within the 1e-6 spared.
    d2 = (c_a * c_a).sum(axis=1)[:, None] + (c_b * c_b).sum(axis=1)[None, :] - 2.0 * (c_a @ c_b.T)
    apart = np.sqrt(np.maximum(d2, 0.0)) - rad_a[:, None] - rad_b[None, :]
    near = (apart <= r_chord + 1e-6) & (lo_b[None, :] <= hi_a[:, None] + band) & (hi_b[None, :] >= lo_a[:, None] - band)
    p, q = np.nonzero(near)
    out_i: list[np.ndarray] = []
    out_j: list[np.ndarray] = []
    step = max(1, _BATCH_ELEMENTS // (_CAP * _CAP))
    for s0 in range(0, p.size, step):
        ps, qs = p[s0 : s0 + step], q[s0 : s0 + step]
        dot = np.matmul(np.take(blk_a, ps, axis=0), np.take(blk_b, qs, axis=0).transpose(0, 2, 1))
        flat = np.flatnonzero(dot >= cos_lo)  # as np.nonzero, in the same order, faster
        t, rc = np.divmod(flat, _CAP * _CAP)
        r, c = np.divmod(rc, _CAP)
        out_i.append(ps[t] * _CAP + r)
        out_j.append(qs[t] * _CAP + c)
    if not out_i:
        return empty, empty
    i, j = np.concatenate(out_i), np.concatenate(out_j)
    keep = (i < ka.size) & (j < kb.size)
    i, j = i[keep], j[keep]
    order = np.lexsort((j, i))
    return i[order], j[order]


def _range_union(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Sorted unique integers covered by inclusive ranges ``lo[i]..hi[i]`` (vectorised)."""
    order = np.argsort(lo, kind="stable")
    lo, hi = lo[order], hi[order]
    reach = np.maximum.accumulate(hi)
    starts = np.flatnonzero(np.r_[True, lo[1:] > reach[:-1] + 1])
    s_lo = lo[starts]
    s_hi = reach[np.r_[starts[1:] - 1, lo.size - 1]]
    lengths = s_hi - s_lo + 1
    offsets = np.repeat(s_lo - np.cumsum(np.r_[0, lengths[:-1]]), lengths)
    return np.arange(int(lengths.sum()), dtype=np.int64) + offsets


def _row_runs(ok: np.ndarray, dot: np.ndarray) -> tuple[np.ndarray, ...]:
    """(row, first column, last column, best dot) of each run of True in each row.

    Rows almost always hold one run; those are read off with argmax, the rest
    with a diff along the row. Half the rows of a refinement hold none: they are
    dropped first (one argmax), so the other passes read only rows with hits, and
    each run's best dot is a maximum over the run alone (``dot`` C-contiguous).
    """
    n, w = ok.shape
    first = ok.argmax(axis=1)
    rows = np.flatnonzero(ok[np.arange(n), first])
    okr = ok[rows]
    first = first[rows]
    last = w - 1 - okr[:, ::-1].argmax(axis=1)
    cnt = okr.sum(axis=1, dtype=np.int64)
    single = (last - first + 1) == cnt
    if not single.all():
        multi = np.flatnonzero(~single)
        edges = np.diff(okr[multi].view(np.int8), axis=1, prepend=0, append=0)
        mr, c0 = np.nonzero(edges == 1)
        _, c1 = np.nonzero(edges == -1)
        keep = np.flatnonzero(single)
        rows = np.concatenate((rows[keep], rows[multi[mr]]))
        first = np.concatenate((first[keep], c0))
        last = np.concatenate((last[keep], c1 - 1))
        # Runs in array order, so only the very last one can end at the end of ``dot``
        # (reduceat takes no index past the array; callers sort the runs themselves).
        order = np.argsort(rows * w + first, kind="stable")
        rows, first, last = rows[order], first[order], last[order]
    if rows.size == 0:
        return rows, first, last, np.empty(0)
    flat = dot.reshape(-1)
    bounds = np.column_stack((rows * w + first, rows * w + last + 1)).reshape(-1)
    if bounds[-1] == flat.size:  # indices must stay inside; the last run then ends the array
        bounds = bounds[:-1]
    best = np.maximum.reduceat(flat, bounds)[::2]
    return rows, first, last, best


def merge_region_parts(geoms: list[BaseGeometry]) -> BaseGeometry:
    """One region from the overlaps of an event's track pieces (polygons only)."""
    if not geoms:
        return Polygon()
    if len(geoms) == 1:
        return geoms[0]
    merged = unary_union(geoms)
    if isinstance(merged, GeometryCollection):
        polys = [g for g in merged.geoms if isinstance(g, Polygon | MultiPolygon)]
        merged = unary_union(polys) if polys else Polygon()
    return merged


@dataclass(frozen=True)
class PairInputs:
    """What one (a, b) search is given: both satellites' TLEs, the period (UNIX s), the parameters.

    One value for :class:`PairSearch` and its subclasses, so that none repeats the list.
    """

    tles_a: TleSet
    tles_b: TleSet
    start_s: float
    end_s: float
    params: CrossoverParams


class PairSearch:
    """One (a, b) search: thresholds, the coarse-pass carry, refinement into events.

    Public so that :mod:`eomatch.orbits.reference` reuses all of it and differs
    only in what the constellation search replaced: subclasses say how a track
    is propagated (:meth:`fine_track`), how the coarse pass finds candidates
    (:meth:`coarse_candidates`), how regions are finished (:meth:`finish_region`)
    and what is released after a chunk (:meth:`release`); the reference also
    keeps its own refinement (:meth:`hit_runs`) and regions (:meth:`regions`).
    """

    def __init__(self, inputs: PairInputs) -> None:
        tles_a, tles_b, params = inputs.tles_a, inputs.tles_b, inputs.params
        start_s, end_s = inputs.start_s, inputs.end_s
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
        self._carry = (np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64), np.empty(0, bool))

    @property
    def n_chunks(self) -> int:
        return (self.n_coarse + self.chunk_c - 1) // self.chunk_c

    def times(self, fine_idx: np.ndarray) -> np.ndarray:
        return self.start_s + fine_idx.astype(np.float64) * self.fs

    def coarse_span(self, chunk: int) -> tuple[int, int]:
        """Coarse nodes (first, one past last) either satellite needs for ``chunk``."""
        k0 = chunk * self.chunk_c
        return max(0, k0 - self.pad_c), min(self.n_coarse, k0 + self.chunk_c + self.pad_c)

    # what subclasses decide -------------------------------------------------------------

    def fine_track(self, side: str, fine_idx: np.ndarray) -> np.ndarray:
        """Nadir unit vectors of satellite ``side`` ("a" or "b") at fine indices."""
        raise NotImplementedError

    def coarse_candidates(self, chunk: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Fine indices (a, b) of coarse sample pairs that may hide a hit nearby.

        The third array flags pairs near the site box (all True without one): a
        cluster is refined only if one of its pairs is, so events are never clipped.
        Sets ``margin_km`` (what the coarse step can hide) for :meth:`near_bbox`.
        """
        raise NotImplementedError

    def finish_region(self, region: BaseGeometry) -> tuple[BaseGeometry, float]:
        """The event's region and its tolerance: compacted unless ``full_regions``."""
        p = self.p
        if p.full_regions:
            return region, 0.0
        return compact_region(region, p.region_tolerance_km, p.region_max_vertices)

    def release(self, chunk: int) -> None:
        """Free what no later chunk of this search needs (nothing here)."""

    # coarse pass ---------------------------------------------------------------------

    def near_bbox(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """Coarse points close enough to the site box for the region to reach it.

        Public for the subclasses' coarse passes (including the reference's).
        """
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
        """Exact 1 s hits near each cluster's candidates (:meth:`hit_runs`), grouped into events."""
        if not clusters:
            return []
        found = self.hit_runs(cand_a, cand_b, clusters)
        if found is None:
            return []
        runs, idx_a, track_a, idx_b, track_b = found
        skeletons = []
        for ka, kb0, kb1, best in runs:
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
        ua_all = self.fine_track("a", all_a)
        ub_all = self.fine_track("b", all_b)
        seg_lists: list[list[tuple[np.ndarray, np.ndarray]]] = []
        pos = 0
        for sk in skeletons:
            seg_lists.append(
                [
                    (ua_all[np.searchsorted(all_a, sa)], ub_all[np.searchsorted(all_b, sb)])
                    for sa, sb in samples[pos : pos + len(sk[7])]
                ]
            )
            pos += len(sk[7])
        # Closest approach, centre and sun of all events in one call each (row-wise
        # arithmetic: the same bits as one event at a time).
        pa_all = np.array([sk[5] for sk in skeletons]).reshape(-1, 3)
        pb_all = np.array([sk[6] for sk in skeletons]).reshape(-1, 3)
        min_km = great_circle_km(pa_all, pb_all).tolist()
        lat_c, lon_c = unit_to_latlon(pa_all + pb_all)
        t_a_best = self.start_s + np.array([sk[3] for sk in skeletons], dtype=np.int64) * self.fs
        t_b_best = self.start_s + np.array([sk[4] for sk in skeletons], dtype=np.int64) * self.fs
        sun = solar_elevation_deg(0.5 * (t_a_best + t_b_best), lat_c, lon_c).tolist()
        closest = zip(min_km, lat_c.tolist(), lon_c.tolist(), sun, strict=True)
        events: list[Crossover] = []
        for sk, (region, area_km2), near in zip(skeletons, self.regions(seg_lists), closest, strict=True):
            ka_g, kb0_g, kb1_g, i_best, j_best, _, _, _ = sk
            event = self._event(ka_g, kb0_g, kb1_g, i_best, j_best, near, region, area_km2)
            if event is not None:
                events.append(event)
        events.sort(key=lambda e: e.start_a)
        return events

    def hit_runs(
        self, cand_a: np.ndarray, cand_b: np.ndarray, clusters: list[np.ndarray]
    ) -> tuple[list[tuple[np.ndarray, ...]], np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """Runs of exact 1 s hits of each cluster, and the fine tracks they were read from.

        Returns ``(runs, idx_a, track_a, idx_b, track_b)`` or None without hits: per
        cluster with hits (in cluster order) the arrays (a index, first b, last b,
        best dot) of each run of consecutive b hits of one a time, sorted by a.

        Every hit (i, j) lies within half a coarse step of a candidate (I, J), its
        nearest coarse nodes: the candidate radius has that margin. So each a time is
        compared only with the b times around the candidates of its own nearest a node
        (one box per node, about m x 100 instead of 128 x 240 per block), and all
        boxes of the chunk go through a few batched matrix products of similar width.
        """
        m, last = self.m, self.n_fine - 1
        t_lim = int(math.floor(self.t_max_s / self.fs + 1e-9))
        half = m // 2
        sizes = np.array([c.size for c in clusters])
        cid = np.repeat(np.arange(len(clusters)), sizes)
        members = np.concatenate(clusters)
        ca, cb = cand_a[members], cand_b[members]
        order = np.lexsort((cb, ca, cid))
        cid, ca, cb = cid[order], ca[order], cb[order]
        new = np.flatnonzero(np.diff(cid, prepend=-1) | np.diff(ca, prepend=-1))
        t_cid, node = cid[new], ca[new]
        b_min = cb[new]
        b_max = cb[np.append(new[1:], cid.size) - 1]
        r0 = np.maximum(node - half, 0)
        r1 = np.minimum(node + (m - half - 1), last)
        c0 = np.maximum(np.maximum(b_min - half, 0), r0 - t_lim)
        c1 = np.minimum(np.minimum(b_max + half, last), r1 + t_lim)
        keep = (c0 <= c1) & (r0 <= r1)
        t_cid, r0, r1, c0, c1 = t_cid[keep], r0[keep], r1[keep], c0[keep], c1[keep]
        if t_cid.size == 0:
            return None
        idx_a = _range_union(r0, r1)
        track_a = self.fine_track("a", idx_a)
        c0, c1 = self._narrow_boxes(r0, r1, c0, c1, idx_a, track_a)
        keep = c0 <= c1
        t_cid, r0, r1, c0, c1 = t_cid[keep], r0[keep], r1[keep], c0[keep], c1[keep]
        if t_cid.size == 0:
            return None
        idx_b = _range_union(c0, c1)
        track_b = self.fine_track("b", idx_b)
        zero = np.zeros((1, 3))
        padded_a, padded_b = np.vstack((track_a, zero)), np.vstack((track_b, zero))
        width = c1 - c0 + 1
        by_width = np.argsort(width, kind="stable")
        found: list[tuple[np.ndarray, ...]] = []
        g0 = 0
        while g0 < by_width.size:
            w_cap = int(width[by_width[g0]] * 1.25) + 4
            g1 = int(np.searchsorted(width[by_width], w_cap, "right"))
            g1 = min(g1, g0 + max(1, _BATCH_ELEMENTS // (m * w_cap)))
            sel = by_width[g0:g1]
            found.append(self._box_runs(sel, t_cid, r0, r1, c0, c1, int(width[sel].max()), t_lim,
                                        idx_a, padded_a, idx_b, padded_b))
            g0 = g1
        t_all, ka, kb0, kb1, best = (np.concatenate([f[i] for f in found]) for i in range(5))
        if ka.size == 0:
            return None
        order = np.lexsort((kb0, ka, t_all))
        t_all, ka, kb0, kb1, best = t_all[order], ka[order], kb0[order], kb1[order], best[order]
        cuts = np.flatnonzero(np.diff(t_all)) + 1
        runs = [
            (ka[s], kb0[s], kb1[s], best[s])
            for s in (slice(a, b) for a, b in zip(np.r_[0, cuts], np.r_[cuts, ka.size], strict=True))
        ]
        return runs, idx_a, track_a, idx_b, track_b

    def _narrow_boxes(
        self,
        r0: np.ndarray,
        r1: np.ndarray,
        c0: np.ndarray,
        c1: np.ndarray,
        idx_a: np.ndarray,
        track_a: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each box's b columns cut to those near b samples that come close to one of its rows.

        b's track is sampled every ``m // _NARROW_SAMPLES_PER_STEP`` fine steps (s). A hit
        (i, j) is within s/2 steps of b's nearest sample J, so that sample is within ``d``
        plus half of b's largest sample-to-sample distance of a's point at i (5% and
        1 km to spare, as the coarse pass). Samples of each box are checked against
        all its rows (about 10 per row: cheap); columns further than s/2 from every
        such sample go, and boxes with none are dropped (``c0 > c1``). Samples at
        half a coarse step cut the margin to a quarter step: a third fewer columns.
        """
        m = self.m
        s = max(1, m // _NARROW_SAMPLES_PER_STEP)
        half = s // 2
        j_lo = np.maximum(-((half - c0) // s), 0)  # ceil((c0 - half) / s), no sample before 0
        j_hi = (c1 + half) // s
        n_j = j_hi - j_lo + 1
        w = int(n_j.max())
        nodes = j_lo[:, None] + np.arange(w)[None, :]
        node_ok = nodes <= j_hi[:, None]
        node_idx = _range_union(j_lo, j_hi) * s  # = np.unique(nodes[node_ok]) * s
        ub = self.fine_track("b", node_idx)
        adjacent = np.diff(node_idx) == s
        if not adjacent.any():
            return c0, c1
        # The longest step is the one with the longest chord: one arc, not one per step.
        gap = ub[1:][adjacent] - ub[:-1][adjacent]
        chord = math.sqrt(float(np.nanmax((gap * gap).sum(axis=1))))
        step_km = 2.0 * EARTH_RADIUS_KM * math.asin(min(1.0, 0.5 * chord))
        r_km = self.d_km + 0.5 * step_km * 1.05 + 1.0
        if not math.isfinite(r_km) or r_km >= math.pi * EARTH_RADIUS_KM:
            return c0, c1
        cos_r = math.cos(r_km / EARTH_RADIUS_KM) - 1e-12
        rows = r0[:, None] + np.arange(m)[None, :]
        pos_a = np.searchsorted(idx_a, r0)[:, None] + np.arange(m)[None, :]  # rows are runs of idx_a
        pos_a[rows > r1[:, None]] = idx_a.size
        pos_b = np.searchsorted(node_idx, nodes * s)
        pos_b[~node_ok] = node_idx.size
        zero = np.zeros((1, 3))
        ua = np.take(np.vstack((track_a, zero)), pos_a, axis=0)  # np.take: rows 4x faster than [...]
        ub_nodes = np.take(np.vstack((ub, zero)), pos_b, axis=0)
        near = (np.matmul(ua, ub_nodes.transpose(0, 2, 1)) >= cos_r).any(axis=1)
        has = near.any(axis=1)
        first = near.argmax(axis=1)
        last_j = w - 1 - near[:, ::-1].argmax(axis=1)
        new_c0 = np.where(has, np.maximum(c0, (j_lo + first) * s - half), c1 + 1)
        new_c1 = np.where(has, np.minimum(c1, (j_lo + last_j) * s + half), c1)
        return new_c0, new_c1

    def _box_runs(
        self,
        sel: np.ndarray,
        t_cid: np.ndarray,
        r0: np.ndarray,
        r1: np.ndarray,
        c0: np.ndarray,
        c1: np.ndarray,
        w: int,
        t_lim: int,
        idx_a: np.ndarray,
        track_a: np.ndarray,
        idx_b: np.ndarray,
        track_b: np.ndarray,
    ) -> tuple[np.ndarray, ...]:
        """(cluster, a index, first b, last b, best dot) of the runs in boxes ``sel``, padded to ``w``."""
        m = self.m
        rows = r0[sel, None] + np.arange(m)[None, :]
        cols = c0[sel, None] + np.arange(w)[None, :]
        # Padding rows and columns point at a zero row past the track: dot 0, no hit.
        # A box's rows and columns are runs of consecutive entries of idx_a / idx_b.
        pos_a = np.searchsorted(idx_a, r0[sel])[:, None] + np.arange(m)[None, :]
        pos_a[rows > r1[sel, None]] = idx_a.size
        pos_b = np.searchsorted(idx_b, c0[sel])[:, None] + np.arange(w)[None, :]
        pos_b[cols > c1[sel, None]] = idx_b.size
        ua = np.take(track_a, pos_a, axis=0)
        ub = np.take(track_b, pos_b, axis=0)
        dot = np.matmul(ua, ub.transpose(0, 2, 1))
        ok = dot >= self.cos_d
        # Boxes whose rows do not all reach all their columns in time: mask per row.
        timed = np.flatnonzero((c0[sel] < r1[sel] - t_lim) | (c1[sel] > r0[sel] + t_lim))
        if timed.size:
            gap = cols[timed][:, None, :] - rows[timed][:, :, None]
            ok[timed] &= np.abs(gap) <= t_lim
        flat_ok = ok.reshape(-1, w)
        flat_dot = dot.reshape(-1, w)
        r, first, last_c, best = _row_runs(flat_ok, flat_dot)
        box = r // m
        return (
            t_cid[sel][box],
            rows.reshape(-1)[r],
            c0[sel][box] + first,
            c0[sel][box] + last_c,
            best,
        )

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
        if k1 - k0 < _REGION_POINTS:  # every index (what the rounded steps of 1 are)
            return np.arange(k0, k1 + 1, dtype=np.int64)
        # Steps of at least 1: the rounded points are distinct and ascending already.
        return np.linspace(k0, k1, _REGION_POINTS).round().astype(np.int64)

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
            lo_p, hi_p = lo_s[sel], hi_s[sel]
            for g in _split_groups(lo_p, hi_p, lo_p, hi_p, run_gap):
                q0 = max(b_lo, int(lo_p[g].min()) - run_gap)
                q1 = min(b_hi, int(hi_p[g].max()) + run_gap)
                pieces.append((p0, p1, q0, q1))
        return pieces

    def regions(
        self, seg_lists: list[list[tuple[np.ndarray, np.ndarray]]]
    ) -> list[tuple[BaseGeometry, float]]:
        """Each event's region and area: the union of the strip overlaps of its (a, b)
        track pieces, all pieces of the chunk mapped to lon/lat together
        (:func:`~eomatch.orbits.region.overlap_regions`)."""
        flat: list[tuple[np.ndarray, np.ndarray]] = []
        owner: list[int] = []
        for e, segs in enumerate(seg_lists):
            for seg_a, seg_b in segs:
                if not np.isfinite(seg_a).all():  # SGP4 failed somewhere: drop those samples
                    seg_a = seg_a[np.isfinite(seg_a).all(axis=1)]
                if not np.isfinite(seg_b).all():
                    seg_b = seg_b[np.isfinite(seg_b).all(axis=1)]
                if len(seg_a) < 2 or len(seg_b) < 2:
                    continue
                flat.append((seg_a, seg_b))
                owner.append(e)
        parts: list[list[BaseGeometry]] = [[] for _ in seg_lists]
        areas = [0.0] * len(seg_lists)
        done = overlap_regions(flat, 0.5 * self.sw_a, 0.5 * self.sw_b, pad_km=self.pad_km)
        for e, (geom, area) in zip(owner, done, strict=True):
            if not geom.is_empty:
                parts[e].append(geom)
                areas[e] += area
        return [(merge_region_parts(geoms), area) for geoms, area in zip(parts, areas, strict=True)]

    def _event(
        self,
        ka: np.ndarray,
        kb0: np.ndarray,
        kb1: np.ndarray,
        i_best: int,
        j_best: int,
        closest: tuple[float, float, float, float],
        region: BaseGeometry,
        area_km2: float,
    ) -> Crossover | None:
        """The event, or None when a filter drops it; ``closest`` is (distance km, centre
        lat, centre lon, solar elevation) at closest approach, computed for the batch."""
        p = self.p
        min_km, lat_c, lon_c, sun = closest
        t_a_best = self.start_s + i_best * self.fs
        t_b_best = self.start_s + j_best * self.fs
        anti = crosses_antimeridian(region)
        if p.exclude_antimeridian_events and anti:
            return None
        if self.bbox is not None:
            target = region if not region.is_empty else Point(lon_c, lat_c)
            if not target.intersects(self.bbox):
                return None
        if p.exclude_night_events and sun < p.min_solar_elevation_deg:
            return None
        region, tol_km = self.finish_region(region)
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
            centre_lat_deg=lat_c,
            centre_lon_deg=lon_c,
            region=region,
            region_area_km2=area_km2,
            solar_elevation_deg=sun,
            crosses_antimeridian=anti,
            region_tolerance_km=tol_km,
        )

    # driver ------------------------------------------------------------------------------

    def step(self, chunk: int) -> list[Crossover]:
        """Events whose clusters are complete once ``chunk`` is searched (chunks in order)."""
        n_chunks = self.n_chunks
        ca, cb, cn = self.coarse_candidates(chunk)
        carry_a, carry_b, carry_near = self._carry
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
            self._carry = (cand_a[keep], cand_b[keep], near[keep])
        else:
            self._carry = (np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64), np.empty(0, bool))
        ready = [c for c in ready if near[c].any()]
        return self.refine(cand_a, cand_b, ready)

    def held_from(self) -> int | None:
        """First coarse node a cluster still held for the next chunk needs, if any."""
        carry_a, carry_b, _ = self._carry
        if carry_a.size == 0:
            return None
        return int(min(carry_a.min(), carry_b.min())) // self.m

    def run(self, progress: Progress | None = None) -> Iterator[Crossover]:
        # Progress counts days of the window searched: a caller summing several
        # pairs sets the total itself; alone, the total is this window.
        n_chunks = self.n_chunks
        if progress is not None and progress.total is None:
            progress.total = self.span_days
        reported_days = 0.0
        for chunk in range(n_chunks):
            yield from self.step(chunk)
            self.release(chunk)
            if progress is not None:
                covered = self.span_days * (chunk + 1) / n_chunks
                progress.update(covered - reported_days)
                reported_days = covered


class _GridPairSearch(PairSearch):
    """The search on :class:`TrackGrid` s, which a constellation's pairs share.

    Each satellite's coarse nodes are propagated once per grid; the coarse pass
    compares blocks of them with matrix products (:func:`_close_in_band`).
    """

    def __init__(self, inputs: PairInputs, grids: tuple[TrackGrid, TrackGrid] | None = None) -> None:
        super().__init__(inputs)
        step_s = self.m * self.fs
        if grids is None:
            grids = (TrackGrid(self.a, self.start_s, step_s), TrackGrid(self.b, self.start_s, step_s))
        self.grid_a, self.grid_b = grids

    def fine_track(self, side: str, fine_idx: np.ndarray) -> np.ndarray:
        """Nadir unit vectors on the fine grid, interpolated between the grid's SGP4 nodes
        (each sample once for all the pairs sharing the grid)."""
        grid = self.grid_a if side == "a" else self.grid_b
        return grid.fine_unit_at(fine_idx, self.fs)

    def coarse_candidates(self, chunk: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """See :meth:`PairSearch.coarse_candidates`; nodes come from the shared grids."""
        m = self.m
        k0 = chunk * self.chunk_c
        ka = np.arange(k0, min(k0 + self.chunk_c, self.n_coarse))
        kb = np.arange(max(0, k0 - self.pad_c), min(self.n_coarse, ka[-1] + 1 + self.pad_c))
        ua, lat_a, lon_a = self.grid_a.nodes(ka)
        ub, lat_b, lon_b = self.grid_b.nodes(kb)
        va = np.isfinite(ua).all(axis=1)
        vb = np.isfinite(ub).all(axis=1)
        empty = np.empty(0, dtype=np.int64)
        if va.sum() == 0 or vb.sum() == 0:
            return empty, empty, np.empty(0, dtype=bool)
        step_a = self.grid_a.max_step_km(int(ka[0]), int(ka[-1]) + 1)  # once per satellite
        step_b = self.grid_b.max_step_km(int(kb[0]), int(kb[-1]) + 1)
        self.margin_km = 0.5 * (step_a + step_b) * 1.05 + 1.0
        r_km = min(self.d_km + self.margin_km, math.pi * EARTH_RADIUS_KM)
        r_chord = 2.0 * math.sin(r_km / (2.0 * EARTH_RADIUS_KM))
        dt_tol = self.t_max_s + m * self.fs
        ia_all, ib_all = np.flatnonzero(va), np.flatnonzero(vb)
        ua_ok, ub_ok = np.take(ua, ia_all, axis=0), np.take(ub, ib_all, axis=0)
        ka_ok, kb_ok = ka[ia_all], kb[ib_all]
        # A satellite's blocks for a span are the same in all its pairs: made once.
        blocks_a = self.grid_a.derived(("blocks", int(ka[0]), int(ka[-1])), lambda: _blocks(ua_ok, ka_ok))
        blocks_b = self.grid_b.derived(("blocks", int(kb[0]), int(kb[-1])), lambda: _blocks(ub_ok, kb_ok))
        pi, pj = _close_in_band(
            ua_ok, ub_ok, ka_ok, kb_ok, int(dt_tol // (m * self.fs)), r_chord, (blocks_a, blocks_b)
        )
        i = ia_all[pi]
        j = ib_all[pj]
        chord = np.linalg.norm(np.take(ua, i, axis=0) - np.take(ub, j, axis=0), axis=1)
        keep = (chord <= r_chord) & (np.abs(kb[j] - ka[i]) * m * self.fs <= dt_tol)
        i, j = i[keep], j[keep]
        if self.bbox is not None:
            near = self.near_bbox(lat_a[i], lon_a[i]) | self.near_bbox(lat_b[j], lon_b[j])
        else:
            near = np.ones(i.size, dtype=bool)
        return ka[i] * m, kb[j] * m, near

    def release(self, chunk: int) -> None:
        """Let this pair's grids drop nodes no later chunk of it needs."""
        for grid in (self.grid_a, self.grid_b):
            _forget_grid(grid, chunk + 1, [self])


def _forget_grid(grid: TrackGrid, next_chunk: int, searches: Sequence[_GridPairSearch]) -> None:
    """Drop the grid's nodes before what any search using it needs from ``next_chunk`` on."""
    need: list[int] = []
    for search in searches:
        if grid is not search.grid_a and grid is not search.grid_b:
            continue
        need.append(search.coarse_span(next_chunk)[0])
        held = search.held_from()
        if held is not None:
            need.append(held)
    if need:
        grid.forget_before(min(need) - 2)


def search_pair(
    tles_a: TleSet,
    tles_b: TleSet,
    start: datetime,
    end: datetime,
    params: CrossoverParams,
    progress: Progress | None = None,
) -> Iterator[Crossover]:
    """Crossover events of two satellites (already resolved to their TLE sets)."""
    search = _GridPairSearch(PairInputs(tles_a, tles_b, to_unix_s(start), to_unix_s(end), params))
    return search.run(progress)


def search_constellation(
    tles: Mapping[str, TleSet],
    pairs: Sequence[tuple[str, str]],
    start: datetime,
    end: datetime,
    params: CrossoverParams,
    progress: Progress | None = None,
    workers: int = 1,
) -> Iterator[Crossover]:
    """Crossover events of several pairs, each satellite propagated once for all of them.

    ``tles`` maps canonical names to TLE sets, ``pairs`` names (a, b) in that
    mapping. The period is walked once, chunk by chunk (``params.chunk_s``); in
    each, every pair is searched in the given order on the shared tracks. Events
    come out chunk by chunk, then pair by pair, sorted by ``start_a``: the same
    events as searching each pair alone (:func:`search_pair`). ``progress``
    counts days of the window once per pair, like the per-pair search.

    ``workers`` > 1 shares the pairs out to that many processes (each walks the
    period for its pairs, a few chunks ahead at most); the events and their order
    are the same as with one.
    """
    start_s, end_s = to_unix_s(start), to_unix_s(end)
    if not pairs:
        return
    probe = PairSearch(PairInputs(tles[pairs[0][0]], tles[pairs[0][1]], start_s, end_s, params))
    n_chunks = probe.n_chunks
    span_days = (end_s - start_s) / 86400.0
    if progress is not None and progress.total is None:
        progress.total = span_days * len(pairs)
    if workers > 1 and len(pairs) > 1:
        batches = _chunks_in_processes(tles, pairs, start_s, end_s, params, min(workers, len(pairs)))
    else:
        batches = _chunks(tles, pairs, start_s, end_s, params)
    reported_days = 0.0
    for chunk, per_pair in enumerate(batches):
        for events in per_pair:
            yield from events
        if progress is not None:
            covered = span_days * len(pairs) * (chunk + 1) / n_chunks
            progress.update(covered - reported_days)
            reported_days = covered


def _chunks(
    tles: Mapping[str, TleSet],
    pairs: Sequence[tuple[str, str]],
    start_s: float,
    end_s: float,
    params: CrossoverParams,
) -> Iterator[list[list[Crossover]]]:
    """Per chunk, each pair's events (in ``pairs`` order), on tracks shared by the pairs."""
    grids: dict[str, TrackGrid] = {}
    searches: list[_GridPairSearch] = []
    for a, b in pairs:
        inputs = PairInputs(tles[a], tles[b], start_s, end_s, params)
        probe = PairSearch(inputs)
        step_s = probe.m * probe.fs
        for name in (a, b):
            grids.setdefault(name, TrackGrid(tles[name], start_s, step_s))
        searches.append(_GridPairSearch(inputs, (grids[a], grids[b])))
    for chunk in range(searches[0].n_chunks):
        yield [search.step(chunk) for search in searches]
        for grid in grids.values():
            _forget_grid(grid, chunk + 1, searches)


_AHEAD_CHUNKS = 4
"""How many chunks a worker process may run ahead of the consumer (bounds memory)."""


def _chunks_in_processes(
    tles: Mapping[str, TleSet],
    pairs: Sequence[tuple[str, str]],
    start_s: float,
    end_s: float,
    params: CrossoverParams,
    workers: int,
) -> Iterator[list[list[Crossover]]]:
    """:func:`_chunks` with the pairs shared out to ``workers`` processes, merged back in order.

    Each process gets every ``workers``-th pair and sends one batch per chunk
    through its own bounded queue; the batches are put back in ``pairs`` order.
    """
    import multiprocessing
    import queue as queue_mod

    ctx = multiprocessing.get_context("spawn")  # no fork of a process that may hold threads
    groups = [list(range(w, len(pairs), workers)) for w in range(workers)]
    procs = []
    queues = []
    for group in groups:
        names = sorted({n for i in group for n in pairs[i]})
        sets = {n: (tles[n].satellite, tles[n].element_sets, tles[n].sources, tles[n].max_age_days) for n in names}
        q = ctx.Queue(maxsize=_AHEAD_CHUNKS)
        proc = ctx.Process(
            target=_chunk_worker,
            args=(sets, [pairs[i] for i in group], start_s, end_s, params, q),
            daemon=True,
        )
        proc.start()
        procs.append(proc)
        queues.append(q)
    try:
        n_chunks = PairSearch(PairInputs(tles[pairs[0][0]], tles[pairs[0][1]], start_s, end_s, params)).n_chunks
        for _ in range(n_chunks):
            merged: list[list[Crossover]] = [[] for _ in pairs]
            for group, q, proc in zip(groups, queues, procs, strict=True):
                while True:
                    try:
                        kind, payload = q.get(timeout=1.0)
                        break
                    except queue_mod.Empty:
                        if not proc.is_alive():
                            raise RuntimeError(
                                f"crossover worker process ended (exit code {proc.exitcode})"
                            ) from None
                if kind == "error":
                    raise RuntimeError(f"crossover worker failed: {payload}")
                for i, events in zip(group, payload, strict=True):
                    merged[i] = events
            yield merged
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
            proc.join(timeout=5.0)
        for q in queues:
            q.close()
            q.cancel_join_thread()


def _chunk_worker(
    sets: dict[str, tuple[Any, ...]],
    pairs: list[tuple[str, str]],
    start_s: float,
    end_s: float,
    params: CrossoverParams,
    out: Any,
) -> None:
    """Process body: rebuild the TLE sets (SGP4 records do not pickle), send each chunk's events."""
    try:
        tles = {
            name: TleSet(satellite=sat, element_sets=list(es), sources=list(src), max_age_days=age)
            for name, (sat, es, src, age) in sets.items()
        }
        for batch in _chunks(tles, pairs, start_s, end_s, params):
            out.put(("events", batch))
    except Exception as exc:  # the consumer raises it, with this message
        out.put(("error", f"{type(exc).__name__}: {exc}"))
