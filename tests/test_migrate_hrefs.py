"""eomatch-migrate-hrefs: asset hrefs move in pgSTAC (one transaction) and in the files."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from catalogue_factory import build_catalogue
from conftest import RunningStack

from eomatch import jsonio
from eomatch.catalogue import MatchupCatalogue
from eomatch.errors import ConfigError
from eomatch.ingest import ingest
from eomatch.migrate_hrefs import migrate_hrefs, prefix_forms, rewrite_assets, rewrite_href

BIN = Path(sys.executable).parent
NEW_BASE = "https://data.example.org"


# --- pure functions -------------------------------------------------------------


def test_prefix_matches_on_a_path_boundary() -> None:
    forms = prefix_forms("file:///npl-data")
    assert forms == ["file:///npl-data", "/npl-data"]
    to = "https://data.example.org/npl-data"
    assert rewrite_href("file:///npl-data/a/b.tif", forms, to) == "https://data.example.org/npl-data/a/b.tif"
    assert rewrite_href("/npl-data/a.tif", forms, to) == "https://data.example.org/npl-data/a.tif"
    assert rewrite_href("file:///npl-data2/a.tif", forms, to) is None
    assert rewrite_href("https://x.org/npl-data/a.tif", forms, to) is None
    assert rewrite_href("./npl-data/a.tif", forms, to) is None


def test_rewrite_assets_counts_and_leaves_others() -> None:
    doc: dict[str, Any] = {
        "assets": {
            "a": {"href": "file:///npl-data/x.tif"},
            "b": {"href": "https://example.com/y.tif"},
            "c": {"href": "/npl-data/z.nc", "roles": ["data"]},
            "d": {"title": "no href"},
        }
    }
    assert rewrite_assets(doc, prefix_forms("file:///npl-data"), "s3://bucket/npl") == 2
    assert doc["assets"]["a"]["href"] == "s3://bucket/npl/x.tif"
    assert doc["assets"]["b"]["href"] == "https://example.com/y.tif"
    assert doc["assets"]["c"] == {"href": "s3://bucket/npl/z.nc", "roles": ["data"]}


@pytest.mark.parametrize(
    ("src", "dst", "message"),
    [
        ("file:///", "https://x.org/d", "too broad"),
        ("npl-data", "https://x.org/d", "absolute path"),
        ("file:///npl-data", "file:///npl-data/", "same prefix"),
        ("file:///npl-data", "file:///npl-data/new", "lies under"),
    ],
)
def test_bad_prefixes_are_one_line_errors(tmp_path: Path, src: str, dst: str, message: str) -> None:
    from eomatch.settings import load_settings

    with pytest.raises(ConfigError, match=message):
        migrate_hrefs(load_settings(environ={}), src, dst, catalogue=tmp_path, db=False)


# --- against the session stack ----------------------------------------------------


@pytest.fixture()
def ingested(running_stack: RunningStack, tmp_path: Path) -> Iterator[tuple[MatchupCatalogue, str]]:
    """A catalogue under a prefix no other test uses, ingested into the session stack.

    Its own start date keeps item ids apart from other tests' catalogues.
    """
    prefix = f"/npl-data-{uuid.uuid4().hex[:8]}"
    start = datetime(2021, 1 + uuid.uuid4().int % 12, 1 + uuid.uuid4().int % 27, 9, 0, tzinfo=UTC)
    cat = build_catalogue(tmp_path / "cat", n_events=2, internal_prefix=prefix, start=start)
    # A collection-level asset under the prefix too (collections' assets move as well).
    col_file = cat.root / "S2_MSI_L1C" / "collection.json"
    col = jsonio.read_json(col_file)
    col["assets"] = {"overview": {"href": f"{prefix}/overview.png", "type": "image/png", "roles": ["overview"]}}
    jsonio.write_json_atomic(col_file, col)
    ingest(running_stack.settings, catalogue=cat.root, quiet=True)
    yield cat, prefix


def _assets_of(client: Any, products: list[tuple[str, str]]) -> dict[str, dict[str, str]]:
    out = {}
    for collection, item_id in products:
        r = client.get(f"/collections/{collection}/items/{item_id}")
        assert r.status_code == 200, r.text
        out[item_id] = {k: a["href"] for k, a in r.json()["assets"].items()}
    return out


def test_moved_hrefs_appear_on_the_external_api(running_stack: RunningStack, ingested: tuple[MatchupCatalogue, str]) -> None:
    cat, prefix = ingested
    products = [(it["collection"], it["id"]) for it in cat.iter_items("S2_MSI_L1C")]
    assert len(products) == 2
    # The new public place must not contain the stack's internal prefix (/npl-data):
    # the external filter drops any href that does, whatever its scheme.
    new_prefix = f"{NEW_BASE}/shared{prefix.removeprefix('/npl-data')}"
    # What the files hold under the prefix (ingest made these file:// URIs in the db).
    under = [
        (it["id"], key)
        for it in cat.iter_items()
        for key, asset in it["assets"].items()
        if asset["href"].startswith((prefix + "/", f"file://{prefix}/"))
    ]
    n_assets, n_items = len(under), len({i for i, _ in under})
    assert n_assets >= 2
    with httpx.Client(base_url=running_stack.external, timeout=30) as client:  # /external/ through nginx
        before = _assets_of(client, products)
        assert all("nfs" not in assets for assets in before.values())  # file:// is never public

        # --dry-run through the console script: counts, changes nothing.
        proc = subprocess.run(
            [
                str(BIN / "eomatch-migrate-hrefs"), "--from", f"file://{prefix}", "--to", new_prefix,
                "--catalogue", str(cat.root), "--state-dir", str(running_stack.settings.stack.state_dir),
                "--dry-run", "-q",
            ],
            capture_output=True, text=True, timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        assert "would move" in proc.stdout
        assert f"{n_assets} assets in {n_items} items" in proc.stdout
        assert "1 assets in 1 collections" in proc.stdout
        assert f"{n_assets + 1} assets in {n_items + 1} of" in proc.stdout
        assert _assets_of(client, products) == before
        item_file = cat.path_of(products[0][1])
        assert f'"{prefix}/products/' in item_file.read_text()

        def updated_times() -> dict[str, str]:
            out = {}
            for it in cat.iter_items():
                r = httpx.get(f"{running_stack.internal}/collections/{it['collection']}/items/{it['id']}", timeout=10)
                out[it["id"]] = r.json()["properties"]["updated"]
            return out

        updated_before = updated_times()
        started = datetime.now(UTC).replace(microsecond=0)
        summary = migrate_hrefs(
            running_stack.settings, f"file://{prefix}", new_prefix, catalogue=cat.root, quiet=True
        )
        # Moved items count as updated (so 'eomatch-query --since last' fetches them); others do not.
        updated_after = updated_times()
        moved = {i for i, _ in under}
        for item_id, stamp in updated_after.items():
            if item_id in moved:
                assert datetime.fromisoformat(stamp.replace("Z", "+00:00")) >= started, (item_id, stamp)
            else:
                assert stamp == updated_before[item_id]
        assert (summary.db_items, summary.db_item_assets) == (n_items, n_assets)
        assert (summary.db_collections, summary.db_collection_assets) == (1, 1)
        assert (summary.files, summary.file_assets) == (n_items + 1, n_assets + 1)
        after = _assets_of(client, products)
    for item_id, assets in after.items():
        assert assets["nfs"].startswith(new_prefix + "/products/"), assets
        assert {k: v for k, v in assets.items() if k != "nfs"} == before[item_id]
    # The files moved too; other hrefs in them are untouched.
    doc = jsonio.read_json(cat.path_of(products[0][1]))
    assert doc["assets"]["nfs"]["href"].startswith(new_prefix + "/products/")
    assert doc["assets"]["local"]["href"].startswith("./data/")
    # The internal API serves the new hrefs too, and a re-run finds nothing left.
    r = httpx.get(f"{running_stack.internal}/collections/{products[0][0]}/items/{products[0][1]}", timeout=10)
    assert r.json()["assets"]["nfs"]["href"].startswith(new_prefix)
    col_doc = jsonio.read_json(cat.root / "S2_MSI_L1C" / "collection.json")
    assert col_doc["assets"]["overview"]["href"] == f"{new_prefix}/overview.png"
    r = httpx.get(f"{running_stack.internal}/collections/S2_MSI_L1C", timeout=10)
    assert r.json()["assets"]["overview"]["href"] == f"{new_prefix}/overview.png"
    again = migrate_hrefs(running_stack.settings, f"file://{prefix}", new_prefix, catalogue=cat.root, quiet=True)
    assert (again.db_item_assets, again.file_assets) == (0, 0)


def test_a_wrong_catalogue_path_changes_nothing_in_the_database(
    running_stack: RunningStack, ingested: tuple[MatchupCatalogue, str], tmp_path: Path
) -> None:
    """The catalogue is checked before the database moves, so the two never end up half-moved."""
    from eomatch.errors import CatalogueError

    cat, prefix = ingested
    product = next(cat.iter_items("S2_MSI_L1C"))
    url = f"{running_stack.internal}/collections/S2_MSI_L1C/items/{product['id']}"
    before = httpx.get(url, timeout=10).json()["assets"]
    with pytest.raises(CatalogueError, match="no catalog.json"):
        migrate_hrefs(running_stack.settings, f"file://{prefix}", f"{NEW_BASE}/x", catalogue=tmp_path / "nope", quiet=True)
    assert httpx.get(url, timeout=10).json()["assets"] == before
    assert before["nfs"]["href"].startswith(f"file://{prefix}/")
