"""``eomatch-find`` with calibration sites: only events with a daylight pass of both
satellites over a site, ``matchup:sites`` on events and matchups, products searched
over the site, and the export's ``sites`` column."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from shapely.geometry import shape

from eomatch.catalogue import MatchupCatalogue
from eomatch.export import iter_matchup_rows
from eomatch.find import find
from eomatch.settings import FindSettings, Settings, load_settings
from eomatch.simulate import simulate_archive
from eomatch.sites import Site

# Landsat-9 passes Algeria-5 at 10:26:48 and Sentinel-2A at 10:42:37 on this day
# (tests/orbits/test_site_passes.py checks such passes against a brute-force month).
START, END = "2022-06-13T09:00:00Z", "2022-06-13T12:00:00Z"


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulate_archive(tmp_path_factory.mktemp("sim"), ["S2A", "L9"], START, END, bbox=(-2, 26, 8, 36))


def site_settings(tmp_path: Path, archive: Path, **find_over: Any) -> Settings:
    find_keys: dict[str, Any] = {"platforms": ["S2A", "L9"], "start_time": START, "end_time": END, **find_over}
    if "quicklooks" in FindSettings.model_fields:  # pictures are not what this test is about
        find_keys["quicklooks"] = False
    return load_settings(environ={}, overrides={
        "find": find_keys,
        "matchup_catalogue": {"path": str(tmp_path / "cat")},
        "stack": {"state_dir": str(tmp_path / "state")},
        "provider_retries": 0,
        "providers": {
            "LANDSAT_C2L1": {"url": str(archive.parent), "collection": "landsat-c2l1",
                             "platform_values": {"landsat_9": "Landsat-9"}},
            "S2_MSI_L1C": {"url": str(archive), "collection": "sentinel-2-l1c",
                           "platform_values": {"sentinel-2a": "Sentinel-2A"}},
        },
    })  # fmt: skip


def _items(root: Path, kind: str) -> list[dict[str, Any]]:
    out = []
    for p in root.rglob("*.json"):
        d = json.loads(p.read_text())
        if d.get("type") == "Feature" and d["properties"].get("matchup:type") == kind:
            out.append(d)
    return out


def test_events_and_matchups_name_their_site(tmp_path: Path, archive: Path) -> None:
    settings = site_settings(tmp_path, archive, sites=["Algeria-5"])
    summary = find(settings, quiet=True)
    assert summary.ok and summary.events >= 1 and summary.matchups >= 1, summary.line()
    events, matchups = _items(tmp_path / "cat", "event"), _items(tmp_path / "cat", "matchup")
    assert events and matchups
    assert all(e["properties"]["matchup:sites"] == ["Algeria-5"] for e in events)
    disc = Site.from_spec(settings.find.sites[0]).geometry
    for m in matchups:
        assert m["properties"]["matchup:sites"] == ["Algeria-5"]
        assert shape(m["geometry"]).intersects(disc)  # over the site, not just over the event
    # the export fills its sites column from matchup:sites
    cat = MatchupCatalogue.open(tmp_path / "cat")
    try:
        rows = list(iter_matchup_rows(cat))
    finally:
        cat.close()
    assert len(rows) == len(matchups) and all(r["sites"] == ["Algeria-5"] for r in rows)


def test_without_sites_no_site_names_and_a_far_site_keeps_nothing(tmp_path: Path, archive: Path) -> None:
    plain = find(site_settings(tmp_path / "plain", archive), quiet=True)
    assert plain.events >= 1
    assert all("matchup:sites" not in e["properties"] for e in _items(tmp_path / "plain" / "cat", "event"))
    far = find(site_settings(tmp_path / "far", archive, sites=["Gobabeb"]), quiet=True)
    assert far.events == 0 and far.matchups == 0


def test_the_sun_is_checked_at_the_site_at_each_pass(tmp_path: Path, archive: Path) -> None:
    """The sun is ~70° high over Algeria-5 at both passes: a limit above the lower of the
    two drops the event, one below keeps it (the event centre plays no part)."""
    from eomatch.orbits.site_passes import site_pairs
    from eomatch.orbits.tle import PACKAGED_TLE_DIR, load_tles

    settings = site_settings(tmp_path / "a", archive, sites=["Algeria-5"])
    tles = load_tles([PACKAGED_TLE_DIR], settings.satellites, ["Landsat-9", "Sentinel-2A"])
    pairs = site_pairs(
        tles["Sentinel-2A"], tles["Landsat-9"], [Site.from_spec(settings.find.sites[0])],
        settings.find.start_time, settings.find.end_time, space_diff_threshold_km=100.0,
        time_diff_threshold_s=1800.0, use_swath=False, min_solar_elevation_deg=-90.0,
    )  # fmt: skip
    assert len(pairs) == 1
    lower = pairs[0].solar_elevation_deg
    kept = find(site_settings(tmp_path / "k", archive, sites=["Algeria-5"],
                              min_solar_elevation_deg=lower - 0.5), quiet=True, events_only=True)  # fmt: skip
    dropped = find(site_settings(tmp_path / "d", archive, sites=["Algeria-5"],
                                 min_solar_elevation_deg=lower + 0.5), quiet=True, events_only=True)  # fmt: skip
    assert kept.events == 1 and dropped.events == 0
