"""``eomatch-find`` as users run it: config file, flags, output, exit codes, one-line errors."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from eomatch.cli.find import main
from eomatch.orbits import EVENT_COLUMNS
from eomatch.settings import FIND_KEYS
from eomatch.simulate import simulate_archive

START = "2022-05-21T14:00:00Z"
END = "2022-05-21T20:00:00Z"


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulate_archive(tmp_path_factory.mktemp("sim"), ["S2A", "L9"], START, END, bbox=(-125, 30, -70, 45))


def write_config(tmp_path: Path, archive: Path | None = None, **over: Any) -> Path:
    find: dict[str, Any] = {
        "platforms": ["S2A", "LS9"],
        "start_time": START,
        "end_time": END,
        "min_lat": 30.0, "max_lat": 45.0, "min_lon": -125.0, "max_lon": -70.0,
    }
    find.update({k: v for k, v in over.items() if k in FIND_KEYS})
    cfg: dict[str, Any] = {
        "find": find,
        "matchup_catalogue": {"path": str(tmp_path / "cat")},
        "stack": {"state_dir": str(tmp_path / "state")},
        "provider_retries": 0,
    }
    if archive is not None:
        cfg["providers"] = {
            "LANDSAT_C2L1": {"url": str(archive.parent), "collection": "landsat-c2l1",
                             "platform_values": {"landsat_9": "Landsat-9"}},
            "S2_MSI_L1C": {"url": str(archive), "collection": "sentinel-2-l1c",
                           "platform_values": {"sentinel-2a": "Sentinel-2A"}},
        }
    cfg.update({k: v for k, v in over.items() if k not in FIND_KEYS})
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def test_events_only_csv_parses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(write_config(tmp_path)), "--events-only", "--format", "csv", "-q"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert rows and list(rows[0]) == list(EVENT_COLUMNS)
    for row in rows:
        assert {row["platform_a"], row["platform_b"]} == {"Sentinel-2A", "Landsat-9"}  # aliases canonicalised
        assert START <= row["start_a"] <= row["end_a"] <= END
        assert row["region"].startswith(("POLYGON", "MULTIPOLYGON"))
    assert not (tmp_path / "cat").exists()  # printing writes no catalogue


def test_events_only_json_parses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(write_config(tmp_path)), "--events-only", "--format", "json", "-q"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(r["region"]["type"] in ("Polygon", "MultiPolygon") for r in rows)
    assert all(float(r["min_distance_km"]) <= 100.0 for r in rows)


def test_full_run_then_rerun_adds_nothing(tmp_path: Path, archive: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(write_config(tmp_path, archive))
    assert main(["--config", cfg, "-q"]) == 0
    first = capsys.readouterr().out.strip()
    assert first.startswith("find: ") and " 0 new items" not in first and "matchups" in first
    assert (tmp_path / "cat" / "catalog.json").is_file()
    assert main(["--config", cfg, "-q"]) == 0
    assert " 0 new items" in capsys.readouterr().out


def test_tle_flag_takes_files_and_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from eomatch.orbits.tle import PACKAGED_TLE_DIR

    cfg = str(write_config(tmp_path))
    args = ["--config", cfg, "--events-only", "--format", "csv", "-q"]
    assert main([*args, "--tle", str(PACKAGED_TLE_DIR / "landsat-9-2022.tle"), "--tle", str(PACKAGED_TLE_DIR)]) == 0
    assert len(capsys.readouterr().out.splitlines()) > 1
    assert main([*args, "--tle", str(tmp_path / "missing.tle")]) != 0
    assert "missing.tle" in one_line_error(capsys)
    # a file that holds no TLE (an error page saved as .tle) is named, not skipped in
    # favour of the packaged histories
    garbage = tmp_path / "celestrak.tle"
    garbage.write_text("<html><body>503 Service Unavailable</body></html>\n")
    assert main([*args, "--tle", str(garbage)]) != 0
    assert f"{garbage} holds no two-line element sets" in one_line_error(capsys)


def test_events_progress_counts_days_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Progress of the orbit search is days of the window (with % and ETA) plus the
    events so far, on stderr; stdout stays a clean table; -q silences the rest."""
    cfg = str(write_config(tmp_path))
    assert main(["--config", cfg, "--events-only", "--format", "csv"]) == 0
    out, err = capsys.readouterr()
    rows = list(csv.DictReader(io.StringIO(out)))
    lines = err.strip().splitlines()
    progress = [ln for ln in lines if ln.startswith("find: ") and "ETA" in ln]
    assert progress, err
    days_total = (datetime.fromisoformat(END) - datetime.fromisoformat(START)).total_seconds() / 86400
    assert f"/{days_total:.1f} days (" in progress[-1]
    assert "events" in progress[-1]
    assert lines[-1] == f"find: {len(rows)} crossover events in " + lines[-1].split(" in ")[1]
    assert main(["--config", cfg, "--events-only", "--format", "csv", "-q"]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("over", "expected"),
    [
        ({"platforms": ["S2A", "FOO-7"]}, "unknown platform 'FOO-7'"),
        (  # every default satellite has packaged TLEs: a registered one without any
            {"platforms": ["S2A", "Sentinel-3C"], "satellites": [
                {"name": "Sentinel-2A", "aliases": ["S2A"], "norad_id": 40697, "swath_km": 290, "instrument": "MSI",
                 "collections": ["S2_MSI_L1C"]},
                {"name": "Sentinel-3C", "norad_id": 99999, "swath_km": 1270, "instrument": "OLCI", "collections": ["S3_OLCI_L1B"]},
            ]},
            "no TLE for platform Sentinel-3C",
        ),
        ({"start_time": END, "end_time": START}, "end_time"),
        ({"platforms": ["S2A"]}, "platforms"),
    ],
)
def test_bad_config_is_one_line_and_nonzero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], over: dict[str, Any], expected: str
) -> None:
    assert main(["--config", str(write_config(tmp_path, **over)), "-q"]) != 0
    assert expected in one_line_error(capsys)
    assert not (tmp_path / "cat").exists()


def test_unreachable_provider_is_one_line_naming_the_url(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from eomatch.stack.process import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"
    cfg = write_config(tmp_path, providers={"S2_MSI_L1C": {"url": url, "collection": "sentinel-2-l1c"}})
    assert main(["--config", str(cfg), "-q"]) != 0
    assert url in one_line_error(capsys)


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_warnings_follow_log_format(tmp_path: Path, log_format: str) -> None:
    """Beyond the packaged 2022 TLEs the nearest element set is stale: the command
    warns, as ``warning: ...`` or as one JSON object per line (``--log-format``)."""
    import subprocess
    import sys

    cfg = write_config(tmp_path, start_time="2023-01-20T00:00:00Z", end_time="2023-01-20T06:00:00Z")
    exe = Path(sys.executable).parent / "eomatch-find"
    proc = subprocess.run(
        [str(exe), "--config", str(cfg), "--events-only", "--format", "json", "-q", "--log-format", log_format],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines, "expected a stale-TLE warning"
    if log_format == "json":
        records = [json.loads(ln) for ln in lines]
        assert all(r["level"] == "warning" and r["service"] == "cli" for r in records)
        assert any("days" in r["message"] and "Sentinel-2A" in r["message"] for r in records)
    else:
        assert all(ln.startswith("warning: ") for ln in lines)
        assert any("days" in ln for ln in lines)


def test_a_date_alone_is_the_whole_day(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``start_time: 2022-05-21`` and ``end_time: 2022-05-21`` (YAML dates) search all of
    21 May: the crossovers of that afternoon are found, and nothing of the 22nd."""
    cfg = write_config(tmp_path)
    cfg.write_text(cfg.read_text().replace(f"start_time: '{START}'", "start_time: 2022-05-21")
                   .replace(f"end_time: '{END}'", "end_time: 2022-05-21"))  # fmt: skip
    assert "start_time: 2022-05-21\n" in cfg.read_text() and "end_time: 2022-05-21\n" in cfg.read_text()
    assert main(["--config", str(cfg), "--events-only", "--format", "csv", "-q"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    closest = sorted(datetime.fromisoformat(r["closest_a"].replace("Z", "+00:00")) for r in rows)
    assert closest and all(t.date().isoformat() == "2022-05-21" for t in closest)
    assert closest[-1].hour >= 14  # the afternoon crossovers over the US (START-END) are in
