"""A provider's eo:cloud_cover is kept as a number (issue 12 item 1)."""

from __future__ import annotations

from pytest_httpserver import HTTPServer
from shapely.geometry import box
from test_providers import MiniStacApi

from eomatch.model import to_utc
from eomatch.providers import open_provider
from eomatch.settings import load_settings


def _item(item_id: str, cover: object) -> dict:
    props: dict = {"datetime": "2022-05-21T18:00:00Z", "start_datetime": "2022-05-21T18:00:00Z",
                   "end_datetime": "2022-05-21T18:00:00Z", "platform": "sentinel-2a"}
    if cover is not None:
        props["eo:cloud_cover"] = cover
    return {"type": "Feature", "stac_version": "1.0.0", "id": item_id, "collection": "sentinel-2-l1c",
            "geometry": box(0, 0, 1, 1).__geo_interface__, "bbox": [0, 0, 1, 1], "properties": props,
            "links": [], "assets": {}}  # fmt: skip


def test_cloud_cover_numbers_kept_strings_read_nonsense_set_aside(httpserver: HTTPServer) -> None:
    items = [_item("a", 12.5), _item("b", "30"), _item("c", 140), _item("d", "cloudy"), _item("e", None)]
    api = MiniStacApi(httpserver, items)
    settings = load_settings(overrides={"providers": {"S2_MSI_L1C": {
        "url": api.base, "collection": "sentinel-2-l1c", "platform_values": {"sentinel-2a": "Sentinel-2A"}}}},
        environ={})  # fmt: skip
    provider = open_provider("S2_MSI_L1C", settings)
    got = {i["id"]: i["properties"] for i in provider.search(
        box(0, 0, 1, 1), to_utc("2022-05-21T17:00:00Z"), to_utc("2022-05-21T19:00:00Z"), "Sentinel-2A")}
    provider.close()
    assert got["a"]["eo:cloud_cover"] == 12.5
    assert got["b"]["eo:cloud_cover"] == 30.0
    for bad, raw in (("c", 140), ("d", "cloudy")):
        assert "eo:cloud_cover" not in got[bad] and got[bad]["eomatch:provider_cloud_cover"] == raw
    assert "eo:cloud_cover" not in got["e"] and "eomatch:provider_cloud_cover" not in got["e"]
