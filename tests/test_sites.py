"""Calibration sites: the packaged table, the three forms of ``find.sites``, distances."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from eomatch.errors import ConfigError
from eomatch.settings import load_settings
from eomatch.sites import Site, packaged_site, packaged_sites, unit_vector

REQUIRED = {"Railroad Valley": "RVUS", "La Crau": "LCFR", "Gobabeb": "GONA", "Baotou": "BTCN"}
PICS = ["Libya-4", "Libya-1", "Algeria-3", "Algeria-5", "Mauritania-1", "Mauritania-2",
        "Arabia-1", "Arabia-2", "Sudan-1", "Niger-1", "Niger-2", "Egypt-1"]  # fmt: skip


def _config(tmp_path: Path, sites: object, top_level: bool = False) -> Path:
    cfg: dict = {"find": {"platforms": ["S2A", "L9"]}}
    if top_level:
        cfg["sites"] = sites
    else:
        cfg["find"]["sites"] = sites
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_packaged_table_has_the_networks_with_sources() -> None:
    rows = {r["name"]: r for r in packaged_sites()}
    for name, code in REQUIRED.items():
        assert rows[name]["network"] == "RadCalNet" and code in rows[name]["aliases"]
    for name in PICS:
        assert name in rows
    for row in rows.values():
        assert row["source"].strip(), row["name"]
        assert -180 <= row["lon"] <= 180 and -90 <= row["lat"] <= 90
        assert row.get("radius_km", 0) > 0 or row.get("geometry")
    # the Saharan PICS are in the Sahara, Gobabeb in the Namib, RVUS in Nevada
    assert 20 < rows["Libya-4"]["lat"] < 30 and 20 < rows["Libya-4"]["lon"] < 25
    assert rows["Gobabeb"]["lat"] < -20 and rows["Railroad Valley"]["lon"] < -115


@pytest.mark.parametrize("spelling", ["Libya-4", "libya-4", "LIBYA4", "libya 4", "Libya_4"])
def test_names_resolve_case_and_punctuation_insensitively(spelling: str) -> None:
    assert packaged_site(spelling)["name"] == "Libya-4"


def test_radcalnet_codes_are_aliases() -> None:
    assert packaged_site("rvus")["name"] == "Railroad Valley"
    assert packaged_site("GONA")["name"] == "Gobabeb"


def test_three_forms_in_a_config(tmp_path: Path) -> None:
    square = {"type": "Polygon", "coordinates": [[[10, 20], [11, 20], [11, 21], [10, 21], [10, 20]]]}
    cfg = _config(tmp_path, [
        "gona",
        {"name": "Home", "lon": 7.5, "lat": 47.0, "radius_km": 2.0},
        {"name": "Box", "geometry": square},
    ])  # fmt: skip
    sites = load_settings(cfg, environ={}).find.sites
    assert [s.name for s in sites] == ["Gobabeb", "Home", "Box"]
    assert sites[0].lat == pytest.approx(packaged_sites()[2]["lat"]) and sites[0].radius_km is not None
    assert (sites[1].lon, sites[1].lat, sites[1].radius_km) == (7.5, 47.0, 2.0)
    assert sites[2].geometry == square and sites[2].lon == pytest.approx(10.5) and sites[2].lat == pytest.approx(20.5)


def test_top_level_sites_move_under_find_with_a_warning(tmp_path: Path) -> None:
    settings = load_settings(_config(tmp_path, ["Libya-4"], top_level=True), environ={}, warn=False)
    assert [s.name for s in settings.find.sites] == ["Libya-4"]
    assert any("'sites'" in note and "find:" in note for note in settings.deprecations)


def test_a_comma_list_from_an_override_or_flag() -> None:
    settings = load_settings(overrides={"find": {"sites": "Libya-4, la crau"}}, environ={})
    assert [s.name for s in settings.find.sites] == ["Libya-4", "La Crau"]


def test_unknown_name_is_one_line_naming_close_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(_config(tmp_path, ["Lybia-4"]), environ={})
    msg = str(err.value)
    assert "\n" not in msg and "unknown site 'Lybia-4'" in msg and "Libya-4" in msg


@pytest.mark.parametrize("entry, words", [
    ({"name": "x", "lon": 1.0}, "needs lon, lat and radius_km"),
    ({"name": "x", "geometry": {"type": "Point", "coordinates": [1, 2]}}, "polygon with an area"),
    ({"name": "x", "lon": 1.0, "lat": 2.0, "radius_km": 3.0, "colour": "red"}, "colour"),
    ("Libya-4", "given twice"),  # with the packaged Libya-4 below
])  # fmt: skip
def test_bad_entries_are_one_line(tmp_path: Path, entry: dict | str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(_config(tmp_path, [entry, "libya4"] if isinstance(entry, str) else [entry]), environ={})
    assert "\n" not in str(err.value) and words in str(err.value)


def test_distance_to_a_disc_and_a_polygon() -> None:
    disc = Site("D", 0.0, 0.0, 10.0)
    one_deg_km = 6371.0088 * np.pi / 180
    pts = unit_vector([0.0, 0.0, 0.05], [0.0, 1.0, 0.0])
    d = disc.distance_km(pts)
    assert d[0] == 0.0 and d[2] == 0.0
    assert d[1] == pytest.approx(one_deg_km - 10.0, rel=1e-6)
    square = Site.from_spec(type("S", (), {"name": "B", "geometry": {
        "type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}})())  # fmt: skip
    d = square.distance_km(unit_vector([0.5, 0.5], [0.5, 2.0]))
    assert d[0] == 0.0
    assert d[1] == pytest.approx(one_deg_km * np.cos(np.radians(0.5)), rel=1e-3)
    assert square.reach_km == pytest.approx(one_deg_km * np.hypot(0.5, 0.5), rel=1e-3)
    assert square.contains(0.2, 0.9) and not square.contains(1.2, 0.5)
