"""Property: whatever hrefs the catalogue holds, nothing internal leaves through
``/external/``, and public assets come out exactly as stored.

Collections and items with random mixes of ``file://`` hrefs, bare paths under the
internal prefix, relative paths and ``https://`` hrefs are written through the
internal API (with a key) or with pypgstac, then read through the proxy every way
the external API offers.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from conftest import RunningStack
from helpers import Writer, api_key, load_with_pypgstac, make_collection, make_item, unique_id
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.stack

SEGMENT = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=10)


def _prefix(stack: RunningStack) -> str:
    return stack.settings.stack.api.internal_path_prefixes[0]


def hrefs(prefix: str) -> st.SearchStrategy[str]:
    return st.one_of(
        st.builds(lambda a, b: f"file://{prefix}/{a}/{b}.tif", SEGMENT, SEGMENT),
        st.builds(lambda a: f"file:///tmp/{a}.nc", SEGMENT),
        st.builds(lambda a: f"FILE://localhost{prefix}/{a}.json", SEGMENT),
        st.builds(lambda a, b: f"{prefix}/{a}/{b}.tif", SEGMENT, SEGMENT),
        st.builds(lambda a: f"{a}.tif", SEGMENT),
        st.builds(lambda a, b: f"./{a}/{b}.json", SEGMENT, SEGMENT),
        st.builds(lambda a: f"../../{a}/thumb.png", SEGMENT),
        st.builds(lambda a, b: f"https://data.example.org/{a}/{b}.tif", SEGMENT, SEGMENT),
        st.builds(lambda a: f"https://{a}.example.com/x.tif?sig=1", SEGMENT),
    )


def assets(prefix: str) -> st.SearchStrategy[dict[str, Any]]:
    asset = st.fixed_dictionaries(
        {"href": hrefs(prefix)},
        optional={
            "title": SEGMENT,
            "type": st.sampled_from(["image/tiff; application=geotiff", "application/json", "image/png"]),
            "roles": st.lists(st.sampled_from(["data", "metadata", "thumbnail", "overview"]), max_size=2, unique=True),
        },
    )
    return st.dictionaries(SEGMENT, asset, max_size=5)


@st.composite
def catalogues(draw: st.DrawFn, prefix: str) -> dict[str, Any]:
    cid = unique_id("leak")
    n_items = draw(st.integers(1, 3))
    items = []
    for i in range(n_items):
        doc = make_item(cid, f"item-{i}", 30 + i, -20, assets=draw(assets(prefix)))
        # Non-standard links pystac may leave behind, pointing at the filesystem.
        for href in draw(st.lists(st.sampled_from([f"file://{prefix}/x/item.json", f"{prefix}/x/item.json"]), max_size=2)):
            doc["links"].append({"rel": "derived_from", "href": href, "type": "application/json"})
        items.append(doc)
    return {
        "collection": make_collection(cid, title="leak test", assets=draw(assets(prefix))),
        "items": items,
        "via": draw(st.sampled_from(["api", "pypgstac"])),
    }


def _public(doc_assets: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc_assets.items() if v["href"].lower().startswith("https://")}


def _views(cid: str, item_ids: list[str]) -> list[tuple[str, str, dict[str, Any] | None]]:
    """(method, path, body) of every way to read the catalogue."""
    search_get = f"/search?collections={cid}&limit=100"
    views: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", f"/collections/{cid}", None),
        ("GET", "/collections?limit=1000", None),
        ("GET", f"/collections/{cid}/items?limit=100", None),
        ("GET", f"/collections/{cid}/items?limit=100&fields=assets,id", None),
        ("GET", f"/collections/{cid}/items?limit=100&fields=-geometry", None),
        ("GET", search_get, None),
        ("GET", search_get + "&fields=assets,id", None),
        ("GET", search_get + "&fields=-geometry", None),
        ("GET", f"/search?ids={','.join(item_ids)}", None),
        ("POST", "/search", {"collections": [cid], "limit": 100}),
        ("POST", "/search", {"collections": [cid], "fields": {"include": ["assets", "id"]}}),
        ("POST", "/search", {"collections": [cid], "fields": {"exclude": ["geometry"]}}),
    ]
    views += [("GET", f"/collections/{cid}/items/{iid}", None) for iid in item_ids]
    return views


def _docs_with_assets(body: Any) -> list[dict[str, Any]]:
    """Items and collections in a response (the response itself, features, collections)."""
    if not isinstance(body, dict):
        return []
    if "features" in body:
        return list(body["features"])
    if "collections" in body:
        return list(body["collections"])
    return [body]


@pytest.fixture(scope="module")
def writer(running_stack: RunningStack) -> Writer:
    return Writer(running_stack, api_key(running_stack, "leaks"))


def test_nothing_internal_leaks(running_stack: RunningStack, writer: Writer) -> None:
    prefix = _prefix(running_stack)
    dsn = running_stack.credentials("ingest").dsn

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(cat=catalogues(prefix))
    def check(cat: dict[str, Any]) -> None:
        coll, items = cat["collection"], cat["items"]
        cid, item_ids = coll["id"], [i["id"] for i in items]
        if cat["via"] == "api":
            writer.collection(coll)
            for item in items:
                writer.item(item)
        else:
            load_with_pypgstac(dsn, [coll], items)
        try:
            _check_catalogue(running_stack, coll, items, item_ids, prefix)
        finally:
            writer.client.delete(f"{running_stack.internal}/collections/{cid}")

    check()


def _check_catalogue(
    stack: RunningStack, coll: dict[str, Any], items: list[dict[str, Any]], item_ids: list[str], prefix: str
) -> None:
    cid = coll["id"]
    with httpx.Client(timeout=30) as client:
        # What the internal API serves is what was written (the reference).
        internal = {i["id"]: client.get(f"{stack.internal}/collections/{cid}/items/{i['id']}").json() for i in items}
        internal[cid] = client.get(f"{stack.internal}/collections/{cid}").json()
        for doc in [coll, *items]:
            assert internal[doc["id"]].get("assets", {}) == doc["assets"]

        seen: set[str] = set()
        for method, path, body in _views(cid, item_ids):
            r = client.request(method, stack.external + path, json=body)
            assert r.status_code == 200, (method, path, r.text[:200])
            text = r.text
            assert "file:" not in text.lower(), (method, path)
            assert prefix not in text, (method, path)
            for doc in _docs_with_assets(orjson.loads(text)):
                if doc.get("id") not in internal:
                    continue  # another test's collection in /collections
                seen.add(doc["id"])
                expected = _public(internal[doc["id"]].get("assets", {}))
                assert doc.get("assets", {}) == expected, (method, path, doc["id"])
        assert seen == set(internal), "some document never came back through /external/"


# --- every href anywhere (issue 10, item 5) ----------------------------------------------


def _all_hrefs(doc: Any) -> list[str]:
    if isinstance(doc, dict):
        own = [doc["href"]] if isinstance(doc.get("href"), str) else []
        return own + [h for v in doc.values() for h in _all_hrefs(v)]
    if isinstance(doc, list):
        return [h for v in doc for h in _all_hrefs(v)]
    return []


@pytest.mark.parametrize("via", ["api", "pypgstac"])
def test_every_href_is_public_or_gone(running_stack: RunningStack, writer: Writer, via: str) -> None:
    """``alternate`` hrefs, stored links with bare or relative paths (which stac-fastapi
    would resolve into URLs on the API host), collection links and ``item_assets``:
    each either is a public URL outside the internal prefixes or is not in the answer.
    A link relative to the API root (ingest's ``derived_from``) is this API's own URL."""
    prefix = _prefix(running_stack)
    private = "/srv/private"
    cid = unique_id("hrefs")
    alternate = {
        "bare": {"href": f"{private}/a.tif"},
        "relative": {"href": "products/a.tif"},
        "file": {"href": f"file://{prefix}/a.tif"},
        "prefixed": {"href": f"https://data.example.org{prefix}/a.tif"},
        "s3-mirror": {"href": "https://mirror.example.org/a.tif", "title": "mirror"},
    }
    public_link = {"rel": "related", "href": "https://example.org/about", "title": "about"}
    api_link = {"rel": "derived_from", "href": f"collections/{cid}/items/item-0"}  # as ingest stores it
    links = [
        api_link,
        {"rel": "license", "href": f"{private}/LICENSE.txt"},
        {"rel": "license", "href": "LICENSE.txt"},
        {"rel": "via", "href": "../../source/item.json"},
        {"rel": "describedby", "href": "https://example.org/doc", "title": f"see {prefix}/doc.pdf"},
        public_link,
    ]
    coll = make_collection(cid, title="hrefs", assets={"thumb": {"href": f"{private}/t.png"},
                                                         "web": {"href": "https://example.org/t.png"}})
    coll["links"] = [dict(link) for link in links]
    coll["item_assets"] = {"data": {"type": "image/tiff", "roles": ["data"]},
                           "odd": {"href": f"{private}/template.tif"}}
    coll["summaries"] = {"processing": [f"{prefix}/bin/run.sh", "public text"]}
    item = make_item(cid, "item-0", 10, 10, assets={
        "data": {"href": "https://data.example.org/a.tif", "alternate": alternate},
    }, properties={"source": f"{prefix}/x.nc"})
    item["links"] = [dict(link) for link in links]
    if via == "api":
        writer.collection(coll)
        writer.item(item)
    else:
        load_with_pypgstac(running_stack.credentials("ingest").dsn, [coll], [item])
    try:
        with httpx.Client(timeout=30) as client:
            stored = client.get(f"{running_stack.internal}/collections/{cid}/items/item-0").json()
            assert stored["assets"]["data"]["alternate"] == alternate  # the internal API shows all
            for method, path, body in _views(cid, ["item-0"]):
                r = client.request(method, running_stack.external + path, json=body)
                assert r.status_code == 200, (method, path, r.text[:200])
                doc = orjson.loads(r.content)
                for href in _all_hrefs(doc):
                    assert href.lower().startswith(("https://", "http://")), (path, href)
                    assert private not in href and prefix not in href, (path, href)
                    assert not href.endswith("LICENSE.txt") and "source/item.json" not in href, (path, href)
                assert prefix not in r.text and "file:" not in r.text.lower(), path
                for d in _docs_with_assets(doc):
                    if d.get("id") == "item-0" and "assets" in d:
                        assert d["assets"]["data"]["alternate"] == {"s3-mirror": alternate["s3-mirror"]}
                    if d.get("id") in ("item-0", cid) and "fields" not in path and "fields" not in str(body):
                        assert public_link in d["links"], (path, d["links"])  # stored, public: kept
                        resolved = f"{running_stack.external}/collections/{cid}/items/item-0"
                        assert {**api_link, "href": resolved} in d["links"], (path, d["links"])
                        assert client.get(resolved).status_code == 200
                        assert not [lk for lk in d["links"] if lk["rel"] in ("license", "via", "describedby")
                                    and lk.get("title", "").startswith("see")], path
            coll_out = client.get(f"{running_stack.external}/collections/{cid}").json()
            assert coll_out["item_assets"] == {"data": coll["item_assets"]["data"]}
            assert coll_out["assets"] == {"web": coll["assets"]["web"]}
            assert coll_out["summaries"]["processing"] == ["public text"]
    finally:
        writer.client.delete(f"{running_stack.internal}/collections/{cid}")
