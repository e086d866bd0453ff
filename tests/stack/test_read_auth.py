"""``stack.proxy.read_auth: basic`` through a real nginx in front of the real apps:
reads (APIs, POST /search, the browser) need a login of ``eomatch-stack users``,
writes with a key keep working without one, probes stay open; the Compose and
Kubernetes renders carry the same nginx config and mount the users file."""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from conftest import RunningStack
from helpers import bearer, derive_settings, make_collection, unique_id
from helpers_stack import second_proxy

from eomatch.cli.stack import main
from eomatch.settings import Settings
from eomatch.stack.keys import add_key
from eomatch.stack.proxy import Proxy
from eomatch.stack.render import COMPOSE_USERS_FILE, render_deploy_files
from eomatch.stack.state import StatePaths
from eomatch.stack.users import add_user, list_users, revoke_user

pytestmark = pytest.mark.stack


@dataclass
class AuthProxy:
    settings: Settings
    paths: StatePaths
    public: str
    internal: str
    login: tuple[str, str]
    key: str


@pytest.fixture(scope="module")
def auth_proxy(running_stack: RunningStack) -> Iterator[AuthProxy]:
    """A second proxy with read_auth basic, in a folder of its own, fronting the session's apps."""
    with second_proxy(running_stack.settings, "eomatch-readauth-", start=False, read_auth="basic") as proxy:
        settings, paths = proxy.settings, proxy.paths
        name = unique_id("reader")
        password = add_user(paths, name)
        key = add_key(paths, unique_id("writer"))
        proxy.start()
        px = settings.stack.proxy
        yield AuthProxy(settings, paths, f"http://127.0.0.1:{px.port}", f"http://{px.internal_host}:{px.internal_port}",
                        (name, password), key)  # fmt: skip


READ_PATHS = ["/external/", "/external/collections", "/api/", "/api/collections", "/"]


@pytest.mark.parametrize("path", READ_PATHS)
def test_reads_need_a_login(auth_proxy: AuthProxy, path: str) -> None:
    r = httpx.get(auth_proxy.public + path, timeout=30)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Basic")
    assert "login required" in r.json()["description"]
    wrong = httpx.get(auth_proxy.public + path, auth=(auth_proxy.login[0], "not-the-password"), timeout=30)
    assert wrong.status_code == 401
    ok = httpx.get(auth_proxy.public + path, auth=auth_proxy.login, timeout=30)
    assert ok.status_code == 200, ok.text


def test_post_search_is_a_read_and_needs_a_login(auth_proxy: AuthProxy) -> None:
    for base in ("/external/search", "/api/search"):
        assert httpx.post(auth_proxy.public + base, json={"limit": 1}, timeout=30).status_code == 401
        assert httpx.post(auth_proxy.public + base, json={"limit": 1}, auth=auth_proxy.login, timeout=30).status_code == 200


def test_probes_stay_open(auth_proxy: AuthProxy) -> None:
    assert httpx.get(auth_proxy.public + "/_proxy/ping", timeout=30).status_code == 200
    assert httpx.get(auth_proxy.public + "/health", timeout=30).status_code in (200, 503)
    assert httpx.get(auth_proxy.public + "/health", timeout=30).headers.get("WWW-Authenticate") is None


def test_writes_with_a_key_skip_the_login(auth_proxy: AuthProxy) -> None:
    doc = make_collection(unique_id("readauth"))
    r = httpx.post(auth_proxy.internal + "/api/collections", json=doc, headers=bearer(auth_proxy.key), timeout=30)
    assert r.status_code in (200, 201), r.text
    # the key reads too (one credential per request: a valid key is enough)
    got = httpx.get(f"{auth_proxy.internal}/api/collections/{doc['id']}", headers=bearer(auth_proxy.key), timeout=30)
    assert got.status_code == 200
    # a write without a key still gets the key's message, even with a login
    r = httpx.post(auth_proxy.internal + "/api/collections", json=doc, auth=auth_proxy.login, timeout=30)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert "API key" in r.json()["description"]


def test_a_revoked_user_is_refused_after_the_reload(auth_proxy: AuthProxy) -> None:
    name = unique_id("gone")
    password = add_user(auth_proxy.paths, name, "a-long-enough-password")
    assert password == "a-long-enough-password"
    proxy = Proxy(auth_proxy.settings)
    proxy.reload()
    assert httpx.get(auth_proxy.public + "/external/", auth=(name, password), timeout=30).status_code == 200
    revoke_user(auth_proxy.paths, name)
    proxy.reload()
    assert httpx.get(auth_proxy.public + "/external/", auth=(name, password), timeout=30).status_code == 401
    assert name not in list_users(auth_proxy.paths)


def test_default_asks_for_no_login(running_stack: RunningStack) -> None:
    assert running_stack.settings.stack.proxy.read_auth == "none"
    assert httpx.get(running_stack.external + "/", timeout=30).status_code == 200


def test_users_file_is_private_and_holds_salted_hashes(tmp_path: Path) -> None:
    paths = StatePaths(tmp_path / "state")
    add_user(paths, "alice", "correct horse battery")
    add_user(paths, "bob", "correct horse battery")
    text = paths.users_file.read_text()
    assert "correct horse" not in text
    hashes = dict(line.split(":", 1) for line in text.splitlines())
    assert hashes["alice"].startswith("{SSHA}") and hashes["alice"] != hashes["bob"]  # salted
    assert stat.S_IMODE(paths.users_file.stat().st_mode) == 0o640


def test_cli_users_add_list_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    state = str(tmp_path / "state")
    assert main(["--state-dir", state, "users", "add", "carol"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "user 'carol' added" and len(out[-1]) >= 24  # the generated password, once
    monkeypatch.setattr("sys.stdin", io.StringIO("from-stdin-password\n"))
    assert main(["--state-dir", state, "users", "add", "dave", "--password-stdin"]) == 0
    assert "from-stdin-password" not in capsys.readouterr().out
    assert main(["--state-dir", state, "users", "list"]) == 0
    assert capsys.readouterr().out.split() == ["carol", "dave"]
    assert main(["--state-dir", state, "users", "revoke", "carol"]) == 0
    assert main(["--state-dir", state, "users", "revoke", "carol"]) != 0
    err = capsys.readouterr().err
    assert "no user named 'carol'" in err and "Traceback" not in err
    assert main(["--state-dir", state, "users", "add", "bad name"]) != 0


def test_compose_and_k8s_carry_the_login(running_stack: RunningStack) -> None:
    settings = derive_settings(running_stack.settings, {"proxy": {"read_auth": "basic"}})
    files = render_deploy_files(settings)
    assert f"auth_basic_user_file {COMPOSE_USERS_FILE};" in files["nginx/proxy.conf"]
    compose = yaml.safe_load(files["compose.yaml"])
    assert any(v.endswith(f":{COMPOSE_USERS_FILE}:ro") for v in compose["services"]["proxy"]["volumes"])
    docs = [d for name, text in files.items() if name.startswith("k8s/") and name.endswith(".yaml") for d in yaml.safe_load_all(text) if d]
    conf = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "proxy-conf")
    assert conf["data"]["nginx.conf"] == files["nginx/proxy.conf"]  # rendered identically
    pod = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "proxy")["spec"]["template"]["spec"]
    vol = next(v for v in pod["volumes"] if v["name"] == "read-users")
    assert vol["secret"]["secretName"] == "eomatch-read-users"
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "read-users")
    assert os.path.join(mount["mountPath"], "htpasswd") == COMPOSE_USERS_FILE
    # without the setting nothing of it is rendered
    plain = render_deploy_files(running_stack.settings)
    assert "auth_basic" not in plain["nginx/proxy.conf"] and "htpasswd" not in plain["compose.yaml"]


@pytest.mark.browser
def test_browser_login_in_chromium(auth_proxy: AuthProxy, running_stack: RunningStack) -> None:
    """With the login, STAC Browser loads and its API calls succeed; without it, 401."""
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium")
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    title = "Read Auth Browser " + unique_id("t")
    cid = unique_id("readauth-browser")
    doc = make_collection(cid, title=title)
    r = httpx.post(auth_proxy.internal + "/api/collections", json=doc, headers=bearer(auth_proxy.key), timeout=30)
    assert r.status_code in (200, 201), r.text
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(chromium),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            anonymous = browser.new_context().new_page()
            refused: list[int] = []
            anonymous.on("response", lambda resp: refused.append(resp.status))
            try:  # Chromium answers a challenge it has no login for with this error
                status = anonymous.goto(auth_proxy.public + "/").status  # type: ignore[union-attr]
            except PlaywrightError as exc:
                assert "ERR_INVALID_AUTH_CREDENTIALS" in str(exc)
                status = 401
            assert status == 401 and refused[:1] == [401]
            name, password = auth_proxy.login
            context = browser.new_context(http_credentials={"username": name, "password": password})
            page = context.new_page()
            api_statuses: list[tuple[str, int]] = []
            page.on("response", lambda resp: api_statuses.append((resp.url, resp.status)))
            assert page.goto(auth_proxy.public + "/").status == 200  # type: ignore[union-attr]
            page.get_by_text(title).first.wait_for(timeout=30_000)
            calls = [(u, s) for u, s in api_statuses if u.startswith(auth_proxy.public + "/external/")]
            assert calls and all(s == 200 for _, s in calls), calls
        finally:
            browser.close()
