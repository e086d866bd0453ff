"""Titles and cloud cover on the items (issue 12 item 1)."""

from __future__ import annotations

import pytest
from shapely.geometry import box

from eomatch.errors import MatchupError
from eomatch.items import EO_EXTENSION_URL, Matchup, MatchupEvent, Product, format_time_diff
from eomatch.schema import SCHEMA_URL, validate_item

L9_ID = "LC09_L1TP_042034_20220521_20220525_02_T1"
S2_ID = "S2A_MSIL1C_20220521T183921_N0400_R070_T11SLB_20220521T221114"


def _pair(cover_l9: float | None, cover_s2: float | None) -> tuple[Product, Product]:
    l9 = Product.create(id=L9_ID, collection="LANDSAT_C2L1", platform="Landsat-9", geometry=box(0, 0, 1, 1),
                        start="2022-05-21T18:00:00Z", cloud_cover=cover_l9)  # fmt: skip
    s2 = Product.create(id=S2_ID, collection="S2_MSI_L1C", platform="Sentinel-2A", geometry=box(0.3, 0, 1.3, 1),
                        start="2022-05-21T18:21:00Z", cloud_cover=cover_s2)  # fmt: skip
    return l9, s2


def test_matchup_title_names_both_products_time_and_overlap() -> None:
    l9, s2 = _pair(12.5, 40.0)
    m = Matchup.create(None, s2.to_dict(), l9.to_dict())  # order given does not matter
    assert m.properties["title"] == "Landsat-9 LC09_L1TP_042034 × Sentinel-2A T11SLB · Δt 21 min · 70 % overlap"
    validate_item(m.to_dict())


def test_max_cloud_cover_is_the_larger_and_products_keep_theirs() -> None:
    l9, s2 = _pair(12.5, 40.0)
    m = Matchup.create(None, l9.to_dict(), s2.to_dict())
    assert m.max_cloud_cover == 40.0
    assert m.properties["matchup:max_cloud_cover"] == 40.0
    assert l9.properties["eo:cloud_cover"] == 12.5 and l9.cloud_cover == 12.5
    for p in (l9, s2):
        assert p.to_dict()["stac_extensions"] == [SCHEMA_URL, EO_EXTENSION_URL]


@pytest.mark.parametrize("covers", [(None, 40.0), (12.5, None), (None, None)])
def test_max_cloud_cover_absent_when_a_product_has_none(covers: tuple[float | None, float | None]) -> None:
    l9, s2 = _pair(*covers)
    m = Matchup.create(None, l9.to_dict(), s2.to_dict())
    assert "matchup:max_cloud_cover" not in m.properties and m.max_cloud_cover is None
    validate_item(m.to_dict())
    for p, cover in zip((l9, s2), covers, strict=True):
        assert (EO_EXTENSION_URL in p.to_dict()["stac_extensions"]) == (cover is not None)


def test_provider_items_with_cloud_cover_list_the_eo_extension() -> None:
    item = {"type": "Feature", "id": "x", "collection": "c", "geometry": None, "stac_extensions": [],
            "properties": {"eo:cloud_cover": 3.0}}  # fmt: skip
    assert Product.from_item(item).to_dict()["stac_extensions"] == [SCHEMA_URL, EO_EXTENSION_URL]
    bare = {"type": "Feature", "id": "y", "collection": "c", "geometry": None, "properties": {}}
    assert Product.from_item(bare).to_dict()["stac_extensions"] == [SCHEMA_URL]


def test_bad_cloud_cover_is_refused_in_one_line() -> None:
    with pytest.raises(MatchupError, match=r"cloud cover 140 is not a percentage"):
        _pair(140, 1.0)


def test_schema_refuses_a_max_cloud_cover_out_of_range() -> None:
    from eomatch.schema import SchemaValidationError

    l9, s2 = _pair(12.5, 40.0)
    m = Matchup.create(None, l9.to_dict(), s2.to_dict())
    m.properties["matchup:max_cloud_cover"] = 101
    with pytest.raises(SchemaValidationError, match="max_cloud_cover"):
        validate_item(m.to_dict())


def test_event_title() -> None:
    event = MatchupEvent.create(
        platform_a="Sentinel-2A", collection_a="S2_MSI_L1C", platform_b="Landsat-9", collection_b="LANDSAT_C2L1",
        start="2022-05-21T18:00:00Z", end="2022-05-21T18:40:00Z", region=box(0, 0, 1, 1), time_diff_s=-1260.0,
    )  # fmt: skip
    assert event.properties["title"] == "Landsat-9 × Sentinel-2A crossover · 2022-05-21 18:00 UTC · Δt 21 min"
    validate_item(event.to_dict())


@pytest.mark.parametrize(("seconds", "text"), [(42.4, "42 s"), (1260, "21 min"), (3 * 3600 + 1800, "3.5 h")])
def test_format_time_diff(seconds: float, text: str) -> None:
    assert format_time_diff(seconds) == text
