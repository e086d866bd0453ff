"""Product search on real providers: a static catalogue on disk, and a small STAC API over HTTP.

The HTTP provider is a genuine server (pytest-httpserver) answering STAC item
search from the simulated archive, with paging; pystac-client talks to it as to
any provider. ``MiniStacApi`` is reused by tests/test_find.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from pytest_httpserver import HTTPServer
from shapely.geometry import shape
from werkzeug import Request, Response

from eomatch.errors import ConfigError
from eomatch.model import to_utc
from eomatch.providers import ApiProvider, ProviderError, StaticProvider, open_provider
from eomatch.settings import load_settings
from eomatch.simulate import simulate_archive

START = "2022-05-21T14:00:00Z"
END = "2022-05-21T20:00:00Z"
BBOX = (-125.0, 30.0, -70.0, 45.0)


class MiniStacApi:
    """STAC API landing page + POST /search over a list of item dicts, paged by ``token``.

    ``fail_if(body)`` returning True answers that search with HTTP 500.
    """

    def __init__(self, server: HTTPServer, items: list[dict[str, Any]]) -> None:
        self.server = server
        self.items = items
        self.searches: list[dict[str, Any]] = []
        self.fail_if: Callable[[dict[str, Any]], bool] = lambda body: False
        self.base = server.url_for("/").rstrip("/")
        server.expect_request("/", method="GET").respond_with_json(self.landing())
        server.expect_request("/conformance", method="GET").respond_with_json({"conformsTo": self.conforms()})
        server.expect_request("/search", method="POST").respond_with_handler(self.search)

    @staticmethod
    def conforms() -> list[str]:
        return [
            "https://api.stacspec.org/v1.0.0/core",
            "https://api.stacspec.org/v1.0.0/item-search",
        ]

    def landing(self) -> dict[str, Any]:
        return {
            "type": "Catalog",
            "id": "mini",
            "stac_version": "1.0.0",
            "description": "test STAC API",
            "conformsTo": self.conforms(),
            "links": [
                {"rel": "self", "href": self.base + "/", "type": "application/json"},
                {"rel": "root", "href": self.base + "/", "type": "application/json"},
                {"rel": "search", "href": self.base + "/search", "type": "application/geo+json", "method": "POST"},
            ],
        }

    def search(self, request: Request) -> Response:
        body = json.loads(request.get_data())
        self.searches.append(body)
        if self.fail_if(body):
            return Response("boom", status=500)
        t0, t1 = (to_utc(v) for v in body["datetime"].split("/"))
        geom = shape(body["intersects"])
        hits = []
        for item in self.items:
            if item["collection"] not in body.get("collections", []):
                continue
            p = item["properties"]
            if to_utc(p["end_datetime"]) < t0 or to_utc(p["start_datetime"]) > t1:
                continue
            if shape(item["geometry"]).intersects(geom):
                hits.append(item)
        offset = int(body.get("token") or 0)
        limit = int(body.get("limit") or 10)
        page = hits[offset : offset + limit]
        links = []
        if offset + limit < len(hits):
            links.append(
                {"rel": "next", "href": self.base + "/search", "method": "POST",
                 "type": "application/geo+json", "body": {**body, "token": str(offset + limit)}}
            )
        doc = {"type": "FeatureCollection", "features": page, "links": links, "numberMatched": len(hits)}
        return Response(json.dumps(doc), status=200, content_type="application/geo+json")


def archive_items(catalog: Path) -> list[dict[str, Any]]:
    return [
        orjson.loads(p.read_bytes())
        for p in sorted(catalog.parent.rglob("*.json"))
        if p.name not in ("catalog.json", "collection.json")
    ]


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulate_archive(tmp_path_factory.mktemp("sim"), ["S2A", "L9"], START, END, bbox=BBOX)


def _settings(providers: dict[str, Any] | None = None, **over: Any) -> Any:
    return load_settings(overrides={"providers": providers or {}, **over}, environ={})


def _expected(items: list[dict[str, Any]], coll: str, geom: Any, t0: str, t1: str) -> set[str]:
    a, b = to_utc(t0), to_utc(t1)
    return {
        i["id"] for i in items
        if i["collection"] == coll
        and to_utc(i["properties"]["end_datetime"]) >= a
        and to_utc(i["properties"]["start_datetime"]) <= b
        and shape(i["geometry"]).intersects(geom)
    }


SEARCH_BOX = shape({"type": "Polygon", "coordinates": [[[-100, 30], [-90, 30], [-90, 40], [-100, 40], [-100, 30]]]})


def test_static_search_matches_a_brute_force_scan(archive: Path) -> None:
    settings = _settings(providers={"LANDSAT_C2L1": {"url": str(archive.parent), "collection": "landsat-c2l1",
                                                      "platform_values": {"landsat_9": "Landsat-9"},
                                                      "data_assets": ["red"]}})
    provider = open_provider("LANDSAT_C2L1", settings)
    assert isinstance(provider, StaticProvider)
    t0, t1 = "2022-05-21T16:00:00Z", "2022-05-21T18:00:00Z"
    got = provider.search(SEARCH_BOX, to_utc(t0), to_utc(t1), "Landsat-9")
    want = _expected(archive_items(archive), "landsat-c2l1", SEARCH_BOX, t0, t1)
    assert want and {i["id"] for i in got} == want
    for item in got:
        assert item["collection"] == "LANDSAT_C2L1"
        assert item["properties"]["platform"] == "Landsat-9"
        assert item["properties"]["eomatch:provider_platform"] == "LANDSAT_9"  # case-insensitive map
        assert "data" in item["assets"]["red"]["roles"]
    # another platform's name finds nothing in this collection
    assert provider.search(SEARCH_BOX, to_utc(t0), to_utc(t1), "Landsat-8") == []


def test_static_provider_errors_name_the_path_or_collection(tmp_path: Path, archive: Path) -> None:
    settings = _settings(providers={"X": {"url": str(tmp_path / "nowhere"), "collection": "c"}})
    with pytest.raises(ConfigError, match="nowhere"):
        open_provider("X", settings)
    settings = _settings(providers={"X": {"url": str(archive), "collection": "no-such-collection"}})
    with pytest.raises(ConfigError, match="no-such-collection"):
        open_provider("X", settings)
    with pytest.raises(ConfigError, match="providers.Y"):
        open_provider("Y", settings)


def test_api_search_pages_and_maps_platforms(httpserver: HTTPServer, archive: Path) -> None:
    items = archive_items(archive)
    api = MiniStacApi(httpserver, items)
    settings = _settings(providers={"S2_MSI_L1C": {"url": api.base, "collection": "sentinel-2-l1c",
                                                    "platform_values": {"sentinel-2a": "Sentinel-2A"},
                                                    "page_size": 7}})
    provider = open_provider("S2_MSI_L1C", settings)
    assert isinstance(provider, ApiProvider)
    t0, t1 = "2022-05-21T16:00:00Z", "2022-05-21T18:00:00Z"
    got = provider.search(SEARCH_BOX, to_utc(t0), to_utc(t1), "Sentinel-2A")
    want = _expected(items, "sentinel-2-l1c", SEARCH_BOX, t0, t1)
    assert len(want) > 7 and {i["id"] for i in got} == want
    assert len(api.searches) == -(-len(want) // 7)  # one request per page
    assert all(i["properties"]["platform"] == "Sentinel-2A" for i in got)
    provider.close()


def test_api_retries_a_failed_request_then_succeeds(httpserver: HTTPServer, archive: Path) -> None:
    api = MiniStacApi(httpserver, archive_items(archive))
    failures = iter([True])
    api.fail_if = lambda body: next(failures, False)
    settings = _settings(providers={"S2_MSI_L1C": {"url": api.base, "collection": "sentinel-2-l1c",
                                                    "platform_values": {"sentinel-2a": "Sentinel-2A"}}},
                         provider_retries=2, provider_backoff_s=0.0)
    provider = open_provider("S2_MSI_L1C", settings)
    got = provider.search(SEARCH_BOX, to_utc("2022-05-21T16:00:00Z"), to_utc("2022-05-21T18:00:00Z"), "Sentinel-2A")
    assert got and len(api.searches) == 2


def test_api_failing_after_retries_raises_a_provider_error_naming_the_url(httpserver: HTTPServer) -> None:
    api = MiniStacApi(httpserver, [])
    api.fail_if = lambda body: True
    settings = _settings(providers={"S2_MSI_L1C": {"url": api.base, "collection": "sentinel-2-l1c"}},
                         provider_retries=1, provider_backoff_s=0.0)
    provider = open_provider("S2_MSI_L1C", settings)
    with pytest.raises(ProviderError, match=api.base):
        provider.search(SEARCH_BOX, to_utc(START), to_utc(END), "Sentinel-2A")
    assert len(api.searches) == 2


def test_unreachable_api_is_a_provider_error_naming_the_url() -> None:
    from eomatch.stack.process import free_port

    url = f"http://127.0.0.1:{free_port()}/stac"
    settings = _settings(providers={"S2_MSI_L1C": {"url": url, "collection": "sentinel-2-l1c"}},
                         provider_retries=0)
    with pytest.raises(ProviderError, match="cannot reach provider http://127.0.0.1:.*/stac"):
        open_provider("S2_MSI_L1C", settings)
