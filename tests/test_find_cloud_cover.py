"""``max_cloud_cover`` in eomatch-find (setting and flag), titles and cloud cover on
what find writes (issue 12 item 1)."""

from __future__ import annotations

from pathlib import Path

import pytest
from shapely.geometry import box
from test_find import BBOX, END, START, run_settings

from eomatch.catalogue import MatchupCatalogue
from eomatch.find import find, pair_products
from eomatch.items import Matchup, MatchupEvent, Product
from eomatch.simulate import simulate_archive


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulate_archive(tmp_path_factory.mktemp("sim"), ["S2A", "L9"], START, END, bbox=BBOX)


def _matchups(path: Path) -> dict[str, tuple[dict, float]]:
    """Matchup id -> (its properties, the larger eo:cloud_cover read from its product files)."""
    cat = MatchupCatalogue.open(path)
    out = {}
    for ref in cat.iter_ids(kind="matchup"):
        mid = ref.id
        m = cat.get_matchup(mid)
        covers = [Product(p).properties["eo:cloud_cover"] for p in m.products()]
        out[mid] = (dict(m.properties), max(covers))
    cat.close()
    return out


def test_find_writes_titles_and_max_cloud_cover_and_the_limit_drops_cloudy(tmp_path: Path, archive: Path) -> None:
    find(run_settings(tmp_path / "all", archive), quiet=True)
    everything = _matchups(tmp_path / "all")
    assert everything
    for props, cover in everything.values():
        assert props["matchup:max_cloud_cover"] == cover
        assert " × " in props["title"] and "% overlap" in props["title"]
    limit = 30.0
    want = {mid for mid, (_, cover) in everything.items() if cover <= limit}
    assert want and want != set(everything)  # the simulated covers fall on both sides
    summary = find(run_settings(tmp_path / "clear", archive, max_cloud_cover=limit), quiet=True)
    assert set(_matchups(tmp_path / "clear")) == want
    assert summary.matchups == len(want)


def _product(pid: str, x0: float, cover: float | None, coll: str = "S2_MSI_L1C", platform: str = "Sentinel-2A") -> dict:
    return Product.create(id=pid, collection=coll, platform=platform, geometry=box(x0, 0, x0 + 1, 1),
                          start="2022-05-21T18:00:00Z", cloud_cover=cover).to_dict()  # fmt: skip


@pytest.mark.parametrize(
    ("covers", "kept"),
    [((10.0, 20.0), True), ((10.0, 31.0), False), ((None, 10.0), True), ((None, 95.0), False), ((None, None), True)],
)
def test_products_without_cloud_cover_are_kept(tmp_path: Path, covers: tuple, kept: bool) -> None:
    settings = run_settings(tmp_path / "c", None, max_cloud_cover=30.0)
    event = MatchupEvent.create(
        platform_a="Sentinel-2A", collection_a="S2_MSI_L1C", platform_b="Landsat-9", collection_b="LANDSAT_C2L1",
        start="2022-05-21T17:50:00Z", end="2022-05-21T18:10:00Z", region=box(0, 0, 2, 1),
    )  # fmt: skip
    a = _product("S2A_x", 0.0, covers[0])
    b = _product("LC09_x", 0.5, covers[1], "LANDSAT_C2L1", "Landsat-9")
    got: list[Matchup] = pair_products(event, [a], [b], settings)
    assert bool(got) is kept
