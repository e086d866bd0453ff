"""A 3D bbox (w, s, zmin, e, n, zmax) finds what its 2D footprint finds, on both APIs."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from conftest import RunningStack
from helpers import Writer, make_collection, make_item, unique_id

from eomatch.server.client import flatten_bbox

pytestmark = pytest.mark.stack

BBOX_2D = [100.0, 0.0, 105.0, 1.0]
BBOX_3D = [100.0, 0.0, 0.0, 105.0, 1.0, 1.0]


def test_flatten_bbox() -> None:
    assert flatten_bbox(BBOX_3D) == BBOX_2D
    assert flatten_bbox(BBOX_2D) == BBOX_2D


@pytest.fixture(scope="module")
def placed(running_stack: RunningStack) -> Iterator[tuple[str, set[str]]]:
    cid = unique_id("bbox3d")
    with Writer(running_stack) as w:
        w.collection(make_collection(cid))
        w.item(make_item(cid, "inside", 102.0, 0.4, size_deg=0.2))
        w.item(make_item(cid, "straddles", 104.9, 0.9, size_deg=0.5))
        w.item(make_item(cid, "outside", 110.0, 5.0))
    yield cid, {"inside", "straddles"}
    with Writer(running_stack) as w:
        w.client.delete(f"{running_stack.internal}/collections/{cid}")


def _csv(bbox: list[float]) -> str:
    return ",".join(f"{v:g}" for v in bbox)


@pytest.mark.parametrize("api", ["internal", "external"])
def test_3d_bbox_matches_2d(running_stack: RunningStack, placed: tuple[str, set[str]], api: str) -> None:
    cid, expected = placed
    base = running_stack.internal if api == "internal" else running_stack.external
    with httpx.Client(timeout=30) as client:

        def ids(r: httpx.Response) -> set[str]:
            assert r.status_code == 200, r.text[:300]
            return {f["id"] for f in r.json()["features"]}

        for bbox in (BBOX_2D, BBOX_3D):
            got = [
                ids(client.get(f"{base}/search", params={"bbox": _csv(bbox), "collections": cid})),
                ids(client.post(f"{base}/search", json={"bbox": bbox, "collections": [cid]})),
                ids(client.get(f"{base}/collections/{cid}/items", params={"bbox": _csv(bbox)})),
            ]
            assert all(g == expected for g in got), (bbox, got)


def test_bad_3d_bbox_is_a_client_error(running_stack: RunningStack, placed: tuple[str, set[str]]) -> None:
    cid, _ = placed
    r = httpx.get(f"{running_stack.external}/search", params={"bbox": "100,0,x,105,1,1", "collections": cid})
    assert 400 <= r.status_code < 500
