"""eomatch.query against the real stack: closure, link rewriting, merges, --since last."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from helpers_http import build_scene
from pystac_client.stac_api_io import StacApiIO

from eomatch.catalogue import MatchupCatalogue
from eomatch.ingest import ingest
from eomatch.model import link_target_id
from eomatch.query import api_item_target, last_sync, parse_bbox, query

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def scene(running_stack, tmp_path_factory):  # type: ignore[no-untyped-def]
    """Three days of matchups, ingested into the stack."""
    base = tmp_path_factory.mktemp("query-scene")
    scene = build_scene(base / "central", base / "data", days=("2022-05-21", "2022-06-02", "2022-07-14"))
    ingest(running_stack.settings, catalogue=scene.root, quiet=True)
    return scene


def _all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.json") if ".eomatch" not in p.parts)


def test_query_matchup_collection_pulls_events_and_products(running_stack, scene, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "mine"
    summary = query(running_stack.settings, running_stack.internal, out, collections=scene.matchup_collection, quiet=True)
    assert summary.searched == 3  # the three matchups matched
    assert summary.closure == 3 + 6  # their events and products came along
    cat = MatchupCatalogue.open(out / "catalog.json")
    events = list(cat.get_events())
    assert sorted(e.id for e in events) == sorted(scene.event_ids)
    from eomatch.schema import iter_errors

    written = list(cat.iter_items())
    assert len(written) == 3 + 3 + 6 and all(iter_errors(it) == [] for it in written)
    for event in events:
        assert len(event.matchup_set) == 1
        a, b = event.matchup_set[0].products()
        assert {a["properties"]["platform"], b["properties"]["platform"]} == {"Sentinel-2A", "Landsat-9"}
        # internal API: the shared-drive file:// data assets are kept
        assert a["assets"]["data"]["href"].startswith("file://")
    # every item link is a relative path to a file that exists, named by its target id
    for path in _all_files(out):
        item = cat.get_item(path.stem) if path.name not in ("catalog.json", "collection.json") else None
        for link in (item or {}).get("links", []):
            if link["rel"] in ("derived_from", "related"):
                assert "://" not in link["href"]
                target = (path.parent / link["href"]).resolve()
                assert target.is_file(), link
                assert target.stem == link_target_id(link)
    # collections were fetched, with the server's metadata
    assert {c["id"] for c in cat.iter_collections()} == {
        scene.matchup_collection, f"matchup-events-{scene.matchup_collection}", scene.s2_collection, scene.ls_collection,
    }  # fmt: skip


def test_query_events_pull_matchups_and_products_and_pystac_reads_it(running_stack, scene, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pystac

    out = tmp_path / "ev"
    query(running_stack.settings, running_stack.internal, out, collections=f"matchup-events-{scene.matchup_collection}",
          start_time="2022-06-01", end_time="2022-06-30", quiet=True)  # fmt: skip
    cat = MatchupCatalogue.open(out)
    assert cat.count("event") == 1 and cat.count("matchup") == 1 and cat.count("product") == 2
    (event,) = list(cat.get_events())
    assert event.id == scene.event_ids[1]
    # pystac walks the same files (links are self-contained)
    root = pystac.Catalog.from_file(str(out / "catalog.json"))
    ids = {item.id for item in root.get_items(recursive=True)}
    assert ids == {scene.event_ids[1], scene.matchup_ids[1], *(p for p in scene.product_files if p.endswith("_1"))}


def test_query_external_has_no_file_hrefs(running_stack, scene, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "ext"
    summary = query(running_stack.settings, running_stack.external, out, collections=scene.matchup_collection, quiet=True)
    assert summary.written == 12
    for path in _all_files(out):
        assert b"file://" not in path.read_bytes(), path
    cat = MatchupCatalogue.open(out)
    a, _ = cat.get_matchup(scene.matchup_ids[0]).products()
    assert "data" not in a["assets"]


def test_requery_merges_keeps_local_additions_and_no_duplicates(running_stack, scene, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "merge"
    query(running_stack.settings, running_stack.internal, out, collections=scene.matchup_collection, quiet=True)
    before = _all_files(out)
    cat = MatchupCatalogue.open(out)
    cat.update_item(scene.matchup_ids[0], lambda it: it["assets"].update(
        {"comparison:latest": {"href": "file:///npl-data/analysis/x.nc"}}))  # fmt: skip
    summary = query(running_stack.settings, running_stack.internal, out, collections=scene.matchup_collection, quiet=True)
    assert summary.written == 12
    assert _all_files(out) == before
    cat = MatchupCatalogue.open(out)
    assert cat.count() == 12
    assert "comparison:latest" in cat.get_item(scene.matchup_ids[0])["assets"]


def test_since_last_fetches_only_newer_items(running_stack, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = running_stack.settings.model_copy(deep=True)
    settings.query.since_overlap_s = 0.0
    first = build_scene(tmp_path / "c1", tmp_path / "d1", days=("2022-08-01",))
    ingest(settings, catalogue=first.root, quiet=True)
    time.sleep(1.1)
    out = tmp_path / "sync"
    full = query(settings, running_stack.internal, out, since="last", collections=first.matchup_collection, quiet=True)
    assert full.since is None and full.written == 4  # no previous sync: everything
    assert last_sync(out, running_stack.internal) is not None
    time.sleep(1.1)
    # a new matchup of the same sensor pair arrives on the server
    second = build_scene(tmp_path / "c1", tmp_path / "d2", days=("2022-08-03",))
    ingest(settings, catalogue=second.root, quiet=True)
    newer = query(settings, running_stack.internal, out, since="last",
                  collections=f"{first.matchup_collection},{second.matchup_collection}", quiet=True)  # fmt: skip
    assert newer.since is not None
    assert newer.searched == 1  # only the new matchup matched the search
    cat = MatchupCatalogue.open(out)
    assert cat.count("matchup") == 2 and cat.count("event") == 2 and cat.count("product") == 4


def test_failure_mid_way_leaves_previous_output_intact(running_stack, scene, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from eomatch.errors import QueryError

    out = tmp_path / "keep"
    query(running_stack.settings, running_stack.internal, out, collections=scene.matchup_collection, quiet=True)
    snapshot = {p: (p.read_bytes(), os.stat(p).st_mtime_ns) for p in _all_files(out)}
    with pytest.raises(QueryError, match="HTTP 400"):
        query(running_stack.settings, running_stack.internal, out, filter="this is not cql2 ((", quiet=True)
    assert {p: (p.read_bytes(), os.stat(p).st_mtime_ns) for p in _all_files(out)} == snapshot


def test_helpers_parse_targets_and_bboxes() -> None:
    assert api_item_target("http://h/api/collections/S2%20X/items/a%2Fb") == ("S2 X", "a/b")
    assert api_item_target("http://h/api/collections/S2") is None
    assert parse_bbox("170 -10 -170 10") == [170.0, -10.0, -170.0, 10.0]


def test_links_across_midnight_point_at_the_right_files(running_stack, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The event's date folder differs from its matchup's: the link guess is corrected."""
    import uuid

    from shapely.geometry import box as sbox

    from eomatch.model import Matchup, MatchupEvent, Product

    tag = uuid.uuid4().hex[:6]
    a = Product.create(id=f"A{tag}", collection=f"CA{tag}", platform="Sentinel-2A", geometry=sbox(0, 0, 1, 1),
                       start="2022-03-01T23:50:00Z")  # fmt: skip
    b = Product.create(id=f"B{tag}", collection=f"CB{tag}", platform="Landsat-9", geometry=sbox(0.5, 0.5, 1.5, 1.5),
                       start="2022-03-01T23:56:00Z")  # fmt: skip
    event = MatchupEvent.create(platform_a="Sentinel-2A", collection_a=f"CA{tag}", platform_b="Landsat-9",
                                collection_b=f"CB{tag}", start="2022-03-01T23:40:00Z", end="2022-03-02T00:40:00Z",
                                region=sbox(-1, -1, 2, 2))  # fmt: skip
    matchup = Matchup.create(event, a.to_dict(), b.to_dict())
    with MatchupCatalogue.create(tmp_path / "central") as cat:
        cat.add_event(event)
    ingest(running_stack.settings, catalogue=tmp_path / "central", quiet=True)
    out = tmp_path / "mine"
    summary = query(running_stack.settings, running_stack.internal, out, collections=matchup.collection_id, quiet=True)
    assert summary.relinked == 1
    local = MatchupCatalogue.open(out)
    path = local.path_of(matchup.id)
    assert "/2022/03/01/" in path.as_posix() and "/2022/03/02/" in local.path_of(event.id).as_posix()
    (link,) = [lk for lk in local.get_item(matchup.id)["links"] if lk.get("matchup:role") == "event"]
    assert (path.parent / link["href"]).resolve() == local.path_of(event.id).resolve()
    (ev,) = list(local.get_events())
    assert [m.id for m in ev.matchup_set] == [matchup.id]


def test_bulk_add_items_matches_add_item(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The batched, threaded write path query uses gives the same catalogue as add_item."""
    a_scene = build_scene(tmp_path / "ref", tmp_path / "data", days=("2022-05-21", "2022-06-02"))
    ref = MatchupCatalogue.open(a_scene.root)
    items = list(ref.iter_items())
    bulk = MatchupCatalogue.create(tmp_path / "bulk")
    with bulk.bulk(commit_every=3):
        bulk.add_items(items, workers=4)
        bulk.add_items(items[:2], workers=4)  # upsert again: merged, not duplicated
    bulk.save()
    bulk.close()
    reopened = MatchupCatalogue.open(tmp_path / "bulk")
    assert reopened.count() == ref.count() == len(items)
    for item in items:
        got = reopened.get_item(item["id"])
        assert got == item
    assert [e.id for e in reopened.get_events()] == [e.id for e in ref.get_events()]


def test_command_line_filter_ids_since_and_progress(running_stack, scene, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``eomatch-query`` as a user types it: --filter and --ids narrow the search,
    progress (items/s) goes to stderr unless -q, one summary line on stdout, and
    --since last asks only for what changed."""
    import subprocess
    import sys

    exe = [str(Path(sys.executable).parent / "eomatch-query"), "--api-url", running_stack.internal]
    # no clock-skew margin: the scene was ingested moments ago
    env = {k: v for k, v in os.environ.items() if not k.startswith("EOMATCH_")} | {"EOMATCH_QUERY__SINCE_OVERLAP_S": "0"}

    def run(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([*exe, "--output", str(out), *args], capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert len(proc.stdout.strip().splitlines()) == 1
        return proc

    first_day = scene.days[0]
    filtered = run(tmp_path / "f", "--collections", scene.matchup_collection,
                   "--filter", f"datetime < TIMESTAMP('{scene.days[1]}T00:00:00Z')")  # fmt: skip
    assert "1 items matched" in filtered.stdout and "items/s" in filtered.stderr
    cat = MatchupCatalogue.open(tmp_path / "f")
    assert [e.start.date().isoformat() for e in cat.get_events()] == [first_day]

    by_id = run(tmp_path / "i", "--ids", ",".join(scene.matchup_ids[1:]), "-q")
    assert "2 items matched" in by_id.stdout and by_id.stderr == ""
    unknown = run(tmp_path / "u", "--ids", f"{scene.matchup_ids[0]},no-such-item", "-q")
    assert "1 items matched" in unknown.stdout
    assert unknown.stderr.strip() == f"warning: 1 of the 2 requested ids are not at {running_stack.internal}/: no-such-item"
    assert sorted(it["id"] for it in MatchupCatalogue.open(tmp_path / "i").iter_items(scene.matchup_collection)) == sorted(
        scene.matchup_ids[1:]
    )

    full = tmp_path / "s"
    run(full, "--collections", scene.matchup_collection, "-q")
    again = run(full, "--collections", scene.matchup_collection, "--since", "last", "-q")
    assert "0 items matched" in again.stdout and "updated since" in again.stdout


class _ScriptedClient(StacApiIO):
    """pystac-client's IO answering each request with the next scripted page (no network)."""

    def __init__(self, docs: list[dict]) -> None:  # type: ignore[type-arg]
        super().__init__(max_retries=None)
        self.docs = list(docs)

    def request(self, href, method=None, headers=None, parameters=None):  # type: ignore[no-untyped-def]
        return json.dumps(self.docs.pop(0))


@pytest.mark.parametrize(
    ("first_page", "expected"),
    [
        ({"numberMatched": 3}, 3),
        ({"context": {"matched": 3, "returned": 2}}, 3),  # the older context extension
        ({}, None),  # pgSTAC with its context setting off says nothing
        ({"numberMatched": "3"}, None),  # not a count
    ],
)
def test_pages_report_the_apis_match_count(first_page, expected) -> None:  # type: ignore[no-untyped-def]
    from eomatch.query import _pages

    f = {"type": "Feature", "id": "x"}
    docs = [
        {"type": "FeatureCollection", "features": [f, f], **first_page,
         "links": [{"rel": "next", "href": "http://api/search?token=2"}]},
        {"type": "FeatureCollection", "features": [f], "numberMatched": 99, "links": []},
    ]  # fmt: skip
    counts: dict[str, int] = {}
    pages = list(_pages(_ScriptedClient(docs), "http://api/search", {}, counts))  # type: ignore[arg-type]
    assert [len(p) for p in pages] == [2, 1]
    assert counts.get("matched") == expected  # from the first page, not a later one


# --------------------------------------------------------------------------- the filters of eomatch-find


@pytest.fixture(scope="module")
def new_year(running_stack, tmp_path_factory):  # type: ignore[no-untyped-def]
    """Matchups of Landsat-9 with Sentinel-2A and with Sentinel-3A on 2022-12-31 at 15:00
    near (0°, 0°), one more far away at 16:00, and one at midnight just after that day."""
    import uuid

    from shapely.geometry import box as sbox

    from eomatch.model import Matchup, MatchupEvent, Product

    tag = uuid.uuid4().hex[:6]
    colls = {"Landsat-9": f"LST{tag}", "Sentinel-2A": f"S2T{tag}", "Sentinel-3A": f"S3T{tag}"}
    ids: dict[str, set[str]] = {}
    root = tmp_path_factory.mktemp("new-year") / "central"
    with MatchupCatalogue.create(root) as cat:
        for name, other, t0, west in (
            ("s2", "Sentinel-2A", "2022-12-31T15:00:00Z", 0.0),
            ("s3", "Sentinel-3A", "2022-12-31T15:00:00Z", 0.0),
            ("far", "Sentinel-2A", "2022-12-31T16:00:00Z", 100.0),  # not 15:00: one event per pair and time
            ("next-day", "Sentinel-2A", "2023-01-01T00:00:00Z", 0.0),
        ):
            day = t0[:10].replace("-", "")
            ls = Product.create(id=f"LC09_{name}_{day}_{tag}", collection=colls["Landsat-9"], platform="Landsat-9",
                                geometry=sbox(west, 0, west + 2, 2), start=t0)  # fmt: skip
            ot = Product.create(id=f"{other}_{name}_{day}_{tag}", collection=colls[other], platform=other,
                                geometry=sbox(west + 1, 1, west + 3, 3), start=t0.replace(":00:00Z", ":05:00Z"))  # fmt: skip
            event = MatchupEvent.create(platform_a="Landsat-9", collection_a=colls["Landsat-9"], platform_b=other,
                                        collection_b=colls[other], start=t0, end=t0.replace(":00:00Z", ":10:00Z"),
                                        region=sbox(west, 0, west + 3, 3))  # fmt: skip
            matchup = Matchup.create(event, ls.to_dict(), ot.to_dict())
            cat.add_event(event)
            ids[name] = {event.id, matchup.id, ls.id, ot.id}
            ids[f"{name}:landsat"] = {ls.id}
    ingest(running_stack.settings, catalogue=root, quiet=True)
    return {"tag": tag, "colls": colls, "ids": ids}


def _item_ids(out: Path) -> set[str]:
    return {it["id"] for it in MatchupCatalogue.open(out).iter_items()}


def _query_cli(capsys, *argv: str) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    from eomatch.cli.query import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_date_only_end_time_keeps_that_whole_day(running_stack, new_year, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    """--end-time 2022-12-31 (the design's example) keeps what happened at 15:00 that day
    and nothing of the next; the same date in a config (a YAML date) and from Python too."""
    ids, colls = new_year["ids"], ",".join(new_year["colls"].values())
    that_day = ids["s2"] | ids["s3"] | ids["far"]
    code, out, err = _query_cli(capsys, "--api-url", running_stack.internal, "--output", str(tmp_path / "flag"),
                                "--collections", colls, "--start-time", "2022-12-31", "--end-time", "2022-12-31", "-q")  # fmt: skip
    assert code == 0, err
    assert "2022-12-31T00:00:00Z/2022-12-31T23:59:59.999999Z" in out
    assert _item_ids(tmp_path / "flag") == that_day

    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"end_time: 2022-12-31\ncollections: [{colls}]\n")  # unquoted: YAML reads a date
    code, _, err = _query_cli(capsys, "--config", str(cfg), "--api-url", running_stack.internal,
                              "--output", str(tmp_path / "config"), "-q")  # fmt: skip
    assert code == 0, err
    assert _item_ids(tmp_path / "config") == that_day

    query(running_stack.settings, running_stack.internal, tmp_path / "py", collections=colls,
          start_time="2023-01-01", end_time="2023-01-01", quiet=True)  # fmt: skip
    assert _item_ids(tmp_path / "py") == ids["next-day"]


def test_config_filters_limit_the_query_exactly_as_the_flags_do(running_stack, new_year, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    """A run config's start/end time, site box, platforms and collections narrow
    eomatch-query as the equivalent flags do; flags override the config."""
    ids, colls = new_year["ids"], list(new_year["colls"].values())
    # what eomatch-find with these values writes: the S2A x L9 matchup of that day
    # and place with its event and products, and any Landsat-9 or Sentinel-2A product
    expected = ids["s2"] | ids["s3:landsat"]
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        "platforms: [S2A, LS9]\nstart_time: 2022-12-31\nend_time: 2022-12-31\n"
        "min_lat: -1\nmax_lat: 5\nmin_lon: -1\nmax_lon: 5\n"
        f"collections: [{', '.join(colls)}]\n"
    )
    code, out, err = _query_cli(capsys, "--config", str(cfg), "--api-url", running_stack.internal,
                                "--output", str(tmp_path / "config"), "-q")  # fmt: skip
    assert code == 0, err
    assert "platforms S2A,LS9" in out and "bbox -1.0,-1.0,5.0,5.0" in out
    assert _item_ids(tmp_path / "config") == expected

    flags = ["--platforms", "S2A,LS9", "--start-time", "2022-12-31", "--end-time", "2022-12-31",
             "--bbox", "-1", "-1", "5", "5", "--collections", ",".join(colls), "-q"]  # fmt: skip
    for api, out_dir in ((running_stack.internal, "flags"), (running_stack.external, "external")):
        code, _, err = _query_cli(capsys, "--api-url", api, "--output", str(tmp_path / out_dir), *flags)
        assert code == 0, err
        assert _item_ids(tmp_path / out_dir) == expected, api

    other = tmp_path / "other.yaml"
    other.write_text(cfg.read_text().replace("platforms: [S2A, LS9]", "platforms: [Sentinel-3A, Landsat-9]"))
    code, _, err = _query_cli(capsys, "--config", str(other), "--api-url", running_stack.internal,
                              "--output", str(tmp_path / "s3"), "-q")  # fmt: skip
    assert code == 0, err
    assert _item_ids(tmp_path / "s3") == ids["s3"] | ids["s2:landsat"]
    code, _, err = _query_cli(capsys, "--config", str(other), "--platforms", "S2A,L9", "--api-url",
                              running_stack.internal, "--output", str(tmp_path / "override"), "-q")  # fmt: skip
    assert code == 0, err
    assert _item_ids(tmp_path / "override") == expected


def test_matchup_collection_with_its_product_collections_pulls_the_pair(running_stack, new_year, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Product collections keep the matchups between them (as eomatch-find's collections)."""
    ids, colls = new_year["ids"], new_year["colls"]
    query(running_stack.settings, running_stack.internal, tmp_path / "o", quiet=True,
          collections=[colls["Landsat-9"], colls["Sentinel-3A"]])  # fmt: skip
    got = _item_ids(tmp_path / "o")
    assert ids["s3"] <= got and not (ids["s2"] - ids["s2:landsat"]) & got


def test_ids_that_are_not_safe_file_names_are_refused(running_stack, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    """An item whose id is ../../../../outside/PWNED is refused (one warning each) and
    the rest is written; nothing lands outside --output; exit code 1."""
    from helpers import load_with_pypgstac, make_collection, make_item, unique_id

    coll = unique_id("UNSAFE")
    bad = ["../../../../outside/PWNED", "../../../../../../../../PWNED", ".hidden", "a\\..\\PWNED"]
    ok = make_item(coll, "fine-item", 0, 0)
    ok["links"] = [{"rel": "derived_from", "href": f"{running_stack.internal}/collections/{coll}/items/..%2F..%2FPWNED"}]
    dsn = running_stack.credentials("ingest").dsn
    load_with_pypgstac(dsn, [make_collection(coll)], [ok, *(make_item(coll, i, 0, 0) for i in bad)])
    out = tmp_path / "a" / "b" / "c" / "out"
    code, stdout, err = _query_cli(capsys, "--api-url", running_stack.internal, "--output", str(out),
                                   "--collections", coll, "-q")  # fmt: skip
    assert code == 1, err
    assert "4 items REFUSED" in stdout and "1 written" in stdout
    warnings = [ln for ln in err.splitlines() if ln.startswith("warning: refused item")]
    assert len(warnings) == 4 and "Traceback" not in err
    assert not [p for p in tmp_path.rglob("*PWNED*")]
    assert _item_ids(out) == {"fine-item"}
    (link,) = MatchupCatalogue.open(out).get_item("fine-item")["links"][-1:]
    assert link["href"].startswith("http://") and link["rel"] == "derived_from"  # the server's URL, no local path


def test_via_and_source_links_come_back_local_with_their_targets(running_stack, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """ingest turns every relation between items into an API link (eomatch.hrefs); query
    turns ``via`` and ``source`` back into local paths and fetches their targets, as it
    does for ``derived_from``."""
    import uuid

    from shapely.geometry import box as sbox

    from eomatch.model import Matchup, MatchupEvent, Product

    tag = uuid.uuid4().hex[:6]
    a = Product.create(id=f"A{tag}", collection=f"CA{tag}", platform="Sentinel-2A", geometry=sbox(0, 0, 1, 1),
                       start="2022-04-01T10:00:00Z")  # fmt: skip
    b = Product.create(id=f"B{tag}", collection=f"CB{tag}", platform="Landsat-9", geometry=sbox(0.5, 0.5, 1.5, 1.5),
                       start="2022-04-01T10:06:00Z")  # fmt: skip
    raw = Product.create(id=f"R{tag}", collection=f"CR{tag}", platform="Landsat-9", geometry=sbox(0, 0, 2, 2),
                         start="2022-04-01T10:05:00Z")  # fmt: skip
    event = MatchupEvent.create(platform_a="Sentinel-2A", collection_a=f"CA{tag}", platform_b="Landsat-9",
                                collection_b=f"CB{tag}", start="2022-04-01T09:50:00Z", end="2022-04-01T10:20:00Z",
                                region=sbox(-1, -1, 2, 2))  # fmt: skip
    matchup = Matchup.create(event, a.to_dict(), b.to_dict())
    with MatchupCatalogue.create(tmp_path / "central") as cat:
        cat.add_event(event)
        cat.add_product(raw)
        rel = os.path.relpath(cat.path_of(raw.id), cat.path_of(matchup.id).parent)

        def add_links(item: dict) -> None:  # type: ignore[type-arg]
            item["links"] += [{"rel": "via", "href": rel, "type": "application/json"},
                              {"rel": "source", "href": rel, "type": "application/json"}]  # fmt: skip

        cat.update_item(matchup.id, add_links)
    ingest(running_stack.settings, catalogue=tmp_path / "central", quiet=True)

    out = tmp_path / "mine"
    query(running_stack.settings, running_stack.internal, out, collections=matchup.collection_id, quiet=True)
    local = MatchupCatalogue.open(out)
    assert local.has_item(raw.id)  # the target came along
    path = local.path_of(matchup.id)
    for rel_name in ("via", "source"):
        (link,) = [lk for lk in local.get_item(matchup.id)["links"] if lk["rel"] == rel_name]
        assert "://" not in link["href"], link
        assert (path.parent / link["href"]).resolve() == local.path_of(raw.id).resolve()


def test_a_progress_passed_in_counts_the_items_and_stays_open(running_stack, scene, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Like find and download, query reports to the caller's Progress (e.g. one bar over
    several queries) and leaves closing it to the caller."""
    from eomatch.progress import Progress

    class Recording(Progress):
        closes = 0

        def close(self) -> None:
            self.closes += 1
            super().close()

    progress = Recording("mine", quiet=True)
    summary = query(running_stack.settings, running_stack.internal, tmp_path / "p",
                    collections=scene.matchup_collection, progress=progress)  # fmt: skip
    assert summary.searched + summary.closure > 0
    assert progress.done == summary.searched + summary.closure
    assert progress.closes == 0
    given = Recording("mine", total=1000, quiet=True)
    query(running_stack.settings, running_stack.internal, tmp_path / "q", collections=scene.matchup_collection, progress=given)
    assert given.total == 1000 and given.done == progress.done  # a total the caller set is kept
