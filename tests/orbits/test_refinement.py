"""The refinement's pruning never drops a 1 s hit.

The coarse pass keeps node pairs within the threshold plus what a coarse step can
hide, and the refinement narrows each box's b columns to those near b samples
that come close to one of its rows (:meth:`PairSearch._narrow_boxes`). Both are
bounds; these tests compare every hit the search refines with all pairs of 1 s
samples of the same (interpolated) tracks, on thresholds where hits are rare
and near misses many: one just above an event's closest approach.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from eomatch.orbits import CrossoverParams, load_tles
from eomatch.orbits.crossovers import PairInputs, _GridPairSearch, _row_runs
from eomatch.orbits.propagate import EARTH_RADIUS_KM, TrackGrid, to_unix_s
from eomatch.orbits.tle import PACKAGED_TLE_DIR
from eomatch.settings import load_settings

SETTINGS = load_settings(None, {}, environ={})
START = datetime(2022, 5, 21, tzinfo=UTC)
END = START + timedelta(hours=12)


class _Recording(_GridPairSearch):
    """The grid search, keeping every run of hits it refines."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003 - passed through
        super().__init__(*args, **kwargs)
        self.hits: set[tuple[int, int]] = set()
        self.closest_km: list[float] = []

    def hit_runs(self, cand_a, cand_b, clusters):  # noqa: ANN001, ANN201 - as the base
        found = super().hit_runs(cand_a, cand_b, clusters)
        if found is not None:
            for ka, kb0, kb1, best in found[0]:
                for i, j0, j1 in zip(ka.tolist(), kb0.tolist(), kb1.tolist(), strict=True):
                    self.hits.update((i, j) for j in range(j0, j1 + 1))
                self.closest_km.append(EARTH_RADIUS_KM * float(np.arccos(min(1.0, best.max()))))
        return found


def _search(tles, a: str, b: str, params: CrossoverParams) -> _Recording:
    search = _Recording(PairInputs(tles[a], tles[b], to_unix_s(START), to_unix_s(END), params))
    list(search.run())
    return search


def _brute_force(search: _Recording) -> tuple[set[tuple[int, int]], set[tuple[int, int]]]:
    """All (i, j) within the thresholds, and those within 1e-12 of the distance one."""
    fs, n = search.fs, search.n_fine
    times = search.start_s + np.arange(n) * fs
    step_s = search.m * fs
    ua = TrackGrid(search.a, search.start_s, step_s).fine_unit(times)
    ub = TrackGrid(search.b, search.start_s, step_s).fine_unit(times)
    t_lim = int(search.t_max_s / fs)
    hits: set[tuple[int, int]] = set()
    edge: set[tuple[int, int]] = set()
    for i0 in range(0, n, 2000):
        i1 = min(n, i0 + 2000)
        j0, j1 = max(0, i0 - t_lim), min(n, i1 + t_lim)
        dot = ua[i0:i1] @ ub[j0:j1].T
        gap = np.arange(j0, j1)[None, :] - np.arange(i0, i1)[:, None]
        timed = np.abs(gap) <= t_lim
        for mask, out in ((dot >= search.cos_d, hits), (np.abs(dot - search.cos_d) <= 1e-12, edge)):
            hi, hj = np.nonzero(mask & timed)
            out.update(zip((hi + i0).tolist(), (hj + j0).tolist(), strict=True))
    return hits, edge


@pytest.fixture(scope="module")
def tles():
    return load_tles([PACKAGED_TLE_DIR], SETTINGS.satellites, ["S2A", "L9", "S3A"])


@pytest.mark.parametrize(
    ("a", "b", "dist_km", "time_s"),
    [("Sentinel-2A", "Landsat-9", 100.0, 1800.0), ("Sentinel-3A", "Landsat-9", 30.0, 600.0)],
)
def test_every_hit_is_refined(tles, a: str, b: str, dist_km: float, time_s: float) -> None:
    params = CrossoverParams(space_diff_threshold_km=dist_km, time_diff_threshold_s=time_s)
    search = _search(tles, a, b, params)
    want, edge = _brute_force(search)
    assert len(want) > 100
    assert search.hits ^ want <= edge  # the same hits, but for dots at the threshold itself


def test_a_threshold_just_above_a_closest_approach_keeps_its_few_hits(tles) -> None:
    """The hardest case for a bound: an event that only just makes it."""
    wide = _search(tles, "Sentinel-2A", "Landsat-9", CrossoverParams(space_diff_threshold_km=100.0))
    closest_km = min(wide.closest_km)
    params = CrossoverParams(space_diff_threshold_km=closest_km + 0.01)
    search = _search(tles, "Sentinel-2A", "Landsat-9", params)
    want, edge = _brute_force(search)
    assert 0 < len(want) < 2000  # a handful of near misses made it, the rest did not
    assert search.hits ^ want <= edge


def test_row_runs_with_two_runs_in_a_row_and_a_run_to_the_last_cell() -> None:
    """Each run of hits in each row, with the best dot over the run alone."""
    rng = np.random.default_rng(7)
    dot = rng.random((5, 9))
    ok = np.zeros((5, 9), dtype=bool)
    ok[0, 1:3] = ok[0, 5:7] = True  # two runs in one row
    ok[2, 4] = True
    ok[4, 6:9] = True  # a single run that ends the array
    want = []
    for r in range(5):
        c = 0
        while c < 9:
            if ok[r, c]:
                c1 = c
                while c1 + 1 < 9 and ok[r, c1 + 1]:
                    c1 += 1
                want.append((r, c, c1, float(dot[r, c : c1 + 1].max())))
                c = c1 + 1
            else:
                c += 1
    rows, first, last, best = _row_runs(ok, dot)
    got = sorted(zip(rows.tolist(), first.tolist(), last.tolist(), best.tolist(), strict=True))
    assert got == want
