"""The local stack: db, api-internal, api-external, browser, proxy on loopback.

One small class per service with ``start`` / ``stop`` / ``status``. ``Stack.up``
starts the database and its standbys (each waited for until it answers a query), then
the supervisor (:mod:`eomatch.stack.supervisor`), which starts the APIs, the browser
and the proxy in that order and restarts any of them that dies. ``down`` stops the supervisor first, then the services in reverse. All
state lives in ``stack.state_dir``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from eomatch.errors import StackError
from eomatch.settings import Settings
from eomatch.stack.api import ApiService, api_user, write_settings_file
from eomatch.stack.browser import Browser, build_browser
from eomatch.stack.db import Database, stack_credentials
from eomatch.stack.nginx import NginxInstance
from eomatch.stack.process import check_port_free, wait_until
from eomatch.stack.proxy import Proxy
from eomatch.stack.replica import Replica, leftover_replicas
from eomatch.stack.state import StatePaths, load_secrets
from eomatch.stack.supervision import SupervisorProcess, supervision_report

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
        self.db_replicas = [Replica(settings, i) for i in range(1, settings.stack.db.replicas + 1)]
        self.apis = [ApiService(settings, "internal", i) for i in range(api.internal_replicas)] + [
            ApiService(settings, "external", i) for i in range(api.external_replicas)
        ]
        self.browser = Browser(settings, quiet=quiet)
        self.proxy = Proxy(settings)
        self.supervisor = SupervisorProcess(settings)

    def services(self) -> Iterator[Service]:
        yield self.db
        yield from self.db_replicas
        yield from self.apis
        yield self.browser
        yield self.proxy

    def supervised(self) -> list[Service]:
        """What the supervisor starts and restarts, in start order."""
        return [*self.apis, self.browser, self.proxy]

    def service(self, name: str) -> Service:
        for svc in (*self.services(), self.supervisor):
            if svc.name == name:
                return svc
        raise StackError(f"unknown service '{name}'; services: {', '.join(s.name for s in self.services())}")

    @property
    def urls(self) -> Urls:
        p = self.settings.stack.proxy
        return Urls((self.settings.stack.public_url or f"http://{p.host}:{p.port}").rstrip("/"))

    def _say(self, text: str) -> None:
        if not self.quiet:
            print(text, flush=True)

    def up(self) -> Urls:
        """Start what is not running; idempotent; returns when every service is healthy."""
        from filelock import FileLock

        self.paths.ensure()
        with FileLock(str(self.paths.run / ".up.lock")):  # two 'up' at once: one after the other
            return self._up()

    def _up(self) -> Urls:
        # Every port first: a busy one must stop 'up' before anything was started.
        for svc in self.services():
            if not _running(svc):
                check = _port_check(self.settings, svc)
                if check is not None:
                    check_port_free(*check)
        self._say(f"  {self.db.name:<14} starting..." if not _running(self.db) else f"  {self.db.name:<14} already running")
        self.db.start()
        if "api_password" not in load_secrets(self.paths):
            self.db.setup_database()  # a state folder from before the API role: add it now
        for gone in leftover_replicas(self.settings):  # stack.db.replicas was lowered
            self._say(f"  {gone.name:<14} removing (stack.db.replicas: {self.settings.stack.db.replicas})")
            gone.remove()
        for replica in self.db_replicas:
            self._say(f"  {replica.name:<14} starting..." if not _running(replica) else f"  {replica.name:<14} already running")
            replica.start()
        # What the supervisor needs, done here where the user sees it: the settings it
        # loads, the API user, and the one-time browser build (minutes, with progress).
        write_settings_file(self.settings, api_user(self.settings, create=True))
        build_browser(self.settings, quiet=self.quiet)
        for api in self.apis:
            if api.stop_legacy():
                self._say(f"  {api.name:<14} stopped the one an older eomatch started on a TCP port")
        for svc in self.supervised():
            self._say(f"  {svc.name:<14} starting..." if not _running(svc) else f"  {svc.name:<14} already running")
        per_service_s = self.settings.stack.health_timeout_s + 30
        errors = self.supervisor.start_and_wait(per_service_s * (len(self.supervised()) + 1))
        if errors:
            name, error = next(iter(errors.items()))
            raise StackError(error if error.startswith(f"{name}:") else f"{name}: {error}")
        # Each service answered its own health check when started; one that died since
        # is being restarted by the supervisor (with back-off), and one probe can be slow
        # on a loaded machine: judge the stack over the start deadline, not one look.
        bad: list[str] = []

        def all_healthy() -> bool:
            bad[:] = [s["service"] for s in self.status() if not s["healthy"]]
            return not bad

        if not wait_until(all_healthy, self.settings.stack.health_timeout_s, 0.5):
            raise StackError(f"not healthy after start: {', '.join(bad)} (see 'eomatch-stack logs {bad[0]}')")
        return self.urls

    def down(self) -> list[str]:
        """Stop the supervisor (nothing is restarted any more), then exactly the
        processes this stack started, in reverse order."""
        stopped = []
        if _running(self.supervisor):
            self.supervisor.stop()
            stopped.append(self.supervisor.name)
        for svc in reversed(list(self.services())):
            if _running(svc):
                svc.stop()
                stopped.append(svc.name)
            elif isinstance(svc, ApiService) and svc.stop_legacy():
                stopped.append(svc.name)
        return stopped

    def status(self) -> list[dict[str, Any]]:
        """One row per service (restarts as the supervisor recorded them), then the supervisor's."""
        report = supervision_report(self.settings) or {}
        seen = report.get("services") or {}
        rows = []
        for svc in self.services():
            row = svc.status()
            if svc.name in seen:
                row["restarts"] = seen[svc.name].get("restarts", 0)
                row["last_exit"] = seen[svc.name].get("last_exit")
            rows.append(row)
        rows.append(self.supervisor.status())
        return rows

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
    if isinstance(svc, Replica):
        return svc.cfg.host, svc.port, svc.name, "stack.db.port (standbys use port + N)"
    if isinstance(svc, Database):
        return svc.cfg.host, svc.cfg.port, svc.name, "stack.db.port"
    if isinstance(svc, NginxInstance):
        return settings.stack.proxy.host, svc.port, svc.name, svc.port_setting
    return None


__all__ = ["SERVICES", "Stack", "Urls"]
