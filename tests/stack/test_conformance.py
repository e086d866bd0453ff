"""``stac-api-validator`` on both APIs through nginx: core, collections, features,
item-search and filter, with no errors.

The validator fetches STAC JSON schemas from the internet, which is unreachable
here: :func:`helpers.serve_schemas_offline` answers those requests from the copies
pystac ships (STAC 1.1.0 and GeoJSON), so the test data is STAC 1.1.0. Any other
off-machine request fails the test by name.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from conftest import RunningStack
from helpers import Writer, make_collection, make_item, serve_schemas_offline

pytestmark = pytest.mark.stack

CONFORMANCE = ["core", "collections", "features", "item-search", "filter"]
COLLECTION = "conformance"
# Items are placed inside this polygon so intersects/bbox searches return something.
GEOMETRY = {"type": "Polygon", "coordinates": [[[100, 0], [105, 0], [105, 1], [100, 1], [100, 0]]]}


@pytest.fixture(scope="module")
def conformance_catalogue(running_stack: RunningStack) -> Iterator[str]:
    with Writer(running_stack) as w:
        w.collection(make_collection(COLLECTION, title="Conformance", bbox=[100, 0, 105, 1]))
        for i in range(5):
            w.item(
                make_item(
                    COLLECTION,
                    f"conf-{i}",
                    100.2 + 0.9 * i,
                    0.2,
                    size_deg=0.5,
                    datetime_utc=f"2022-06-0{i + 1}T10:00:00Z",
                    # a public asset that really resolves (the validator opens asset URLs)
                    assets={"data": {"href": running_stack.base_url + "/", "type": "text/html", "roles": ["data"]}},
                )
            )
    yield COLLECTION
    with Writer(running_stack) as w:
        w.client.delete(f"{running_stack.internal}/collections/{COLLECTION}")


@pytest.mark.parametrize("api", ["internal", "external"])
def test_stac_api_validator(running_stack: RunningStack, conformance_catalogue: str, api: str) -> None:
    from stac_api_validator.validations import QueryConfig, validate_api

    root = (running_stack.internal if api == "internal" else running_stack.external) + "/"
    missing: list[str] = []
    with serve_schemas_offline(missing):
        warnings, errors = validate_api(
            root_url=root,
            ccs_to_validate=CONFORMANCE,
            collection=conformance_catalogue,
            geometry=json.dumps(GEOMETRY),
            auth_bearer_token=None,
            auth_query_parameter=None,
            fields_nested_property=None,
            validate_pagination=False,
            query_config=QueryConfig(*([None] * 13)),
            transaction_collection=None,
            headers=None,
        )
    assert not missing, f"validator needed schemas we have no local copy of: {sorted(set(missing))}"
    assert list(errors) == [], "\n".join(errors)
