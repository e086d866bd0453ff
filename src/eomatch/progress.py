"""Progress for long work: rate, ETA, and a one-line summary; silent with ``-q``."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _fmt_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:d}:{s:02d}"


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


class Progress:
    """Counts work done and redraws one status line at most ``interval_s`` apart.

    ``unit="B"`` formats counts as bytes (bytes/s). ``total`` may be unknown (None).
    """

    def __init__(
        self,
        label: str,
        total: int | None = None,
        unit: str = "items",
        quiet: bool = False,
        stream: TextIO | None = None,
        interval_s: float = 0.5,
    ) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.interval_s = interval_s
        self.done = 0
        self.start = time.monotonic()
        self._last = 0.0
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._drawn = False

    def _count(self, n: float) -> str:
        return _fmt_bytes(n) if self.unit == "B" else f"{int(n)} {self.unit}"

    def rate(self) -> float:
        elapsed = max(time.monotonic() - self.start, 1e-9)
        return self.done / elapsed

    def line(self) -> str:
        rate = self.rate()
        rate_s = f"{_fmt_bytes(rate)}/s" if self.unit == "B" else f"{rate:,.0f} {self.unit}/s"
        if self.total:
            pct = 100.0 * self.done / self.total
            eta = (self.total - self.done) / rate if rate > 0 else float("inf")
            eta_s = _fmt_duration(eta) if eta != float("inf") else "?"
            return (
                f"{self.label}: {self._count(self.done)}/{self._count(self.total)} "
                f"({pct:.0f}%) {rate_s} ETA {eta_s}"
            )
        return f"{self.label}: {self._count(self.done)} {rate_s}"

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.quiet:
            return
        now = time.monotonic()
        if now - self._last >= self.interval_s:
            self._last = now
            self._draw()

    def _draw(self) -> None:
        if self._tty:
            self.stream.write("\r\033[K" + self.line())
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        """Clear the status line; the caller prints its own summary."""
        if self.quiet:
            return
        if self._tty and self._drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()

    def elapsed_s(self) -> float:
        return time.monotonic() - self.start

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
