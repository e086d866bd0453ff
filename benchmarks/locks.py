"""File locks: eomatch's flock locks vs the ``filelock`` library, on the same files in the same run.

Three measurements, each with both implementations:

* **uncontended** acquire + release of one lock (what every item write of the catalogue
  does: ``catalogue/locks.py``'s ``StripeLock`` keeps its file open, so a take is one
  ``flock``; ``filelock.FileLock`` opens, locks, unlocks and closes the file each time);
* **contended try**: a non-blocking attempt on a lock another open file holds (what
  ``transfer.py`` does on a ``.part`` file and the supervisor on ``supervisor.lock``:
  ``flock(LOCK_EX | LOCK_NB)`` on the file's own descriptor vs ``FileLock.acquire(timeout=0)``);
* **hand-off**: how long a blocked waiter takes to get the lock once the holder releases it
  (a blocking ``flock`` wakes at once; ``filelock`` polls every ``poll_interval``, 50 ms).

    .venv/bin/python benchmarks/locks.py --n 20000

Prints ``ratio=<filelock s per uncontended acquire+release ÷ ours>`` last (> 1: ours is faster).
"""

from __future__ import annotations

import argparse
import fcntl
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from _timing import best_of
from filelock import FileLock, Timeout

from eomatch.catalogue.locks import StripeLock


def uncontended(folder: Path, n: int, repeat: int) -> tuple[float, float]:
    ours = StripeLock(folder / "ours.lock")
    theirs = FileLock(str(folder / "theirs.lock"))

    def run_ours(k: int) -> None:
        for _ in range(k):
            with ours:
                pass

    def run_theirs(k: int) -> None:
        for _ in range(k):
            with theirs:
                pass

    result = best_of(run_ours, n, repeat), best_of(run_theirs, n, repeat)
    ours.close()
    return result


def contended_try(folder: Path, n: int, repeat: int) -> tuple[float, float]:
    path = folder / "held.lock"
    holder = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(holder, fcntl.LOCK_EX)  # another open file holds it, as another process would
    mine = os.open(path, os.O_RDWR)
    theirs = FileLock(str(path))

    def run_ours(k: int) -> None:
        for _ in range(k):
            try:
                fcntl.flock(mine, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            raise AssertionError("the held lock was taken")

    def run_theirs(k: int) -> None:
        for _ in range(k):
            try:
                theirs.acquire(timeout=0)
            except Timeout:
                continue
            raise AssertionError("the held lock was taken")

    try:
        return best_of(run_ours, n, repeat), best_of(run_theirs, n, repeat)
    finally:
        os.close(mine)
        os.close(holder)


def hand_off(folder: Path, rounds: int, make: Callable[[Path], object]) -> float:
    """Median seconds from the holder's release to the blocked waiter holding the lock."""
    path = folder / f"handoff-{make.__name__}.lock"
    delays = []
    for _ in range(rounds):
        holder, waiter = make(path), make(path)  # two locks on one file: two open files
        got: list[float] = []
        holder.__enter__()  # type: ignore[attr-defined]
        t = threading.Thread(target=_wait_for, args=(waiter, got))
        t.start()
        time.sleep(0.02)  # the waiter is blocked by now
        released = time.perf_counter()
        holder.__exit__(None, None, None)  # type: ignore[attr-defined]
        t.join()
        delays.append(got[0] - released)
    delays.sort()
    return delays[len(delays) // 2]


def _wait_for(lock: object, got: list[float]) -> None:
    """Block on ``lock``, note when it was taken, release it."""
    lock.__enter__()  # type: ignore[attr-defined]
    got.append(time.perf_counter())
    lock.__exit__(None, None, None)  # type: ignore[attr-defined]


def stripe(path: Path) -> StripeLock:
    return StripeLock(path)


def filelock(path: Path) -> FileLock:
    return FileLock(str(path))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000, help="acquisitions per timed run")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=15, help="hand-offs timed")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="eomatch-locks-") as tmp:
        folder = Path(tmp)
        ours_u, theirs_u = uncontended(folder, args.n, args.repeat)
        print(f"uncontended acquire+release: ours {ours_u * 1e6:.2f} us, filelock {theirs_u * 1e6:.2f} us "
              f"({theirs_u / ours_u:.1f}x)")  # fmt: skip
        ours_c, theirs_c = contended_try(folder, args.n, args.repeat)
        print(f"contended non-blocking try: ours {ours_c * 1e6:.2f} us, filelock {theirs_c * 1e6:.2f} us "
              f"({theirs_c / ours_c:.1f}x)")  # fmt: skip
        ours_h, theirs_h = hand_off(folder, args.rounds, stripe), hand_off(folder, args.rounds, filelock)
        print(f"hand-off to a blocked waiter (median of {args.rounds}): ours {ours_h * 1e3:.3f} ms, "
              f"filelock {theirs_h * 1e3:.3f} ms")  # fmt: skip
    print(f"ratio={theirs_u / ours_u:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
