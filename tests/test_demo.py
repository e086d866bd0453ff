"""``eomatch-stack up --demo``: the simulated demo lands in the running stack, idempotently."""

from __future__ import annotations

import httpx
import pytest

from eomatch.demo import load_demo

pytestmark = pytest.mark.stack

MATCHUPS = "LANDSAT_C2L1-Landsat-9-vs-S2_MSI_L1C-S2A"


def _items(base: str, collection: str) -> list[dict]:
    r = httpx.get(f"{base}/collections/{collection}/items", params={"limit": 1000}, timeout=30)
    r.raise_for_status()
    return list(r.json()["features"])


def test_demo_loads_into_the_stack_and_twice_adds_nothing(running_stack) -> None:  # type: ignore[no-untyped-def]
    line = load_demo(running_stack.settings, quiet=True)
    assert line.startswith("demo: find: ") and "\n" not in line

    r = httpx.get(f"{running_stack.external}/collections", timeout=30)
    r.raise_for_status()
    collections = {c["id"]: c for c in r.json()["collections"]}
    assert collections[MATCHUPS]["title"] == "Matchups Landsat-9 × Sentinel-2A"
    assert f"matchup-events-{MATCHUPS}" in collections

    matchups = _items(running_stack.external, MATCHUPS)
    assert 10 <= len(matchups) <= 300
    assert all(m["properties"]["matchup:type"] == "matchup" for m in matchups)

    # products keep their provider assets: file:// ones only on the internal API
    internal = _items(running_stack.internal, "LANDSAT_C2L1") + _items(running_stack.internal, "S2_MSI_L1C")
    external = _items(running_stack.external, "LANDSAT_C2L1") + _items(running_stack.external, "S2_MSI_L1C")
    hrefs_in = {a["href"].split("://")[0] for p in internal for a in p["assets"].values()}
    hrefs_out = {a["href"].split("://")[0] for p in external for a in p["assets"].values()}
    assert {"file", "https"} <= hrefs_in and "file" not in hrefs_out
    assert all(p["properties"]["eomatch:simulated"] is True for p in internal)

    again = load_demo(running_stack.settings, quiet=True)
    assert " 0 new items" in again and "nothing to do" in again
    assert len(_items(running_stack.external, MATCHUPS)) == len(matchups)
