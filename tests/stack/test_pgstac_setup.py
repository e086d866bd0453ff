"""pgSTAC set up for filtering matchups (issue 15 item 2, issue 12 item 1): queryables
with types, descriptions and indexes, collections partitioned by time, numberMatched,
and ``filter=matchup:max_cloud_cover < 30`` on both APIs.

Before: pgSTAC knew only id/geometry/datetime; every ``matchup:`` filter was a scan of
unindexed jsonb, ``/queryables`` offered STAC Browser nothing to filter on, and each
collection was one partition whatever its size.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest
from conftest import RunningStack
from helpers import unique_id
from shapely.geometry import box

from eomatch.catalogue import MatchupCatalogue
from eomatch.ingest import ingest
from eomatch.items import Matchup, MatchupEvent, Product
from eomatch.stack.db import PGSTAC_SETTINGS, QUERYABLES, set_queryables

pytestmark = pytest.mark.stack

# (Sentinel-2 cover, Landsat cover) per event; None: the provider gave none
COVERS = [(5.0, 10.0), (20.0, 60.0), (None, 15.0), (25.0, 29.5), (50.0, 5.0), (1.0, 2.0)]
T0 = datetime(2021, 12, 30, 10, 0, tzinfo=UTC)  # the events span two years: two partitions


@dataclass(frozen=True)
class Ingested:
    matchups: str
    """The matchup collection's id."""
    products: tuple[str, str]
    max_cover: dict[str, float | None]
    """Matchup id -> the larger of its products' covers, None when one is unknown."""


@pytest.fixture(scope="module")
def ingested(running_stack: RunningStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ingested]:
    root = tmp_path_factory.mktemp("cat") / "cat"
    s2_coll, l9_coll = unique_id("S2"), unique_id("LC")
    cat = MatchupCatalogue.create(root, title="pgstac setup")
    max_cover: dict[str, float | None] = {}
    pair = ""
    for i, (c_s2, c_l9) in enumerate(COVERS):
        t = T0 + timedelta(days=i)
        s2 = Product.create(id=f"S2A_MSIL1C_{t:%Y%m%dT%H%M%S}_N0400_R070_T11SL{i}_X", collection=s2_coll,
                            platform="Sentinel-2A", geometry=box(i, 0, i + 1, 1), start=t, cloud_cover=c_s2)  # fmt: skip
        l9 = Product.create(id=f"LC09_L1TP_0420{i:02d}_{t:%Y%m%d}_{t:%Y%m%d}_02_T1", collection=l9_coll,
                            platform="Landsat-9", geometry=box(i + 0.2, 0, i + 1.2, 1),
                            start=t + timedelta(minutes=3 * i + 1), cloud_cover=c_l9)  # fmt: skip
        event = MatchupEvent.create(
            platform_a="Sentinel-2A", collection_a=s2_coll, platform_b="Landsat-9", collection_b=l9_coll,
            start=t - timedelta(minutes=5), end=t + timedelta(minutes=25), region=box(i - 0.5, -0.5, i + 2, 1.5),
        )  # fmt: skip
        m = Matchup.create(event, s2.to_dict(), l9.to_dict())
        max_cover[m.id] = m.max_cloud_cover
        pair = m.collection_id
        cat.add_event(event)
    cat.save()
    cat.close()
    summary = ingest(running_stack.settings, catalogue=root, quiet=True)
    assert summary.new == 4 * len(COVERS)
    yield Ingested(pair, (s2_coll, l9_coll), max_cover)


def _admin(running_stack: RunningStack) -> psycopg.Connection:
    conn = psycopg.connect(running_stack.credentials("admin").dsn, autocommit=True)
    conn.execute("SET search_path = pgstac, public")  # as the APIs' and ingest roles have it
    return conn


def test_collections_ingest_creates_are_partitioned_by_year(running_stack: RunningStack, ingested: Ingested) -> None:
    with _admin(running_stack) as conn:
        for coll in (ingested.matchups, *ingested.products):
            row = conn.execute("SELECT partition_trunc FROM pgstac.collections WHERE id = %s", (coll,)).fetchone()
            assert row == ("year",), coll
        years = conn.execute(
            "SELECT count(*) FROM pgstac.partition_sys_meta WHERE collection = %s", (ingested.matchups,)
        ).fetchone()
    assert years == (2,)  # 2021 and 2022


def test_queryables_are_indexed_and_a_filter_uses_the_index(running_stack: RunningStack, ingested: Ingested) -> None:
    with _admin(running_stack) as conn:
        rows = dict(conn.execute(
            "SELECT name, property_index_type FROM pgstac.queryables WHERE collection_ids IS NULL").fetchall())  # fmt: skip
        for q in QUERYABLES:
            assert rows.get(q.name, "missing") == q.index, q.name
        parts = [r[0] for r in conn.execute(
            "SELECT partition FROM pgstac.partition_sys_meta WHERE collection = %s", (ingested.matchups,))]  # fmt: skip
        for q in (q for q in QUERYABLES if q.index):
            for part in parts:
                found = conn.execute(
                    "SELECT indexname FROM pg_indexes WHERE schemaname = 'pgstac' AND tablename = %s"
                    " AND indexdef LIKE %s", (part, f"%{q.wrapper}(%'{q.name}'%"),
                ).fetchall()  # fmt: skip
                assert found, (q.name, part)
        # the WHERE clause pgSTAC builds for a CQL2 filter is answered by the index
        where = conn.execute(
            "SELECT pgstac.cql2_query(%s::jsonb)",
            (json.dumps({"op": "<", "args": [{"property": "matchup:abs_time_diff_s"}, 60]}),),
        ).fetchone()[0]  # type: ignore[index]
        conn.execute("SET enable_seqscan = off")
        plan = "\n".join(r[0] for r in conn.execute(
            f"EXPLAIN SELECT id FROM pgstac.items WHERE collection = %s AND {where}", (ingested.matchups,)))  # fmt: skip
    assert "Index" in plan and "abs_time_diff_s" in plan, plan


def test_setup_is_idempotent(running_stack: RunningStack, ingested: Ingested) -> None:
    with _admin(running_stack) as conn:
        before = conn.execute("SELECT id, name FROM pgstac.queryables ORDER BY id").fetchall()
        assert set_queryables(conn) == 0  # the stack's setup wrote them; nothing is rewritten
        assert conn.execute("SELECT id, name FROM pgstac.queryables ORDER BY id").fetchall() == before
        settings = dict(conn.execute("SELECT name, value FROM pgstac.pgstac_settings").fetchall())
    assert {k: settings[k] for k in PGSTAC_SETTINGS} == PGSTAC_SETTINGS


@pytest.mark.parametrize("api", ["internal", "external"])
def test_queryables_endpoint_lists_types_and_descriptions(running_stack: RunningStack, api: str) -> None:
    base = running_stack.internal if api == "internal" else running_stack.external
    r = httpx.get(f"{base}/queryables", timeout=30)
    assert r.status_code == 200, r.text[:300]
    props = r.json()["properties"]
    for q in QUERYABLES:
        assert props[q.name]["type"] == q.definition["type"], q.name
        assert props[q.name]["description"] == q.definition["description"], q.name


@pytest.mark.parametrize("api", ["internal", "external"])
def test_filter_on_max_cloud_cover_on_both_apis(running_stack: RunningStack, ingested: Ingested, api: str) -> None:
    base = running_stack.internal if api == "internal" else running_stack.external
    want = {mid for mid, cover in ingested.max_cover.items() if cover is not None and cover < 30}
    assert want and len(want) < len(ingested.max_cover)
    r = httpx.get(f"{base}/search", timeout=30, params={
        "collections": ingested.matchups, "filter": "matchup:max_cloud_cover < 30", "filter-lang": "cql2-text",
        "limit": 100})  # fmt: skip
    assert r.status_code == 200, r.text[:300]
    body = r.json()
    assert {f["id"] for f in body["features"]} == want
    assert body.get("numberMatched") == len(want)  # context auto: exact for small results
    assert all(" × " in f["properties"]["title"] for f in body["features"])
    # sorted by an indexed queryable, through the API
    r = httpx.get(f"{base}/search", timeout=30, params={
        "collections": ingested.matchups, "sortby": "-matchup:abs_time_diff_s", "limit": 100})  # fmt: skip
    diffs = [f["properties"]["matchup:abs_time_diff_s"] for f in r.json()["features"]]
    assert len(diffs) == len(COVERS) and diffs == sorted(diffs, reverse=True)
