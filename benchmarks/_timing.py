"""Timing of micro-benchmarks (benchmarks/locks.py, progress_overhead.py): the best of
several runs, so one run slowed by another job on the shared cores does not count."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_of(fn: Callable[[int], None], n: int, repeat: int) -> float:
    """Seconds per call of the best of ``repeat`` runs of ``fn(n)`` (``n`` calls each)."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn(n)
        best = min(best, time.perf_counter() - t)
    return best / n
