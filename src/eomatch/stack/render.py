"""Render every deploy file from settings: nginx (proxy, browser), browser config,
Compose. The local stack and ``deploy/`` use the same templates, so they cannot drift.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from eomatch.settings import Settings
from eomatch.stack.state import StatePaths, api_upstreams

TEMPLATES = Path(__file__).parent / "templates"
Mode = Literal["local", "compose"]

# Inside Compose every service listens on these ports of its own container.
COMPOSE_API_PORT = 8000
COMPOSE_BROWSER_PORT = 8080
COMPOSE_PROXY_PORT = 80


def _env() -> Environment:
    return Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=False,
        lstrip_blocks=False,
    )


def replica_ports(base_port: int, replicas: int) -> list[int]:
    """Local replicas of an API listen on base, base+10, base+20, ..."""
    return [base_port + 10 * i for i in range(replicas)]


@dataclass(frozen=True)
class NginxUser:
    """Worker user when the master runs as root (workers must not run as root)."""

    name: str | None


def worker_user() -> str | None:
    return "www-data" if os.geteuid() == 0 else None


def render_proxy_conf(settings: Settings, mode: Mode = "local") -> str:
    st = settings.stack
    paths = StatePaths(st.state_dir)
    tls = st.proxy.tls_cert is not None and st.proxy.tls_key is not None
    if mode == "local":
        host = st.proxy.host
        ctx = dict(
            user=worker_user(),
            pid_file=paths.run / "proxy.pid",
            error_log=paths.logs / "proxy-error.log",
            access_log=paths.logs / "proxy-access.log",
            mime_types="/etc/nginx/mime.types",
            temp_dir=paths.root / "nginx-tmp" / "proxy",
            keys_conf=paths.nginx_keys_conf,
            internal_upstreams=api_upstreams(settings, "internal"),
            external_upstreams=api_upstreams(settings, "external"),
            browser_upstream=f"{host}:{st.proxy.browser_port}",
            listen_host=f"{host}:",
            port=st.proxy.port,
            tls_port=st.proxy.tls_port,
            tls_cert=st.proxy.tls_cert,
            tls_key=st.proxy.tls_key,
        )
    else:
        ctx = dict(
            user=None,
            pid_file="/tmp/nginx.pid",
            error_log="/dev/stderr",
            access_log="/dev/stdout",
            mime_types="/etc/nginx/mime.types",
            temp_dir=None,
            keys_conf="/etc/nginx/eomatch/keys.conf",
            # Docker's resolver spreads each service name over all its replicas.
            internal_upstreams=[f"api-internal:{COMPOSE_API_PORT}"],
            external_upstreams=[f"api-external:{COMPOSE_API_PORT}"],
            browser_upstream=f"browser:{COMPOSE_BROWSER_PORT}",
            listen_host="",
            port=COMPOSE_PROXY_PORT,
            tls_port=443,
            tls_cert="/etc/nginx/eomatch/tls/cert.pem",
            tls_key="/etc/nginx/eomatch/tls/key.pem",
        )
    return _env().get_template("nginx-proxy.conf.j2").render(
        mode=mode,
        log_format=st.log_format,
        external_rate_per_s=st.proxy.external_rate_per_s,
        external_burst=st.proxy.external_burst,
        tls=tls,
        **ctx,
    )


def render_browser_conf(settings: Settings, root: Path | str, mode: Mode = "local") -> str:
    st = settings.stack
    paths = StatePaths(st.state_dir)
    if mode == "local":
        ctx = dict(
            user=worker_user(),
            pid_file=paths.run / "browser.pid",
            error_log=paths.logs / "browser-error.log",
            access_log=paths.logs / "browser-access.log",
            temp_dir=paths.root / "nginx-tmp" / "browser",
            listen_host=f"{st.proxy.host}:",
            port=st.proxy.browser_port,
        )
    else:
        ctx = dict(
            user=None,
            pid_file="/tmp/nginx.pid",
            error_log="/dev/stderr",
            access_log="/dev/stdout",
            temp_dir=None,
            listen_host="",
            port=COMPOSE_BROWSER_PORT,
        )
    return _env().get_template("nginx-browser.conf.j2").render(
        mode=mode, mime_types="/etc/nginx/mime.types", root=root, log_format=st.log_format, **ctx
    )


def render_browser_config_js(settings: Settings) -> str:
    return _env().get_template("browser-config.js.j2").render(
        external_path=settings.stack.api.external_root_path.rstrip("/") + "/",
        title=settings.stack.browser.title,
    )


# Versions the Compose file pins: the same as the local stack's.
NGINX_IMAGE_VERSION = "1.22-alpine"  # Debian 12 ships nginx 1.22
PG_MAJOR = 15


def render_compose(settings: Settings) -> str:
    from pypgstac import __version__ as pgstac_version

    from eomatch import __version__

    st = settings.stack
    return _env().get_template("compose.yaml.j2").render(
        settings=settings,
        version=__version__,
        pg_major=PG_MAJOR,
        pgstac_version=pgstac_version,
        nginx_version=NGINX_IMAGE_VERSION,
        api_port=COMPOSE_API_PORT,
        browser_port=COMPOSE_BROWSER_PORT,
        proxy_port=COMPOSE_PROXY_PORT,
        browser_version=st.browser.version,
        public_schemes=",".join(st.api.public_schemes),
        internal_prefixes=",".join(st.api.internal_path_prefixes),
    )


def render_keys_conf(keys: dict[str, str]) -> str:
    """nginx map from the exact Authorization header to the key's name."""
    lines = [
        "# API keys (name -> key) managed by 'eomatch-stack keys'. Do not edit by hand.",
        "map $http_authorization $eomatch_key_name {",
        '    default "";',
    ]
    for name, key in sorted(keys.items()):
        lines.append(f'    "Bearer {key}" "{name}";')
    lines.append("}")
    return "\n".join(lines) + "\n"


def compose_settings_yaml(settings: Settings) -> str:
    """The settings the Compose APIs load: the API section plus logging, with the
    component probe URLs of the Compose network."""
    import yaml

    st = settings.stack
    api = st.api.model_dump(mode="json", exclude={"run_as", "socket_dir"})  # local stack only
    api["health_urls"] = {
        "api-internal": f"http://api-internal:{COMPOSE_API_PORT}/_mgmt/ping",
        "api-external": f"http://api-external:{COMPOSE_API_PORT}/_mgmt/ping",
        "browser": f"http://browser:{COMPOSE_BROWSER_PORT}/config.js",
    }
    data = {
        "stack": {
            "db": {k: v for k, v in st.db.model_dump(mode="json").items() if k in ("name", "admin_user", "ingest_user", "read_user")},
            "api": api,
            "stale_after_s": st.stale_after_s,
            "log_format": st.log_format,
        }
    }
    header = "# Settings of the Compose APIs, rendered by `eomatch-stack render-deploy`.\n"
    return header + yaml.safe_dump(data, sort_keys=False)


def render_deploy_files(settings: Settings) -> dict[str, str]:
    """Every generated file of ``deploy/``, by path relative to it."""
    return {
        "compose.yaml": render_compose(settings),
        "settings.yaml": compose_settings_yaml(settings),
        "nginx/proxy.conf": render_proxy_conf(settings, mode="compose"),
        "browser/nginx.conf": render_browser_conf(settings, "/usr/share/nginx/html", mode="compose"),
        "browser/config.js": render_browser_config_js(settings),
    }


def write_deploy_files(settings: Settings, out_dir: Path) -> list[Path]:
    from eomatch.jsonio import write_bytes_atomic

    written = []
    for rel, text in render_deploy_files(settings).items():
        path = out_dir / rel
        write_bytes_atomic(path, text.encode())
        written.append(path)
    return written
