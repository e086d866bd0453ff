"""eomatch.ingest against the real stack: hrefs, links through nginx, idempotence, --since, dry run.

Tests that count items get a fresh pgSTAC database of their own in the stack's
cluster; the link test uses the stack's own database (the one the APIs serve),
with item ids no other test makes.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from catalogue_factory import build_catalogue
from plpygis.geometry import Geometry

from eomatch import jsonio
from eomatch.catalogue import MatchupCatalogue
from eomatch.errors import IngestError
from eomatch.ingest import HrefRewriter, IngestSummary, _ewkb_hex, ingest, transform_item
from eomatch.model import link_target_id
from eomatch.stack.db import DbCredentials, setup_database, stack_credentials

# --------------------------------------------------------------------------- fixtures


def unique_start() -> datetime:
    """A start date no other test uses, so item ids in the shared database are ours."""
    return datetime(2019, 1, 1, tzinfo=UTC) + timedelta(minutes=random.randrange(2_000_000))


@pytest.fixture(scope="module")
def new_db(running_stack: Any) -> Callable[[], DbCredentials]:
    """Factory of fresh pgSTAC databases in the stack's cluster (ingest-role credentials).

    Not dropped: dropping is slow, and they go with the session's stack.
    """
    admin = stack_credentials(running_stack.settings, "admin")
    role = stack_credentials(running_stack.settings, "ingest")

    def make() -> DbCredentials:
        name = f"ingest_test_{uuid.uuid4().hex[:10]}"
        setup_database(admin, name, {role.user: role.password}, {})
        return DbCredentials(role.host, role.port, name, role.user, role.password)

    return make


def run(settings: Any, creds: DbCredentials, catalogue: Path, **kw: Any) -> IngestSummary:
    return ingest(
        settings, catalogue=catalogue, db_host=creds.host, db_port=creds.port, db_name=creds.dbname,
        db_user=creds.user, db_password=creds.password, quiet=True, **kw,
    )  # fmt: skip


def db_items(creds: DbCredentials) -> dict[tuple[str, str], dict[str, Any]]:
    """(collection, id) -> the item as pgSTAC returns it (hydrated)."""
    with psycopg.connect(creds.dsn) as conn:
        rows = conn.execute("SELECT collection, id, content_hydrate(items.*) FROM pgstac.items").fetchall()
    return {(c, i): content for c, i, content in rows}


def item_files(root: Path) -> Iterator[Path]:
    cat = MatchupCatalogue.open(root)
    for _, path in cat.iter_item_paths():
        yield path


# --------------------------------------------------------------------------- transforms (no database)


def test_transform_makes_relative_hrefs_absolute_and_links_api_relative(tmp_path: Path) -> None:
    root = tmp_path / "cat"
    build_catalogue(root, n_events=1)
    cat = MatchupCatalogue.open(root)
    matchup_path = next(p for _, p in cat.iter_item_paths() if "matchup:products" in jsonio.read_json(p)["properties"])
    s2_path = next(p for _, p in cat.iter_item_paths(collection="S2_MSI_L1C"))

    s2 = transform_item(jsonio.read_json(s2_path), s2_path, HrefRewriter(root, None), "2026-01-01T00:00:00Z")
    assert s2["assets"]["local"]["href"] == f"file://{s2_path.parent / 'data' / 's2_0.tif'}"
    assert s2["assets"]["nfs"]["href"] == "file:///npl-data/products/s2_0.tif"  # absolute path: a URI
    assert s2["assets"]["thumbnail"]["href"] == "https://example.com/s2_0.png"
    assert not any(lk["rel"] in ("root", "parent", "collection", "self") for lk in s2["links"])
    assert s2["properties"]["updated"] == "2026-01-01T00:00:00Z"

    # A provider's older 'updated' gives way to the file's time (the file changed);
    # a later one is kept.
    old = {**jsonio.read_json(s2_path)}
    old["properties"] = {**old["properties"], "updated": "2022-05-21T10:00:00Z"}
    got = transform_item(old, s2_path, HrefRewriter(root, None), "2026-01-01T00:00:00Z")
    assert got["properties"]["updated"] == "2026-01-01T00:00:00Z"
    later = {**jsonio.read_json(s2_path)}
    later["properties"] = {**later["properties"], "updated": "2026-03-01T00:00:00+00:00"}
    got = transform_item(later, s2_path, HrefRewriter(root, None), "2026-01-01T00:00:00Z")
    assert got["properties"]["updated"] == "2026-03-01T00:00:00+00:00"

    base = "https://stac.example.org/files"
    s2b = transform_item(jsonio.read_json(s2_path), s2_path, HrefRewriter(root, base + "/"), "x")
    rel_dir = s2_path.parent.relative_to(root.resolve()).as_posix()
    assert s2b["assets"]["local"]["href"] == f"{base}/{rel_dir}/data/s2_0.tif"
    assert s2b["assets"]["nfs"]["href"] == "file:///npl-data/products/s2_0.tif"  # outside the catalogue

    raw = jsonio.read_json(matchup_path)
    mu = transform_item(raw, matchup_path, HrefRewriter(root, None), "x")
    derived = [lk["href"] for lk in mu["links"] if lk["rel"] == "derived_from"]
    products = set(mu["properties"]["matchup:products"])
    assert {h.rsplit("/", 1)[-1] for h in derived} == products
    assert all(h.startswith("collections/") and "/items/" in h for h in derived)


def test_geometry_encoder_matches_pypgstac() -> None:
    shapes = [
        {"type": "Polygon", "coordinates": [[[0, 0], [1.5, 0], [1, 1], [0, 0]], [[0.1, 0.1], [0.2, 0.1], [0.2, 0.2], [0.1, 0.1]]]},
        {"type": "MultiPolygon", "coordinates": [[[[0, 0], [1, 0], [1, 1], [0, 0]]], [[[5, 5], [6, 5], [6, 6], [5, 5]]]]},
        {"type": "Point", "coordinates": [1.25, -2.5, 3.0]},
        {"type": "MultiLineString", "coordinates": [[[1, 2], [3, 4]], [[5, 6], [7, 8]]]},
    ]
    for geom in shapes:
        assert _ewkb_hex(geom) == str(Geometry.from_geojson(geom).ewkb), geom["type"]
    assert _ewkb_hex({"type": "GeometryCollection", "geometries": []}) is None


# --------------------------------------------------------------------------- through nginx


@pytest.mark.stack
def test_links_resolve_on_both_apis(running_stack: Any, tmp_path: Path) -> None:
    """Every derived_from/related link, followed through nginx on /api/ and /external/,
    lands on the item the file links to; relative assets become URLs under the base."""
    root = tmp_path / "cat"
    build_catalogue(root, n_events=2, start=unique_start())
    base = f"{running_stack.base_url}/files"
    summary = ingest(running_stack.settings, catalogue=root, assets_base_url=base, quiet=True)
    assert summary.new + summary.updated == 8 and summary.collections == 4

    expected: dict[tuple[str, str], tuple[Path, set[str]]] = {}
    for path in item_files(root):
        item = jsonio.read_json(path)
        targets = {str(link_target_id(lk)) for lk in item["links"] if lk["rel"] in ("derived_from", "related")}
        expected[(item["collection"], item["id"])] = (path, targets)
    assert sum(len(t) for _, t in expected.values()) == 2 * (2 + 1 + 1)  # per event: matchup 2 derived + 1 related, event 1

    with httpx.Client(timeout=30) as client:
        for api in (running_stack.internal, running_stack.external):
            for (coll, item_id), (path, targets) in expected.items():
                r = client.get(f"{api}/collections/{coll}/items/{item_id}")
                assert r.status_code == 200, (api, coll, item_id, r.text[:200])
                doc = r.json()
                hrefs = [lk["href"] for lk in doc["links"] if lk["rel"] in ("derived_from", "related")]
                assert len(hrefs) == len(targets)
                reached = set()
                for href in hrefs:
                    assert href.startswith(api + "/collections/"), (api, href)
                    followed = client.get(href)
                    assert followed.status_code == 200, (href, followed.status_code)
                    reached.add(followed.json()["id"])
                assert reached == targets, (api, item_id)
                if coll == "S2_MSI_L1C":
                    local_file = (path.parent / jsonio.read_json(path)["assets"]["local"]["href"]).resolve()
                    want = f"{base}/{local_file.relative_to(root.resolve()).as_posix()}"
                    assert doc["assets"]["local"]["href"] == want  # a URL under the base, on both APIs
                    if api == running_stack.external:
                        assert "nfs" not in doc["assets"]  # internal path: never external
                    else:
                        assert doc["assets"]["nfs"]["href"] == "file://" + jsonio.read_json(path)["assets"]["nfs"]["href"]


# --------------------------------------------------------------------------- idempotence and change detection


@pytest.mark.stack
def test_rerun_counts_modify_since_and_dry_run(running_stack: Any, new_db: Any, tmp_path: Path) -> None:
    settings, creds, root = running_stack.settings, new_db(), tmp_path / "cat"
    build_catalogue(root, n_events=3)
    paths = sorted(item_files(root))
    n = len(paths)
    assert n == 12

    first = run(settings, creds, root)
    assert (first.new, first.updated, first.unchanged, first.scanned) == (n, 0, 0, n)
    stored = db_items(creds)
    assert len(stored) == n
    for path in paths:  # what pgSTAC serves is the file, transformed
        want = transform_item(jsonio.read_json(path), path, HrefRewriter(root, None), "unused")
        got = stored[(want["collection"], want["id"])]
        assert (got["geometry"], got["bbox"], got["assets"]) == (want["geometry"], want["bbox"], want["assets"])
        assert [lk for lk in got["links"] if lk["rel"] == "derived_from"] == [
            lk for lk in want["links"] if lk["rel"] == "derived_from"
        ]
        # 'updated' is when the file last changed here (mtime, or ctime if later) when the item has none
        st = path.stat()
        changed = datetime.fromtimestamp(max(st.st_mtime, st.st_ctime), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert got["properties"] == {**want["properties"], "updated": changed}

    again = run(settings, creds, root)
    assert (again.new, again.updated, again.unchanged) == (0, 0, n)
    assert "nothing to do" in again.line() and again.exit_code() == 3

    # Modify one item file: exactly that one is sent again.
    target = paths[0]
    doc = jsonio.read_json(target)
    doc["properties"]["eomatch:note"] = "changed"
    jsonio.write_json_atomic(target, doc)
    changed = run(settings, creds, root)
    assert (changed.new, changed.updated, changed.unchanged) == (0, 1, n - 1)
    assert db_items(creds)[(doc["collection"], doc["id"])]["properties"]["eomatch:note"] == "changed"

    # --since last: only files touched since the last successful run are looked at.
    time.sleep(0.01)
    os.utime(paths[1])
    since = run(settings, creds, root, since="last")
    assert since.scanned == 1 and since.changed == 0 and since.unchanged == 1
    assert run(settings, creds, root, since="last").scanned == 0
    # A file that arrives with an old modification time (rsync -a, cp -p) is still seen.
    copied = jsonio.read_json(paths[3])
    copied["properties"]["eomatch:note"] = "copied in"
    jsonio.write_json_atomic(paths[3], copied)
    os.utime(paths[3], (1_600_000_000, 1_600_000_000))
    arrived = run(settings, creds, root, since="last")
    assert arrived.scanned == 1 and arrived.updated == 1
    stored_copy = db_items(creds)[(copied["collection"], copied["id"])]["properties"]
    assert stored_copy["eomatch:note"] == "copied in"
    assert stored_copy["updated"] > "2026-01-01"  # arrived now: not the 2020 mtime it carries

    # Dry run: reports, writes nothing, and remembers nothing.
    other = jsonio.read_json(paths[2])
    other["properties"]["eomatch:note"] = "dry"
    jsonio.write_json_atomic(paths[2], other)
    before = db_items(creds)
    dry = run(settings, creds, root, dry_run=True)
    assert dry.dry_run and (dry.updated, dry.unchanged) == (1, n - 1) and dry.line().startswith("would ingest")
    assert db_items(creds) == before
    real = run(settings, creds, root)
    assert real.updated == 1
    assert db_items(creds)[(other["collection"], other["id"])]["properties"]["eomatch:note"] == "dry"


@pytest.mark.stack
def test_new_vs_updated_follows_the_database(running_stack: Any, new_db: Any, tmp_path: Path) -> None:
    """Losing the local memory makes items 'updated' (they are in the database), and a
    database emptied behind our back is refilled even with --since last."""
    settings, creds, root = running_stack.settings, new_db(), tmp_path / "cat"
    build_catalogue(root, n_events=2)
    assert run(settings, creds, root).new == 8
    for f in (root / ".eomatch").glob("ingest-*.sqlite*"):
        f.unlink()
    lost = run(settings, creds, root)
    assert (lost.new, lost.updated, lost.unchanged) == (0, 8, 0)

    admin = stack_credentials(settings, "admin")
    with psycopg.connect(DbCredentials(admin.host, admin.port, creds.dbname, admin.user, admin.password).dsn) as conn:
        conn.execute("DELETE FROM pgstac.items")
    refill = run(settings, creds, root, since="last")
    assert (refill.new, refill.scanned) == (8, 8)
    assert len(db_items(creds)) == 8


@pytest.mark.stack
def test_missing_collection_is_refused(running_stack: Any, tmp_path: Path) -> None:
    """Refused before any item is loaded, so the stack's own database will do."""
    root = tmp_path / "cat"
    build_catalogue(root, n_events=1, start=unique_start())
    stray = next(item_files(root))
    doc = jsonio.read_json(stray)
    doc["collection"] = "NO_SUCH_COLLECTION"
    jsonio.write_json_atomic(stray, doc)
    with pytest.raises(IngestError, match="NO_SUCH_COLLECTION.*neither in the catalogue nor in the database"):
        ingest(running_stack.settings, catalogue=root, quiet=True)
    creds = running_stack.credentials("ingest")
    with psycopg.connect(creds.dsn) as conn:
        assert conn.execute("SELECT count(*) FROM pgstac.items WHERE id = %s", (doc["id"],)).fetchone()[0] == 0


@pytest.mark.stack
def test_legacy_catalogue_ingests_without_conversion(running_stack: Any, new_db: Any, tmp_path: Path) -> None:
    """A catalogue the original pystac-based tool wrote (absolute hrefs, no index, old
    property names) goes in as it is, and its item links resolve in the database."""
    from catalogue_factory import build_legacy_catalogue

    ev_id, mu_id = build_legacy_catalogue(tmp_path / "legacy")
    creds = new_db()
    summary = run(running_stack.settings, creds, tmp_path / "legacy")
    assert (summary.new, summary.collections) == (4, 4)
    stored = db_items(creds)
    ids = {item_id for _, item_id in stored}
    assert ids == {ev_id, mu_id, "L9_OLD", "S2_OLD"}
    mu = next(v for (_, i), v in stored.items() if i == mu_id)
    targets = {lk["href"] for lk in mu["links"] if lk["rel"] in ("derived_from", "related")}
    assert targets == {
        "collections/LANDSAT_C2L1/items/L9_OLD",
        "collections/S2_MSI_L1C/items/S2_OLD",
        f"collections/matchup-events-{mu['collection']}/items/{ev_id}",
    }
