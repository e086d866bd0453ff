"""The ``/external/`` read cache (``stack.proxy.external_cache_s``) through real nginx in
front of the session stack's real apps and PostgreSQL: what is kept (200 GETs on
``/external/`` only), for how long, per listener address, and that rate limits and
the read login still apply to kept answers.

Each proxy here is a second nginx with its own state folder (and so its own cache);
the session stack's own proxy runs without a cache (tests/conftest.py).
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from conftest import RunningStack
from helpers import Writer, api_key, bearer, make_collection, make_item, unique_id
from helpers_stack import loopback_url, second_proxy

from eomatch.settings import Settings, load_settings
from eomatch.stack.proxy import Proxy
from eomatch.stack.render import (
    COMPOSE_CACHE_DIR,
    external_cache_dir,
    render_deploy_files,
    render_proxy_conf,
)
from eomatch.stack.state import StatePaths
from eomatch.stack.users import add_user

pytestmark = pytest.mark.stack

SHORT_S = 2
"""The lifetime of the freshness tests: a change must show within it (plus a margin)."""
LONG_S = 600
"""A lifetime no test outlasts: whatever answers fresh did not wait for an expiry."""
MARGIN_S = 1.5
"""Scheduling slack on 2 shared cores between nginx's expiry and the poll that sees it."""


@dataclass
class CacheProxy:
    settings: Settings
    paths: StatePaths
    url: str
    """The public listener."""
    internal_url: str


def _start(running_stack: RunningStack, prefix: str, proxy: dict[str, Any]) -> Iterator[CacheProxy]:
    with second_proxy(running_stack.settings, prefix, **proxy) as instance:
        yield CacheProxy(instance.settings, instance.paths, loopback_url(instance), instance.internal_url)


@pytest.fixture(scope="module")
def short_cache(running_stack: RunningStack) -> Iterator[CacheProxy]:
    yield from _start(running_stack, "eomatch-cache-short-", {"external_cache_s": SHORT_S})


@pytest.fixture(scope="module")
def long_cache(running_stack: RunningStack) -> Iterator[CacheProxy]:
    yield from _start(running_stack, "eomatch-cache-long-", {"external_cache_s": LONG_S})


@pytest.fixture
def collection(running_stack: RunningStack) -> Iterator[str]:
    """A collection of its own (created through /api/), removed afterwards."""
    cid = unique_id("cache")
    with Writer(running_stack) as w:
        w.collection(make_collection(cid, title="before"))
    yield cid
    with Writer(running_stack) as w:
        w.client.delete(f"{running_stack.internal}/collections/{cid}")


def _status(r: httpx.Response) -> str | None:
    return r.headers.get("x-cache-status")


def test_external_gets_are_kept_and_served_again(long_cache: CacheProxy, collection: str) -> None:
    url = f"{long_cache.url}/external/collections/{collection}"
    with httpx.Client(timeout=30) as client:
        first, second = client.get(url), client.get(url)
        assert first.status_code == second.status_code == 200
        assert (_status(first), _status(second)) == ("MISS", "HIT")
        assert second.json() == first.json()
        # every answer, a kept one too, has its own request id
        assert first.headers["x-request-id"] and second.headers["x-request-id"] != first.headers["x-request-id"]
        # GET /search by bbox + datetime is kept; POST /search never is
        search = f"{long_cache.url}/external/search?collections={collection}&bbox=0,0,10,10&datetime=2022-01-01T00:00:00Z/.."
        assert [_status(client.get(search)) for _ in range(2)] == ["MISS", "HIT"]
        posts = [client.post(f"{long_cache.url}/external/search", json={"collections": [collection]}) for _ in range(2)]
        assert all(p.status_code == 200 and _status(p) != "HIT" for p in posts)


def test_the_internal_api_is_never_cached(running_stack: RunningStack, long_cache: CacheProxy, collection: str) -> None:
    """A change through /api/ shows on the very next /api/ GET, on both listeners, while
    the same proxy still serves the kept copy on /external/."""
    key = api_key(long_cache)
    external = f"{long_cache.url}/external/collections/{collection}"
    with httpx.Client(timeout=30) as client:
        kept = client.get(external).json()["title"]
        for base in (long_cache.url, long_cache.internal_url):
            url = f"{base}/api/collections/{collection}"
            for title in (unique_id("t1"), unique_id("t2")):
                before = client.get(url)
                assert before.status_code == 200 and "x-cache-status" not in before.headers
                r = client.put(url, json=make_collection(collection, title=title), headers=bearer(key))
                assert r.status_code == 200, r.text[:200]
                after = client.get(url)
                assert after.json()["title"] == title and "x-cache-status" not in after.headers
                stale = client.get(external)
                assert (stale.json()["title"], _status(stale)) == (kept, "HIT")


def test_a_missing_item_answers_as_soon_as_it_exists(
    running_stack: RunningStack, long_cache: CacheProxy, collection: str
) -> None:
    """404s are never kept: with a 10-minute lifetime, a new item answers at once."""
    iid = unique_id("new")
    url = f"{long_cache.url}/external/collections/{collection}/items/{iid}"
    with httpx.Client(timeout=30) as client:
        assert [client.get(url).status_code for _ in range(2)] == [404, 404]
        missing_collection = f"{long_cache.url}/external/collections/{collection}-later"
        assert client.get(missing_collection).status_code == 404
        with Writer(running_stack) as w:
            w.item(make_item(collection, iid, 5, 5))
            w.collection(make_collection(f"{collection}-later"))
        try:
            r = client.get(url)
            assert r.status_code == 200 and r.json()["id"] == iid
            assert _status(r) == "MISS"
            assert client.get(missing_collection).status_code == 200
        finally:
            with Writer(running_stack) as w:
                w.client.delete(f"{running_stack.internal}/collections/{collection}-later")


def _poll_until(client: httpx.Client, url: str, done: Any, stored_at: float) -> httpx.Response:
    """GET ``url`` until ``done(response)``. Every answer before that must be a kept copy
    no older than the lifetime: ``stored_at`` is when the answer that made the copy had
    arrived (nginx stored it earlier), and each request's start counts, so only a real
    overrun (not a slow answer on a busy machine) fails."""
    while True:
        asked_at = time.monotonic()
        r = client.get(url)
        if done(r):
            return r
        assert _status(r) == "HIT", (r.status_code, _status(r))
        age_s = asked_at - stored_at
        assert age_s <= SHORT_S + MARGIN_S, f"still the old answer {age_s:.2f} s after it was stored"
        time.sleep(0.05)


def test_a_changed_then_deleted_item_shows_within_the_lifetime(
    running_stack: RunningStack, short_cache: CacheProxy, collection: str
) -> None:
    """The copy predates the change, so the change shows at most a lifetime after it."""
    iid = unique_id("changing")
    url = f"{short_cache.url}/external/collections/{collection}/items/{iid}"
    with Writer(running_stack) as w, httpx.Client(timeout=30) as client:
        w.item(make_item(collection, iid, 5, 5, properties={"version": 1}))
        r = client.get(url)
        stored_at = time.monotonic()
        assert r.status_code == 200 and _status(r) == "MISS" and r.json()["properties"]["version"] == 1
        w.item(make_item(collection, iid, 5, 5, properties={"version": 2}))
        r = _poll_until(client, url, lambda r: r.json()["properties"].get("version") == 2, stored_at)
        stored_at = time.monotonic()  # the new answer is kept in turn
        assert _status(r) in ("EXPIRED", "MISS")
        assert w.client.delete(f"{running_stack.internal}/collections/{collection}/items/{iid}").status_code in (200, 204)
        _poll_until(client, url, lambda r: r.status_code == 404, stored_at)


def test_a_write_key_reads_fresh_and_refreshes_the_copy(
    running_stack: RunningStack, long_cache: CacheProxy, collection: str
) -> None:
    """The bypass for freshly ingested data: whoever holds a write key (the pipeline
    that just ingested) reads the database, and everyone gets that answer after it."""
    url = f"{long_cache.url}/external/collections/{collection}"
    key = api_key(long_cache)
    with httpx.Client(timeout=30) as client:
        assert client.get(url).json()["title"] == "before"
        with Writer(running_stack) as w:
            w.collection(make_collection(collection, title="after"))
        stale = client.get(url)
        assert (stale.json()["title"], _status(stale)) == ("before", "HIT")
        fresh = client.get(url, headers=bearer(key))
        assert (fresh.json()["title"], _status(fresh)) == ("after", "BYPASS")
        anonymous = client.get(url)
        assert (anonymous.json()["title"], _status(anonymous)) == ("after", "HIT")
        # a key that is not valid is no bypass
        assert _status(client.get(url, headers=bearer("x" * 32))) == "HIT"


def test_copies_are_per_listener_address(long_cache: CacheProxy) -> None:
    """Links are built from the listener's own address: the public and the internal
    listener each get their own copy, with their own links."""
    with httpx.Client(timeout=30) as client:
        for _ in range(2):
            for base in (long_cache.url, long_cache.internal_url):
                r = client.get(f"{base}/external/")
                assert r.status_code == 200
                self_link = next(lk["href"] for lk in r.json()["links"] if lk["rel"] == "self")
                assert self_link.startswith(f"{base}/external"), (base, self_link, _status(r))
        assert _status(client.get(f"{long_cache.url}/external/")) == "HIT"
        assert _status(client.get(f"{long_cache.internal_url}/external/")) == "HIT"


def test_cors_answers_are_kept_apart_but_not_per_origin(long_cache: CacheProxy, collection: str) -> None:
    """The apps answer any Origin with ``Access-Control-Allow-Origin: *``: one copy with
    CORS headers for every Origin (made-up Origins do not each reach the database), and
    clients without an Origin never get a copy made for one, or the other way round."""
    url = f"{long_cache.url}/external/collections/{collection}/items?limit=3"
    with httpx.Client(timeout=30) as client:
        seen = []
        for origin in ("https://a.example", "https://b.example", None, None, "https://c.example"):
            r = client.get(url, headers={"Origin": origin} if origin else {})
            assert r.status_code == 200
            assert r.headers.get("access-control-allow-origin") == ("*" if origin else None), origin
            seen.append(_status(r))
        assert seen == ["MISS", "HIT", "MISS", "HIT", "HIT"]


def test_kept_answers_are_compressed_for_clients_that_ask(long_cache: CacheProxy, collection: str) -> None:
    url = f"{long_cache.url}/external/collections/{collection}/items?limit=5"
    with httpx.Client(timeout=30) as client:
        plain = client.get(url, headers={"Accept-Encoding": "identity"})
        zipped = client.stream("GET", url, headers={"Accept-Encoding": "gzip"})
        with zipped as r:
            raw = b"".join(r.iter_raw())  # as sent, not decoded
            assert r.headers.get("content-encoding") == "gzip" and _status(r) == "HIT"
            assert "Accept-Encoding" in r.headers.get("vary", "")
        assert gzip.decompress(raw) == plain.content
        assert plain.headers.get("content-encoding") is None


@pytest.fixture(scope="module")
def strict_cache(running_stack: RunningStack) -> Iterator[CacheProxy]:
    """Cache on, /external/ allowed 1 r/s with a burst of 3."""
    yield from _start(running_stack, "eomatch-cache-strict-", {"external_cache_s": LONG_S, "external_rate_per_s": 1,
                                                              "external_burst": 3})


def test_rate_limits_apply_to_kept_answers(strict_cache: CacheProxy) -> None:
    """limit_req runs before the cache: a kept answer costs the same budget."""
    url = f"{strict_cache.url}/external/collections"
    with httpx.Client(timeout=10) as client:
        responses = [client.get(url) for _ in range(15)]  # bounded burst, well within a second
    statuses = [r.status_code for r in responses]
    assert statuses[0] == 200 and set(statuses) <= {200, 429}
    assert statuses.count(429) >= 10, statuses
    assert all(_status(r) == "HIT" for r in responses[1:] if r.status_code == 200)
    assert any(_status(r) == "HIT" for r in responses[1:]), statuses
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.json()["code"] == "TooManyRequests" and "x-cache-status" not in refused.headers


@pytest.fixture(scope="module")
def login_cache(running_stack: RunningStack) -> Iterator[tuple[CacheProxy, tuple[str, str]]]:
    """Cache on and ``read_auth: basic``, with one read login."""
    for proxy in _start(running_stack, "eomatch-cache-login-", {"external_cache_s": LONG_S, "read_auth": "basic"}):
        name = unique_id("reader")
        password = add_user(proxy.paths, name)
        Proxy(proxy.settings).reload()
        yield proxy, (name, password)


def test_a_kept_page_is_never_served_without_the_login(login_cache: tuple[CacheProxy, tuple[str, str]]) -> None:
    proxy, login = login_cache
    url = f"{proxy.url}/external/collections"
    with httpx.Client(timeout=30) as client:
        assert [_status(client.get(url, auth=login)) for _ in range(2)] == ["MISS", "HIT"]
        for auth in (None, (login[0], "not-the-password")):
            r = client.get(url, auth=auth)
            assert r.status_code == 401 and r.json()["code"] == "Unauthorized", auth
            assert "collections" not in r.json() and "x-cache-status" not in r.headers
        assert _status(client.get(url, auth=login)) == "HIT"


# --- rendering ---------------------------------------------------------------------


def _settings(tmp_path: Path, **proxy: Any) -> Settings:
    return load_settings(overrides={"stack": {"state_dir": str(tmp_path), "proxy": proxy}}, environ={})


def test_the_cache_is_rendered_for_external_locations_only(tmp_path: Path) -> None:
    settings = _settings(tmp_path, external_cache_s=7)
    assert load_settings(environ={}).stack.proxy.external_cache_s == 60  # the documented default
    for mode, cache_dir in (("local", str(external_cache_dir(settings))), ("compose", COMPOSE_CACHE_DIR)):
        conf = render_proxy_conf(settings, mode)  # type: ignore[arg-type]
        assert f"proxy_cache_path {cache_dir} " in conf and "max_size=" in conf, mode
        assert "proxy_cache_valid 200 7s;" in conf and conf.count("proxy_cache_valid") == 1, mode
        for location in ("location /api/ {", "location = /api/search {", "location ^~ /schemas/ {", "location / {"):
            block = conf[conf.index(location):]
            assert "proxy_cache " not in block[: block.index("}")], (mode, location)
        for location in ("location /external/ {", "location = /external/search {"):
            block = conf[conf.index(location):]
            assert "proxy_cache eomatch_external_cache;" in block[: block.index("proxy_pass")], (mode, location)
    assert str(external_cache_dir(settings)).startswith(str(tmp_path))
    off = render_proxy_conf(_settings(tmp_path, external_cache_s=0), "local")
    assert "proxy_cache" not in off and "X-Cache-Status" not in off


@pytest.mark.parametrize("value", [-1, 3601, "soon"])
def test_a_lifetime_that_cannot_work_is_one_line(tmp_path: Path, value: Any) -> None:
    from eomatch.errors import ConfigError

    with pytest.raises(ConfigError, match="stack.proxy.external_cache_s") as info:
        _settings(tmp_path, external_cache_s=value)
    assert "\n" not in str(info.value)


def test_compose_and_kubernetes_give_the_cache_a_volume(tmp_path: Path) -> None:
    files = render_deploy_files(_settings(tmp_path))
    proxy = yaml.safe_load(files["compose.yaml"])["services"]["proxy"]
    assert any(str(v).endswith(f":{COMPOSE_CACHE_DIR}") for v in proxy["volumes"]), proxy["volumes"]
    (deployment,) = [d for d in yaml.safe_load_all(files["k8s/proxy.yaml"]) if d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == COMPOSE_CACHE_DIR]
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert "emptyDir" in volume and volume["emptyDir"].get("sizeLimit")
    off = render_deploy_files(_settings(tmp_path, external_cache_s=0))
    assert COMPOSE_CACHE_DIR not in off["compose.yaml"] and COMPOSE_CACHE_DIR not in off["k8s/proxy.yaml"]
