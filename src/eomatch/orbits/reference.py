"""Grouping of brute-force crossover hits into events.

The test suite and ``benchmarks/crossovers.py`` check :func:`find_crossovers`
against slow, obviously-correct searches at 1 s steps. Those searches differ in
how they enumerate hits (all pairs vs one comparison per time shift) but must
group the hits with the same rules as each other, so the rules live here once:
hits far apart in either satellite's time are different events, and a long group
is cut where satellite A crosses the equator (two passes over the same region).
"""

from __future__ import annotations

import numpy as np


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
