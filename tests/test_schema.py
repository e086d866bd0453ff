"""The matchup: JSON Schema: it loads, accepts what eomatch writes, and rejects broken items."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from catalogue_factory import sample_items
from jsonschema import Draft7Validator

from eomatch.errors import EomatchError
from eomatch.schema import (
    SCHEMA_PATH,
    SCHEMA_URL,
    SchemaValidationError,
    iter_errors,
    load_schema,
    register_with_pystac,
    served_schema,
    served_schema_url,
    validate_item,
)


def test_schema_is_a_valid_draft7_schema_with_the_published_id() -> None:
    schema = load_schema()
    Draft7Validator.check_schema(schema)
    assert schema["$id"] == SCHEMA_URL


def test_items_built_by_the_model_are_valid() -> None:
    for item in sample_items():
        assert SCHEMA_URL in item["stac_extensions"]
        validate_item(item)
        assert iter_errors(item) == []


@pytest.mark.parametrize(
    ("which", "edit", "field"),
    [
        (1, lambda i: i["properties"].pop("matchup:overlap_km2"), "matchup:overlap_km2"),
        (1, lambda i: i["properties"].update({"matchup:overlap_fraction": 1.5}), "matchup:overlap_fraction"),
        (1, lambda i: i["properties"].update({"matchup:abs_time_diff_s": -3}), "matchup:abs_time_diff_s"),
        (1, lambda i: i["properties"].update({"matchup:platforms": ["a", "b", "c"]}), "matchup:platforms"),
        (1, lambda i: i.update({"links": [lk for lk in i["links"] if lk["rel"] != "derived_from"]}), "links"),
        (0, lambda i: i["properties"].pop("start_datetime"), "start_datetime"),
        (0, lambda i: i["properties"].update({"matchup:solar_elevation_deg": 95}), "matchup:solar_elevation_deg"),
        (2, lambda i: i["properties"].update({"matchup:type": "granule"}), "matchup:type"),
        (2, lambda i: i.update({"stac_extensions": []}), "stac_extensions"),
    ],
)
def test_broken_items_are_rejected_with_a_one_line_message(which, edit, field) -> None:
    item = copy.deepcopy(sample_items()[which])
    edit(item)
    with pytest.raises(SchemaValidationError) as info:
        validate_item(item)
    message = str(info.value)
    assert isinstance(info.value, EomatchError)
    assert "\n" not in message
    assert repr(item["id"]) in message
    assert field in message or field in " ".join(iter_errors(item))


def test_items_listing_the_schema_at_a_stack_url_are_valid() -> None:
    """API responses name the schema at the stack that serves it; a copy of such an item
    (e.g. from eomatch-query) is still a matchup item. Another version is not."""
    for served in ("http://127.0.0.1:8000/schemas/matchup/v1.0.0/schema.json",
                   "https://matchups.example.org/schemas/matchup/v1.0.0/schema.json"):  # fmt: skip
        item = copy.deepcopy(sample_items()[1])
        item["stac_extensions"] = [served]
        assert iter_errors(item) == []
    for other in ("https://example.org/schemas/matchup/v2.0.0/schema.json", "matchup/v1.0.0/schema.json"):
        item = copy.deepcopy(sample_items()[1])
        item["stac_extensions"] = [other]
        with pytest.raises(SchemaValidationError, match="stac_extensions"):
            validate_item(item)


def test_served_schema_has_the_served_url_as_id() -> None:
    schema = served_schema("http://10.0.0.5:8000/")
    assert schema["$id"] == served_schema_url("http://10.0.0.5:8000") == "http://10.0.0.5:8000" + SCHEMA_PATH
    assert load_schema()["$id"] == SCHEMA_URL  # the packaged copy is not changed


def test_pystac_validates_catalogue_files_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Catalogue files keep the canonical URL, whose host does not exist: once eomatch
    registered its schema, pystac's validate() needs no network for them."""
    import socket

    import pystac
    from catalogue_factory import build_catalogue
    from pystac.validation import JsonSchemaSTACValidator, RegisteredValidator

    build_catalogue(tmp_path / "cat", n_events=1)
    files = [p for p in (tmp_path / "cat").rglob("*.json") if json.loads(p.read_text()).get("type") == "Feature"]
    assert len(files) == 4  # two products, an event, a matchup

    def offline(*args: object, **kwargs: object) -> None:
        raise OSError("offline")

    monkeypatch.setattr(socket, "getaddrinfo", offline)
    monkeypatch.setattr(RegisteredValidator, "_validator", JsonSchemaSTACValidator())
    register_with_pystac()
    for path in files:
        checked = pystac.Item.from_file(str(path)).validate()
        assert SCHEMA_URL in checked, path
