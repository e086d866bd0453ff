"""The one folder that holds the local stack's state, and its secrets."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from eomatch.errors import StackError
from eomatch.jsonio import write_bytes_atomic

if TYPE_CHECKING:
    from eomatch.settings import Settings


def new_secret(nbytes: int) -> str:
    """A random URL-safe secret (keys, passwords) that never starts with ``-``.

    ``token_urlsafe`` starts with ``-`` once in 64 draws, and such a value given after a
    flag (``eomatch-add-asset --api-key KEY``) is taken by argparse for another option;
    so it is drawn again.
    """
    while (token := secrets.token_urlsafe(nbytes)).startswith("-"):
        pass
    return token


@dataclass(frozen=True)
class StatePaths:
    """Every path the stack writes, derived from ``stack.state_dir``."""

    root: Path

    @property
    def db_dir(self) -> Path:
        return self.root / "db"

    @property
    def pgdata(self) -> Path:
        return self.root / "db" / "data"

    @property
    def pg_socket_dir(self) -> Path:
        return self.root / "db" / "run"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def conf(self) -> Path:
        return self.root / "conf"

    @property
    def secrets_file(self) -> Path:
        return self.root / "secrets.json"

    @property
    def keys_file(self) -> Path:
        return self.root / "conf" / "api-keys.json"

    @property
    def nginx_keys_conf(self) -> Path:
        return self.root / "conf" / "nginx-keys.conf"

    @property
    def users_file(self) -> Path:
        """htpasswd-style read logins (``eomatch-stack users``), for ``read_auth: basic``."""
        return self.root / "conf" / "read-users.htpasswd"

    @property
    def sync_dir(self) -> Path:
        return self.root / "sync"

    @property
    def api_socket_dir(self) -> Path:
        """Default folder of the APIs' unix sockets (``stack.api.socket_dir``)."""
        return self.run / "api"

    @property
    def supervisor_state(self) -> Path:
        """What the supervisor saw: restarts, last exits (read by /health and status)."""
        return self.run / "supervision.json"

    @property
    def supervisor_request(self) -> Path:
        """A start pass asked of a running supervisor by ``up`` (an id to answer)."""
        return self.run / "supervisor-request.json"

    def pid_file(self, service: str) -> Path:
        return self.run / f"{service}.pid"

    def log_file(self, service: str) -> Path:
        return self.logs / f"{service}.log"

    def ensure(self) -> None:
        for d in (self.root, self.logs, self.run, self.conf, self.sync_dir):
            d.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)


ROLES = ("admin", "api", "ingest", "read", "replication")
"""The stack's database roles; each has a ``<role>_password`` in the secrets file."""


def api_service_name(audience: str, replica: int = 0) -> str:
    """``api-internal``, ``api-external``, ``api-external-2``, ...: pid, log and socket names."""
    return f"api-{audience}" + ("" if replica == 0 else f"-{replica + 1}")


def api_socket_dir(settings: Settings) -> Path:
    """Where the APIs' sockets are: only the API user and the proxy's workers may enter."""
    return settings.stack.api.socket_dir or StatePaths(settings.stack.state_dir).api_socket_dir


def api_socket(settings: Settings, service: str) -> Path:
    return api_socket_dir(settings) / f"{service}.sock"


def api_upstreams(settings: Settings, audience: str) -> list[str]:
    """nginx ``server`` addresses of an audience's replicas: one unix socket each."""
    api = settings.stack.api
    replicas = api.internal_replicas if audience == "internal" else api.external_replicas
    return [f"unix:{api_socket(settings, api_service_name(audience, i))}" for i in range(replicas)]


def load_secrets(paths: StatePaths, create: bool = False) -> dict[str, str]:
    """Database passwords of the stack (mode 0600); generated on first ``up``.

    ``create`` also adds the password of a role newer than the state folder
    (``api`` came after ``admin``/``ingest``/``read``).
    """
    f = paths.secrets_file
    data: dict[str, str] = {}
    if f.exists():
        try:
            data = dict(orjson.loads(f.read_bytes()))
        except orjson.JSONDecodeError:
            raise StackError(f"secrets file {f} is corrupt; remove it and the db folder to start over") from None
    elif not create:
        raise StackError(
            f"no local stack state in {paths.root}: run 'eomatch-stack up' first "
            "(or pass database settings)"
        )
    missing = [role for role in ROLES if f"{role}_password" not in data]
    if missing and create:
        data.update({f"{role}_password": new_secret(24) for role in missing})
        write_bytes_atomic(f, orjson.dumps(data, option=orjson.OPT_INDENT_2), mode=0o600)
    return data


PLACEHOLDER_MARKERS = ("change-me", "changeme", "change_me")
"""What the example files put where a secret goes (``deploy/.env.example``)."""


def placeholder_problem(name: str, value: str) -> str | None:
    """Why ``value`` cannot serve as the secret ``name`` (empty, or a known placeholder)."""
    if not value.strip():
        return f"{name} is empty"
    if any(marker in value.lower() for marker in PLACEHOLDER_MARKERS):
        return (
            f"{name} is still the placeholder from deploy/.env.example; generate one with "
            "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    return None
