"""``eomatch-stack up --demo``: the simulated demo lands in the running stack, idempotently."""

from __future__ import annotations

import httpx
import pytest

from eomatch.catalogue import MatchupCatalogue
from eomatch.demo import demo_dir, load_demo

pytestmark = pytest.mark.stack

MATCHUPS = "LANDSAT_C2L1-Landsat-9-vs-S2_MSI_L1C-S2A"
PRODUCTS = ["LANDSAT_C2L1", "S2_MSI_L1C"]


def _by_ids(base: str, ids: set[str], collections: list[str]) -> dict[str, dict]:
    """Items with these ids (other tests share the collections, so never list them all)."""
    out: dict[str, dict] = {}
    todo = sorted(ids)
    for i in range(0, len(todo), 200):
        body = {"ids": todo[i : i + 200], "collections": collections, "limit": 200}
        r = httpx.post(f"{base}/search", json=body, timeout=30)
        r.raise_for_status()
        out.update({f["id"]: f for f in r.json()["features"]})
    return out


def test_demo_loads_into_the_stack_and_twice_adds_nothing(running_stack) -> None:  # type: ignore[no-untyped-def]
    line = load_demo(running_stack.settings, quiet=True)
    assert line.startswith("demo: find: ") and "\n" not in line

    # by id: other tests add collections, so /collections may page past these
    for cid in (MATCHUPS, f"matchup-events-{MATCHUPS}"):
        r = httpx.get(f"{running_stack.external}/collections/{cid}", timeout=30)
        assert r.status_code == 200, (cid, r.status_code)
    r = httpx.get(f"{running_stack.external}/collections/{MATCHUPS}", timeout=30)
    assert r.json()["title"] == "Matchups Landsat-9 × Sentinel-2A"

    # The pipeline's own output (find's catalogue) is what the API serves.
    cat = MatchupCatalogue.open(demo_dir(running_stack.settings) / "catalogue")
    demo_matchups = {it["id"] for it in cat.iter_items(MATCHUPS)}
    assert 10 <= len(demo_matchups) <= 300
    matchups = _by_ids(running_stack.external, demo_matchups, [MATCHUPS])
    assert set(matchups) == demo_matchups
    assert all(m["properties"]["matchup:type"] == "matchup" for m in matchups.values())

    # products keep their provider assets: file:// ones only on the internal API
    demo_products = {pid for m in matchups.values() for pid in m["properties"]["matchup:products"]}
    internal = list(_by_ids(running_stack.internal, demo_products, PRODUCTS).values())
    external = list(_by_ids(running_stack.external, demo_products, PRODUCTS).values())
    assert len(internal) == len(external) == len(demo_products)
    hrefs_in = {a["href"].split("://")[0] for p in internal for a in p["assets"].values()}
    hrefs_out = {a["href"].split("://")[0] for p in external for a in p["assets"].values()}
    assert {"file", "https"} <= hrefs_in and "file" not in hrefs_out
    unlabelled = [p["id"] for p in internal if p["properties"].get("eomatch:simulated") is not True]
    assert not unlabelled, f"demo products not labelled simulated: {unlabelled[:3]}"

    again = load_demo(running_stack.settings, quiet=True)
    assert " 0 new items" in again and "nothing to do" in again
    assert set(_by_ids(running_stack.external, demo_matchups, [MATCHUPS])) == demo_matchups
