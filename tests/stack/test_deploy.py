"""deploy/ is rendered from the same settings and templates as the local stack."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import make_state_dir
from helpers import make_collection

from eomatch import __version__
from eomatch.settings import load_settings
from eomatch.stack.api import ApiService
from eomatch.stack.render import (
    COMPOSE_INTERNAL_PORT,
    COMPOSE_PROXY_PORT,
    render_browser_config_js,
    render_deploy_files,
    render_proxy_conf,
)
from eomatch.stack.state import StatePaths

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def default_settings():  # type: ignore[no-untyped-def]
    return load_settings(environ={})


def test_committed_deploy_files_match_a_fresh_render() -> None:
    rendered = render_deploy_files(default_settings())
    stale = [rel for rel, text in rendered.items() if (DEPLOY / rel).read_text() != text]
    assert not stale, f"deploy files out of date (run 'eomatch-stack render-deploy'): {stale}"


def _server_block(conf: str) -> str:
    """The routing part both stacks must share: from the first location to the end of the server."""
    start = conf.index("location = /health")
    end = conf.index("\n    }\n", start)
    return conf[start:end]


def _http_preamble(conf: str) -> list[str]:
    """Maps and rate limits: lines that decide auth and limits."""
    return [ln.strip() for ln in conf.splitlines() if re.match(r"\s*(map |\"~|limit_req|default |GET |HEAD |OPTIONS )", ln)]


def test_local_and_compose_proxy_route_identically(tmp_path: Path) -> None:
    settings = load_settings(overrides={"stack": {"state_dir": str(tmp_path)}}, environ={})
    local = render_proxy_conf(settings, "local")
    compose = render_proxy_conf(settings, "compose")
    assert _server_block(local) == _server_block(compose)
    assert _http_preamble(local) == _http_preamble(compose)
    assert "api-internal:8000" in compose and "api-external:8000" in compose
    assert f"server unix:{StatePaths(tmp_path).api_socket_dir}/api-internal.sock;" in local


def test_local_replicas_become_upstream_servers(tmp_path: Path) -> None:
    settings = load_settings(
        overrides={"stack": {"state_dir": str(tmp_path), "api": {"external_replicas": 2, "internal_replicas": 2}}},
        environ={},
    )
    conf = render_proxy_conf(settings, "local")
    sockets = StatePaths(tmp_path).api_socket_dir  # one unix socket per replica
    block = conf[conf.index("upstream eomatch_external"):]
    block = block[: block.index("}")]
    assert f"unix:{sockets}/api-external.sock;" in block and f"unix:{sockets}/api-external-2.sock;" in block
    names = [ApiService(settings, "external", i).name for i in range(2)]
    assert names == ["api-external", "api-external-2"]


def test_compose_services_versions_and_secrets() -> None:
    settings = default_settings()
    doc = yaml.safe_load(render_deploy_files(settings)["compose.yaml"])
    services = doc["services"]
    assert {"db", "api-internal", "api-external", "browser", "proxy"} <= set(services)
    # The same app factory as the local stack's uvicorn processes.
    for audience in ("internal", "external"):
        cmd = services[f"api-{audience}"]["command"]
        assert ApiService(settings, audience).factory in cmd
        assert "--factory" in cmd
    # Same STAC Browser version as the local build.
    assert services["browser"]["build"]["args"]["STAC_BROWSER_VERSION"] == settings.stack.browser.version
    # Secrets only from .env: every password is a ${...} reference.
    for name, svc in services.items():
        for key, value in (svc.get("environment") or {}).items():
            if "PASSWORD" in key or key == "EOMATCH_API_KEYS":
                assert str(value).startswith("${"), f"{name}.{key} is not taken from .env"
        # Bounded json-file logs everywhere.
        assert svc["logging"]["driver"] == "json-file"
        assert "max-size" in svc["logging"]["options"] and "max-file" in svc["logging"]["options"]
    # The external API connects with the read-only role, the internal with its own
    # ingest-group role (which has the API timeouts; the ingest role is for bulk loads).
    assert services["api-external"]["environment"]["PGUSER"] == settings.stack.db.read_user
    assert services["api-internal"]["environment"]["PGUSER"] == settings.stack.db.api_user


@pytest.mark.skipif(
    not Path("/etc/debian_version").read_text().startswith("12") if Path("/etc/debian_version").exists() else True,
    reason="Compose pins the versions of the reference platform, Debian 12",
)
def test_compose_pins_the_versions_the_local_stack_runs() -> None:
    """PostgreSQL major, PostGIS, nginx and pgSTAC: what Compose runs is what runs here."""
    import re
    import subprocess
    from importlib.metadata import version

    settings = default_settings()
    services = yaml.safe_load(render_deploy_files(settings)["compose.yaml"])["services"]
    pg_image = services["db"]["image"]
    local_pg_major = settings.stack.db.pg_bin_dir.parent.name
    assert pg_image.startswith(f"postgis/postgis:{local_pg_major}-"), (pg_image, local_pg_major)
    nginx_v = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr
    local_nginx = re.search(r"nginx/(\d+\.\d+)", nginx_v).group(1)  # type: ignore[union-attr]
    assert services["proxy"]["image"].startswith(f"nginx:{local_nginx}"), (services["proxy"]["image"], nginx_v)
    # The API image installs this very package, so pypgstac/stac-fastapi-pgstac pins are shared.
    compose_text = render_deploy_files(settings)["compose.yaml"]
    assert f"pgSTAC {version('pypgstac')}" in compose_text


def test_browser_config_points_at_external_api_with_configured_title() -> None:
    settings = load_settings(overrides={"stack": {"browser": {"title": "Cal/Val matchups"}}}, environ={})
    js = render_browser_config_js(settings)
    assert '"/external/"' in js
    assert '"Cal/Val matchups"' in js
    assert render_deploy_files(settings)["browser/config.js"] == js


def test_env_example_names_every_secret_compose_needs() -> None:
    compose = (DEPLOY / "compose.yaml").read_text()
    env_example = (DEPLOY / ".env.example").read_text()
    needed = set(re.findall(r"\$\{(EOMATCH_[A-Z_]+)", compose))
    missing = [v for v in sorted(needed) if f"{v}=" not in env_example]
    assert not missing


# --- deploy/ on its own: database from .env, no build context outside it ----------


def test_compose_takes_the_database_from_the_environment() -> None:
    """Moving to a managed PostgreSQL is a .env change (POSTGRES_HOST/POSTGRES_PORT),
    not an edit of a generated file; the default is the db service."""
    services = yaml.safe_load(render_deploy_files(default_settings())["compose.yaml"])["services"]
    for name in ("migrate", "api-internal", "api-external"):
        env = services[name]["environment"]
        assert env["PGHOST"] == "${POSTGRES_HOST:-db}", name
        assert str(env["PGPORT"]) == "${POSTGRES_PORT:-5432}", name
    assert services["migrate"]["depends_on"]["db"]["required"] is False  # up -d --scale db=0
    env_example = (DEPLOY / ".env.example").read_text()
    assert "POSTGRES_HOST=" in env_example and "POSTGRES_PORT=" in env_example


def _dockerfile_sources(dockerfile: Path) -> list[str]:
    sources = []
    for line in dockerfile.read_text().splitlines():
        words = line.split()
        if words[:1] in (["COPY"], ["ADD"]) and not any(w.startswith("--from") for w in words):
            sources += [w for w in words[1:-1] if not w.startswith("--")]
    return sources


def test_deploy_builds_from_its_own_folder(tmp_path: Path) -> None:
    """Every build context is deploy/ itself, and everything the Dockerfiles copy and the
    services mount is in it once rendered, except the wheel the README says how to build."""
    copy = tmp_path / "elsewhere"
    shutil.copytree(DEPLOY, copy, ignore=shutil.ignore_patterns(".env", "tls", "dist"))
    services = yaml.safe_load((copy / "compose.yaml").read_text())["services"]
    builds = {name: svc["build"] for name, svc in services.items() if "build" in svc}
    assert builds and all(b["context"] == "." for b in builds.values()), builds
    wheel = "dist/eomatch-${EOMATCH_VERSION}-py3-none-any.whl"
    for build in builds.values():
        for source in _dockerfile_sources(copy / build["dockerfile"]):
            if source == wheel:
                assert build["args"]["EOMATCH_VERSION"] == __version__
                continue
            assert (copy / source).exists(), (build["dockerfile"], source)
    for name, svc in services.items():
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (copy / source).exists() or source == "./tls", (name, volume)
    readme = (DEPLOY / "README.md").read_text()
    assert "pip wheel --no-deps -w deploy/dist ." in readme
    for script in ("nginx/render-keys.sh", "nginx/render-urls.sh"):
        assert os.access(copy / script, os.X_OK), f"{script} must be executable (docker-entrypoint.d runs only those)"


def test_gitignore_keeps_deploy_secrets_out() -> None:
    repo = DEPLOY.parent
    paths = ["deploy/.env", "deploy/tls/key.pem", "deploy/dist/eomatch-0.1.0-py3-none-any.whl"]
    proc = subprocess.run(["git", "check-ignore", *paths], cwd=repo, capture_output=True, text=True)
    assert proc.stdout.split() == paths, proc.stdout
    assert subprocess.run(["git", "check-ignore", "deploy/.env.example"], cwd=repo).returncode == 1


def test_internal_listener_is_published_on_loopback_by_default() -> None:
    services = yaml.safe_load(render_deploy_files(default_settings())["compose.yaml"])["services"]
    ports = services["proxy"]["ports"]
    internal = [p for p in ports if p.endswith(f":{COMPOSE_INTERNAL_PORT}")]
    assert internal == ["${EOMATCH_INTERNAL_BIND:-127.0.0.1}:${EOMATCH_INTERNAL_PORT:-8100}:8001"], ports
    env = services["proxy"]["environment"]
    assert env["EOMATCH_PUBLIC_URL"].startswith("${EOMATCH_PUBLIC_URL:?")  # no silent localhost links


# --- the Compose proxy, run by real nginx with its entrypoint scripts --------------


def _upstream_servers(conf: str, name: str) -> list[str]:
    block = conf[conf.index(f"upstream {name} {{"):]
    block = block[: block.index("}")]
    return re.findall(r"^\s*server (\S+);", block, re.M)


@pytest.fixture
def compose_proxy(running_stack: Any, tmp_path: Path) -> Iterator[dict[str, str]]:
    """deploy/'s proxy as its container runs it: the rendered compose nginx.conf, keys and
    URLs from .env-style variables through the committed entrypoint scripts; container
    paths and service names replaced by this machine's (the session stack's apps)."""
    from eomatch.stack.process import free_port

    root = make_state_dir("eomatch-compose-proxy-")
    etc = root / "etc"
    ports = {"public": free_port(), "internal": free_port()}
    key = secrets.token_urlsafe(32)
    env = {
        **os.environ,
        "EOMATCH_KEYS_CONF": str(etc / "keys.conf"),
        "EOMATCH_URLS_DIR": str(etc),
        "EOMATCH_API_KEYS": f"pipeline:{key}",
        "EOMATCH_PUBLIC_URL": "https://matchups.example.org",
        "EOMATCH_INTERNAL_URL": f"http://127.0.0.1:{ports['internal']}",
    }
    for script in ("render-keys.sh", "render-urls.sh"):
        subprocess.run(["sh", str(DEPLOY / "nginx" / script)], env=env, check=True, capture_output=True)
    conf = render_deploy_files(running_stack.settings)["nginx/proxy.conf"]
    local = render_proxy_conf(running_stack.settings, "local")
    for name, service in (("eomatch_internal", "api-internal"), ("eomatch_external", "api-external"),
                          ("eomatch_browser", "browser")):  # fmt: skip
        compose_servers = _upstream_servers(conf, name)
        assert len(compose_servers) == 1 and compose_servers[0].startswith(service + ":")
        conf = conf.replace(f"server {compose_servers[0]};", "".join(f"server {s}; " for s in _upstream_servers(local, name)))
    conf = (
        conf.replace("/etc/nginx/eomatch/", f"{etc}/")
        .replace("pid /tmp/nginx.pid;", f"pid {root}/nginx.pid;")
        .replace("error_log /dev/stderr", f"error_log {root}/error.log")
        .replace("access_log /dev/stdout", f"access_log {root}/access.log")
        .replace(f"listen {COMPOSE_PROXY_PORT};", f"listen 127.0.0.1:{ports['public']};")
        .replace(f"listen {COMPOSE_INTERNAL_PORT};", f"listen 127.0.0.1:{ports['internal']};")
    )
    if os.geteuid() == 0:  # the local APIs' socket folder admits the workers' group only
        conf = "user www-data;\n" + conf
    (root / "nginx.conf").write_text(conf)
    nginx = str(running_stack.settings.stack.proxy.nginx_bin)
    subprocess.run([nginx, "-e", str(root / "error.log"), "-c", str(root / "nginx.conf")], check=True, capture_output=True)
    try:
        yield {"public": f"http://127.0.0.1:{ports['public']}", "internal": env["EOMATCH_INTERNAL_URL"], "key": key}
    finally:
        subprocess.run([nginx, "-e", str(root / "error.log"), "-c", str(root / "nginx.conf"), "-s", "quit"], capture_output=True)
        time.sleep(0.3)
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.stack
def test_compose_proxy_links_keys_and_listeners(running_stack: Any, compose_proxy: dict[str, str]) -> None:
    import httpx

    public, internal, key = compose_proxy["public"], compose_proxy["internal"], compose_proxy["key"]
    with httpx.Client(timeout=30) as client:
        r = client.get(f"{public}/external/", headers={"Host": "evil.example", "Forwarded": "host=evil.example"})
        assert r.status_code == 200
        self_link = next(lk["href"] for lk in r.json()["links"] if lk["rel"] == "self")
        assert self_link.startswith("https://matchups.example.org/external"), self_link
        r = client.get(f"{internal}/api/", headers={"Host": "evil.example"})
        assert next(lk["href"] for lk in r.json()["links"] if lk["rel"] == "self").startswith(f"{internal}/api")
        cid = f"compose-{secrets.token_hex(5)}"
        refused = client.post(f"{internal}/api/collections", json=make_collection(cid),
                              headers={"Authorization": f"Bearer {key.swapcase()}"})  # fmt: skip
        assert refused.status_code == 401
        created = client.post(f"{internal}/api/collections", json=make_collection(cid), headers={"Authorization": f"Bearer {key}"})
        assert created.status_code in (200, 201), created.text[:200]
        client.delete(f"{internal}/api/collections/{cid}", headers={"Authorization": f"Bearer {key}"})
