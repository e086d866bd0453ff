"""``eomatch-find --events-only``: compact regions by default, ``--full-regions`` on request."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
import shapely
import yaml

from eomatch.cli.find import main

START = "2022-05-21T00:00:00Z"
END = "2022-05-21T12:00:00Z"


def _config(tmp_path: Path, **find: object) -> Path:
    cfg = {
        "find": {"pairs": [["S2A", "L8"], ["S3A", "L9"]], "start_time": START, "end_time": END, **find},
        "matchup_catalogue": {"path": str(tmp_path / "cat")},
        "stack": {"state_dir": str(tmp_path / "state")},
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _rows(capsys: pytest.CaptureFixture[str], argv: list[str]) -> list[dict[str, str]]:
    assert main(argv) == 0
    return list(csv.DictReader(io.StringIO(capsys.readouterr().out)))


def test_regions_are_compact_by_default_and_full_on_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = str(_config(tmp_path))
    compact = _rows(capsys, ["--config", cfg, "--events-only", "--format", "csv", "-q"])
    full = _rows(capsys, ["--config", cfg, "--events-only", "--format", "csv", "-q", "--full-regions"])
    assert compact and len(compact) == len(full)
    n_compact = [shapely.get_num_coordinates(shapely.from_wkt(r["region"])) for r in compact]
    n_full = [shapely.get_num_coordinates(shapely.from_wkt(r["region"])) for r in full]
    assert max(n_compact) <= 64
    assert max(n_full) > 64  # some region really was compacted
    assert all(float(r["region_tolerance_km"]) == 0.0 for r in full)
    assert any(float(r["region_tolerance_km"]) >= 1.0 for r in compact)
    for c, f in zip(compact, full, strict=True):  # same events, only the regions differ
        assert [c[k] for k in ("platform_a", "platform_b", "start_a", "end_a", "start_b", "end_b")] == [
            f[k] for k in ("platform_a", "platform_b", "start_a", "end_a", "start_b", "end_b")
        ]
        assert c["region_area_km2"] == f["region_area_km2"]
    assert sum(len(r["region"]) for r in compact) < sum(len(r["region"]) for r in full) / 2


def test_full_regions_setting_and_worker_processes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``find.full_regions: true`` is the flag's setting; two orbit workers print the same rows."""
    two = str(_config(tmp_path, orbit_workers=2))
    flag = _rows(capsys, ["--config", two, "--events-only", "--format", "csv", "-q", "--full-regions"])
    setting = _rows(
        capsys,
        ["--config", str(_config(tmp_path, full_regions=True, orbit_workers=1)), "--events-only", "--format", "csv", "-q"],
    )
    assert flag == setting


def test_catalogue_events_keep_their_full_regions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Events written to a catalogue carry the full region (the product search and the
    item's geometry use it), whatever ``find.full_regions`` says for the tables."""
    from eomatch.catalogue import MatchupCatalogue
    from eomatch.jsonio import read_json

    cfg = str(_config(tmp_path))
    full = _rows(capsys, ["--config", cfg, "--events-only", "--format", "csv", "-q", "--full-regions"])
    assert main(["--config", cfg, "--events-only", "-q"]) == 0
    capsys.readouterr()
    cat = MatchupCatalogue.open(tmp_path / "cat")
    events = [read_json(cat.root / ref.relpath) for ref in cat.iter_ids(kind="event")]
    assert len(events) == len(full)
    n_items = sorted(shapely.get_num_coordinates(shapely.geometry.shape(e["geometry"])) for e in events)
    n_full = sorted(shapely.get_num_coordinates(shapely.from_wkt(r["region"])) for r in full)
    assert max(n_items) > 64 and n_items == n_full
