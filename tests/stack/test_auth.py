"""Who may write where, through the real nginx proxy and the real apps.

Writes through ``/api/`` need a named key; reads and ``POST /api/search`` do not.
The external API refuses every write, from the app itself and from nginx, and is
rate-limited with a JSON 429.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from conftest import RunningStack, free_port
from helpers import (
    Writer,
    api_key,
    bearer,
    make_collection,
    make_item,
    unique_id,
)
from helpers_stack import loopback_url, second_proxy

from eomatch.stack.api import ApiService
from eomatch.stack.keys import add_key, revoke_key
from eomatch.stack.proxy import Proxy

pytestmark = pytest.mark.stack


@dataclass
class Keys:
    valid: str
    revoked: str


@pytest.fixture(scope="module")
def keys(running_stack: RunningStack) -> Keys:
    revoked_name = unique_id("revoked")
    revoked = add_key(running_stack.paths, revoked_name)
    revoke_key(running_stack.paths, revoked_name)
    Proxy(running_stack.settings).reload()
    return Keys(valid=api_key(running_stack), revoked=revoked)


def _headers(kind: str, keys: Keys) -> dict[str, str]:
    return {
        "none": {},
        "wrong": bearer("not-a-key-" + "x" * 30),
        "revoked": bearer(keys.revoked),
        "malformed": {"Authorization": keys.valid},  # the key without "Bearer "
        "valid": bearer(keys.valid),
    }[kind]


@dataclass
class Write:
    """One write request against a fresh target; ``check`` verifies its effect."""

    method: str
    path: str
    body: Any
    ok: tuple[int, ...]
    effect: Callable[[httpx.Client, str], bool]  # True when the write happened
    headers: dict[str, str] | None = None


def _writes(cid: str, iid: str) -> list[tuple[str, Write]]:
    """Every write route of the internal API, each against collection ``cid`` / item ``iid``
    that exist beforehand."""

    def coll(c: httpx.Client, base: str, cid_: str = cid) -> dict[str, Any] | None:
        r = c.get(f"{base}/collections/{cid_}")
        return r.json() if r.status_code == 200 else None

    def item(c: httpx.Client, base: str, iid_: str = iid) -> dict[str, Any] | None:
        r = c.get(f"{base}/collections/{cid}/items/{iid_}")
        return r.json() if r.status_code == 200 else None

    new_cid, new_iid, bulk_iid = f"{cid}-new", f"{iid}-new", f"{iid}-bulk"
    return [
        ("POST collections", Write("POST", "/collections", make_collection(new_cid), (200, 201),
                                   lambda c, b: coll(c, b, new_cid) is not None)),
        ("PUT collection", Write("PUT", f"/collections/{cid}", make_collection(cid, title="put"), (200,),
                                 lambda c, b: (coll(c, b) or {}).get("title") == "put")),
        ("PATCH collection", Write("PATCH", f"/collections/{cid}", {"title": "patched"}, (200,),
                                   lambda c, b: (coll(c, b) or {}).get("title") == "patched")),
        ("POST items", Write("POST", f"/collections/{cid}/items", make_item(cid, new_iid, 10, 10), (200, 201),
                             lambda c, b: item(c, b, new_iid) is not None)),
        ("POST bulk_items", Write("POST", f"/collections/{cid}/bulk_items",
                                  {"items": {bulk_iid: make_item(cid, bulk_iid, 10, 10)}, "method": "upsert"},
                                  (200, 201), lambda c, b: item(c, b, bulk_iid) is not None)),
        ("PUT item", Write("PUT", f"/collections/{cid}/items/{iid}",
                           make_item(cid, iid, 10, 10, properties={"mark": "put"}), (200,),
                           lambda c, b: (item(c, b) or {}).get("properties", {}).get("mark") == "put")),
        ("PATCH item", Write("PATCH", f"/collections/{cid}/items/{iid}", {"properties": {"mark": "patched"}}, (200,),
                             lambda c, b: (item(c, b) or {}).get("properties", {}).get("mark") == "patched")),
        ("DELETE item", Write("DELETE", f"/collections/{cid}/items/{iid}", None, (200, 204),
                              lambda c, b: item(c, b) is None)),
        ("DELETE collection", Write("DELETE", f"/collections/{cid}", None, (200, 204),
                                    lambda c, b: coll(c, b) is None)),
    ]


WRITE_NAMES = [name for name, _ in _writes("c", "i")]


@pytest.fixture
def target(running_stack: RunningStack) -> Iterator[tuple[str, str]]:
    """A fresh collection with one item for each write."""
    cid, iid = unique_id("auth"), "item-1"
    with Writer(running_stack) as w:
        w.collection(make_collection(cid))
        w.item(make_item(cid, iid, 10, 10))
    yield cid, iid
    with Writer(running_stack) as w:
        for c in (cid, f"{cid}-new"):
            w.client.delete(f"{running_stack.internal}/collections/{c}")


def _send(client: httpx.Client, base: str, write: Write, headers: dict[str, str]) -> httpx.Response:
    return client.request(write.method, base + write.path, json=write.body, headers=headers)


@pytest.mark.parametrize("who", ["none", "wrong", "revoked", "malformed"])
@pytest.mark.parametrize("name", WRITE_NAMES)
def test_write_without_a_valid_key_is_refused(
    running_stack: RunningStack, keys: Keys, target: tuple[str, str], name: str, who: str
) -> None:
    write = dict(_writes(*target))[name]
    with httpx.Client(timeout=30) as client:
        r = _send(client, running_stack.internal, write, _headers(who, keys))
        assert r.status_code == 401, r.text
        assert r.headers["content-type"].startswith("application/json")
        body = r.json()
        assert body["code"] == "Unauthorized"
        expected = "missing API key" if who == "none" else "invalid or revoked API key"
        assert expected in body["description"]
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert not write.effect(client, running_stack.internal), "a refused write changed the catalogue"


@pytest.mark.parametrize("name", WRITE_NAMES)
def test_write_with_a_valid_key_succeeds(
    running_stack: RunningStack, keys: Keys, target: tuple[str, str], name: str
) -> None:
    write = dict(_writes(*target))[name]
    with httpx.Client(timeout=30) as client:
        assert not write.effect(client, running_stack.internal)
        r = _send(client, running_stack.internal, write, _headers("valid", keys))
        assert r.status_code in write.ok, r.text
        assert write.effect(client, running_stack.internal)


def test_reads_and_search_need_no_key(running_stack: RunningStack, target: tuple[str, str]) -> None:
    cid, iid = target
    base = running_stack.internal
    with httpx.Client(timeout=30) as client:
        for path in ("/", "/conformance", "/collections", f"/collections/{cid}",
                     f"/collections/{cid}/items", f"/collections/{cid}/items/{iid}",
                     f"/search?collections={cid}", "/queryables"):
            assert client.get(base + path).status_code == 200, path
        r = client.post(base + "/search", json={"collections": [cid]})
        assert r.status_code == 200
        assert [f["id"] for f in r.json()["features"]] == [iid]
        assert client.head(base + f"/collections/{cid}").status_code != 401


def test_the_key_never_reaches_the_app(running_stack: RunningStack, keys: Keys, target: tuple[str, str]) -> None:
    """nginx strips Authorization; the app's log never sees the key."""
    cid, _ = target
    with httpx.Client(timeout=30) as client:
        r = client.put(running_stack.internal + f"/collections/{cid}", json=make_collection(cid, title="k"),
                       headers=bearer(keys.valid))
        assert r.status_code == 200
    for log in running_stack.paths.logs.glob("*.log"):
        assert keys.valid not in log.read_text(errors="replace"), log


# --- external: read-only from the app itself and through nginx -------------------


def _external_writes(cid: str, iid: str) -> list[tuple[str, str, Any]]:
    return [
        ("POST", "/collections", make_collection(cid + "-x")),
        ("PUT", f"/collections/{cid}", make_collection(cid, title="hacked")),
        ("PATCH", f"/collections/{cid}", {"title": "hacked"}),
        ("DELETE", f"/collections/{cid}", None),
        ("POST", f"/collections/{cid}/items", make_item(cid, iid + "-x", 10, 10)),
        ("POST", f"/collections/{cid}/bulk_items", {"items": {}, "method": "upsert"}),
        ("PUT", f"/collections/{cid}/items/{iid}", make_item(cid, iid, 10, 10, properties={"mark": "hacked"})),
        ("PATCH", f"/collections/{cid}/items/{iid}", {"properties": {"mark": "hacked"}}),
        ("DELETE", f"/collections/{cid}/items/{iid}", None),
    ]


@pytest.mark.parametrize("via", ["app", "nginx"])
def test_external_refuses_every_write(
    running_stack: RunningStack, keys: Keys, target: tuple[str, str], via: str
) -> None:
    cid, iid = target
    # "app": straight to the external app's unix socket (root may enter its folder)
    direct = ApiService(running_stack.settings, "external").client(timeout_s=30) if via == "app" else None
    base = "" if via == "app" else running_stack.external
    with httpx.Client(timeout=30) as client:
        before_c = client.get(f"{running_stack.internal}/collections/{cid}").json()
        before_i = client.get(f"{running_stack.internal}/collections/{cid}/items/{iid}").json()
        for method, path, body in _external_writes(cid, iid):
            # A valid internal key must not open the external API either.
            r = (direct or client).request(method, base + path, json=body, headers=bearer(keys.valid))
            # bulk_items does not even exist in the external app (404); nginx says 405
            allowed = (404, 405) if via == "app" and path.endswith("/bulk_items") else (405,)
            assert r.status_code in allowed, (method, path, r.status_code, r.text)
            assert r.headers["content-type"].startswith("application/json")
            assert isinstance(r.json(), dict)
        assert client.get(f"{running_stack.internal}/collections/{cid}").json() == before_c
        assert client.get(f"{running_stack.internal}/collections/{cid}/items/{iid}").json() == before_i
        assert client.get(f"{running_stack.internal}/collections/{cid}-x").status_code == 404
        # reads keep working, POST /search included
        assert (direct or client).post(base + "/search", json={"collections": [cid]}).json()["features"][0]["id"] == iid


# --- external rate limit: a second proxy with a tiny budget ----------------------


def _second_proxy(running_stack: RunningStack, **proxy_settings: int) -> Iterator[str]:
    """Another nginx in front of the same upstreams, with other proxy settings."""
    with second_proxy(running_stack.settings, "eomatch-ratelimit-", tls_port=free_port(), **proxy_settings) as proxy:
        yield loopback_url(proxy)


@pytest.fixture
def strict_proxy(running_stack: RunningStack) -> Iterator[str]:
    """/external/ allowed 1 r/s with a burst of 3."""
    yield from _second_proxy(running_stack, external_rate_per_s=1, external_burst=3)


def test_external_rate_limit_answers_json_429(running_stack: RunningStack, strict_proxy: str) -> None:
    statuses = []
    with httpx.Client(timeout=10) as client:
        for _ in range(15):  # bounded burst, well within a second
            r = client.get(strict_proxy + "/external/collections")
            statuses.append(r.status_code)
            if r.status_code == 429:
                assert r.headers["content-type"].startswith("application/json")
                assert r.json()["code"] == "TooManyRequests"
                assert r.headers.get("retry-after") == "1"
        assert statuses[0] == 200
        assert statuses.count(429) >= 10, statuses  # at most 1 + burst(3) + ~1 refill pass
        assert set(statuses) <= {200, 429}
        # POST /search is limited too; the internal API is not
        assert client.post(strict_proxy + "/external/search", json={}).status_code == 429
        assert all(client.get(strict_proxy + "/api/collections").status_code == 200 for _ in range(10))


# --- keys match exactly ----------------------------------------------------------


def _raw_post(base_url: str, path: str, authorization: bytes, body: bytes) -> tuple[int, bytes]:
    """A request with an Authorization value httpx would refuse to send (trailing blanks)."""
    import socket
    from urllib.parse import urlparse

    url = urlparse(base_url)
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall(
            b"POST " + path.encode() + b" HTTP/1.1\r\nHost: " + url.netloc.encode() + b"\r\n"
            b"Authorization: " + authorization + b"\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.partition(b"\r\n\r\n")[2]


def _variants(key: str) -> dict[str, bytes]:
    """Near misses of a valid key: each must be refused."""
    return {
        "swapped case": f"Bearer {key.swapcase()}".encode(),
        "upper case": f"Bearer {key.upper()}".encode(),
        "lower case": f"Bearer {key.lower()}".encode(),
        "swapped case + trailing space": f"Bearer {key.swapcase()} ".encode(),
        "trailing tab": f"Bearer {key}\t".encode(),
        "two spaces": f"Bearer  {key}".encode(),
        "one character more": f"Bearer {key}x".encode(),
        "one character less": f"Bearer {key[:-1]}".encode(),
        "key as a prefix": f"Bearer {key[:8]}".encode(),
    }


@pytest.mark.parametrize("variant", list(_variants("k" * 20)))
def test_keys_match_exactly(running_stack: RunningStack, keys: Keys, variant: str) -> None:
    """nginx compares map strings case-insensitively; a key with its case changed (or
    anything but the key) must get 401 and change nothing."""
    assert keys.valid.swapcase() != keys.valid  # token_urlsafe keys have letters
    cid = unique_id("exact")
    status, body = _raw_post(running_stack.base_url, "/api/collections", _variants(keys.valid)[variant],
                             json.dumps(make_collection(cid)).encode())
    assert status == 401, body[:200]
    assert json.loads(body)["code"] == "Unauthorized"
    assert httpx.get(f"{running_stack.internal}/collections/{cid}", timeout=30).status_code == 404


def test_the_exact_key_still_works_whatever_the_scheme_case(running_stack: RunningStack, keys: Keys) -> None:
    """Auth scheme names are case-insensitive in HTTP (RFC 9110 11.1); the key is not."""
    for scheme in (b"Bearer", b"bearer", b"BEARER"):
        cid = unique_id("scheme")
        status, body = _raw_post(running_stack.base_url, "/api/collections", scheme + b" " + keys.valid.encode(),
                                 json.dumps(make_collection(cid)).encode())
        assert status in (200, 201), body[:200]
        with Writer(running_stack) as w:
            w.client.delete(f"{running_stack.internal}/collections/{cid}")


def test_key_conf_is_a_case_sensitive_regex_with_escaped_keys() -> None:
    from eomatch.errors import ConfigError
    from eomatch.stack.render import render_keys_conf

    conf = render_keys_conf({"pipeline": "abc.DEF+ghi/jkl=mno~pqr-stu_vwx"})
    assert r'"~^[Bb][Ee][Aa][Rr][Ee][Rr] abc\.DEF\+ghi\/jkl\=mno\~pqr\-stu\_vwx$" "pipeline";' in conf
    for bad in ('short', 'has space in it 0123456789', 'quote"0123456789abcdef', 'back\\slash0123456789'):
        with pytest.raises(ConfigError):
            render_keys_conf({"k": bad})


@pytest.fixture
def strict_internal_proxy(running_stack: RunningStack) -> Iterator[str]:
    """/api/ allowed 1 r/s with a burst of 3 (the external budget is its own)."""
    yield from _second_proxy(running_stack, internal_rate_per_s=1, internal_burst=3)


def test_internal_reads_are_rate_limited_too(running_stack: RunningStack, strict_internal_proxy: str) -> None:
    """One client can no longer flood /api/ (GET and POST /search alike) with reads."""
    strict_proxy = strict_internal_proxy
    statuses: dict[str, list[int]] = {"/api/collections": [], "/api/search": []}
    with httpx.Client(timeout=10) as client:
        for _ in range(15):  # bounded burst, well within a second; one budget for both
            for path in statuses:
                r = (client.post(strict_proxy + path, json={"limit": 1}) if path.endswith("search")
                     else client.get(strict_proxy + path))
                statuses[path].append(r.status_code)
                if r.status_code == 429:
                    assert r.json()["code"] == "TooManyRequests"
    assert statuses["/api/collections"][0] == 200, statuses
    for path, seen in statuses.items():
        assert seen.count(429) >= 10 and set(seen) <= {200, 429}, (path, seen)
