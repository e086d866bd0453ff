"""What the proxy serves and refuses, through real nginx: files under ``/assets/``, the
two listeners, request size limits with JSON answers.

Second proxies (own state folder, own ports) run in front of the session stack's
apps when a test needs other proxy settings.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from conftest import RunningStack, free_port, make_state_dir
from helpers import api_key, bearer, derive_settings, make_collection, unique_id
from helpers_stack import loopback_url, second_proxy

from eomatch.errors import ConfigError, StackError
from eomatch.settings import Settings, load_settings
from eomatch.stack.proxy import Proxy, check_assets_root
from eomatch.stack.render import render_proxy_conf, worker_user

pytestmark = pytest.mark.stack

SECRET = b"must-never-be-served-" + os.urandom(8).hex().encode()


def raw(base_url: str, target: bytes, method: bytes = b"GET", headers: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """A request sent exactly as given (httpx would normalise ``..`` and refuse some bytes)."""
    url = urlparse(base_url)
    assert url.hostname == "127.0.0.1" and url.port
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall(method + b" " + target + b" HTTP/1.1\r\nHost: " + url.netloc.encode()
                     + b"\r\nConnection: close\r\n" + headers + b"\r\n")  # fmt: skip
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:] if ": " in line)}
    return int(lines[0].split(" ", 2)[1]), fields, body


@dataclass
class SecondProxy:
    settings: Settings
    url: str
    """The public listener."""
    internal_url: str

    @property
    def paths(self):  # type: ignore[no-untyped-def]
        """Its own state folder, keys included (``helpers.api_key`` adds one)."""
        from eomatch.stack.state import StatePaths

        return StatePaths(self.settings.stack.state_dir)


def _second_proxy(running_stack: RunningStack, prefix: str, proxy: dict[str, Any]) -> Iterator[SecondProxy]:
    with second_proxy(running_stack.settings, prefix, tls_port=free_port(), **proxy) as instance:
        yield SecondProxy(instance.settings, loopback_url(instance), instance.internal_url)


# --- /assets/ ----------------------------------------------------------------------


@dataclass
class Assets:
    root: Path
    files: dict[str, bytes]
    """Path under the root -> content, for the files that must be served."""
    outside: Path


@pytest.fixture(scope="module")
def assets() -> Iterator[Assets]:
    """A folder nginx's worker can read, with files to serve and traps around them."""
    top = make_state_dir("eomatch-assets-")
    root = top / "share"
    outside = top / "outside"
    for d in (root / "sub" / "deeper", root / ".eomatch", root / "sub" / ".hidden", outside):
        d.mkdir(parents=True)
        d.chmod(0o755)
    rng = random.Random(7)
    files = {
        "sub/deeper/comparison.nc": rng.randbytes(300_000),
        "item.json": b'{"type": "Feature"}',
        "quicklook.png": b"\x89PNG\r\n\x1a\n" + rng.randbytes(100),
        "band.tif": b"II*\x00" + rng.randbytes(100),
        "name with space.nc": b"spaced",
    }
    for rel, data in files.items():
        (root / rel).write_bytes(data)
        (root / rel).chmod(0o644)
    for trap in (root / ".eomatch" / "ingest.sqlite", root / "sub" / ".hidden" / "x.nc", root / ".env", outside / "secret.txt"):
        trap.write_bytes(SECRET)
        trap.chmod(0o644)
    (root / "leak.txt").symlink_to(outside / "secret.txt")
    (root / "leakdir").symlink_to(outside)
    (root / "inside-link.nc").symlink_to(root / "sub" / "deeper" / "comparison.nc")
    os.mkfifo(root / "pipe.nc")
    yield Assets(root, files, outside)
    shutil.rmtree(top, ignore_errors=True)


@pytest.fixture(scope="module")
def assets_proxy(running_stack: RunningStack, assets: Assets) -> Iterator[SecondProxy]:
    yield from _second_proxy(running_stack, "eomatch-assets-proxy-", {"assets_root": str(assets.root)})


def test_files_are_served_byte_exact_with_types_and_caching(assets_proxy: SecondProxy, assets: Assets) -> None:
    types = {".nc": "application/x-netcdf", ".json": "application/json", ".png": "image/png", ".tif": "image/tiff"}
    with httpx.Client(timeout=30) as client:
        for rel, data in assets.files.items():
            r = client.get(f"{assets_proxy.url}/assets/{rel}")
            assert r.status_code == 200, (rel, r.text[:200])
            assert r.content == data, rel
            assert r.headers["content-type"] == types[Path(rel).suffix], rel
            assert "max-age" in r.headers["cache-control"] and r.headers["etag"] and r.headers["last-modified"]
            assert r.headers["x-content-type-options"] == "nosniff"
        url = f"{assets_proxy.url}/assets/sub/deeper/comparison.nc"
        data = assets.files["sub/deeper/comparison.nc"]
        r = client.get(url, headers={"Range": "bytes=1000-1999"})
        assert r.status_code == 206 and r.content == data[1000:2000]
        assert r.headers["content-range"] == f"bytes 1000-1999/{len(data)}"
        etag = client.head(url).headers["etag"]
        assert client.get(url, headers={"If-None-Match": etag}).status_code == 304


UNDER_ASSETS, OUT = True, False
REFUSED: dict[str, tuple[bytes, bool]] = {
    # name: (request target, whether nginx still maps it under /assets/)
    "the root listed": (b"/assets/", UNDER_ASSETS),
    "a folder listed": (b"/assets/sub/", UNDER_ASSETS),
    "a folder without slash": (b"/assets/sub", UNDER_ASSETS),
    "the ingest state": (b"/assets/.eomatch/ingest.sqlite", UNDER_ASSETS),
    "a dot file": (b"/assets/.env", UNDER_ASSETS),
    "a nested dot folder": (b"/assets/sub/.hidden/x.nc", UNDER_ASSETS),
    "an encoded dot folder": (b"/assets/%2eeomatch/ingest.sqlite", UNDER_ASSETS),
    "a dot folder reached by ..": (b"/assets/sub/../.eomatch/ingest.sqlite", UNDER_ASSETS),
    "a symlink to a file outside": (b"/assets/leak.txt", UNDER_ASSETS),
    "a symlink to a folder outside": (b"/assets/leakdir/secret.txt", UNDER_ASSETS),
    "a symlink inside the root": (b"/assets/inside-link.nc", UNDER_ASSETS),
    "a fifo": (b"/assets/pipe.nc", UNDER_ASSETS),
    "no such file": (b"/assets/nope.nc", UNDER_ASSETS),
    "double-encoded traversal": (b"/assets/%252e%252e/outside/secret.txt", UNDER_ASSETS),
    "traversal": (b"/assets/../outside/secret.txt", OUT),
    "encoded traversal": (b"/assets/%2e%2e/outside/secret.txt", OUT),
    "encoded slash traversal": (b"/assets/..%2foutside%2fsecret.txt", OUT),
    "encoded traversal above the root": (b"/assets/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd", OUT),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_only_regular_files_under_the_root_are_served(assets_proxy: SecondProxy, assets: Assets, case: str) -> None:
    target, under_assets = REFUSED[case]
    status, headers, body = raw(assets_proxy.url, target)
    assert SECRET not in body and b"root:" not in body, case
    if under_assets:
        # refused as a JSON 404: nothing says what exists
        assert status == 404, (case, status, body[:200])
        assert headers["content-type"] == "application/json" and json.loads(body)["code"] == "NotFound"
    else:
        # normalised out of /assets/ (the browser answers) or refused (above /)
        assert status in (200, 400, 404), (case, status)


@pytest.mark.parametrize("method", [b"POST", b"PUT", b"DELETE"])
def test_assets_are_read_only(assets_proxy: SecondProxy, assets: Assets, method: bytes) -> None:
    status, headers, body = raw(assets_proxy.url, b"/assets/item.json", method, b"Content-Length: 0\r\n")
    assert status == 405 and json.loads(body)["code"] == "MethodNotAllowed"
    assert (assets.root / "item.json").read_bytes() == assets.files["item.json"]


def test_without_assets_root_nothing_is_served(running_stack: RunningStack) -> None:
    assert running_stack.settings.stack.proxy.assets_root is None
    r = httpx.get(f"{running_stack.base_url}/assets/etc/passwd", timeout=30)
    assert r.status_code == 404 and r.json()["code"] == "NotFound"
    assert "assets_root" in r.json()["description"]


def test_ingest_assets_base_url_gives_working_public_urls(
    running_stack: RunningStack, assets_proxy: SecondProxy, assets: Assets
) -> None:
    """``eomatch-ingest --assets-base-url <proxy>/assets/...``: the external API shows the
    relative assets as http URLs, and each one answers with the file's bytes."""
    from catalogue_factory import build_catalogue

    from eomatch.ingest import ingest

    start = datetime(2019, 1, 1, tzinfo=UTC) + timedelta(minutes=random.randrange(2_000_000))
    cat = assets.root / unique_id("cat")
    build_catalogue(cat, n_events=1, start=start)
    written: dict[str, bytes] = {}
    for item_file in cat.rglob("*.json"):
        item = json.loads(item_file.read_text())
        for asset in (item.get("assets") or {}).values():
            href = asset.get("href", "")
            if "://" not in href and not href.startswith("/"):
                target = (item_file.parent / href).resolve()
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(os.urandom(5000))
                written[item["id"]] = target.read_bytes()
    for d in [cat, *cat.rglob("*")]:
        d.chmod(0o755 if d.is_dir() else 0o644)
    assert written
    base = f"{assets_proxy.url}/assets/{cat.name}/"
    ingest(running_stack.settings, catalogue=cat, assets_base_url=base, quiet=True)
    assert (cat / ".eomatch").is_dir()

    with httpx.Client(timeout=30) as client:
        for item_id, data in written.items():
            r = client.get(f"{running_stack.external}/search", params={"ids": item_id})
            (feature,) = r.json()["features"]
            hrefs = [a["href"] for a in feature["assets"].values() if a["href"].startswith(base)]
            assert len(hrefs) == 1, feature["assets"]
            got = client.get(hrefs[0])
            assert got.status_code == 200 and got.content == data
        state = next((cat / ".eomatch").iterdir()).relative_to(assets.root)
        status, _, body = raw(assets_proxy.url, f"/assets/{state}".encode())
        assert status == 404 and b"SQLite" not in body


def test_an_unreadable_assets_root_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="is not a folder"):
        check_assets_root(tmp_path / "nope", worker_user())
    user = worker_user()
    if user is None:
        pytest.skip("nginx workers run as this user: no other user to check for")
    closed = make_state_dir("eomatch-closed-")
    try:
        (closed / "share").mkdir()
        closed.chmod(0o700)
        with pytest.raises(StackError, match=f"worker user {user} cannot enter") as info:
            check_assets_root(closed / "share", user)
        assert "\n" not in str(info.value)
    finally:
        shutil.rmtree(closed, ignore_errors=True)


# --- two listeners -----------------------------------------------------------------


def test_the_internal_listener_serves_the_internal_api(running_stack: RunningStack) -> None:
    internal = Proxy(running_stack.settings).internal_url
    with httpx.Client(timeout=30) as client:
        r = client.get(f"{internal}/api/")
        assert r.status_code == 200
        assert all(lk["href"].startswith(f"{internal}/api") for lk in r.json()["links"] if lk["rel"] == "self")
        assert client.get(f"{internal}/api/metrics").status_code == 200
        assert client.post(f"{internal}/api/collections", json=make_collection(unique_id("nokey"))).status_code == 401


@pytest.fixture(scope="module")
def closed_public(running_stack: RunningStack) -> Iterator[SecondProxy]:
    yield from _second_proxy(running_stack, "eomatch-closed-public-", {"internal_on_public": False})


@pytest.mark.parametrize("path", ["/api/", "/api", "/api/collections", "/api/metrics", "/api/health"])
def test_public_listener_without_internal_api(closed_public: SecondProxy, path: str) -> None:
    """``stack.proxy.internal_on_public: false``: a firewall or load balancer can expose
    the public port alone, and nothing internal (file:// hrefs, metrics) is on it."""
    with httpx.Client(timeout=30) as client:
        r = client.get(closed_public.url + path)
        assert r.status_code == 404, r.text[:200]
        assert r.json()["code"] == "NotFound"
        assert "file://" not in r.text


def test_internal_listener_keeps_everything_when_public_is_closed(
    running_stack: RunningStack, closed_public: SecondProxy
) -> None:
    cid = unique_id("listener")
    key = api_key(closed_public)  # this proxy's own keys
    with httpx.Client(timeout=30) as client:
        assert client.post(closed_public.url + "/api/search", json={}).status_code == 404
        assert client.get(closed_public.url + "/external/collections").status_code == 200
        assert client.get(closed_public.url + "/health").status_code in (200, 503)
        r = client.post(f"{closed_public.internal_url}/api/collections", json=make_collection(cid), headers=bearer(key))
        assert r.status_code in (200, 201), r.text[:200]
        assert client.get(f"{closed_public.internal_url}/api/collections/{cid}").status_code == 200
        assert client.get(f"{closed_public.internal_url}/api/metrics").status_code == 200
        client.delete(f"{closed_public.internal_url}/api/collections/{cid}", headers=bearer(key))


def test_a_busy_internal_port_is_one_line(running_stack: RunningStack) -> None:
    state = make_state_dir("eomatch-busy-internal-")
    busy = socket.socket()
    try:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        settings = derive_settings(
            running_stack.settings,
            {"state_dir": str(state), "proxy": {"port": free_port(), "internal_port": busy.getsockname()[1]}},
        )
        Proxy(settings).paths.ensure()
        with pytest.raises(StackError, match="stack.proxy.internal_port") as info:
            Proxy(settings).start()
        assert "\n" not in str(info.value)
    finally:
        busy.close()
        shutil.rmtree(state, ignore_errors=True)


@pytest.mark.parametrize(
    ("proxy", "public_url", "message"),
    [
        ({"host": "0.0.0.0"}, None, "set stack.public_url"),
        ({"internal_host": "0.0.0.0"}, None, "bind the internal listener to one address"),
        ({"internal_port": 8000}, None, "different ports"),
    ],
)
def test_listener_settings_that_cannot_work_are_refused(
    tmp_path: Path, proxy: dict[str, Any], public_url: str | None, message: str
) -> None:
    stack: dict[str, Any] = {"state_dir": str(tmp_path), "proxy": {"port": 8000, **proxy}}
    settings = load_settings(overrides={"stack": stack}, environ={})
    with pytest.raises(ConfigError, match=message):
        render_proxy_conf(settings, "local")
    if "host" in proxy:  # listening everywhere is fine once links have a URL to use
        stack["public_url"] = "https://matchups.example.org"
        assert "matchups.example.org" in render_proxy_conf(load_settings(overrides={"stack": stack}, environ={}), "local")


# --- request limits ----------------------------------------------------------------


@pytest.mark.parametrize("api", ["api", "external"])
def test_overlong_requests_get_json_answers(running_stack: RunningStack, api: str) -> None:
    """Bounded at nginx, answered in JSON (not nginx's HTML pages)."""
    base = running_stack.base_url
    cases = {
        "query string": (raw(base, f"/{api}/search?filter={'a' * 40_000}".encode()), 414, "URITooLong"),
        "header": (raw(base, f"/{api}/collections".encode(), headers=b"X-Big: " + b"a" * 40_000 + b"\r\n"), 400, "BadRequest"),
        "search body": (raw(base, f"/{api}/search".encode(), b"POST", b"Content-Type: application/json\r\nContent-Length: 2000000\r\n"), 413, "PayloadTooLarge"),
        "request line": (raw(base, b"/%zz\x01 bad"), 400, "BadRequest"),
    }  # fmt: skip
    for name, ((status, headers, body), want, code) in cases.items():
        assert status == want, (name, status, body[:200])
        assert headers["content-type"] == "application/json", name
        assert json.loads(body)["code"] == code, name


def test_writes_may_send_more_than_searches(running_stack: RunningStack) -> None:
    """A 2 MB item fits the write limit of /api/ (a 2 MB search does not, above); a body
    over the write limit is refused before it is read."""
    key = api_key(running_stack)
    cid = unique_id("bigwrite")
    collection = make_collection(cid, title="x" * 2_000_000)
    with httpx.Client(timeout=60) as client:
        r = client.post(f"{running_stack.internal}/collections", json=collection, headers=bearer(key))
        assert r.status_code in (200, 201), r.text[:200]
        client.delete(f"{running_stack.internal}/collections/{cid}", headers=bearer(key))
    status, headers, body = raw(running_stack.base_url, b"/api/collections", b"POST",
                                b"Authorization: Bearer " + key.encode() + b"\r\nContent-Length: 100000000\r\n")  # fmt: skip
    assert status == 413 and json.loads(body)["code"] == "PayloadTooLarge"


def test_public_url_setting() -> None:
    """``stack.public_url``: scheme://host[:port], no path; the old key still works."""
    s = load_settings(overrides={"stack": {"public_url": "https://matchups.example.org/"}}, environ={})
    assert s.stack.public_url == "https://matchups.example.org"
    old = load_settings(environ={"EOMATCH_STACK__PROXY__PUBLIC_URL": "http://10.0.0.5:8000"})
    assert old.stack.public_url == "http://10.0.0.5:8000"
    for bad in ("matchups.example.org", "ftp://x.org", "https://x.org/eomatch", "http://x.org:99999"):
        with pytest.raises(ConfigError, match="stack.public_url") as info:
            load_settings(overrides={"stack": {"public_url": bad}}, environ={})
        assert "\n" not in str(info.value)


def test_nginx_limits_are_the_apps_server_settings(tmp_path: Path) -> None:
    """One set of numbers: nginx's limits follow server.* (local and Compose alike)."""
    server = {"max_query_bytes": 8 * 1024, "max_search_body_bytes": 256 * 1024, "max_body_bytes": 3 * 1024 * 1024}
    settings = load_settings(overrides={"stack": {"state_dir": str(tmp_path)}, "server": server}, environ={})
    for mode in ("local", "compose"):
        conf = render_proxy_conf(settings, mode)  # type: ignore[arg-type]
        assert "large_client_header_buffers 4 12k;" in conf, mode
        search = conf[conf.index("location = /external/search"):]
        assert search[: search.index("}")].count("client_max_body_size 256k;") == 1, mode
        writes = conf[conf.index("location /api/ {"):]
        assert writes[: writes.index("}")].count("client_max_body_size 3m;") == 1, mode
