"""eomatch.prefetch.Fanout: several sources paged at once (eomatch-query's windows)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from eomatch.prefetch import Fanout


def _source(name: str, n: int, log: list[str] | None = None) -> Callable[[], Iterator[str]]:
    def make() -> Iterator[str]:
        for i in range(n):
            if log is not None:
                log.append(f"{name}{i}")
            yield f"{name}{i}"

    return make


def test_every_value_of_every_source_comes_out_once() -> None:
    sources = [_source(chr(ord("a") + s), s * 3) for s in range(10)]
    got = list(Fanout(sources, workers=3, depth=2))
    expected = [f"{chr(ord('a') + s)}{i}" for s in range(10) for i in range(s * 3)]
    assert sorted(got) == sorted(expected) and len(got) == len(expected)
    assert list(Fanout([], workers=4)) == []


def test_sources_really_run_at_the_same_time() -> None:
    """Four sources that each wait 0.3 s finish in about one wait with four workers."""
    barrier = threading.Barrier(4, timeout=5)

    def waiting() -> Iterator[int]:
        barrier.wait()  # raises BrokenBarrierError unless all four run at once
        yield 1

    t = time.monotonic()
    assert list(Fanout([waiting] * 4, workers=4)) == [1, 1, 1, 1]
    assert time.monotonic() - t < 5


def test_an_error_in_one_source_is_raised_in_the_consumer_and_stops_the_others() -> None:
    produced: list[str] = []

    def failing() -> Iterator[str]:
        yield "x0"
        raise ValueError("window 2 failed")

    slow = [_source(f"s{k}-", 10_000, produced) for k in range(3)]
    fanout = Fanout([slow[0], failing, slow[1], slow[2]], workers=2, depth=2)
    with pytest.raises(ValueError, match="window 2 failed"):
        for _ in fanout:
            time.sleep(0.001)
    fanout.close(wait_s=5)
    assert not any(t.is_alive() for t in fanout._threads)  # noqa: SLF001
    assert len(produced) < 10_000  # the slow sources did not run to their end


def test_it_runs_ahead_by_at_most_depth_and_stops_when_the_consumer_does() -> None:
    produced: list[str] = []
    fanout = Fanout([_source(f"s{k}-", 1000, produced) for k in range(4)], workers=2, depth=3)
    time.sleep(0.3)
    assert len(produced) <= 3 + 2 * 2  # depth queued, and per worker one being put and one being made
    for value in fanout:
        if value:
            break
    fanout.close(wait_s=5)
    assert not any(t.is_alive() for t in fanout._threads)  # noqa: SLF001
    assert len(produced) < 20
