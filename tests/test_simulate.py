"""The simulated archive: items along the real ground tracks, in daylight, pystac-readable."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import orjson
import pystac
import pytest
from helpers_sim import BBOX, END, GEOD, START, scenario_archive
from shapely.geometry import box, shape

from eomatch.errors import ConfigError
from eomatch.model import to_utc
from eomatch.orbits import ground_track, load_tles
from eomatch.orbits.sun import solar_elevation_deg
from eomatch.orbits.tle import PACKAGED_TLE_DIR
from eomatch.settings import _default_satellites
from eomatch.simulate import simulate_archive


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return scenario_archive(tmp_path_factory.mktemp("sim"), ["S2A", "LS9"])


def _items(catalog: Path) -> list[dict]:
    return [orjson.loads(p.read_bytes()) for p in catalog.parent.rglob("*.json") if p.name not in ("catalog.json", "collection.json")]


def test_pystac_reads_every_item(archive: Path) -> None:
    cat = pystac.Catalog.from_file(str(archive))
    by_coll = {c.id: sum(1 for _ in c.get_items()) for c in cat.get_children()}
    on_disk: dict[str, int] = {}
    for item in _items(archive):
        on_disk[item["collection"]] = on_disk.get(item["collection"], 0) + 1
    assert by_coll == on_disk
    assert set(by_coll) == {"landsat-c2l1", "sentinel-2-l1c"}
    assert all(n > 5 for n in by_coll.values())


def test_ids_platforms_and_labels_look_like_the_providers(archive: Path) -> None:
    for item in _items(archive):
        props = item["properties"]
        assert props["eomatch:simulated"] is True
        if item["collection"] == "landsat-c2l1":
            assert props["platform"] == "LANDSAT_9"
            m = re.fullmatch(r"LC09_L1TP_(\d{3})(\d{3})_(\d{8})_\d{8}_02_T1_SIM", item["id"])
            assert m, item["id"]
            assert m.group(1) == props["landsat:wrs_path"] and m.group(2) == props["landsat:wrs_row"]
            assert m.group(3) == to_utc(props["datetime"]).strftime("%Y%m%d")
        else:
            assert props["platform"] == "sentinel-2a"
            assert re.fullmatch(r"S2A_MSIL1C_\d{8}T\d{6}_N0400_R\d{3}_T\d{2}[A-Z]{3}_\d{8}T\d{6}(_\d)?_SIM", item["id"])


def test_products_lie_on_the_ground_track_in_daylight_inside_window_and_bbox(archive: Path) -> None:
    tles = load_tles([PACKAGED_TLE_DIR], _default_satellites(), ["Landsat-9", "Sentinel-2A"])
    site = box(*BBOX)
    t0, t1 = to_utc(START).timestamp(), to_utc(END).timestamp()
    for item in _items(archive):
        geom = shape(item["geometry"])
        t = to_utc(item["properties"]["datetime"]).timestamp()
        assert t0 <= t <= t1
        assert geom.intersects(site)
        c = geom.centroid
        assert float(solar_elevation_deg(t, c.y, c.x)) > -1.0
        area_km2 = abs(GEOD.geometry_area_perimeter(geom)[0]) / 1e6
        sat = "Landsat-9" if item["collection"] == "landsat-c2l1" else "Sentinel-2A"
        nadir = ground_track(tles[sat], np.array([t]))
        _, _, dist_m = GEOD.inv(c.x, c.y, float(nadir.lon_deg[0]), float(nadir.lat_deg[0]))
        if sat == "Landsat-9":
            assert area_km2 == pytest.approx(185 * 180, rel=0.1)
            assert dist_m < 10_000  # scene centred on nadir at its acquisition time
        else:
            assert area_km2 == pytest.approx(110 * 110, rel=0.1)
            assert dist_m < 120_000  # granules across the 290 km swath


def test_assets_mix_public_and_internal_hrefs(archive: Path) -> None:
    schemes = set()
    for item in _items(archive):
        assert item["assets"]["thumbnail"]["href"].startswith("https://sim-archive.example.com/")
        for asset in item["assets"].values():
            if "data" in asset.get("roles", []):
                schemes.add(asset["href"].split("://")[0])
                if asset["href"].startswith("file://"):
                    assert asset["href"].startswith("file:///npl-data/")
    assert schemes == {"file", "https"}


def test_simulating_again_gives_the_same_files(archive: Path, tmp_path: Path) -> None:
    again = simulate_archive(tmp_path, ["Landsat-9", "Sentinel-2A"], START, END, bbox=BBOX)
    first = {p.relative_to(archive.parent): p.read_bytes() for p in archive.parent.rglob("*.json")}
    second = {p.relative_to(again.parent): p.read_bytes() for p in again.parent.rglob("*.json")}
    assert first == second


def test_unknown_or_unsupported_platform_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown platform 'NOPE'"):
        simulate_archive(tmp_path, ["NOPE"], START, END)
    with pytest.raises(ConfigError, match="Sentinel-3A"):
        simulate_archive(tmp_path, ["S3A"], START, END)
    with pytest.raises(ConfigError, match="not after"):
        simulate_archive(tmp_path, ["S2A"], END, START)
