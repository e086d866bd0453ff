"""STAC core + matchup schema checks and legacy repairs of items on their way into pgSTAC."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from catalogue_factory import sample_items

from eomatch.validate import item_validator, repair_legacy


def test_items_the_model_writes_are_valid() -> None:
    for item in sample_items():
        assert item_validator().problem(copy.deepcopy(item)) is None, item["id"]


@pytest.mark.parametrize(
    ("which", "edit", "words"),
    [
        (2, lambda i: i.pop("geometry"), ["STAC core", "geometry"]),
        (2, lambda i: i.update(type="feature"), ["STAC core", "Feature"]),
        (2, lambda i: i["properties"].pop("datetime"), ["STAC core", "datetime"]),
        (2, lambda i: i["properties"].update(datetime="2022-05-21T08:31:00+02:00"), ["STAC core", "datetime"]),
        (2, lambda i: i.update(assets={"data": {"title": "no href"}}), ["STAC core", "assets/data", "href"]),
        (2, lambda i: i.update(stac_version="0.9.0"), ["stac_version '0.9.0'"]),
        (0, lambda i: i["properties"].pop("start_datetime"), ["STAC core", "start_datetime"]),
        (1, lambda i: i["properties"].update({"matchup:overlap_fraction": 1.5}), ["matchup schema", "overlap_fraction"]),
        (0, lambda i: i["properties"].update(start_datetime="2022-05-21T09:30:00Z"), ["after end_datetime"]),
    ],
)
def test_broken_items_name_the_rule_in_one_line(which: int, edit: Any, words: list[str]) -> None:
    item = copy.deepcopy(sample_items()[which])
    edit(item)
    problem = item_validator().problem(item)
    assert problem is not None and "\n" not in problem and len(problem) < 300
    for word in words:
        assert word in problem, (word, problem)


def test_matchup_schema_applies_only_to_items_that_list_it() -> None:
    item = copy.deepcopy(sample_items()[1])
    item["properties"]["matchup:overlap_fraction"] = 1.5
    item["stac_extensions"] = []
    assert item_validator().problem(item) is None


def test_legacy_end_without_start_is_repaired_and_then_valid() -> None:
    item = copy.deepcopy(sample_items()[0])
    props = item["properties"]
    props.pop("start_datetime")
    assert "start_datetime" in (item_validator().problem(copy.deepcopy(item)) or "")
    assert repair_legacy(item) == ["start_datetime added from datetime"]
    assert props["start_datetime"] == props["datetime"]
    assert item_validator().problem(item) is None
    assert repair_legacy(item) == []  # nothing left to repair


def test_end_before_datetime_is_not_repaired_but_refused() -> None:
    item = copy.deepcopy(sample_items()[0])
    props = item["properties"]
    props.pop("start_datetime")
    props["end_datetime"] = "2022-05-21T08:00:00Z"  # before datetime: no start can be made up
    assert repair_legacy(item) == []
    assert "start_datetime" in (item_validator().problem(item) or "")


def test_stac_1_0_0_is_raised_to_1_1_0() -> None:
    item = copy.deepcopy(sample_items()[2])
    item["stac_version"] = "1.0.0"
    item["properties"]["license"] = "proprietary"
    assert "stac_version '1.0.0'" in (item_validator().problem(copy.deepcopy(item)) or "")
    assert repair_legacy(item) == ["stac_version 1.0.0 raised to 1.1.0"]
    assert (item["stac_version"], item["properties"]["license"]) == ("1.1.0", "other")
    assert item_validator().problem(item) is None


def test_checking_needs_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every schema reference resolves from the copies on disk: compiling with the
    network off (and retrieval disabled) works."""
    import socket

    from eomatch.validate import ItemValidator

    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise OSError("network is off in this test")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    assert ItemValidator().problem(copy.deepcopy(sample_items()[1])) is None


def test_official_schemas_are_pystacs_copies() -> None:
    """Read without importing pystac, under the URLs pystac's own cache gives them."""
    from pystac.validation.local_validator import get_local_schema_cache

    from eomatch.validate import ITEM_SCHEMA_URL, official_schemas

    schemas = official_schemas()
    assert schemas == get_local_schema_cache()
    assert ITEM_SCHEMA_URL in schemas
