"""Every navigation link the APIs hand out works through the proxy and stays on its API."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from conftest import RunningStack
from helpers import Writer, links_of, make_collection, make_item, unique_id

pytestmark = pytest.mark.stack

RELS = ("self", "root", "next", "parent", "collection", "items")


@pytest.fixture(scope="module")
def catalogue(running_stack: RunningStack) -> Iterator[tuple[str, list[str]]]:
    """A collection with three items, so ``limit=1`` pages have a ``next`` link."""
    cid = unique_id("links")
    ids = [f"links-item-{i}" for i in range(3)]
    with Writer(running_stack) as w:
        w.collection(make_collection(cid, title="Links"))
        for i, iid in enumerate(ids):
            w.item(make_item(cid, iid, 20 + i, 20, datetime_utc=f"2022-03-0{i + 1}T00:00:00Z"))
    yield cid, ids
    with Writer(running_stack) as w:
        w.client.delete(f"{running_stack.internal}/collections/{cid}")


def _follow(client: httpx.Client, link: dict[str, Any]) -> httpx.Response:
    method = link.get("method", "GET").upper()
    if method == "POST":
        return client.post(link["href"], json=link.get("body", {}), headers=link.get("headers") or {})
    return client.get(link["href"], headers=link.get("headers") or {})


@pytest.mark.parametrize("api", ["internal", "external"])
def test_every_link_works_through_the_proxy(
    running_stack: RunningStack, catalogue: tuple[str, list[str]], api: str
) -> None:
    cid, ids = catalogue
    base = running_stack.internal if api == "internal" else running_stack.external
    requests: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", "/", None),
        ("GET", "/collections", None),
        ("GET", f"/collections/{cid}", None),
        ("GET", f"/collections/{cid}/items?limit=1", None),
        ("GET", f"/collections/{cid}/items/{ids[0]}", None),
        ("GET", f"/search?collections={cid}&limit=1", None),
        ("POST", "/search", {"collections": [cid], "limit": 1}),
    ]
    seen_rels: set[str] = set()
    followed: set[tuple[str, str]] = set()
    with httpx.Client(timeout=30) as client:
        for method, path, body in requests:
            r = client.request(method, base + path, json=body)
            assert r.status_code == 200, (method, path, r.text[:200])
            doc = r.json()
            for link in links_of(doc, RELS):
                href = link["href"]
                # an API's links stay on that API, at the proxy's public address
                assert href.startswith(base + "/") or href == base, (path, link)
                seen_rels.add(link["rel"])
                sig = (link.get("method", "GET"), href + repr(link.get("body")))
                if sig in followed:
                    continue
                followed.add(sig)
                got = _follow(client, link)
                assert got.status_code == 200, (path, link, got.status_code, got.text[:200])
                if link["rel"] == "next":
                    page = got.json()
                    assert page["features"], (path, link)
                    assert page["features"][0]["id"] != doc["features"][0]["id"], "next page repeats page 1"
    assert set(RELS) <= seen_rels, f"never saw {set(RELS) - seen_rels}"
