"""Render every deploy file from settings: nginx (proxy, browser), browser config,
Compose. The local stack and ``deploy/`` use the same templates, so they cannot drift.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from eomatch.errors import ConfigError
from eomatch.settings import Settings
from eomatch.stack.k8s import K8sInputs, render_k8s_files
from eomatch.stack.state import StatePaths, api_upstreams

TEMPLATES = Path(__file__).parent / "templates"
Mode = Literal["local", "compose"]

# Inside Compose every service listens on these ports of its own container.
COMPOSE_API_PORT = 8000
COMPOSE_BROWSER_PORT = 8080
COMPOSE_PROXY_PORT = 80
COMPOSE_INTERNAL_PORT = 8001
COMPOSE_ASSETS_ROOT = "/srv/eomatch/assets"
"""Where Compose mounts ``stack.proxy.assets_root`` (read-only) in the proxy."""
COMPOSE_USERS_DIR = "/etc/nginx/eomatch/users"
COMPOSE_USERS_FILE = f"{COMPOSE_USERS_DIR}/htpasswd"
"""The read logins (``read_auth: basic``): Compose mounts ``EOMATCH_USERS_FILE``
read-only here, Kubernetes the Secret ``eomatch-read-users`` (key ``htpasswd``)."""

# Request limits at nginx (docs/operations.md, "Request limits"): the apps' own
# server.* limits, so both answer the same; nginx refuses before any app is busy.
REQUEST_LINE_SLACK_BYTES = 4 * 1024
"""Room for the method and path next to ``server.max_query_bytes`` in the request line
(so the app, not nginx, answers a query string just over its limit)."""
MAX_BODY = "64k"
"""Body of any request a location does not allow more for (GETs have none)."""
ASSETS_MAX_AGE_S = 600
"""Browsers and caches reuse an ``/assets/`` file this long, then revalidate (ETag)."""
EXTERNAL_CACHE_MAX_SIZE = "256m"
"""Disk the ``/external/`` read cache may fill (``stack.proxy.external_cache_s``); nginx's
cache manager drops the least recently used copies beyond it."""
EXTERNAL_CACHE_KEYS_ZONE = "10m"
"""Shared memory for the cache's keys: about 80,000 URLs (8,000 per MB)."""
EXTERNAL_CACHE_INACTIVE = "10m"
"""A copy nobody asked for this long is removed from disk (expired ones are never served)."""
COMPOSE_CACHE_DIR = "/var/cache/nginx/eomatch"
"""The read cache in the Compose and Kubernetes proxy (a volume, an emptyDir)."""

BROWSER_BUILD_INPUTS = ("package.json", "package-lock.json", "basemaps.config.js", "fields.config.js", "offline-patch.js")
"""Files of ``stack/browser_pkg/`` copied into the unpacked STAC Browser before it is
built (locally by ``eomatch.stack.browser``, in Compose by ``Dockerfile.browser``)."""

_WILDCARD_HOSTS = ("0.0.0.0", "::", "[::]", "*", "")


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


def _bracketed(host: str) -> str:
    """An IPv6 literal as it appears in a URL or an nginx ``listen``."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


@dataclass(frozen=True)
class Listener:
    """The address a proxy listener's links use: ``proto://host:port``."""

    proto: str
    host: str
    port: int
    env: str = ""
    """Compose: the ``.env`` variable that gives the address at container start."""
    include: str = ""
    """Compose: the nginx include the proxy's entrypoint renders from ``env``."""

    @property
    def url(self) -> str:
        default = 443 if self.proto == "https" else 80
        return f"{self.proto}://{self.host}" + ("" if self.port == default else f":{self.port}")


def listener_from_url(url: str) -> Listener:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return Listener(parts.scheme, _bracketed(parts.hostname or ""), port)


def public_listeners(settings: Settings) -> tuple[Listener, Listener, Listener]:
    """(public http, public https, internal) link addresses of the local proxy.

    ``stack.public_url`` when set, else the proxy's own configured address; never the
    client's ``Host`` (a request could otherwise plant links to any host, and poison
    a cache for everyone).
    """
    st, px = settings.stack, settings.stack.proxy
    if px.internal_host.strip("[]") in _WILDCARD_HOSTS:
        raise ConfigError(
            f"stack.proxy.internal_host '{px.internal_host}' listens on every address: bind the internal "
            "listener to one address (127.0.0.1, or the VPN address)"
        )
    internal = Listener("http", _bracketed(px.internal_host), px.internal_port)
    if st.public_url:
        public = listener_from_url(st.public_url)
        return public, public, internal
    if px.host.strip("[]") in _WILDCARD_HOSTS:
        raise ConfigError(
            f"stack.proxy.host '{px.host}' listens on every address: set stack.public_url to the "
            "URL users reach the proxy at (links are built from it)"
        )
    host = _bracketed(px.host)
    return Listener("http", host, px.port), Listener("https", host, px.tls_port), internal


def _check_listeners(settings: Settings) -> None:
    px = settings.stack.proxy
    ports = {"stack.proxy.port": px.port, "stack.proxy.internal_port": px.internal_port}
    if px.tls_cert is not None and px.tls_key is not None:
        ports["stack.proxy.tls_port"] = px.tls_port
    if px.internal_host == px.host and len(set(ports.values())) < len(ports):
        raise ConfigError(f"the proxy's listeners need different ports: {', '.join(f'{k}={v}' for k, v in ports.items())}")


def render_proxy_conf(settings: Settings, mode: Mode = "local") -> str:
    st = settings.stack
    paths = StatePaths(st.state_dir)
    tls = st.proxy.tls_cert is not None and st.proxy.tls_key is not None
    if mode == "local":
        host = st.proxy.host
        _check_listeners(settings)
        public, tls_public, internal = public_listeners(settings)
        ctx = dict(
            **_nginx_files(settings, "proxy", mode),
            mime_types="/etc/nginx/mime.types",
            cache_dir=external_cache_dir(settings),
            keys_conf=paths.nginx_keys_conf,
            users_file=paths.users_file,
            internal_upstreams=api_upstreams(settings, "internal"),
            external_upstreams=api_upstreams(settings, "external"),
            browser_upstream=f"{host}:{st.proxy.browser_port}",
            public_listen=f"{_bracketed(host)}:{st.proxy.port}",
            tls_listen=f"{_bracketed(host)}:{st.proxy.tls_port}",
            internal_listen=f"{_bracketed(st.proxy.internal_host)}:{st.proxy.internal_port}",
            public=public,
            tls_public=tls_public,
            internal=internal,
            tls_cert=st.proxy.tls_cert,
            tls_key=st.proxy.tls_key,
            assets_root=_assets_root(settings),
        )
    else:
        ctx = dict(
            **_nginx_files(settings, "proxy", mode),
            mime_types="/etc/nginx/mime.types",
            cache_dir=COMPOSE_CACHE_DIR,
            keys_conf="/etc/nginx/eomatch/keys.conf",
            users_file=COMPOSE_USERS_FILE,
            # Docker's resolver spreads each service name over all its replicas.
            internal_upstreams=[f"api-internal:{COMPOSE_API_PORT}"],
            external_upstreams=[f"api-external:{COMPOSE_API_PORT}"],
            browser_upstream=f"browser:{COMPOSE_BROWSER_PORT}",
            public_listen=str(COMPOSE_PROXY_PORT),
            tls_listen="443",
            internal_listen=str(COMPOSE_INTERNAL_PORT),
            # The addresses users reach are only known on the server: .env gives them.
            public=Listener("", "", 0, "EOMATCH_PUBLIC_URL", "/etc/nginx/eomatch/public-url.conf"),
            tls_public=Listener("", "", 0, "EOMATCH_PUBLIC_URL", "/etc/nginx/eomatch/public-url.conf"),
            internal=Listener("", "", 0, "EOMATCH_INTERNAL_URL", "/etc/nginx/eomatch/internal-url.conf"),
            tls_cert="/etc/nginx/eomatch/tls/cert.pem",
            tls_key="/etc/nginx/eomatch/tls/key.pem",
            assets_root=COMPOSE_ASSETS_ROOT if st.proxy.assets_root is not None else None,
        )
    return _env().get_template("nginx-proxy.conf.j2").render(
        mode=mode,
        log_format=st.log_format,
        external_rate_per_s=st.proxy.external_rate_per_s,
        external_burst=st.proxy.external_burst,
        internal_rate_per_s=st.proxy.internal_rate_per_s,
        internal_burst=st.proxy.internal_burst,
        external_cache_s=st.proxy.external_cache_s,
        cache_keys_zone=EXTERNAL_CACHE_KEYS_ZONE,
        cache_max_size=EXTERNAL_CACHE_MAX_SIZE,
        cache_inactive=EXTERNAL_CACHE_INACTIVE,
        internal_on_public=st.proxy.internal_on_public,
        tls=tls,
        max_request_line=nginx_size(settings.server.max_query_bytes + REQUEST_LINE_SLACK_BYTES),
        max_body=MAX_BODY,
        max_search_body=nginx_size(settings.server.max_search_body_bytes),
        max_write_body=nginx_size(settings.server.max_body_bytes),
        assets_max_age_s=ASSETS_MAX_AGE_S,
        read_auth=st.proxy.read_auth,
        **ctx,
    )


def external_cache_dir(settings: Settings) -> Path:
    """The local proxy's ``/external/`` read cache: in the state folder, next to nginx's
    temporary files (nginx creates it for its worker user)."""
    return StatePaths(settings.stack.state_dir).root / "nginx-tmp" / "proxy" / "cache"


def nginx_size(size_bytes: int) -> str:
    """A byte count as nginx writes sizes: ``16k``, ``1m``, or plain bytes."""
    for unit, factor in (("m", 1024 * 1024), ("k", 1024)):
        if size_bytes % factor == 0:
            return f"{size_bytes // factor}{unit}"
    return str(size_bytes)


def _assets_root(settings: Settings) -> str | None:
    """``stack.proxy.assets_root`` as nginx's ``alias`` (absolute, no trailing slash)."""
    root = settings.stack.proxy.assets_root
    if root is None:
        return None
    text = str(root.expanduser().absolute()).rstrip("/") or "/"
    if any(c in text for c in ('"', "'", ";", "{", "}", "$", "\\", "\n")) or " " in text:
        raise ConfigError(f"stack.proxy.assets_root '{root}': use a path without spaces, quotes, ';', '$' or braces")
    return text


def _nginx_files(settings: Settings, name: str, mode: Mode) -> dict[str, Any]:
    """Who an nginx of the stack (``name``: proxy, browser) runs as and where it writes its
    pid, logs and temporary files: its own files in the state folder when local, the
    image's standard places in Compose. One rule for both, so they never drift apart."""
    if mode == "local":
        paths = StatePaths(settings.stack.state_dir)
        return dict(user=worker_user(), pid_file=paths.run / f"{name}.pid", error_log=paths.logs / f"{name}-error.log",
                    access_log=paths.logs / f"{name}-access.log", temp_dir=paths.root / "nginx-tmp" / name)
    return dict(user=None, pid_file="/tmp/nginx.pid", error_log="/dev/stderr", access_log="/dev/stdout", temp_dir=None)


def render_browser_conf(settings: Settings, root: Path | str, mode: Mode = "local") -> str:
    st = settings.stack
    if mode == "local":
        ctx = dict(**_nginx_files(settings, "browser", mode), listen_host=f"{st.proxy.host}:", port=st.proxy.browser_port)
    else:
        ctx = dict(**_nginx_files(settings, "browser", mode), listen_host="", port=COMPOSE_BROWSER_PORT)
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
    from eomatch.stack.replica import REREAD_IDLE_S, REREAD_QUERIES, compose_replica_services

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
        internal_port=COMPOSE_INTERNAL_PORT,
        assets_mount=COMPOSE_ASSETS_ROOT,
        users_file=COMPOSE_USERS_FILE,
        cache_dir=COMPOSE_CACHE_DIR,
        replica_services=compose_replica_services(settings),
        reread_idle_s=REREAD_IDLE_S,
        reread_queries=REREAD_QUERIES,
    )


KEY_RE = re.compile(r"^[A-Za-z0-9._~+/=-]{16,512}$")
"""What a key may look like: RFC 6750's token characters (no quotes, spaces or backslashes)."""
KEY_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def key_pattern(key: str) -> str:
    """The nginx map regex matching ``Authorization: Bearer <key>`` exactly.

    nginx compares map *strings* case-insensitively, so a key with its case changed
    would pass; a regex (``~``) is case-sensitive. Every non-alphanumeric character
    of the key is escaped. The scheme name ``Bearer`` is case-insensitive, as HTTP
    says of every auth scheme.
    """
    if not KEY_RE.match(key):
        raise ConfigError("an API key must be 16-512 letters, digits or '._~+/=-'")
    escaped = re.sub(r"([^A-Za-z0-9])", r"\\\1", key)
    return f"~^[Bb][Ee][Aa][Rr][Ee][Rr] {escaped}$"


def render_keys_conf(keys: dict[str, str]) -> str:
    """nginx map from the exact Authorization header to the key's name."""
    lines = [
        "# API keys (name -> key) managed by 'eomatch-stack keys'. Do not edit by hand.",
        "map $http_authorization $eomatch_key_name {",
        '    default "";',
    ]
    for name, key in sorted(keys.items()):
        if not KEY_NAME_RE.match(name):
            raise ConfigError(f"invalid key name '{name}': use letters, digits, '.', '_' or '-'")
        lines.append(f'    "{key_pattern(key)}" "{name}";')
    lines.append("}")
    return "\n".join(lines) + "\n"


def compose_settings_yaml(settings: Settings) -> str:
    """The settings the Compose APIs load: the API section plus logging, with the
    component probe URLs of the Compose network."""
    import yaml

    from eomatch.stack.replica import compose_db_settings

    st = settings.stack
    api = st.api.model_dump(mode="json", exclude={"run_as", "socket_dir"})  # local stack only
    api["health_urls"] = {
        "api-internal": f"http://api-internal:{COMPOSE_API_PORT}/_mgmt/ping",
        "api-external": f"http://api-external:{COMPOSE_API_PORT}/_mgmt/ping",
        "browser": f"http://browser:{COMPOSE_BROWSER_PORT}/config.js",
    }
    data = {
        "stack": {
            "db": {k: v for k, v in st.db.model_dump(mode="json").items() if k in ("name", "admin_user", "ingest_user", "read_user")}
            | compose_db_settings(settings),  # the standbys, when stack.db.replicas
            "api": api,
            "stale_after_s": st.stale_after_s,
            "log_format": st.log_format,
        },
        "server": settings.server.model_dump(mode="json"),
    }
    header = "# Settings of the Compose APIs, rendered by `eomatch-stack render-deploy`.\n"
    return header + yaml.safe_dump(data, sort_keys=False)


def render_deploy_files(settings: Settings) -> dict[str, str]:
    """Every generated file of ``deploy/``, by path relative to it. With the committed
    ones (Dockerfiles, entrypoint scripts) and a wheel in ``dist/``, the folder builds
    wherever it is copied: no build context outside it."""
    from importlib import resources

    from eomatch.stack.replica import render_pg_hba

    browser_pkg = resources.files("eomatch.stack").joinpath("browser_pkg")
    k8s = k8s_inputs(settings)  # the Compose-mode configs, rendered once for both
    files = {
        "compose.yaml": render_compose(settings),
        "settings.yaml": k8s.settings_yaml,
        "nginx/proxy.conf": k8s.proxy_conf,
        "browser/nginx.conf": k8s.browser_conf,
        "browser/config.js": k8s.browser_config_js,
        # STAC Browser's build inputs, the same as the local build's: pinned dependencies
        # (lock file), the offline basemap, the matchup: field labels, the offline patch
        **{f"browser/{name}": browser_pkg.joinpath(name).read_text(encoding="utf-8") for name in BROWSER_BUILD_INPUTS},
        # Kubernetes manifests (kustomize-ready) from the same settings and configs
        **render_k8s_files(settings, k8s),
    }
    if settings.stack.db.replicas:  # the primary lets the standbys replicate
        files["db/pg_hba.conf"] = render_pg_hba(settings)
    return files


def k8s_inputs(settings: Settings) -> K8sInputs:
    """What the Kubernetes manifests share with Compose: images, ports, and the
    Compose-mode configs (the k8s Services have the Compose service names)."""
    from importlib import resources

    from eomatch import __version__

    scripts = resources.files("eomatch.stack").joinpath("proxy_entrypoint")
    return K8sInputs(
        api_image=f"eomatch-api:{__version__}",
        browser_image=f"eomatch-browser:{settings.stack.browser.version}",
        proxy_image=f"nginx:{NGINX_IMAGE_VERSION}",
        db_image=f"postgis/postgis:{PG_MAJOR}-3.4",
        api_port=COMPOSE_API_PORT,
        browser_port=COMPOSE_BROWSER_PORT,
        proxy_port=COMPOSE_PROXY_PORT,
        internal_port=COMPOSE_INTERNAL_PORT,
        tls_port=443,
        assets_mount=COMPOSE_ASSETS_ROOT,
        users_dir=COMPOSE_USERS_DIR,
        cache_dir=COMPOSE_CACHE_DIR if settings.stack.proxy.external_cache_s else None,
        settings_yaml=compose_settings_yaml(settings),
        proxy_conf=render_proxy_conf(settings, mode="compose"),
        browser_conf=render_browser_conf(settings, "/usr/share/nginx/html", mode="compose"),
        browser_config_js=render_browser_config_js(settings),
        # the nginx image runs /docker-entrypoint.d/*.sh in name order, as Compose mounts them
        proxy_scripts={
            "40-eomatch-keys.sh": scripts.joinpath("render-keys.sh").read_text(encoding="utf-8"),
            "41-eomatch-urls.sh": scripts.joinpath("render-urls.sh").read_text(encoding="utf-8"),
        },
    )


def write_deploy_files(settings: Settings, out_dir: Path) -> list[Path]:
    from eomatch.jsonio import write_bytes_atomic

    written = []
    for rel, text in render_deploy_files(settings).items():
        path = out_dir / rel
        write_bytes_atomic(path, text.encode())
        written.append(path)
    return written
