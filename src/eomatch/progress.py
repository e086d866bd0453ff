"""Progress for long work: rate, ETA, and a one-line summary; silent with ``-q``.

Why not tqdm (the maintained library; not a dependency of eomatch, only of a validator
it may bring): ``benchmarks/progress_overhead.py`` times both on the same updates in the
same run, into a log stream with a 0.5 s redraw interval: 108 vs 172 ns per update
counting items, 131 vs 220 ns counting bytes, 44 vs 69 ns silenced (``ratio=1.59``).
Both are cheap next to the work counted, so speed is not the main reason; these are:

* in a log (not a terminal) the last line is the final state, written once more at
  close, one plain line per redraw, no carriage returns or bar characters;
* ``note`` appends the caller's running figures (events found, failures) to the line;
* ``-q`` prints nothing, and the caller's summary line stays the caller's;
* the formats the tests and docs pin: ``download: 1/3 products (33%) 0.1 products/s
  ETA 0:20``, two significant digits for slow rates, a total that was an estimate is no
  ceiling (``12/12 (100%)``, never 120 %), the first update drawn whatever the clock's
  origin, ``elapsed_s()`` for the summary.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


def _fmt_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:d}:{s:02d}"


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


class Progress:
    """Counts work done and redraws one status line at most ``interval_s`` apart.

    ``unit="B"`` formats counts as bytes (bytes/s). ``total`` may be unknown (None);
    when known the line shows a percentage and an ETA. ``note`` adds the caller's own
    running figures (e.g. events found so far) at the end of the line.
    """

    def __init__(
        self,
        label: str,
        total: int | None = None,
        unit: str = "items",
        quiet: bool = False,
        stream: TextIO | None = None,
        interval_s: float = 0.5,
        note: Callable[[], str] | None = None,
        decimals: int = 0,
    ) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.interval_s = interval_s
        self.note = note
        self.decimals = decimals
        self.done: float = 0
        self.start = time.monotonic()
        self._last: float | None = None  # never drawn: the first update draws, whatever the clock's origin
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._drawn = False
        self._drawn_done: float = 0

    def _count(self, n: float, with_unit: bool = True) -> str:
        if self.unit == "B":
            return format_bytes(n)
        return f"{n:,.{self.decimals}f} {self.unit}" if with_unit else f"{n:,.{self.decimals}f}"

    def rate(self) -> float:
        elapsed = max(time.monotonic() - self.start, 1e-9)
        return self.done / elapsed

    def line(self) -> str:
        rate = self.rate()
        if self.unit == "B":
            rate_s = f"{format_bytes(rate)}/s"
        else:
            # slow work (a few products a second) keeps two significant digits, not "0/s"
            rate_s = f"{rate:,.{self.decimals}f} {self.unit}/s" if rate >= 10 else f"{rate:.2g} {self.unit}/s"
        note = f", {self.note()}" if self.note is not None else ""
        if self.total:
            total = max(self.total, self.done)  # a total that was an estimate is not a ceiling
            pct = 100.0 * self.done / total
            eta = (total - self.done) / rate if rate > 0 else float("inf")
            eta_s = _fmt_duration(eta) if eta != float("inf") else "?"
            return (
                f"{self.label}: {self._count(self.done, with_unit=False)}/{self._count(total)} "
                f"({pct:.0f}%) {rate_s} ETA {eta_s}{note}"
            )
        return f"{self.label}: {self._count(self.done)} {rate_s}{note}"

    def update(self, n: float = 1) -> None:
        self.done += n
        if self.quiet:
            return
        now = time.monotonic()
        if self._last is None or now - self._last >= self.interval_s:
            self._last = now
            self._draw()

    def _draw(self) -> None:
        if self._tty:
            self.stream.write("\r\033[K" + self.line())
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()
        self._drawn = True
        self._drawn_done = self.done

    def close(self) -> None:
        """Clear the status line; the caller prints its own summary.

        In a log (not a terminal) the last state is written once more, so the file
        ends with where the work stopped rather than where it was half a second before.
        """
        if self.quiet:
            return
        if not self._tty and self._drawn and self._drawn_done != self.done:
            self._draw()
        if self._tty and self._drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()

    def elapsed_s(self) -> float:
        return time.monotonic() - self.start

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
