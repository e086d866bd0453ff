"""Run an iterator a few steps ahead in a thread, so producing and consuming overlap.

``eomatch-query`` fetches the next page of a search while the current one is
written to disk; ``eomatch-ingest`` reads and checks the next batch of files while
the database loads the current one. Network waits, file reads, PostgreSQL and
SQLite release the GIL, so the two sides really run at the same time.
:class:`Fanout` runs several such sources at once (``eomatch-query``'s search
windows, each paged by its own worker), merging what they yield in arrival order.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import TracebackType
from typing import Generic, Self, TypeVar

T = TypeVar("T")

_DONE = object()


class _Workers(Generic[T]):
    """Daemon threads handing values, their end or their error to one consumer.

    Shared by :class:`Prefetcher` and :class:`Fanout`, so both stop, bound their queue
    and raise a producer's exception in the consumer the same way. Each thread runs
    :meth:`_produce`; at most ``depth`` values wait in the queue. A thread never blocks
    on a queue nobody reads: once stopped, it gives up after the value it is producing.
    """

    def __init__(self, depth: int) -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _start(self, names: Sequence[str]) -> None:
        self._threads = [threading.Thread(target=self._work, name=name, daemon=True) for name in names]
        for thread in self._threads:
            thread.start()

    def _produce(self) -> Iterable[T]:
        raise NotImplementedError

    def _put(self, value: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(value, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _work(self) -> None:
        try:
            for value in self._produce():
                if not self._put(value):
                    return
            self._put(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(exc)

    def __iter__(self) -> Iterator[T]:
        try:
            running = len(self._threads)
            while running:
                value = self._queue.get()
                if value is _DONE:
                    running -= 1
                    continue
                if isinstance(value, BaseException):
                    raise value
                yield value  # type: ignore[misc]
        finally:
            self._stop.set()

    def close(self, wait_s: float = 30.0) -> None:
        """Stop the threads; wait up to ``wait_s`` in all for them to finish what they are doing."""
        self._stop.set()
        deadline = time.monotonic() + wait_s
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class Prefetcher(_Workers[T]):
    """Iterates ``source`` in a daemon thread, at most ``depth`` values ahead.

    Values come out in order; an exception raised by ``source`` is raised in the
    consumer, where it would have been raised without the thread. When the consumer
    stops early (``break``, an error, :meth:`close`), the thread stops after the
    value it is producing: it never blocks on a queue nobody reads.
    """

    def __init__(self, source: Iterable[T], depth: int = 1, name: str = "prefetch") -> None:
        super().__init__(depth)
        self._source = source
        self._start([name])
        self._thread = self._threads[0]

    def _produce(self) -> Iterable[T]:
        return self._source


class Fanout(_Workers[T]):
    """Iterates several sources at once in ``workers`` daemon threads, merged in arrival order.

    ``sources`` are callables, each making an iterable when a worker takes it up (so a
    source's requests run in that worker's thread, e.g. with that thread's HTTP session
    from ``worker_state``); they are taken up in the given order. At most ``depth`` values
    wait for the consumer, so fast sources cannot fill memory. The first exception of any
    source is raised in the consumer, and the other workers stop after the value they are
    producing; when the consumer stops early (``break``, an error, :meth:`close`) they stop too.
    """

    def __init__(
        self,
        sources: Sequence[Callable[[], Iterable[T]]],
        workers: int,
        depth: int = 2,
        name: str = "fanout",
    ) -> None:
        super().__init__(depth)
        self._sources = list(sources)
        self._next = 0
        self._taken = threading.Lock()
        self._start([f"{name}-{i}" for i in range(max(1, min(workers, len(self._sources))))])

    def _take(self) -> Callable[[], Iterable[T]] | None:
        with self._taken:
            if self._next >= len(self._sources) or self._stop.is_set():
                return None
            source = self._sources[self._next]
            self._next += 1
            return source

    def _produce(self) -> Iterator[T]:
        while (source := self._take()) is not None:
            yield from source()
