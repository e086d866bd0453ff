"""The one folder that holds the local stack's state, and its secrets."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import orjson

from eomatch.errors import StackError
from eomatch.jsonio import write_bytes_atomic


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
    def sync_dir(self) -> Path:
        return self.root / "sync"

    def pid_file(self, service: str) -> Path:
        return self.run / f"{service}.pid"

    def log_file(self, service: str) -> Path:
        return self.logs / f"{service}.log"

    def ensure(self) -> None:
        for d in (self.root, self.logs, self.run, self.conf, self.sync_dir):
            d.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)


def load_secrets(paths: StatePaths, create: bool = False) -> dict[str, str]:
    """Database passwords of the stack (mode 0600); generated on first ``up``."""
    f = paths.secrets_file
    if f.exists():
        try:
            return dict(orjson.loads(f.read_bytes()))
        except orjson.JSONDecodeError:
            raise StackError(f"secrets file {f} is corrupt; remove it and the db folder to start over") from None
    if not create:
        raise StackError(
            f"no local stack state in {paths.root}: run 'eomatch-stack up' first "
            "(or pass database settings)"
        )
    data = {
        "admin_password": secrets.token_urlsafe(24),
        "ingest_password": secrets.token_urlsafe(24),
        "read_password": secrets.token_urlsafe(24),
    }
    write_bytes_atomic(f, orjson.dumps(data, option=orjson.OPT_INDENT_2), mode=0o600)
    return data
