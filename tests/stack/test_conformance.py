"""Third-party validators accept both APIs' responses as served, through nginx:
``stac-api-validator`` (core, collections, features, item-search, filter),
``stac-validator``, ``stac-check`` and pystac's ``validate()``, on eomatch's own
product, event and matchup items as well as plain STAC items.

The internet is unreachable here: :func:`helpers.serve_schemas_offline` answers
the official STAC 1.1.0 and GeoJSON schema URLs from the copies pystac ships,
and nothing else. The matchup schema must come from the stack itself, at the URL
the items name; any other off-machine request fails the test by name.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from catalogue_factory import s2a_l9_matchup
from conftest import RunningStack
from helpers import (
    LOOPBACK_HOSTS,
    OFFICIAL_SCHEMA_HOSTS,
    make_collection,
    make_item,
    offline_schemas,
    serve_schemas_offline,
    unique_id,
    written_collection,
)
from shapely.geometry import box

from eomatch.schema import SCHEMA_PATH, SCHEMA_URL

pytestmark = pytest.mark.stack

CONFORMANCE = ["core", "collections", "features", "item-search", "filter"]
# Items are placed inside this polygon so intersects/bbox searches return something.
GEOMETRY = {"type": "Polygon", "coordinates": [[[100, 0], [105, 0], [105, 1], [100, 1], [100, 0]]]}
APIS = ["internal", "external"]


@dataclass(frozen=True)
class Catalogue:
    collection: str
    matchup_ids: list[str]
    """A product, an event and a matchup item written by eomatch's model."""


def _matchup_items(collection: str, asset_href: str) -> list[dict[str, Any]]:
    """Two products, their event and their matchup, as eomatch's model writes them,
    moved into ``collection`` with links as ingest makes them (relative to the API)."""
    asset = {"data": {"href": asset_href, "type": "text/html", "roles": ["data"]}}
    event, pa, pb, matchup = s2a_l9_matchup(
        "2022-06-07", box(100.1, 0.1, 100.9, 0.9), box(100.1, 0.1, 100.6, 0.6), box(100.3, 0.3, 100.8, 0.8),
        id_a=unique_id("S2A"), id_b=unique_id("LC09"), assets=asset,
    )  # fmt: skip
    docs = [copy.deepcopy(d) for d in (pa.to_dict(), pb.to_dict(), event.to_dict(), matchup.to_dict())]
    ids = {d["id"] for d in docs}
    for doc in docs:
        assert SCHEMA_URL in doc["stac_extensions"]
        doc["collection"] = collection
        links = []
        for link in doc.get("links", []):
            target = link["href"].rsplit("/", 1)[-1].removesuffix(".json")
            if target in ids:
                links.append({**link, "href": f"collections/{collection}/items/{target}"})
        doc["links"] = links
    return docs


@pytest.fixture(scope="module")
def catalogue(running_stack: RunningStack) -> Iterator[Catalogue]:
    cid = unique_id("conformance")
    # a public asset that really resolves (the validators open asset URLs)
    asset_href = running_stack.base_url + "/"
    matchup_docs = _matchup_items(cid, asset_href)
    items = [
        make_item(
            cid, f"conf-{i}", 100.2 + 0.9 * i, 0.2, size_deg=0.5,
            datetime_utc=f"2022-06-0{i + 1}T10:00:00Z",
            assets={"data": {"href": asset_href, "type": "text/html", "roles": ["data"]}},
        )
        for i in range(5)
    ]  # fmt: skip
    with written_collection(running_stack, make_collection(cid, title="Conformance", bbox=[100, 0, 105, 1]),
                            [*items, *matchup_docs]):
        yield Catalogue(cid, [d["id"] for d in matchup_docs])


def _root(running_stack: RunningStack, api: str) -> str:
    return running_stack.internal if api == "internal" else running_stack.external


def test_the_offline_map_holds_only_official_schemas() -> None:
    """Ours must come from the stack, so the map must not answer for it."""
    hosts = {urlparse(url).hostname for url in offline_schemas()}
    assert hosts == set(OFFICIAL_SCHEMA_HOSTS), hosts


@pytest.mark.parametrize("api", APIS)
def test_items_name_the_schema_the_stack_serves(running_stack: RunningStack, catalogue: Catalogue, api: str) -> None:
    """Every response lists <the listener's base>/schemas/matchup/v1.0.0/schema.json, never
    the canonical URL (its host does not exist); that URL answers with the schema, whose
    $id is that URL and which accepts the served items."""
    from jsonschema import Draft7Validator

    root = _root(running_stack, api)
    served = running_stack.base_url + SCHEMA_PATH
    cid, some = catalogue.collection, catalogue.matchup_ids
    with httpx.Client(timeout=30) as client:
        responses = {
            "item": client.get(f"{root}/collections/{cid}/items/{some[-1]}"),
            "items": client.get(f"{root}/collections/{cid}/items?limit=100"),
            "search": client.get(f"{root}/search?collections={cid}&ids={','.join(some)}"),
            "search POST": client.post(f"{root}/search", json={"collections": [cid], "ids": some}),
            "collection": client.get(f"{root}/collections/{cid}"),
            "collections": client.get(f"{root}/collections"),
        }
        for name, r in responses.items():
            assert r.status_code == 200, (name, r.text[:200])
            assert SCHEMA_URL not in r.text and "eomatch.example" not in r.text, name
        features = responses["items"].json()["features"]
        ours = [f for f in features if f["id"] in some]
        assert len(ours) == len(some)
        assert all(served in f["stac_extensions"] for f in ours)
        assert sorted(f["id"] for f in responses["search POST"].json()["features"]) == sorted(some)

        r = client.get(served)
        assert r.status_code == 200, r.text[:200]
        assert r.headers["content-type"].startswith("application/schema+json")
        assert "max-age" in r.headers.get("cache-control", "")
        schema = r.json()
    assert schema["$id"] == served
    Draft7Validator.check_schema(schema)
    for feature in ours:
        errors = [e.message for e in Draft7Validator(schema).iter_errors(feature)]
        assert errors == [], (feature["id"], errors)


@pytest.mark.parametrize("api", APIS)
def test_stac_api_validator(running_stack: RunningStack, catalogue: Catalogue, api: str) -> None:
    from stac_api_validator.validations import QueryConfig, validate_api

    missing: list[str] = []
    with serve_schemas_offline(missing):
        warnings, errors = validate_api(
            root_url=_root(running_stack, api) + "/",
            ccs_to_validate=CONFORMANCE,
            collection=catalogue.collection,
            geometry=json.dumps(GEOMETRY),
            auth_bearer_token=None,
            auth_query_parameter=None,
            fields_nested_property=None,
            validate_pagination=False,
            query_config=QueryConfig(*([None] * 13)),
            transaction_collection=None,
            headers=None,
        )
    assert not missing, f"validator needed schemas from other hosts: {sorted(set(missing))}"
    assert list(errors) == [], "\n".join(errors)


@pytest.mark.parametrize("api", APIS)
def test_stac_validator_and_stac_check_accept_served_items(
    running_stack: RunningStack, catalogue: Catalogue, api: str
) -> None:
    from stac_check.lint import Linter
    from stac_validator.validate import StacValidate

    root = _root(running_stack, api)
    missing: list[str] = []
    with serve_schemas_offline(missing):
        for item_id in catalogue.matchup_ids:
            url = f"{root}/collections/{catalogue.collection}/items/{item_id}"
            validator = StacValidate(url, links=True, assets=True)
            assert validator.run(), (url, validator.message)
            assert any(SCHEMA_PATH in s for m in validator.message for s in m.get("schema", [])), validator.message
            linter = Linter(url)
            assert linter.valid_stac, (url, linter.error_type, linter.error_msg)
    assert not missing, f"validators needed schemas from other hosts: {sorted(set(missing))}"


@pytest.mark.parametrize("api", APIS)
def test_pystac_validates_served_items(running_stack: RunningStack, catalogue: Catalogue, api: str) -> None:
    """pystac has the official schemas built in; ours it fetches from the stack."""
    import pystac
    from pystac.validation import JsonSchemaSTACValidator

    root = _root(running_stack, api)
    validator = JsonSchemaSTACValidator()  # a fresh schema cache: nothing registered by hand
    fetched: list[str] = []
    for item_id in catalogue.matchup_ids:
        item = pystac.Item.from_file(f"{root}/collections/{catalogue.collection}/items/{item_id}")
        checked = item.validate(validator=validator)
        fetched += [s for s in checked if urlparse(s).hostname not in OFFICIAL_SCHEMA_HOSTS]
    assert fetched and all(urlparse(s).hostname in LOOPBACK_HOSTS for s in fetched), fetched
