"""``matchup:sites`` through the real stack: ingested, listed in ``/queryables`` and
filtered with ``a_contains`` on both APIs (issue 12 item 5)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from conftest import RunningStack
from helpers import unique_id
from shapely.geometry import box

from eomatch.catalogue import MatchupCatalogue
from eomatch.ingest import ingest
from eomatch.items import Matchup, MatchupEvent, Product

pytestmark = pytest.mark.stack

T0 = datetime(2022, 6, 13, 10, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Sited:
    site_1: str
    site_2: str
    by_site: dict[str, set[str]]
    """Site name -> ids of the events and matchups naming it."""


@pytest.fixture(scope="module")
def sited(running_stack: RunningStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sited]:
    # site names no other test uses: the filters below see only these items
    site_1, site_2 = unique_id("Libya-4"), unique_id("Gobabeb")
    root = tmp_path_factory.mktemp("cat") / "cat"
    s2_coll, l9_coll = unique_id("S2"), unique_id("LC")
    cat = MatchupCatalogue.create(root, title="sites queryable")
    by_site: dict[str, set[str]] = {site_1: set(), site_2: set()}
    for i, sites in enumerate([[site_1], [site_1, site_2], []]):
        t = T0 + timedelta(days=i)
        s2 = Product.create(id=f"S2A_MSIL1C_{t:%Y%m%dT%H%M%S}_N0400_R070_T34RFS{i}_X", collection=s2_coll,
                            platform="Sentinel-2A", geometry=box(23 + i, 28, 24 + i, 29), start=t)  # fmt: skip
        l9 = Product.create(id=f"LC09_L1TP_1810{i:02d}_{t:%Y%m%d}_{t:%Y%m%d}_02_T1", collection=l9_coll,
                            platform="Landsat-9", geometry=box(23.2 + i, 28, 24.2 + i, 29),
                            start=t + timedelta(minutes=16))  # fmt: skip
        props = {"matchup:sites": sites} if sites else {}
        event = MatchupEvent.create(
            platform_a="Sentinel-2A", collection_a=s2_coll, platform_b="Landsat-9", collection_b=l9_coll,
            start=t - timedelta(minutes=5), end=t + timedelta(minutes=25),
            region=box(22.5 + i, 27.5, 25 + i, 29.5), properties=props,
        )  # fmt: skip
        m = Matchup.create(event, s2.to_dict(), l9.to_dict())
        if sites:
            m.properties["matchup:sites"] = sites
        for name in sites:
            by_site[name] |= {event.id, m.id}
        cat.add_event(event)
    cat.save()
    cat.close()
    summary = ingest(running_stack.settings, catalogue=root, quiet=True)
    assert summary.new == 4 * 3
    yield Sited(site_1, site_2, by_site)


@pytest.mark.parametrize("api", ["internal", "external"])
def test_a_contains_filter_on_matchup_sites(running_stack: RunningStack, sited: Sited, api: str) -> None:
    base = running_stack.internal if api == "internal" else running_stack.external
    r = httpx.get(f"{base}/queryables", timeout=30)
    assert r.json()["properties"]["matchup:sites"]["type"] == "array"
    for site in (sited.site_1, sited.site_2):
        r = httpx.get(f"{base}/search", timeout=30, params={
            "filter": f"a_contains(matchup:sites, '{site}')", "filter-lang": "cql2-text", "limit": 100})  # fmt: skip
        assert r.status_code == 200, r.text[:300]
        features = r.json()["features"]
        assert {f["id"] for f in features} == sited.by_site[site]
        assert all(site in f["properties"]["matchup:sites"] for f in features)
    # the CQL2-JSON form through POST /search
    r = httpx.post(f"{base}/search", timeout=30, json={
        "filter-lang": "cql2-json", "limit": 100,
        "filter": {"op": "a_contains", "args": [{"property": "matchup:sites"}, [sited.site_2]]},
    })  # fmt: skip
    assert r.status_code == 200, r.text[:300]
    assert {f["id"] for f in r.json()["features"]} == sited.by_site[sited.site_2]
