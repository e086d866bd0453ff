"""eomatch.ingest against the real stack: hrefs, links through nginx, idempotence, --since, dry run.

Tests that count items get a fresh pgSTAC database of their own in the stack's
cluster; the link test uses the stack's own database (the one the APIs serve),
with item ids no other test makes.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import pytest
from catalogue_factory import build_catalogue
from helpers import fresh_pgstac_database
from plpygis.geometry import Geometry

from eomatch import jsonio
from eomatch.catalogue import MatchupCatalogue
from eomatch.errors import IngestError
from eomatch.ingest import (
    MARK_HASH,
    MARK_SOURCE,
    HrefRewriter,
    IngestSummary,
    ingest,
    transform_item,
)
from eomatch.model import link_target_id, to_utc
from eomatch.pgstac import ewkb_hex as _ewkb_hex
from eomatch.stack.db import DbCredentials, setup_database, stack_credentials

# --------------------------------------------------------------------------- fixtures


def unique_start() -> datetime:
    """A start date no other test uses, so item ids in the shared database are ours."""
    return datetime(2019, 1, 1, tzinfo=UTC) + timedelta(minutes=random.randrange(2_000_000))


@pytest.fixture(scope="module")
def new_db(running_stack: Any) -> Callable[[], DbCredentials]:
    """Factory of fresh pgSTAC databases in the stack's cluster (ingest-role credentials)."""
    return lambda: fresh_pgstac_database(running_stack.settings, "ingest_test_")


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


def row_versions(creds: DbCredentials) -> dict[tuple[str, str], str]:
    """(collection, id) -> the row's xmin: changes whenever the row is written again."""
    with psycopg.connect(creds.dsn) as conn:
        rows = conn.execute("SELECT collection, id, xmin::text FROM pgstac.items").fetchall()
    return {(c, i): x for c, i, x in rows}


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
def test_a_progress_passed_in_counts_the_files_and_stays_open(running_stack: Any, new_db: Any, tmp_path: Path) -> None:
    """Like find and download, ingest reports to the caller's Progress and leaves
    closing it to the caller; its total, when unset, is the files to read."""
    from eomatch.progress import Progress

    class Recording(Progress):
        closes = 0

        def close(self) -> None:
            self.closes += 1
            super().close()

    settings, creds, root = running_stack.settings, new_db(), tmp_path / "cat"
    build_catalogue(root, n_events=2)
    n = sum(1 for _ in item_files(root))
    progress = Recording("mine", quiet=True)
    summary = run(settings, creds, root, progress=progress)
    assert summary.new == n
    assert (progress.done, progress.total, progress.closes) == (n, n, 0)


@pytest.mark.stack
def test_new_vs_updated_follows_the_database(running_stack: Any, new_db: Any, tmp_path: Path) -> None:
    """Losing the local memory changes nothing the database holds: its markers say the
    items are there as the files give them (unchanged, none rewritten). A database
    emptied behind our back is refilled even with --since last."""
    settings, creds, root = running_stack.settings, new_db(), tmp_path / "cat"
    build_catalogue(root, n_events=2)
    assert run(settings, creds, root).new == 8
    before = row_versions(creds)
    for f in (root / ".eomatch").glob("ingest-*.sqlite*"):
        f.unlink()
    lost = run(settings, creds, root)
    assert (lost.new, lost.updated, lost.unchanged) == (0, 0, 8)
    assert row_versions(creds) == before  # nothing was sent again

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


# --------------------------------------------------------------------------- the database, not memory (issue 14)


@pytest.mark.stack
def test_delete_or_edit_through_the_api_then_reingest(running_stack: Any, tmp_path: Path) -> None:
    """An item deleted through /api/ comes back, with or without --since last; one
    replaced through /api/ with other content gets the file's content again. Counts
    say what the database held: the deleted one is new, the edited one updated."""
    from helpers import api_key, bearer

    settings, root = running_stack.settings, tmp_path / "cat"
    build_catalogue(root, n_events=2, start=unique_start())
    assert ingest(settings, catalogue=root, quiet=True).new == 8
    victim, edited = (jsonio.read_json(p) for p in sorted(item_files(root))[:2])

    def url(doc: dict[str, Any]) -> str:
        return f"{running_stack.internal}/collections/{doc['collection']}/items/{doc['id']}"

    with httpx.Client(headers=bearer(api_key(running_stack)), timeout=30) as client:
        assert client.delete(url(victim)).status_code in (200, 204)
        assert client.get(url(victim)).status_code == 404
        served = client.get(url(edited)).json()
        served["properties"]["eomatch:note"] = "edited through the API"
        assert client.put(url(edited), json=served).status_code == 200
        assert client.get(url(edited)).json()["properties"]["eomatch:note"] == "edited through the API"

        again = ingest(settings, catalogue=root, quiet=True)
        assert (again.new, again.updated, again.unchanged) == (1, 1, 6), again.line()
        assert client.get(url(victim)).status_code == 200
        for api in (running_stack.internal, running_stack.external):  # the marker is never served
            served_text = client.get(url(victim).replace(running_stack.internal, api)).text
            assert MARK_HASH not in served_text and MARK_SOURCE not in served_text
        assert "eomatch:note" not in client.get(url(edited)).json()["properties"]

        # --since last: no file changed, yet the item the database lost is sent again
        assert client.delete(url(victim)).status_code in (200, 204)
        since = ingest(settings, catalogue=root, quiet=True, since="last")
        assert (since.new, since.updated, since.scanned) == (1, 0, 1), since.line()
        assert client.get(url(victim)).status_code == 200
        quiet = ingest(settings, catalogue=root, quiet=True, since="last")
        assert quiet.changed == 0 and quiet.scanned == 0


@pytest.fixture(scope="module")
def db_only_stack() -> Iterator[Any]:
    """A database of its own (a restore replaces everything in it): no APIs, no proxy."""
    from conftest import private_database

    with private_database("eomatch-ingest-restore-") as settings:
        yield settings


def copy_item(path: Path, new_id: str) -> Path:
    """A new item file beside ``path``: the same item under another id."""
    doc = jsonio.read_json(path)
    doc["id"] = new_id
    target = path.with_name(f"{new_id}.json")
    jsonio.write_json_atomic(target, doc)
    return target


@pytest.mark.stack
def test_restore_of_an_older_backup_then_reingest(db_only_stack: Any, tmp_path: Path) -> None:
    """After ``eomatch-stack restore`` of a backup older than the last ingest, a
    --since last run (no file changed since) sends what the backup lacks or holds
    otherwise, and the database holds the catalogue again."""
    from eomatch.stack.backup import backup, restore

    settings, root = db_only_stack, tmp_path / "cat"
    build_catalogue(root, n_events=2)
    assert ingest(settings, catalogue=root, quiet=True).new == 8
    backup(settings, tmp_path / "old.dump")

    paths = sorted(item_files(root))
    doc = jsonio.read_json(paths[0])
    doc["properties"]["eomatch:note"] = "after the backup"
    jsonio.write_json_atomic(paths[0], doc)
    added = copy_item(paths[1], "ADDED_AFTER_THE_BACKUP")
    after = ingest(settings, catalogue=root, quiet=True)
    assert (after.new, after.updated, after.unchanged) == (1, 1, 7)
    creds = stack_credentials(settings, "ingest")
    want = db_items(creds)

    restore(settings, tmp_path / "old.dump")
    assert len(db_items(creds)) == 8  # the backup's items, the old content
    since = ingest(settings, catalogue=root, quiet=True, since="last")
    assert (since.new, since.updated, since.scanned) == (1, 1, 2), since.line()
    assert db_items(creds) == want
    assert db_items(creds)[(doc["collection"], doc["id"])]["properties"]["eomatch:note"] == "after the backup"
    assert any(i == added.stem for _, i in want)
    full = ingest(settings, catalogue=root, quiet=True)
    assert (full.changed, full.unchanged) == (0, 9)


def extent_of(items: list[dict[str, Any]]) -> tuple[list[float], datetime, datetime]:
    """The bbox and time range that cover ``items`` (what a collection's extent must cover)."""
    bbox = [min(i["bbox"][0] for i in items), min(i["bbox"][1] for i in items),
            max(i["bbox"][2] for i in items), max(i["bbox"][3] for i in items)]  # fmt: skip
    starts = [to_utc(i["properties"].get("start_datetime") or i["properties"]["datetime"]) for i in items]
    ends = [to_utc(i["properties"].get("end_datetime") or i["properties"]["datetime"]) for i in items]
    return bbox, min(starts), max(ends)


@pytest.mark.stack
def test_two_catalogues_feed_one_collection_extent_is_the_union(
    running_stack: Any, new_db: Any, tmp_path: Path
) -> None:
    """A legacy catalogue (collection.json with no temporal extent, a whole-world bbox)
    ingested into the collections a demo-like catalogue filled: each shared collection's
    extent in the database covers the items of both, not the last file's."""
    from catalogue_factory import build_legacy_catalogue

    creds = new_db()
    settings = running_stack.settings
    build_catalogue(tmp_path / "demo", n_events=2, start=datetime(2023, 3, 1, 9, 0, tzinfo=UTC))
    build_legacy_catalogue(tmp_path / "legacy")
    assert run(settings, creds, tmp_path / "demo").new == 8
    second = run(settings, creds, tmp_path / "legacy")
    assert (second.new, second.repaired) == (4, 2), second.line()  # the matchup and event lacked start_datetime

    files: dict[str, list[dict[str, Any]]] = {}
    feeds: dict[str, set[str]] = {}
    for root in (tmp_path / "demo", tmp_path / "legacy"):
        for path in item_files(root):
            doc = jsonio.read_json(path)
            files.setdefault(doc["collection"], []).append(doc)
            feeds.setdefault(doc["collection"], set()).add(root.name)
    with psycopg.connect(creds.dsn) as conn:
        extents = dict(conn.execute("SELECT id, content->'extent' FROM pgstac.collections").fetchall())
    shared = {c for c, roots in feeds.items() if len(roots) == 2}
    assert shared >= {"S2_MSI_L1C", "LANDSAT_C2L1"}
    for collection, docs in files.items():
        bbox, start, end = extent_of(docs)
        got = extents[collection]
        assert got["spatial"]["bbox"][0] == pytest.approx(bbox), collection
        (interval,) = got["temporal"]["interval"]
        assert None not in interval, collection
        assert (to_utc(interval[0]), to_utc(interval[1])) == (start, end), collection

    # the repaired items are valid STAC as the database holds them
    from eomatch.validate import item_validator

    stored = db_items(creds)
    repaired = [v for (_, i), v in stored.items() if i in ("legacy-event-1",) or i.endswith("_20220521T083000")]
    assert len(repaired) == 2
    for item in repaired:
        assert item["properties"]["start_datetime"] == item["properties"]["datetime"]
        assert item_validator().problem(item) is None


@pytest.mark.stack
def test_totals_count_what_an_ingest_added(running_stack: Any, new_db: Any, tmp_path: Path) -> None:
    """pgSTAC keeps each search's numberMatched for a day: after an ingest the next
    search counts again, so a researcher never reads the total from before the load."""
    creds = new_db()
    settings = running_stack.settings
    search = orjson.dumps({"collections": ["S2_MSI_L1C"], "limit": 1}).decode()

    def total() -> int:
        with psycopg.connect(creds.dsn) as conn:
            return int(conn.execute("SELECT pgstac.search(%s::jsonb)->>'numberMatched'", (search,)).fetchone()[0])

    def in_files(root: Path) -> int:
        return sum(1 for p in item_files(root) if jsonio.read_json(p)["collection"] == "S2_MSI_L1C")

    build_catalogue(tmp_path / "first", n_events=2, start=datetime(2023, 4, 1, 9, 0, tzinfo=UTC))
    build_catalogue(tmp_path / "second", n_events=3, start=datetime(2023, 6, 1, 9, 0, tzinfo=UTC))
    run(settings, creds, tmp_path / "first")
    assert total() == total() == in_files(tmp_path / "first")  # counted once, then kept
    assert run(settings, creds, tmp_path / "second").new > 0
    assert total() == in_files(tmp_path / "first") + in_files(tmp_path / "second")


# --------------------------------------------------------------------------- every file ingested or reported (issues 10, 14)


def broken_files(root: Path) -> dict[str, Path]:
    """Item files that must be refused, each for one reason, beside real ones."""
    s2 = sorted((root / "S2_MSI_L1C").rglob("S2A_*.json"))
    base = jsonio.read_json(s2[0])
    folder = s2[0].parent
    out: dict[str, Path] = {}

    def write(name: str, doc: Any) -> None:
        out[name] = folder / f"{name}.json"
        jsonio.write_json_atomic(out[name], doc)

    write("NO_TYPE", {k: v for k, v in base.items() if k != "type"} | {"id": "NO_TYPE"})
    write("LOWER_TYPE", base | {"type": "feature", "id": "LOWER_TYPE"})
    write("PWNED", base | {"id": "../../../../outside/PWNED"})
    write("BAD_ASSET", base | {"id": "BAD_ASSET", "assets": {"../x": {"href": "x.tif"}}})
    write("NO_GEOMETRY", {k: v for k, v in base.items() if k not in ("geometry", "bbox")} | {"id": "NO_GEOMETRY"})
    write("NOT_AN_OBJECT", [base])
    write("LINKS_NOT_A_LIST", base | {"id": "LINKS_NOT_A_LIST", "links": {"rel": "self"}})
    write("HREF_NOT_A_STRING", base | {"id": "HREF_NOT_A_STRING", "links": [{"rel": "via", "href": 3}]})
    # the same id as a real item, in another date folder
    other = root / "S2_MSI_L1C" / "2030" / "01" / "01"
    other.mkdir(parents=True)
    out["DUPLICATE"] = other / s2[1].name
    jsonio.write_json_atomic(out["DUPLICATE"], jsonio.read_json(s2[1]))
    return out


@pytest.mark.stack
@pytest.mark.parametrize("batch_size", [2000, 1])
def test_broken_files_are_refused_one_line_each_and_the_rest_goes_in(
    running_stack: Any, new_db: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture, batch_size: int
) -> None:
    """Unsafe ids and asset keys, files that are no STAC Item, items that break STAC core,
    and a second file with an id already taken are refused, each with one warning naming
    the file and the rule; every other item goes in. (Batch size 1: the duplicate is
    found across batches; 2000: within one.)"""
    settings, creds, root = running_stack.settings, new_db(), tmp_path / "cat"
    build_catalogue(root, n_events=2)
    broken = broken_files(root)
    caplog.set_level("WARNING", logger="eomatch.ingest")
    summary = run(settings, creds, root, batch_size=batch_size)
    assert (summary.new, summary.refused) == (8, len(broken)), summary.line()
    assert f"; {len(broken)} refused;" in summary.line()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == len(broken)
    rules = {
        "NO_TYPE": 'no "type"',
        "LOWER_TYPE": "'feature', not \"Feature\"",
        "PWNED": "item id '../../../../outside/PWNED' is not a safe file name: contains a path separator",
        "BAD_ASSET": "asset key '../x' is not a safe file name",
        "NO_GEOMETRY": "STAC core",
        "NOT_AN_OBJECT": "not a JSON object",
        "LINKS_NOT_A_LIST": '"links" is not a JSON array',
        "HREF_NOT_A_STRING": "not a valid STAC Item",
        "DUPLICATE": "duplicate id",
    }
    for name, path in broken.items():
        (line,) = [w for w in warnings if w.startswith(f"refused {path}: ")]
        assert rules[name] in line, line
        assert "\n" not in line
    dup_line = next(w for w in warnings if w.startswith(f"refused {broken['DUPLICATE']}"))
    original = next(p for p in item_files(root) if p.name == broken["DUPLICATE"].name and p != broken["DUPLICATE"])
    assert str(original) in dup_line  # both files named
    assert {i for _, i in db_items(creds)} == {jsonio.read_json(p)["id"] for p in item_files(root)
                                               if p.stem not in broken and p != broken["DUPLICATE"]}  # fmt: skip
    assert not (tmp_path / "outside").exists()

    # --since last reads the refused files again (still refused), and a fixed one goes in
    again = run(settings, creds, root, since="last")
    assert (again.new, again.refused) == (0, len(broken)), again.line()
    fixed = jsonio.read_json(broken["NO_TYPE"])
    fixed["type"] = "Feature"
    jsonio.write_json_atomic(broken["NO_TYPE"], fixed)
    after_fix = run(settings, creds, root, since="last")
    assert (after_fix.new, after_fix.refused) == (1, len(broken) - 1), after_fix.line()
    assert ("S2_MSI_L1C", "NO_TYPE") in db_items(creds)


@pytest.mark.stack
def test_symlinked_date_folder_is_followed_and_a_loop_reported(
    running_stack: Any, new_db: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Items under a date folder that is a symbolic link go in (they were skipped
    silently); a link back up the tree is walked once and reported; a broken link to an
    item file is refused."""
    settings, creds, root = running_stack.settings, new_db(), tmp_path / "cat"
    build_catalogue(root, n_events=2)
    day = next(p.parent for p in item_files(root) if "LANDSAT_C2L1/" in str(p) and "-vs-" not in str(p))
    elsewhere = tmp_path / "nfs" / "day"
    elsewhere.parent.mkdir()
    day.rename(elsewhere)
    day.symlink_to(elsewhere, target_is_directory=True)
    (day.parent / "loop").symlink_to(root / "LANDSAT_C2L1", target_is_directory=True)
    (day.parent / "GONE.json").symlink_to(tmp_path / "nowhere.json")
    caplog.set_level("WARNING", logger="eomatch.ingest")
    summary = run(settings, creds, root)
    assert (summary.new, summary.refused) == (8, 1), summary.line()
    assert summary.skipped == {"already walked (symbolic link loop)": 1}
    assert "1 skipped (1 already walked (symbolic link loop))" in summary.line()
    warnings = [r.getMessage() for r in caplog.records]
    assert any(w == f"skipped folder {day.parent / 'loop'}: already walked (symbolic link loop)" for w in warnings), warnings
    assert any(w == f"refused {day.parent / 'GONE.json'}: broken symbolic link" for w in warnings), warnings
    linked = {jsonio.read_json(p)["id"] for p in elsewhere.glob("*.json")}
    assert linked and linked <= {i for _, i in db_items(creds)}


@pytest.mark.stack
def test_stray_files_and_folders_at_the_top_are_reported(
    running_stack: Any, new_db: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings, creds, root = running_stack.settings, new_db(), tmp_path / "cat"
    build_catalogue(root, n_events=1)
    (root / "notes").mkdir()
    (root / "notes" / "x.json").write_text("{}")
    (root / "stray.json").write_text("{}")
    caplog.set_level("WARNING", logger="eomatch.ingest")
    summary = run(settings, creds, root)
    assert summary.new == 4
    assert summary.skipped == {"not a collection (no collection.json)": 1, "not in a collection folder": 1}
    warnings = [r.getMessage() for r in caplog.records]
    assert f"skipped folder {root / 'notes'}: not a collection (no collection.json)" in warnings
    assert f"skipped file {root / 'stray.json'}: not in a collection folder" in warnings


@pytest.mark.stack
def test_database_recreated_under_the_same_name(running_stack: Any, new_db: Any, tmp_path: Path) -> None:
    """The same host, port and name, but a new empty database: --since last sends the
    collections and every item again (the memory of the old database is not trusted)."""
    from psycopg import sql

    settings, creds, root = running_stack.settings, new_db(), tmp_path / "cat"
    build_catalogue(root, n_events=2)
    assert run(settings, creds, root).new == 8
    admin = stack_credentials(settings, "admin")
    maint = DbCredentials(admin.host, admin.port, "postgres", admin.user, admin.password)
    with psycopg.connect(maint.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(creds.dbname)))
    setup_database(admin, creds.dbname, {creds.user: creds.password}, {})
    assert db_items(creds) == {}
    since = run(settings, creds, root, since="last")
    assert (since.new, since.updated, since.unchanged, since.collections) == (8, 0, 0, 4), since.line()
    assert len(db_items(creds)) == 8


@pytest.mark.stack
def test_extents_a_failed_run_left_are_computed_by_the_next(
    running_stack: Any, new_db: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that dies after loading but before computing extents leaves the file's
    extents (here a legacy [[null, null]]); the next run computes them even though it
    has nothing else to load."""
    from catalogue_factory import build_legacy_catalogue

    import eomatch.ingest as ingest_module

    settings, creds, root = running_stack.settings, new_db(), tmp_path / "legacy"
    build_legacy_catalogue(root)

    def dies(self: Any) -> None:
        raise RuntimeError("killed before the extents")

    monkeypatch.setattr(ingest_module._Run, "_update_extents", dies)
    with pytest.raises(IngestError, match="killed before the extents"):
        run(settings, creds, root)
    monkeypatch.undo()

    def intervals() -> list[Any]:
        with psycopg.connect(creds.dsn) as conn:
            rows = conn.execute("SELECT content->'extent'->'temporal'->'interval' FROM pgstac.collections").fetchall()
        return [r[0] for r in rows]

    assert [[None, None]] in intervals()
    again = run(settings, creds, root)
    assert again.changed == 0, again.line()
    assert all(None not in interval[0] for interval in intervals())


def test_partition_constraints_are_the_rows_ranges_after_a_run_and_after_a_killed_one(
    running_stack: Any, new_db: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loads open a partition's datetime check constraints once per run (batches in time
    order would otherwise re-validate the partition each); the end of the run makes them
    the rows' ranges again, so searches prune partitions as before. A run killed before
    that end leaves them open; the next one, with nothing to load, closes them."""
    import eomatch.ingest as ingest_module

    settings, creds, root = running_stack.settings, new_db(), tmp_path / "cat"
    build_catalogue(root, n_events=3)

    def loose() -> list[tuple[str, str, str]]:
        """Partitions whose constraints are not their rows' datetime / end_datetime ranges."""
        with psycopg.connect(creds.dsn) as conn:
            parts = conn.execute(
                "SELECT s.partition, m.constraint_dtrange::text, m.constraint_edtrange::text "
                "FROM pgstac.partition_stats s, LATERAL pgstac.partition_catalog_meta(s.partition) m"
            ).fetchall()
            assert parts
            out = []
            for part, dt, edt in parts:
                tight = conn.execute(
                    "SELECT %s::tstzrange = tstzrange(min(datetime), max(datetime), '[]') AND "
                    f"%s::tstzrange = tstzrange(min(end_datetime), max(end_datetime), '[]') FROM pgstac.\"{part}\"",
                    (dt, edt),
                ).fetchone()[0]
                if not tight:
                    out.append((part, dt, edt))
            return out

    def dies(self: Any) -> None:
        raise RuntimeError("killed before the end")

    monkeypatch.setattr(ingest_module._Run, "_update_extents", dies)
    with pytest.raises(IngestError, match="killed before the end"):
        run(settings, creds, root, batch_size=2)
    monkeypatch.undo()
    assert loose(), "the loads opened the constraints"
    assert run(settings, creds, root).changed == 0
    assert loose() == []

    creds, root = new_db(), tmp_path / "cat2"
    build_catalogue(root, n_events=4)
    assert run(settings, creds, root, batch_size=3).new == 16
    assert loose() == []


def test_collection_is_read_without_its_item_links(tmp_path: Path) -> None:
    """A collection.json lists every item; ingest keeps none of those links. It is read
    as the plain parse gives it minus the links the transform drops, in memory about the
    file's size (the plain parse of 50k links takes several times that); a file that is
    not a plain object still gives the usual value or one-line error."""
    import tracemalloc

    from eomatch.errors import CatalogueError
    from eomatch.ingest import read_collection, transform_collection

    links = [{"rel": "item", "href": f"./2022/01/01/item-{k:06d}.json", "type": "application/geo+json"}
             for k in range(50_000)]  # fmt: skip
    links += [{"rel": "license", "href": "https://example.com/licence"}, {"rel": "root", "href": "../catalog.json"}]
    col = {"type": "Collection", "id": "c", "extent": {"spatial": {"bbox": [[-1.5, 2, 3e5, 4]]}},
           "links": links, "summaries": {"platform": ["S2A", None, True, 1.25]}}  # fmt: skip
    path = tmp_path / "collection.json"
    path.write_text(json_dumps_spaced(col))
    rewriter = HrefRewriter(tmp_path, None)
    want = {**col, "links": [links[-2]]}
    tracemalloc.start()
    got = read_collection(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert got == want
    assert transform_collection(got, tmp_path, rewriter) == transform_collection(col, tmp_path, rewriter)
    assert peak < 3 * path.stat().st_size, (peak, path.stat().st_size)

    for text, value in (("[1, 2]", [1, 2]), ('{"links": {"a": 1}}', {"links": {"a": 1}}), (' { } ', {})):
        path.write_text(text)
        assert read_collection(path) == value
    path.write_text('{"id": "c", "links": [}')
    with pytest.raises(CatalogueError, match="malformed JSON in .*collection.json line 1"):
        read_collection(path)


def json_dumps_spaced(doc: Any) -> str:
    """Indented JSON, as catalogues write it (whitespace everywhere the reader must skip)."""
    import json

    return json.dumps(doc, indent=2)
