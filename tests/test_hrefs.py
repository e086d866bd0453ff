"""The three legs of an item's hrefs agree: catalogue -> database -> API -> catalogue, and
internal -> external (what ingest writes is what the external policy keeps and query reads)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, urljoin

from hypothesis import given
from hypothesis import strategies as st

from eomatch.hrefs import (
    ITEM_LINK_RELS,
    PLACE_RELS,
    AssetHrefs,
    api_item_href,
    api_item_target,
    file_uri,
    file_uri_path,
    is_api_relative_href,
    layout_item_target,
    links_from_api,
    links_to_api,
    local_path,
    quote_path,
    quote_segment,
)
from eomatch.model import relative_href
from eomatch.safe_names import is_safe_name
from eomatch.server.external_policy import drop_private_stored_links, policy_from_settings

API = "http://127.0.0.1:8000/api/"
names = st.text(min_size=1, max_size=40).filter(is_safe_name)


@given(names, names)
def test_what_ingest_writes_the_external_policy_keeps_and_query_reads_back(collection: str, item_id: str) -> None:
    href = api_item_href(collection, item_id)
    assert is_api_relative_href(href)
    assert api_item_target(urljoin(API, href)) == (collection, item_id)
    assert api_item_target(href) == (collection, item_id)
    doc = {"type": "Feature", "links": [{"rel": "derived_from", "href": href}, {"rel": "license", "href": "/srv/x"}]}
    kept = drop_private_stored_links(doc, policy_from_settings(["http", "https"], []))
    assert kept["links"] == [{"rel": "derived_from", "href": href}]


@given(st.text(max_size=60))
def test_quote_shortcuts_equal_urllib(text: str) -> None:
    assert quote_path(text) == quote(text)
    assert quote_segment(text) == quote(text, safe="")


def test_file_uris_round_trip_and_local_paths() -> None:
    for path in ("/npl-data/a b/ü#1.nc", "/plain/x.tif"):
        uri = file_uri(path)
        assert uri.startswith("file:///") and " " not in uri and "#" not in uri
        assert file_uri_path(uri) == path
        assert local_path(uri) == Path(path) and local_path(path) == Path(path)
    assert local_path("https://x/y.tif") is None and local_path("rel/y.tif") is None and local_path(None) is None


def test_asset_hrefs_make_relative_hrefs_absolute_and_serve_the_catalogue_under_a_base(tmp_path: Path) -> None:
    root = tmp_path / "cat"
    item_dir = root / "S2" / "2022" / "05" / "21"
    plain = AssetHrefs(root, None)
    assert plain.asset_href("./a b.tif", item_dir) == file_uri(item_dir / "a b.tif")
    assert plain.asset_href("https://x/y.tif", item_dir) == "https://x/y.tif"
    served = AssetHrefs(root, "http://host/assets")
    assert served.asset_href("./a b.tif", item_dir) == "http://host/assets/S2/2022/05/21/a%20b.tif"
    assert served.asset_href(file_uri(item_dir / "c.tif"), item_dir) == "http://host/assets/S2/2022/05/21/c.tif"
    assert served.asset_href("/elsewhere/d.tif", item_dir) == "file:///elsewhere/d.tif"  # not under the root


def test_every_item_relation_survives_the_database_and_back(tmp_path: Path) -> None:
    """catalogue -> database (ingest) -> API -> catalogue (query): each relation between
    items comes back as a layout path to the same item, and the links of a place go."""
    src_rel = "M/2022/05/21/m1.json"
    links = [{"rel": rel, "href": relative_href(src_rel, f"P{i}/2022/05/21/p{i}.json")}
             for i, rel in enumerate(sorted(ITEM_LINK_RELS))]  # fmt: skip
    links += [{"rel": rel, "href": "../../../collection.json"} for rel in sorted(PLACE_RELS)]
    links.append({"rel": "license", "href": "https://example.org/license"})
    item_dir = str(tmp_path / "cat" / "M" / "2022" / "05" / "21")
    stored = links_to_api(links, item_dir, AssetHrefs(tmp_path / "cat", None))
    assert [lk["rel"] for lk in stored] == [*sorted(ITEM_LINK_RELS), "license"]
    assert all(is_api_relative_href(lk["href"]) for lk in stored[:-1])
    served = [{**lk, "href": urljoin(API, lk["href"])} for lk in stored]  # what stac-fastapi resolves
    local, refs = links_from_api(served + [{"rel": "self", "href": API + "x"}], API, src_rel)
    assert local == [{"rel": lk["rel"], "href": lk["href"]} for lk in links if lk["rel"] not in PLACE_RELS]
    assert [target for target, _, _ in refs] == [(f"P{i}", f"p{i}") for i in range(len(ITEM_LINK_RELS))]


def test_layout_targets_and_unsafe_targets() -> None:
    assert layout_item_target("/c/M/2022/05/21", "../../../../S2/2022/05/20/x.json") == ("S2", "x")
    assert layout_item_target("/data/c/M", "../S2/x.json") == ("S2", "x")  # a flat legacy layout
    assert layout_item_target("/c/M/2022/05/21", "x.tif") is None
    # a target that is not a safe file name keeps the server's URL and is never fetched
    links, refs = links_from_api([{"rel": "derived_from", "href": "collections/..%2Fx/items/a"}], API, "M/m.json")
    assert links == [{"rel": "derived_from", "href": API + "collections/..%2Fx/items/a"}] and refs == []


def test_the_catalogue_points_every_item_relation_at_its_targets_file(tmp_path: Path) -> None:
    """The catalogue relinks the same relations ingest and query rewrite (not only derived_from)."""
    from shapely.geometry import box

    from eomatch.catalogue import MatchupCatalogue
    from eomatch.model import Product

    with MatchupCatalogue.create(tmp_path / "cat") as cat:
        cat.add_product(Product.create(id="p", collection="P", platform="Sentinel-2A", geometry=box(0, 0, 1, 1),
                                       start="2022-05-20T10:00:00Z"))  # fmt: skip
        q = Product.create(id="q", collection="Q", platform="Landsat-9", geometry=box(0, 0, 1, 1),
                           start="2022-05-21T10:00:00Z").to_dict()  # fmt: skip
        q["links"] = [{"rel": rel, "href": "./p.json"} for rel in sorted(ITEM_LINK_RELS)]
        cat.add_product(q)
        written = cat.get_item("q")
        target = cat.path_of("p").resolve()
        base = cat.path_of("q").parent
    links = [lk for lk in written["links"] if lk["rel"] in ITEM_LINK_RELS]
    assert len(links) == len(ITEM_LINK_RELS)
    assert all((base / lk["href"]).resolve() == target for lk in links), links
