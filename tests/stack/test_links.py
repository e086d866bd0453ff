"""Every navigation link the APIs hand out works through the proxy and stays on its API."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from conftest import RunningStack
from helpers import links_of, make_collection, make_item, unique_id, written_collection

pytestmark = pytest.mark.stack

RELS = ("self", "root", "next", "parent", "collection", "items")


@pytest.fixture(scope="module")
def catalogue(running_stack: RunningStack) -> Iterator[tuple[str, list[str]]]:
    """A collection with three items, so ``limit=1`` pages have a ``next`` link."""
    cid = unique_id("links")
    ids = [f"links-item-{i}" for i in range(3)]
    items = [make_item(cid, iid, 20 + i, 20, datetime_utc=f"2022-03-0{i + 1}T00:00:00Z") for i, iid in enumerate(ids)]
    with written_collection(running_stack, make_collection(cid, title="Links"), items):
        yield cid, ids


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


# --- links come from the proxy's own address, never from the client's headers -----

HOSTILE = {
    "Host": {"Host": "evil.example"},
    "Host with port": {"Host": "evil.example:8443"},
    "X-Forwarded-Host": {"X-Forwarded-Host": "evil.example", "X-Forwarded-Port": "443", "X-Forwarded-Proto": "https"},
    "Forwarded": {"Forwarded": "for=1.2.3.4;host=evil.example;proto=https"},
}


@pytest.mark.parametrize("hostile", list(HOSTILE))
@pytest.mark.parametrize("api", ["internal", "external"])
def test_client_host_headers_never_reach_links(
    running_stack: RunningStack, catalogue: tuple[str, list[str]], api: str, hostile: str
) -> None:
    """A client's Host/Forwarded headers would otherwise plant links (and, with a cache
    in front, poison them for everyone); nginx sends the apps its own address."""
    cid, ids = catalogue
    base = running_stack.internal if api == "internal" else running_stack.external
    with httpx.Client(timeout=30) as client:
        for path in ("/", f"/collections/{cid}/items?limit=1", f"/search?collections={cid}&limit=1"):
            r = client.get(base + path, headers=HOSTILE[hostile])
            assert r.status_code == 200, (path, r.text[:200])
            assert "evil.example" not in r.text, path
            hrefs = [lk["href"] for lk in links_of(r.json(), RELS)]
            assert hrefs and all(h.startswith(base + "/") or h == base for h in hrefs), (path, hrefs)


@pytest.fixture(scope="module")
def public_url_proxy(running_stack: RunningStack) -> Iterator[tuple[str, str, str]]:
    """A second proxy with ``stack.public_url`` set: (its own URL, public URL, internal URL)."""
    from conftest import free_port
    from helpers_stack import loopback_url, second_proxy

    public = "https://matchups.example.org"
    with second_proxy(running_stack.settings, "eomatch-public-url-", stack={"public_url": public + "/"},
                      tls_port=free_port()) as proxy:
        yield loopback_url(proxy), public, proxy.internal_url


@pytest.mark.parametrize("api", ["api", "external"])
def test_links_use_public_url_when_set(
    public_url_proxy: tuple[str, str, str], catalogue: tuple[str, list[str]], api: str
) -> None:
    """Behind a load balancer or TLS terminator the proxy's own address is not what users
    reach: ``stack.public_url`` is; the internal listener keeps its own address."""
    own, public, internal = public_url_proxy
    cid, _ = catalogue
    with httpx.Client(timeout=30) as client:
        r = client.get(f"{own}/{api}/collections/{cid}/items?limit=1", headers={"Host": "evil.example"})
        assert r.status_code == 200, r.text[:200]
        hrefs = [lk["href"] for lk in links_of(r.json(), RELS)]
        assert hrefs and all(h.startswith(f"{public}/{api}/") for h in hrefs), hrefs
        r = client.get(f"{internal}/{api}/collections/{cid}/items?limit=1")
        assert r.status_code == 200, r.text[:200]
        hrefs = [lk["href"] for lk in links_of(r.json(), RELS)]
        assert hrefs and all(h.startswith(f"{internal}/{api}/") for h in hrefs), hrefs
        assert client.get(hrefs[0]).status_code == 200
