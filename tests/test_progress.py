"""The progress line: counts, percentage and ETA when the total is known, a final
state in logs, nothing with -q."""

from __future__ import annotations

import io
import re

import pytest

from eomatch.progress import Progress


def _lines(p: Progress, buf: io.StringIO) -> list[str]:
    p.close()
    return buf.getvalue().splitlines()


def test_known_total_shows_percent_and_eta_and_the_callers_note() -> None:
    buf = io.StringIO()
    found = {"events": 0}
    p = Progress("find", total=92.0, unit="days", decimals=1, stream=buf, interval_s=0,
                 note=lambda: f"{found['events']} events")  # fmt: skip
    found["events"] = 7
    p.update(23.0)
    line = _lines(p, buf)[-1]
    m = re.fullmatch(r"find: 23\.0/92\.0 days \(25%\) ([\d.,]+) days/s ETA (\d+):(\d\d), 7 events", line)
    assert m, line
    rate = float(m.group(1).replace(",", ""))
    eta_s = int(m.group(2)) * 60 + int(m.group(3))
    assert abs(eta_s - 69.0 / rate) <= 1.0  # what is left over the rate so far


def test_a_total_that_was_an_estimate_is_no_ceiling() -> None:
    buf = io.StringIO()
    p = Progress("query", total=10, stream=buf, interval_s=0)
    p.update(12)
    assert _lines(p, buf)[-1].startswith("query: 12/12 items (100%)")


def test_the_log_ends_with_the_final_state_and_quiet_prints_nothing() -> None:
    buf = io.StringIO()
    p = Progress("download", total=3, unit="products", stream=buf, interval_s=3600)
    for _ in range(3):
        p.update(1)  # only the first is drawn: the next are inside the interval
    lines = _lines(p, buf)
    assert lines[0].startswith("download: 1/3 products") and lines[-1].startswith("download: 3/3 products (100%)")
    quiet = io.StringIO()
    q = Progress("download", total=3, stream=quiet, interval_s=0, quiet=True)
    q.update(3)
    assert _lines(q, quiet) == []


@pytest.mark.parametrize("clock_origin_s", [0.0, 5.0, 1e9])
def test_the_first_update_is_drawn_whatever_the_clocks_origin(
    monkeypatch: pytest.MonkeyPatch, clock_origin_s: float
) -> None:
    """A machine that booted seconds ago has a small monotonic clock: still drawn."""
    now = [clock_origin_s]
    monkeypatch.setattr("eomatch.progress.time.monotonic", lambda: now[0])
    buf = io.StringIO()
    p = Progress("ingest", total=10, stream=buf, interval_s=3600)
    p.update(1)
    now[0] += 1.0
    p.update(1)  # inside the interval: not drawn
    assert buf.getvalue().splitlines() == [buf.getvalue().splitlines()[0]]
    assert buf.getvalue().startswith("ingest: 1/10 items")


def test_slow_rates_keep_two_significant_digits() -> None:
    buf = io.StringIO()
    p = Progress("download", total=100, unit="products", stream=buf, interval_s=0)
    p.start -= 40.0  # 4 products in 40 s
    p.update(4)
    assert " 0.1 products/s " in _lines(p, buf)[-1]
