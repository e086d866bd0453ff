"""The external href policy on plain dicts: what may leave, what must not."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from eomatch.server.external_policy import HrefPolicy, policy_from_settings, scrub
from eomatch.server.middleware import ExternalFilterMiddleware

POLICY = policy_from_settings(["http", "https"], ["/npl-data"])


def _item(assets: dict[str, Any], links: list[dict[str, Any]] | None = None, **props: Any) -> dict[str, Any]:
    return {
        "type": "Feature",
        "id": "x",
        "properties": {"datetime": "2022-01-01T00:00:00Z", **props},
        "assets": assets,
        "links": links or [],
    }


def test_internal_asset_hrefs_are_dropped_and_public_ones_kept_verbatim() -> None:
    public = {"href": "https://example.com/a.tif", "type": "image/tiff", "roles": ["data"], "title": "A"}
    doc = _item(
        {
            "file": {"href": "file:///npl-data/a.tif"},
            "bare": {"href": "/npl-data/products/a.tif"},
            "abs": {"href": "/home/someone/a.tif"},
            "rel": {"href": "../products/a.tif"},
            "dot": {"href": "./a.tif"},
            "s3": {"href": "s3://bucket/a.tif"},
            "web": public,
            "plain_http": {"href": "http://example.com/b.tif"},
        }
    )
    out = scrub(doc, POLICY)
    assert out["assets"] == {"web": public, "plain_http": {"href": "http://example.com/b.tif"}}
    assert out["properties"] == doc["properties"]


def test_public_href_under_internal_prefix_is_dropped() -> None:
    out = scrub(_item({"a": {"href": "https://host.example/npl-data/a.tif"}}), POLICY)
    assert out["assets"] == {}


def test_scheme_check_is_case_insensitive() -> None:
    out = scrub(_item({"a": {"href": "FILE:///x/a.tif"}, "b": {"href": "HTTPS://example.com/b"}}), POLICY)
    assert list(out["assets"]) == ["b"]


def test_links_with_internal_hrefs_are_dropped() -> None:
    links = [
        {"rel": "self", "href": "https://api.example/external/collections/c/items/x"},
        {"rel": "derived_from", "href": "file:///npl-data/x.json"},
        {"rel": "via", "href": "../x.json"},
        {"rel": "alternate", "href": "/npl-data/x.json"},
    ]
    out = scrub(_item({}, links), POLICY)
    assert out["links"] == [links[0]]


def test_leaking_strings_anywhere_are_removed() -> None:
    doc = {
        "type": "FeatureCollection",
        "features": [_item({}, source="file:///npl-data/x.nc", note="fine")],
        "context": {"paths": ["/npl-data/a", "ok", "file:/b"]},
    }
    out = scrub(doc, POLICY)
    assert out["features"][0]["properties"] == {"datetime": "2022-01-01T00:00:00Z", "note": "fine"}
    assert out["context"]["paths"] == ["ok"]


def test_item_assets_definitions_without_href_are_kept() -> None:
    doc = {"type": "Collection", "item_assets": {"data": {"type": "image/tiff", "roles": ["data"]}}}
    assert scrub(doc, POLICY) == doc


def test_collection_list_and_fields_subset_shapes() -> None:
    coll = {"type": "Collection", "id": "c", "assets": {"t": {"href": "/npl-data/t.png"}, "w": {"href": "https://e/t"}}}
    out = scrub({"collections": [coll], "links": []}, POLICY)
    assert out["collections"][0]["assets"] == {"w": {"href": "https://e/t"}}
    subset = {"features": [{"id": "x", "assets": {"a": {"href": "a.tif"}}}]}  # fields=assets,id
    assert scrub(subset, POLICY) == {"features": [{"id": "x", "assets": {}}]}


def test_scrub_leaves_the_input_unchanged() -> None:
    doc = _item({"a": {"href": "file:///a"}})
    before = orjson.dumps(doc)
    scrub(doc, POLICY)
    assert orjson.dumps(doc) == before


def test_policy_without_prefixes_still_blocks_file_and_bare_paths() -> None:
    policy = HrefPolicy()
    assert not policy.is_public_href("/npl-data/a.tif")
    assert not policy.is_public_href("file:///a")
    assert not policy.is_public_href(None)
    assert policy.is_public_href("https://example.com/npl-data/a.tif")  # no prefix configured


def test_middleware_body_filter_drops_unparseable_leaking_bodies() -> None:
    mw = ExternalFilterMiddleware(app=None, policy=POLICY)  # type: ignore[arg-type]
    assert mw._filter(b"not json file:///npl-data/x") == b""
    assert mw._filter(b"not json at all") == b"not json at all"
    filtered = orjson.loads(mw._filter(orjson.dumps(_item({"a": {"href": "/npl-data/a"}}))))
    assert filtered["assets"] == {}


# --- property: nothing internal survives, public assets survive verbatim ---------

_safe_text = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=12)
_internal_href = st.one_of(
    _safe_text.map(lambda s: f"file:///npl-data/{s}.tif"),
    _safe_text.map(lambda s: f"file:///tmp/{s}.tif"),
    _safe_text.map(lambda s: f"/npl-data/{s}/x.nc"),
    _safe_text.map(lambda s: f"{s}/x.tif"),
    _safe_text.map(lambda s: f"../{s}.json"),
)
_public_href = _safe_text.map(lambda s: f"https://data.example.org/{s}.tif")
_asset = st.fixed_dictionaries(
    {"href": st.one_of(_internal_href, _public_href)},
    optional={"title": _safe_text, "roles": st.lists(_safe_text, max_size=2)},
)


@settings(max_examples=100, deadline=None)
@given(assets=st.dictionaries(_safe_text, _asset, max_size=6), hrefs=st.lists(_internal_href, max_size=3))
def test_scrub_property(assets: dict[str, Any], hrefs: list[str]) -> None:
    links = [{"rel": "related", "href": h} for h in hrefs]
    doc = {"features": [_item(assets, links)], "collections": [{"assets": assets, "links": links}]}
    out = scrub(doc, POLICY)
    text = orjson.dumps(out).decode()
    assert "file:" not in text and "/npl-data" not in text
    expected = {k: v for k, v in assets.items() if v["href"].startswith("https://")}
    assert out["features"][0]["assets"] == expected
    assert out["collections"][0]["assets"] == expected
    assert out["features"][0]["links"] == []


def test_body_is_clean_fast_path() -> None:
    clean = orjson.dumps(_item({"a": {"href": "https://example.com/a.tif"}},
                               [{"rel": "self", "href": "http://h/external/x"}], note="fine"))
    assert POLICY.body_is_clean(clean)
    for dirty in (
        _item({"a": {"href": "rel/a.tif"}}),
        _item({"a": {"href": "s3://b/a.tif"}}),
        _item({"a": {"href": None}}),
        _item({}, [{"rel": "via", "href": "../x.json"}]),
        _item({}, note="see File:///x"),
        _item({}, note="/npl-data/x"),
    ):
        assert not POLICY.body_is_clean(orjson.dumps(dirty)), dirty
    assert POLICY.body_is_clean(b'{"a":{"href":"HTTPS://example.com/x"}}')
    assert not POLICY.body_is_clean(b'{"a": {"href" : "https://example.com/x"}}')  # unusual: full path


@settings(max_examples=100, deadline=None)
@given(assets=st.dictionaries(_safe_text, _asset, max_size=6), hrefs=st.lists(_internal_href, max_size=2))
def test_clean_bodies_are_exactly_what_scrub_keeps(assets: dict[str, Any], hrefs: list[str]) -> None:
    doc = _item(assets, [{"rel": "related", "href": h} for h in hrefs])
    body = orjson.dumps(doc)
    if POLICY.body_is_clean(body):
        assert scrub(doc, POLICY) == doc
    mw = ExternalFilterMiddleware(app=None, policy=POLICY)  # type: ignore[arg-type]
    assert orjson.loads(mw._filter(body)) == scrub(doc, POLICY)


def test_an_asset_named_href_is_an_asset_not_a_link() -> None:
    """Found by the property test: ``assets: {"href": {...}}`` kept the public asset out."""
    assets = {"href": {"href": "file:///npl-data/0.tif"}, "b": {"href": "https://data.example.org/b.tif"}}
    out = scrub({"features": [_item(assets, [])]}, POLICY)
    assert out["features"][0]["assets"] == {"b": assets["b"]}
    public = {"href": {"href": "https://data.example.org/a.tif"}}
    assert scrub({"features": [_item(public, [])]}, POLICY)["features"][0]["assets"] == public
