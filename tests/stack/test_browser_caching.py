"""STAC Browser's files through the proxy (real nginx): the content-hashed scripts,
styles and images are kept by browsers for good (no revalidation on every page, issue 15
item 8), while index.html, the app's routes and config.js are checked again each time,
so a new build or a new config is seen on the next page; a missing chunk is a 404, not
the app's page served (and kept) as a script."""

from __future__ import annotations

import re

import httpx
import pytest
from conftest import RunningStack

pytestmark = [pytest.mark.stack]

IMMUTABLE = "public, max-age=31536000, immutable"


def _app_files(index_html: str) -> list[str]:
    """The hashed scripts and styles index.html names (e.g. /js/app.38b3c56d.js)."""
    return re.findall(r'(?:src|href)="(/(?:js|css)/[^"]+\.[0-9a-f]{8}\.(?:js|css))"', index_html)


def test_hashed_app_files_are_kept_for_good(running_stack: RunningStack) -> None:
    with httpx.Client(base_url=running_stack.base_url, timeout=30) as client:
        index = client.get("/")
        files = _app_files(index.text)
        assert any(f.startswith("/js/") for f in files) and any(f.startswith("/css/") for f in files), files
        for path in files:
            resp = client.get(path, headers={"Accept-Encoding": "gzip"})
            assert resp.status_code == 200, path
            assert resp.headers.get("cache-control") == IMMUTABLE, path
            assert "html" not in resp.headers.get("content-type", ""), path


def test_index_routes_and_config_are_checked_again(running_stack: RunningStack) -> None:
    with httpx.Client(base_url=running_stack.base_url, timeout=30) as client:
        for path in ("/", "/index.html", "/collections/some-collection/items/some-item", "/config.js"):
            resp = client.get(path)
            assert resp.status_code == 200, path
            assert resp.headers.get("cache-control") == "no-cache", path
        assert "<div id=\"stac-browser\">" in client.get("/collections/some-collection").text


def test_missing_chunk_is_a_404_not_the_app_page(running_stack: RunningStack) -> None:
    with httpx.Client(base_url=running_stack.base_url, timeout=30) as client:
        for path in ("/js/9999.0123abcd.js", "/css/9999.0123abcd.css"):
            resp = client.get(path)
            assert resp.status_code == 404, path
            assert "stac-browser" not in resp.text, path
            assert resp.headers.get("cache-control") != IMMUTABLE, path
