"""eomatch.prefetch: the read-ahead thread query and ingest share."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from eomatch.prefetch import Prefetcher


def test_values_come_in_order_and_errors_where_they_would_have_been_raised() -> None:
    def source() -> Iterator[int]:
        yield from range(5)
        raise ValueError("page 6 failed")

    got: list[int] = []
    with pytest.raises(ValueError, match="page 6 failed"):
        for value in Prefetcher(source(), depth=2):
            got.append(value)
    assert got == [0, 1, 2, 3, 4]


def test_it_runs_ahead_by_at_most_depth_and_stops_when_the_consumer_does() -> None:
    produced: list[int] = []
    started = threading.Event()

    def source() -> Iterator[int]:
        for i in range(1000):
            produced.append(i)
            started.set()
            yield i

    prefetch = Prefetcher(source(), depth=2)
    started.wait(5)
    time.sleep(0.3)
    assert len(produced) <= 4  # depth in the queue, one being put, one being made
    for value in prefetch:
        if value == 1:
            break
    prefetch.close(wait_s=5)
    assert not prefetch._thread.is_alive()  # noqa: SLF001
    assert len(produced) < 10
