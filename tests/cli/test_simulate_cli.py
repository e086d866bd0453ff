"""eomatch-simulate writes an archive that eomatch-find can search offline."""

from __future__ import annotations

from pathlib import Path

import yaml

from eomatch.catalogue import MatchupCatalogue
from eomatch.cli.find import main as find_main
from eomatch.cli.simulate import main as simulate_main


def _config(tmp_path: Path) -> Path:
    cfg = {
        "platforms": ["S2A", "LS9"],
        "start_time": "2022-05-21T00:00:00Z",
        "end_time": "2022-05-22T00:00:00Z",
        "min_lat": 32.0, "max_lat": 42.0, "min_lon": -125.0, "max_lon": -70.0,
        "matchup_catalogue": {"path": str(tmp_path / "matchups")},
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_simulated_archive_feeds_find(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    cfg = _config(tmp_path)
    sim_cfg = tmp_path / "run-sim.yaml"
    assert simulate_main(["--config", str(cfg), "--out", str(tmp_path / "archive"), "--write-config", str(sim_cfg), "-q"]) == 0
    written = yaml.safe_load(sim_cfg.read_text())
    # The copy keeps the run's keys and points both product collections at the archive.
    assert written["platforms"] == ["S2A", "LS9"]
    archive = str(tmp_path / "archive" / "catalog.json")
    assert written["providers"]["S2_MSI_L1C"]["url"] == archive
    assert written["providers"]["LANDSAT_C2L1"]["url"] == archive
    assert find_main(["--config", str(sim_cfg), "-q"]) == 0
    cat = MatchupCatalogue.open(tmp_path / "matchups")
    events = list(cat.get_events())
    assert events and all(e.matchup_set for e in events)
    for event in events:
        for m in event.matchup_set:
            a, b = m.products()
            assert a["properties"]["eomatch:simulated"] is True
            assert {a["properties"]["platform"], b["properties"]["platform"]} == {"Sentinel-2A", "Landsat-9"}


def test_missing_platforms_is_one_line_error(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("find:\n  platforms: [S2A]\n")
    assert simulate_main(["--config", str(cfg), "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "platforms" in err[0]
    assert not (tmp_path / "a").exists()
