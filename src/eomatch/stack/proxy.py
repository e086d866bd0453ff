"""The proxy service: nginx in front of both APIs and the browser."""

from __future__ import annotations

from eomatch.settings import Settings
from eomatch.stack.keys import ensure_keys_conf
from eomatch.stack.nginx import NginxInstance
from eomatch.stack.render import render_proxy_conf


class Proxy(NginxInstance):
    name = "proxy"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, "proxy")

    @property
    def port(self) -> int:
        return self.settings.stack.proxy.port

    def health_url(self) -> str:
        return f"http://{self.settings.stack.proxy.host}:{self.port}/_proxy/ping"

    def prepare(self) -> str:
        ensure_keys_conf(self.paths)
        return render_proxy_conf(self.settings, mode="local")
