"""``eomatch-find --sites`` and ``--events-only --format json|csv|ics`` with site passes."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from icalendar import Calendar

from eomatch.cli.find import main
from eomatch.orbits import EVENT_COLUMNS
from eomatch.orbits.sun import solar_elevation_deg
from eomatch.sites import packaged_site

SITES = "Algeria-5,Algeria-3,Niger-2,Libya-4"
JUNE = ("2022-06-01", "2022-06-30")


def write_config(tmp_path: Path, period: tuple[str, str] = JUNE, **find: Any) -> Path:
    cfg = {
        "find": {"platforms": ["L9", "S2A"], "start_time": period[0], "end_time": period[1], **find},
        "matchup_catalogue": {"path": str(tmp_path / "cat")},
        "stack": {"state_dir": str(tmp_path / "state")},
        "tle_cache_dir": str(tmp_path / "tle-cache"),  # the packaged TLEs only
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _ics(cfg: Path, *more: str) -> tuple[int, bytes, str]:
    exe = Path(sys.executable).with_name("eomatch-find")
    done = subprocess.run(
        [str(exe), "--config", str(cfg), "--events-only", "--format", "ics", "-q", *more],
        capture_output=True, timeout=600, check=False,
    )  # fmt: skip
    return done.returncode, done.stdout, done.stderr.decode()


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def json_rows(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("json")
    out = io.StringIO()
    import contextlib

    with contextlib.redirect_stdout(out):
        assert main(["--config", str(write_config(tmp)), "--events-only", "--format", "json", "-q",
                     "--sites", SITES]) == 0  # fmt: skip
    return json.loads(out.getvalue())


def test_json_events_carry_their_site_passes(json_rows: list[dict[str, Any]]) -> None:
    assert json_rows
    for row in json_rows:
        assert row["sites"], row
        for entry in row["sites"]:
            assert set(entry) == {"name", "time_a", "time_b", "time_diff_s", "solar_elevation_deg"}
            assert entry["name"] in SITES.split(",")
            ta, tb = _t(entry["time_a"]), _t(entry["time_b"])
            assert entry["time_diff_s"] == (tb - ta).total_seconds()
            assert abs(entry["time_diff_s"]) <= 1800.0
            # each pass lies in the event's window of its satellite
            assert _t(row["start_a"]) <= ta <= _t(row["end_a"]) and _t(row["start_b"]) <= tb <= _t(row["end_b"])
            # the lower of the two solar elevations at the site, both >= 0
            site = packaged_site(entry["name"])
            sun = solar_elevation_deg(np.array([ta.timestamp(), tb.timestamp()]), site["lat"], site["lon"])
            assert entry["solar_elevation_deg"] == pytest.approx(float(sun.min()), abs=1e-3)
            assert sun.min() >= 0.0


def test_csv_has_a_sites_column_only_with_sites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    period = ("2022-06-13T09:00:00Z", "2022-06-13T12:00:00Z")
    assert main(["--config", str(write_config(tmp_path, period)), "--events-only", "--format", "csv", "-q",
                 "--sites", "Algeria-5"]) == 0  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 1 and list(rows[0]) == [*EVENT_COLUMNS, "sites"]
    (entry,) = json.loads(rows[0]["sites"])
    assert entry["name"] == "Algeria-5"
    assert main(["--config", str(write_config(tmp_path, period)), "--events-only", "--format", "csv", "-q"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert rows and list(rows[0]) == list(EVENT_COLUMNS)


def test_ics_has_one_event_per_site_pair_with_stable_uids(
    tmp_path: Path, json_rows: list[dict[str, Any]]
) -> None:
    cfg = write_config(tmp_path)
    code, out, err = _ics(cfg, "--sites", SITES)
    assert code == 0, err
    # RFC 5545: CRLF line ends, lines folded at 75 octets
    lines = out.split(b"\r\n")
    assert lines[-1] == b"" and b"\n" not in out.replace(b"\r\n", b"")
    assert all(len(line) <= 75 for line in lines)
    cal = Calendar.from_ical(out)
    events = list(cal.walk("VEVENT"))
    pairs = [(e["name"], e) for row in json_rows for e in row["sites"]]
    assert len(events) == len(pairs) > 0
    by_start = {}
    for ev in events:
        by_start[ev.decoded("dtstart")] = ev
        assert ev.get("dtstamp") is not None and str(ev["uid"])
    for name, entry in pairs:
        ta, tb = _t(entry["time_a"]), _t(entry["time_b"])
        ev = by_start[min(ta, tb)]
        assert ev.decoded("dtend") == max(ta, tb)
        assert name in str(ev["summary"]) and "Landsat-9" in str(ev["summary"]) and "Sentinel-2A" in str(ev["summary"])
        description = str(ev["description"])
        assert entry["time_a"] in description and entry["time_b"] in description
        assert f"{entry['time_diff_s']:+.0f} s" in description
    # a second run gives the same UIDs (a re-import updates, never duplicates)
    code, again, _ = _ics(cfg, "--sites", SITES)
    assert code == 0
    uids = sorted(str(e["uid"]) for e in events)
    assert sorted(str(e["uid"]) for e in Calendar.from_ical(again).walk("VEVENT")) == uids
    assert len(set(uids)) == len(uids)


def test_ics_for_dates_after_the_newest_tle(tmp_path: Path) -> None:
    """Planning ahead: the packaged TLEs end in 2022; January 2023 is propagated from the
    newest set (a staleness warning, no refusal)."""
    cfg = write_config(tmp_path, ("2023-01-02", "2023-01-20"), use_swath=True)
    code, out, err = _ics(cfg, "--sites", SITES)
    assert code == 0, err
    events = list(Calendar.from_ical(out).walk("VEVENT"))
    assert events
    assert all(ev.decoded("dtstart") >= datetime(2023, 1, 2, tzinfo=UTC) for ev in events)


def test_ics_without_sites_is_a_one_line_error(tmp_path: Path) -> None:
    code, out, err = _ics(write_config(tmp_path))
    assert code != 0 and out == b""
    assert err.strip().count("\n") == 0 and "--format ics needs calibration sites" in err and "Traceback" not in err


def test_unknown_site_flag_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(write_config(tmp_path)), "--events-only", "--sites", "Lybia-4"]) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Lybia-4" in err and "Libya-4" in err
