"""deploy/ is rendered from the same settings and templates as the local stack."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from eomatch.settings import load_settings
from eomatch.stack.api import ApiService
from eomatch.stack.render import (
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
