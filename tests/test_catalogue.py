"""MatchupCatalogue: layout, pystac compatibility, index, filters, merges, locks, legacy catalogues."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
import types
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pystac
import pytest
from catalogue_factory import build_legacy_catalogue
from shapely.geometry import box

from eomatch import Matchup, MatchupCatalogue, MatchupEvent
from eomatch.errors import CatalogueError
from eomatch.model import Product, item_relpath
from eomatch.schema import validate_item

T0 = datetime(2022, 5, 21, 8, 30, tzinfo=UTC)
PAIR = "LANDSAT_C2L1-Landsat-9-vs-S2_MSI_L1C-S2A"


def _product(pid: str, collection: str, platform: str, geom, t: datetime) -> dict:
    return Product.create(id=pid, collection=collection, platform=platform, geometry=geom, start=t,
                          end=t + timedelta(seconds=20)).to_dict()  # fmt: skip


def _event(lon: float, lat: float, t: datetime, s2: str = "Sentinel-2A", ls: str = "Landsat-9", n: int = 1,
           tag: str = "") -> MatchupEvent:  # fmt: skip
    ev = MatchupEvent.create(
        platform_a=s2, collection_a="S2_MSI_L1C", platform_b=ls, collection_b="LANDSAT_C2L1",
        start=t, end=t + timedelta(minutes=30), region=box(lon, lat, lon + 4, lat + 4), min_distance_km=5.0,
    )  # fmt: skip
    for i in range(n):
        a = _product(f"S2{tag}_{t:%H%M}_{lon}_{i}", "S2_MSI_L1C", s2, box(lon, lat, lon + 2, lat + 2), t)
        b = _product(f"LS{tag}_{t:%H%M}_{lon}_{i}", "LANDSAT_C2L1", ls,
                     box(lon + 1 - 0.2 * i, lat + 1, lon + 3, lat + 3), t + timedelta(minutes=5 + i))  # fmt: skip
        Matchup.create(ev, a, b)
    return ev


@pytest.fixture()
def cat(tmp_path: Path) -> MatchupCatalogue:
    c = MatchupCatalogue.create(tmp_path / "cat", title="test")
    c.add_event(_event(30, 40, T0, n=2))
    c.add_event(_event(-60, -10, T0 + timedelta(days=3), ls="Landsat-8"))
    c.add_event(_event(178, 60, T0 + timedelta(days=10), s2="Sentinel-2B"))
    c.save()
    return c


def _json_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*.json") if ".eomatch" not in p.parts]


def test_layout_and_every_written_item_follows_the_schema(cat: MatchupCatalogue) -> None:
    items = [json.loads(p.read_text()) for p in _json_files(cat.root) if p.name not in ("catalog.json", "collection.json")]
    assert len(items) == 3 + 4 + 8  # events, matchups, products
    for item in items:
        validate_item(item)
        rel = item_relpath(item["collection"], item["id"], item["properties"]["datetime"])
        assert (cat.root / rel).is_file()
        assert not any(lk["rel"] == "self" for lk in item["links"])
    assert (cat.root / f"matchup-events-{PAIR}" / "collection.json").is_file()
    assert (cat.root / "S2_MSI_L1C" / "2022" / "05" / "21").is_dir()


def test_pystac_reads_the_catalogue(cat: MatchupCatalogue) -> None:
    root = pystac.Catalog.from_file(str(cat.catalog_json))
    items = list(root.get_items(recursive=True))
    assert len(items) == 15
    by_id = {i.id: i for i in items}
    matchup = next(i for i in items if i.properties["matchup:type"] == "matchup")
    targets = {lk.resolve_stac_object(root=root).target.id for lk in matchup.links if lk.rel == "derived_from"}
    assert targets == set(matchup.properties["matchup:products"])
    assert targets <= set(by_id)
    collections = {c.id for c in root.get_children()}
    assert f"matchup-events-{PAIR}" in collections and PAIR in collections


def test_collection_extents_grow_with_the_items(cat: MatchupCatalogue) -> None:
    col = cat.get_collection("S2_MSI_L1C")
    bbox = col["extent"]["spatial"]["bbox"][0]
    assert bbox[0] == pytest.approx(-60) and bbox[2] == pytest.approx(180)
    start, end = col["extent"]["temporal"]["interval"][0]
    assert start == "2022-05-21T08:30:00Z"
    assert end.startswith("2022-05-31T08:30:20")
    cat.add_product(_product("LATE", "S2_MSI_L1C", "Sentinel-2A", box(0, -80, 1, -79), T0 + timedelta(days=100)))
    cat.save()
    col = cat.get_collection("S2_MSI_L1C")
    assert col["extent"]["spatial"]["bbox"][0][1] == pytest.approx(-80)
    assert col["extent"]["temporal"]["interval"][0][1].startswith("2022-08-29")
    assert sum(1 for lk in col["links"] if lk["rel"] == "item") == 5


def test_get_item_and_typed_getters(cat: MatchupCatalogue) -> None:
    ev = next(cat.get_events(start_time=T0, stop_time=T0 + timedelta(hours=1)))
    assert cat.get_item(ev.id)["id"] == ev.id
    assert cat.get_item(ev.id, collection=ev.collection_id)["id"] == ev.id
    got = cat.get_event(ev.id)
    assert len(got.matchup_set) == 2
    mu = cat.get_matchup(got.matchup_set[0].id)
    a, b = mu.products()
    assert [a["id"], b["id"]] == mu.product_ids
    assert cat.get_product(a["id"])["collection"] == "LANDSAT_C2L1"
    with pytest.raises(CatalogueError, match="unknown item id 'nope'"):
        cat.get_item("nope")
    with pytest.raises(CatalogueError, match="not a event"):
        cat.get_event(mu.id)


def test_get_events_is_a_stream_filtered_by_the_index(cat: MatchupCatalogue) -> None:
    stream = cat.get_events()
    assert isinstance(stream, types.GeneratorType)
    all_events = list(stream)
    assert len(all_events) == 3
    assert [e.start for e in all_events] == sorted(e.start for e in all_events)
    assert sum(len(e.matchup_set) for e in all_events) == 4

    def ids(**kw) -> list[str]:
        return [e.platforms[1] + "/" + e.platforms[0] for e in cat.get_events(**kw)]

    assert ids(platforms=["Landsat-8"]) == ["Sentinel-2A/Landsat-8"]
    assert len(ids(platforms=["Landsat-8", "Sentinel-2B"])) == 2
    # registry aliases, any case; '_' and '%' are not wildcards
    assert ids(platforms=["LS8"]) == ids(platforms=["landsat_8"]) == ["Sentinel-2A/Landsat-8"]
    assert len(ids(platforms=["s2b", "L8"])) == 2
    assert ids(platforms=["Landsat_8"]) == ids(platforms=["Landsat-8"])
    assert ids(platforms=["Landsat%8"]) == [] and ids(platforms=["Landsat-_"]) == []
    assert ids(collections=[PAIR]) == ["Sentinel-2A/Landsat-9"]
    assert ids(collections=[f"matchup-events-{PAIR}"]) == ["Sentinel-2A/Landsat-9"]
    assert len(ids(collections=["S2_MSI_L1C", "LANDSAT_C2L1"])) == 3
    assert ids(collections=["S3_OLCI_L1B"]) == []
    assert len(ids(start_time=T0 + timedelta(days=1))) == 2
    assert len(ids(stop_time=T0 + timedelta(days=3, minutes=10))) == 2
    assert len(ids(start_time=T0 + timedelta(minutes=29), stop_time=T0 + timedelta(minutes=29))) == 1
    assert ids(bbox=[-70, -20, -50, 0]) == ["Sentinel-2A/Landsat-8"]
    assert ids(bbox=[0, 0, 10, 10]) == []
    assert ids(bbox=[175, 55, -170, 70]) == ["Sentinel-2B/Landsat-9"]  # across the antimeridian
    assert ids(bbox=[0, 55, 10, 70]) == []  # the antimeridian event is not at Greenwich
    assert ids(bbox=[-179, 55, -178, 70]) == ["Sentinel-2B/Landsat-9"]
    # a date alone as stop_time is its whole UTC day, as in eomatch-find and eomatch-query
    second_day = (T0 + timedelta(days=3)).date().isoformat()  # the second event is that morning
    assert len(ids(stop_time=second_day)) == 2
    assert len(ids(stop_time=(T0 + timedelta(days=2)).date().isoformat())) == 1


def test_get_events_property_filters(cat: MatchupCatalogue) -> None:
    assert len(list(cat.get_events(properties={"matchup:min_distance_km": 5.0}))) == 3
    assert list(cat.get_events(properties={"matchup:min_distance_km": 6.0})) == []
    # matchup-level filter: only the first event has a 6-minute matchup
    events = list(cat.get_events(properties={"matchup:abs_time_diff_s": {"gt": 330}}))
    assert len(events) == 1 and len(events[0].matchup_set) == 1
    assert events[0].matchup_set[0].abs_time_diff_s == 360
    assert len(list(cat.get_events(properties={"matchup:abs_time_diff_s": {"lte": 300}}))) == 3
    with pytest.raises(CatalogueError, match="operator"):
        list(cat.get_events(properties={"matchup:abs_time_diff_s": {"about": 3}}))


def test_rerun_never_duplicates_and_events_merge(tmp_path: Path) -> None:
    c = MatchupCatalogue.create(tmp_path / "c")
    c.add_event(_event(30, 40, T0, n=1))
    c.save()
    before = sorted(p.relative_to(c.root) for p in _json_files(c.root))
    c.add_event(_event(30, 40, T0, n=1))
    c.save()
    assert sorted(p.relative_to(c.root) for p in _json_files(c.root)) == before
    ev_item = json.loads(next((c.root / f"matchup-events-{PAIR}").rglob("event-*.json")).read_text())
    assert sum(1 for lk in ev_item["links"] if lk["rel"] == "related") == 1
    col = c.get_collection(PAIR)
    assert sum(1 for lk in col["links"] if lk["rel"] == "item") == 1

    # the same crossover found again with a different product pair: the event gains it
    c2 = MatchupCatalogue.open(c.root)
    ev = _event(30, 40, T0, n=1, tag="x")
    c2.add_event(ev)
    merged = c2.get_event(ev.id)
    assert len(merged.matchup_set) == 2
    assert len(merged.matchup_ids) == 2
    validate_item(merged.to_dict())


def test_upsert_keeps_assets_added_by_others(cat: MatchupCatalogue) -> None:
    ev = next(cat.get_events())
    mu = ev.matchup_set[0]

    def add_asset(item: dict) -> None:
        item["assets"]["comparison:latest"] = {"href": "file:///npl-data/x.nc", "type": "application/x-netcdf"}

    cat.update_item(mu.id, add_asset)
    cat.add_matchup(Matchup(json.loads(json.dumps({**mu.to_dict(), "assets": {}}))))
    assert "comparison:latest" in cat.get_item(mu.id)["assets"]
    with pytest.raises(CatalogueError, match="unknown item id"):
        cat.update_item("missing", add_asset)


def _hammer(root: str, item_id: str, who: str, n: int) -> None:
    c = MatchupCatalogue.open(root)
    for i in range(n):

        def edit(item: dict, i: int = i) -> None:
            item["assets"][f"{who}-{i}"] = {"href": f"file:///tmp/{who}-{i}.nc"}
            item["links"].append({"rel": "via", "href": f"https://example.org/{who}/{i}"})

        c.update_item(item_id, edit)
    c.close()


def test_two_processes_updating_one_item_lose_nothing(cat: MatchupCatalogue) -> None:
    mu_id = next(cat.get_events()).matchup_set[0].id
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_hammer, args=(str(cat.root), mu_id, who, 50)) for who in ("p", "q")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    item = MatchupCatalogue.open(cat.root).get_item(mu_id)
    assert {f"{w}-{i}" for w in "pq" for i in range(50)} <= set(item["assets"])
    assert sum(1 for lk in item["links"] if lk["rel"] == "via") == 100
    validate_item(item)


def test_index_is_rebuilt_when_missing_or_stale(cat: MatchupCatalogue) -> None:
    ev = next(cat.get_events())
    cat.close()
    for p in cat.index_path.parent.glob("index.sqlite*"):
        p.unlink()
    reopened = MatchupCatalogue.open(cat.root / "catalog.json")
    assert reopened.get_event(ev.id).id == ev.id
    assert reopened.count() == 15
    assert reopened.count(kind="event") == 3

    # another tool writes an item and re-saves catalog.json: the next open picks it up
    other = _product("OTHER", "S2_MSI_L1C", "Sentinel-2A", box(1, 1, 2, 2), T0)
    rel = item_relpath("S2_MSI_L1C", "OTHER", T0 + timedelta(seconds=10))
    (cat.root / rel).parent.mkdir(parents=True, exist_ok=True)
    (cat.root / rel).write_text(json.dumps(other))
    gone = cat.root / item_relpath("S2_MSI_L1C", "LATE", T0)
    assert not gone.exists()
    time.sleep(0.01)
    catalog = json.loads(cat.catalog_json.read_text())
    cat.catalog_json.write_text(json.dumps(catalog, indent=1))
    again = MatchupCatalogue.open(cat.root)
    assert again.get_product("OTHER")["id"] == "OTHER"
    assert again.count() == 16


def test_iter_item_paths_and_iter_items(cat: MatchupCatalogue) -> None:
    paths = list(cat.iter_item_paths())
    assert len(paths) == 15
    assert {c for c, _ in paths} >= {"S2_MSI_L1C", PAIR}
    assert len(list(cat.iter_item_paths("S2_MSI_L1C"))) == 4
    assert list(cat.iter_item_paths(changed_since=time.time() + 60)) == []
    mark = time.time()
    time.sleep(0.02)
    mu_id = next(cat.get_events()).matchup_set[0].id
    cat.update_item(mu_id, lambda it: it["properties"].update({"note": 1}))
    changed = list(cat.iter_item_paths(changed_since=mark))
    assert [p.stem for _, p in changed] == [mu_id]
    assert {i["id"] for i in cat.iter_items("LANDSAT_C2L1")} == {
        i["id"] for i in (json.loads(p.read_text()) for _, p in cat.iter_item_paths("LANDSAT_C2L1"))
    }
    assert len(list(cat.iter_collections())) == 8


def test_bad_input_gives_one_line_catalogue_errors(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match="no catalog.json"):
        MatchupCatalogue.open(tmp_path / "missing")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "catalog.json").write_text('{\n  "type": "Catalog",\n  "id": x\n}\n')
    with pytest.raises(CatalogueError, match=r"catalog.json line 3"):
        MatchupCatalogue.open(bad)
    c = MatchupCatalogue.create(tmp_path / "ok")
    with pytest.raises(CatalogueError, match="not a STAC item"):
        c.add_item({"id": "x"})
    with pytest.raises(CatalogueError, match="no collection"):
        c.add_item({"type": "Feature", "id": "x", "properties": {"datetime": "2022-01-01T00:00:00Z"}})
    c.ensure_collection("S2_MSI_L1C")
    broken = tmp_path / "ok" / "S2_MSI_L1C" / "2022" / "01" / "01"
    broken.mkdir(parents=True)
    (broken / "y.json").write_text("{\n\n oops")
    c.close()
    for p in c.index_path.parent.glob("index.sqlite*"):
        p.unlink()
    with pytest.raises(CatalogueError, match=r"y.json line 3"):
        MatchupCatalogue.open(tmp_path / "ok").count()


def test_legacy_catalogues_open_without_conversion(tmp_path: Path) -> None:
    ev_id, mu_id = build_legacy_catalogue(tmp_path / "legacy")
    text = next((tmp_path / "legacy").rglob(f"{mu_id}.json")).read_text()
    assert str(tmp_path) in text  # really absolute hrefs
    c = MatchupCatalogue.open(tmp_path / "legacy" / "catalog.json")
    assert len(list(c.get_events(collections=["S2_MSI_L1C"]))) == 1
    events = list(c.get_events(platforms=["Landsat-9"]))
    assert [e.id for e in events] == [ev_id]
    (mu,) = events[0].matchup_set
    assert mu.id == mu_id and mu.event_id == ev_id
    assert mu.abs_time_diff_s == 60.0
    assert sorted(p["id"] for p in mu.products()) == ["L9_OLD", "S2_OLD"]
    assert c.count(kind="product") == 2
    # writing into it works and keeps pystac able to read it
    c.update_item(mu_id, lambda it: it["assets"].update({"comparison:latest": {"href": "file:///x.nc"}}))
    c.add_event(_event(30, 40, T0))
    c.save()
    items = list(pystac.Catalog.from_file(str(c.catalog_json)).get_items(recursive=True))
    assert {i.id for i in items} >= {ev_id, mu_id, "L9_OLD"}
    assert len(items) == 4 + 3 + 1


def test_open_does_not_read_items(tmp_path: Path, monkeypatch) -> None:
    c = MatchupCatalogue.create(tmp_path / "lazy")
    c.add_event(_event(30, 40, T0))
    c.close()
    import eomatch.jsonio as jsonio

    reads: list[str] = []
    real = jsonio.read_json
    monkeypatch.setattr(jsonio, "read_json", lambda p: reads.append(str(p)) or real(p))
    MatchupCatalogue.open(tmp_path / "lazy")
    assert [Path(r).name for r in reads] == ["catalog.json"]
    assert os.path.exists(tmp_path / "lazy" / ".eomatch" / "index.sqlite")


def test_threads_sharing_one_catalogue_lose_nothing(cat: MatchupCatalogue) -> None:
    import threading

    mu_id = next(cat.get_events()).matchup_set[0].id
    errors: list[BaseException] = []

    def work(who: str) -> None:
        try:
            for i in range(20):
                cat.update_item(mu_id, lambda it, i=i: it["assets"].update({f"{who}{i}": {"href": f"file:///{who}{i}"}}))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in "abc"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assets = cat.get_item(mu_id)["assets"]
    assert {f"{w}{i}" for w in "abc" for i in range(20)} <= set(assets)


def test_a_run_killed_before_save_is_linked_by_the_next_run(tmp_path: Path) -> None:
    """Files written but never linked (the process died before save()): writing the
    same items again links them, so pystac sees the whole catalogue after a re-run."""
    first = MatchupCatalogue.create(tmp_path / "cat")
    first.add_event(_event(10, 10, T0, n=2, tag="k"))
    first.close()  # no save(): what a kill -9 leaves
    seen = {i.id for i in pystac.Catalog.from_file(str(tmp_path / "cat" / "catalog.json")).get_items(recursive=True)}
    assert seen == set()  # on disk, but unlinked
    again = MatchupCatalogue.open(tmp_path / "cat")
    again.add_event(_event(10, 10, T0, n=2, tag="k"))
    again.save()
    items = list(pystac.Catalog.from_file(str(tmp_path / "cat" / "catalog.json")).get_items(recursive=True))
    assert len(items) == again.count() == 1 + 2 + 4
    links = json.loads((tmp_path / "cat" / PAIR / "collection.json").read_text())["links"]
    hrefs = [lk["href"] for lk in links if lk["rel"] == "item"]
    assert len(hrefs) == len(set(hrefs)) == 2  # linked once each
