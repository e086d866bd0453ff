"""The local stack: db, api-internal, api-external, browser, proxy on loopback.

One small class per service with ``start`` / ``stop`` / ``status``; ``Stack``
starts them in dependency order and stops them in reverse. All state lives in
``stack.state_dir``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from eomatch.errors import StackError
from eomatch.settings import Settings
from eomatch.stack.api import ApiService
from eomatch.stack.browser import Browser
from eomatch.stack.db import Database, stack_credentials
from eomatch.stack.nginx import NginxInstance
from eomatch.stack.process import check_port_free
from eomatch.stack.proxy import Proxy
from eomatch.stack.state import StatePaths

SERVICES = ("db", "api-internal", "api-external", "browser", "proxy")


class Service(Protocol):
    name: str

    def pid(self) -> int | None: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def status(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Urls:
    base: str

    @property
    def browser(self) -> str:
        return self.base + "/"

    @property
    def internal(self) -> str:
        return self.base + "/api/"

    @property
    def external(self) -> str:
        return self.base + "/external/"

    @property
    def health(self) -> str:
        return self.base + "/health"


class Stack:
    """The five services of the design's Compose diagram, run as local processes."""

    def __init__(self, settings: Settings, quiet: bool = False) -> None:
        self.settings = settings
        self.paths = StatePaths(settings.stack.state_dir)
        self.quiet = quiet
        api = settings.stack.api
        self.db = Database(settings)
        self.apis = [ApiService(settings, "internal", i) for i in range(api.internal_replicas)] + [
            ApiService(settings, "external", i) for i in range(api.external_replicas)
        ]
        self.browser = Browser(settings, quiet=quiet)
        self.proxy = Proxy(settings)

    def services(self) -> Iterator[Service]:
        yield self.db
        yield from self.apis
        yield self.browser
        yield self.proxy

    def service(self, name: str) -> Service:
        for svc in self.services():
            if svc.name == name:
                return svc
        raise StackError(f"unknown service '{name}'; services: {', '.join(s.name for s in self.services())}")

    @property
    def urls(self) -> Urls:
        p = self.settings.stack.proxy
        return Urls((p.public_url or f"http://{p.host}:{p.port}").rstrip("/"))

    def _say(self, text: str) -> None:
        if not self.quiet:
            print(text, flush=True)

    def up(self) -> Urls:
        """Start what is not running; idempotent; returns when every service is healthy."""
        self.paths.ensure()
        # Every port first: a busy one must stop 'up' before anything was started.
        for svc in self.services():
            if not _running(svc):
                check = _port_check(self.settings, svc)
                if check is not None:
                    check_port_free(*check)
        for svc in self.services():
            self._say(f"  {svc.name:<14} starting..." if not _running(svc) else f"  {svc.name:<14} already running")
            svc.start()
        bad = [s["service"] for s in self.status() if not s["healthy"]]
        if bad:
            raise StackError(f"not healthy after start: {', '.join(bad)} (see 'eomatch-stack logs {bad[0]}')")
        return self.urls

    def down(self) -> list[str]:
        """Stop exactly the processes this stack started (reverse order)."""
        stopped = []
        for svc in reversed(list(self.services())):
            if _running(svc):
                svc.stop()
                stopped.append(svc.name)
        return stopped

    def status(self) -> list[dict[str, Any]]:
        return [svc.status() for svc in self.services()]

    def health(self) -> dict[str, Any]:
        """The same report as ``GET /health`` (computed here, works when nginx is down)."""
        from eomatch.server.health import collect_health

        try:
            dsn = stack_credentials(self.settings, "read").dsn
        except StackError:
            dsn = "postgresql://invalid"
        return collect_health(self.settings, dsn)


def _running(svc: Service) -> bool:
    return svc.pid() is not None


def _port_check(settings: Settings, svc: Service) -> tuple[str, int, str, str] | None:
    """(host, port, service, setting) a stopped service will listen on."""
    if isinstance(svc, Database):
        return svc.cfg.host, svc.cfg.port, svc.name, "stack.db.port"
    if isinstance(svc, ApiService):
        return settings.stack.proxy.host, svc.port, svc.name, f"stack.api.{svc.audience}_port"
    if isinstance(svc, NginxInstance):
        return settings.stack.proxy.host, svc.port, svc.name, svc.port_setting
    return None


__all__ = ["SERVICES", "Stack", "Urls"]
