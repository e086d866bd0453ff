"""Where ``/health`` probes the local stack's components, unix sockets included.

The local APIs answer only on unix sockets; a probe URL names one as
``http+unix://<percent-encoded socket path>/<http path>`` (the convention of
requests-unixsocket), so the component table stays a plain ``name -> URL`` map that
Compose's TCP URLs (``stack.api.health_urls``) also fit.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, unquote

import httpx

from eomatch.settings import Settings
from eomatch.stack.state import api_service_name, api_socket

UNIX_SCHEME = "http+unix://"


def unix_url(socket: Path, path: str) -> str:
    return UNIX_SCHEME + quote(str(socket), safe="") + path


def local_component_urls(settings: Settings) -> dict[str, str]:
    """Every API replica's socket and the browser's port, as probe URLs."""
    st = settings.stack
    urls = {}
    for audience, replicas in (("internal", st.api.internal_replicas), ("external", st.api.external_replicas)):
        for i in range(replicas):
            name = api_service_name(audience, i)
            urls[name] = unix_url(api_socket(settings, name), "/_mgmt/ping")
    urls["browser"] = f"http://{st.proxy.host}:{st.proxy.browser_port}/config.js"
    return urls


def probe(client: httpx.Client, url: str) -> httpx.Response:
    """GET ``url`` with ``client``, or through the socket an ``http+unix://`` URL names."""
    if not url.startswith(UNIX_SCHEME):
        return client.get(url)
    socket, _, path = url[len(UNIX_SCHEME):].partition("/")
    transport = httpx.HTTPTransport(uds=unquote(socket))
    with httpx.Client(transport=transport, timeout=client.timeout) as unix_client:
        return unix_client.get("http://localhost/" + path)
