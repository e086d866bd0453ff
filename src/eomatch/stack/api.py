"""The api-internal and api-external services: uvicorn running the app factory."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Literal

import httpx
import yaml

from eomatch.errors import StackError
from eomatch.settings import Settings
from eomatch.stack.process import check_port_free, live_pid, spawn, tail, terminate, wait_until
from eomatch.stack.render import replica_ports
from eomatch.stack.state import StatePaths

Audience = Literal["internal", "external"]


def write_settings_file(settings: Settings) -> Path:
    """The stack's settings as YAML: what its subprocesses load (``EOMATCH_CONFIG``)."""
    paths = StatePaths(settings.stack.state_dir)
    path = paths.conf / "settings.yaml"
    data = settings.model_dump(mode="json", exclude={"config_file"})
    from eomatch.jsonio import write_bytes_atomic

    write_bytes_atomic(path, yaml.safe_dump(data, sort_keys=False).encode())
    return path


class ApiService:
    """One uvicorn replica of one audience's app."""

    def __init__(self, settings: Settings, audience: Audience, replica: int = 0) -> None:
        self.settings = settings
        self.audience = audience
        self.replica = replica
        self.paths = StatePaths(settings.stack.state_dir)
        api = settings.stack.api
        base = api.internal_port if audience == "internal" else api.external_port
        count = api.internal_replicas if audience == "internal" else api.external_replicas
        self.port = replica_ports(base, max(count, replica + 1))[replica]
        self.name = f"api-{audience}" + ("" if replica == 0 else f"-{replica + 1}")

    @property
    def pid_file(self) -> Path:
        return self.paths.pid_file(self.name)

    @property
    def log_file(self) -> Path:
        return self.paths.log_file(self.name)

    @property
    def factory(self) -> str:
        return f"eomatch.server.app:{self.audience}_app"

    def pid(self) -> int | None:
        return live_pid(self.pid_file, self.factory)

    def url(self) -> str:
        return f"http://{self.settings.stack.proxy.host}:{self.port}"

    def start(self) -> None:
        if self.pid() is not None:
            return
        self.pid_file.unlink(missing_ok=True)
        host = self.settings.stack.proxy.host
        check_port_free(host, self.port, self.name, f"stack.api.{self.audience}_port")
        settings_file = write_settings_file(self.settings)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("EOMATCH_", "PG"))}
        env.update(
            EOMATCH_CONFIG=str(settings_file),
            EOMATCH_LOG_FILE=str(self.paths.logs / f"{self.name}.app.log"),
        )
        args = [
            sys.executable, "-m", "uvicorn", "--factory", self.factory,
            "--host", host, "--port", str(self.port),
            "--proxy-headers", "--forwarded-allow-ips", "127.0.0.1",
            "--workers", str(self.settings.stack.api.workers),
            "--no-access-log", "--log-level", "warning", "--timeout-graceful-shutdown", "5",
        ]
        spawn(args, self.pid_file, self.log_file, env=env)
        if not wait_until(lambda: self.healthy() or self.pid() is None, self.settings.stack.health_timeout_s, 0.2):
            raise StackError(f"{self.name}: did not become healthy within {self.settings.stack.health_timeout_s:.0f}s (see {self.log_file})")
        if self.pid() is None:
            lines = [ln for ln in tail(self.log_file, 30).splitlines() if ln.strip()]
            raise StackError(f"{self.name}: exited at start: {lines[-1] if lines else 'no output'} (log: {self.log_file})")

    def stop(self) -> None:
        pid = self.pid()
        if pid is not None:
            terminate(pid, timeout_s=10)
        self.pid_file.unlink(missing_ok=True)

    def healthy(self) -> bool:
        try:
            return httpx.get(self.url() + "/_mgmt/ping", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def status(self) -> dict[str, object]:
        pid = self.pid()
        return {"service": self.name, "pid": pid, "healthy": bool(pid) and self.healthy(), "url": self.url()}
