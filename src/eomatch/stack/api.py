"""The api-internal and api-external services: uvicorn running the app factory.

Least privilege, so that the proxy's key check cannot be walked around:

- Each replica listens on its own unix socket, ``run/api/<service>.sock``, in a
  folder only the API user and the proxy's worker group may enter (0750, group
  ``www-data`` when the stack runs as root; 0700 otherwise). No TCP port: another
  local user cannot reach an API except through nginx.
- Started by root, the APIs run as ``stack.api.run_as`` (a system user created on
  first ``up``), through :mod:`eomatch.stack.sandbox`, which also hides the home
  folders from them. Started by anyone else, they run as that user.
- Each gets only its own role's password (``PG*`` variables), never the secrets file.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx
import yaml

from eomatch.errors import StackError
from eomatch.settings import Settings
from eomatch.stack.db import stack_credentials
from eomatch.stack.process import cmdline, live_pid, spawn, tail, terminate, wait_until
from eomatch.stack.state import StatePaths, api_service_name, api_socket, api_socket_dir

Audience = Literal["internal", "external"]

HOME_MASKS = ("/root", "/home")
"""Folders the sandbox hides from the APIs (their Python and code are bound back)."""

SOCKET_PATH_MAX = 107
"""Longest unix socket path Linux accepts (``sun_path`` is 108 bytes with the NUL)."""

_ENV_KEPT = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ")
"""The caller's variables an API inherits; nothing else (credentials, tokens) leaks in."""


@dataclass(frozen=True)
class RunAs:
    """The unprivileged user the APIs run as (when the stack is started by root)."""

    name: str
    uid: int
    gid: int
    home: str


def api_user(settings: Settings, create: bool = False) -> RunAs | None:
    """``stack.api.run_as`` when we are root (``useradd --system`` it when ``create``);
    None when we are not root: then the APIs run as the caller."""
    if os.geteuid() != 0:
        return None
    name = settings.stack.api.run_as
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        if not create:
            raise StackError(f"api: system user '{name}' does not exist yet; 'eomatch-stack up' creates it") from None
        pw = _create_system_user(name)
    if pw.pw_uid == 0:
        raise StackError(f"api: stack.api.run_as '{name}' is root; name an unprivileged user (default: eomatch)")
    return RunAs(name, pw.pw_uid, pw.pw_gid, pw.pw_dir)


def _create_system_user(name: str) -> pwd.struct_passwd:
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    proc = subprocess.run(
        [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", name],
        capture_output=True, text=True,
    )
    try:
        return pwd.getpwnam(name)  # also when a concurrent 'up' created it first
    except KeyError:
        msg = (proc.stderr or proc.stdout).strip().splitlines()
        raise StackError(
            f"api: cannot create system user '{name}' for the APIs: {msg[-1] if msg else proc.returncode} "
            "(create it, or set stack.api.run_as to an existing unprivileged user)"
        ) from None


def _group_id(user: str) -> int:
    return pwd.getpwnam(user).pw_gid


def write_settings_file(settings: Settings, user: RunAs | None = None) -> Path:
    """The stack's settings as YAML: what its subprocesses load (``EOMATCH_CONFIG``).

    Mode 0640: it may hold passwords given in a config; the APIs' group reads it.
    """
    from eomatch.jsonio import write_bytes_atomic

    paths = StatePaths(settings.stack.state_dir)
    path = paths.conf / "settings.yaml"
    data = settings.model_dump(mode="json", exclude={"config_file"})
    write_bytes_atomic(path, yaml.safe_dump(data, sort_keys=False).encode(), mode=0o640)
    if user is not None:
        os.chown(path, 0, user.gid)
    return path


def prepare_api_folders(settings: Settings, user: RunAs | None) -> None:
    """Socket folder (API user + proxy workers only) and log files the API user can write."""
    from eomatch.stack.render import worker_user

    paths = StatePaths(settings.stack.state_dir)
    sockets = api_socket_dir(settings)
    sockets.mkdir(parents=True, exist_ok=True)
    longest = sockets / (api_service_name("external", max(settings.stack.api.external_replicas, 1) - 1) + ".sock")
    if len(os.fsencode(longest)) > SOCKET_PATH_MAX:
        raise StackError(
            f"api: socket path {longest} is longer than {SOCKET_PATH_MAX} bytes, the limit of unix sockets; "
            "choose a shorter state folder (stack.state_dir) or socket folder (stack.api.socket_dir)"
        )
    if user is None:
        os.chmod(sockets, 0o700)  # nginx workers run as us too
        return
    nginx = worker_user()
    os.chown(sockets, user.uid, _group_id(nginx) if nginx else user.gid)
    os.chmod(sockets, 0o750)
    # The APIs rotate their own logs (rename in logs/): group-writable, sticky so the
    # API user can rename or remove only its own files.
    os.chown(paths.logs, 0, user.gid)
    os.chmod(paths.logs, 0o1775)


def _unreachable(path: Path, user: RunAs) -> Path | None:
    """The first folder above ``path`` (outside the hidden homes) ``user`` cannot enter."""
    for parent in [*reversed(path.parents), path]:
        if any(str(parent) == m or str(parent).startswith(m + "/") for m in HOME_MASKS):
            return None  # bound back by the sandbox
        try:
            st = parent.stat()
        except OSError:
            return None
        mode = st.st_mode
        if st.st_uid == user.uid and mode & 0o100 or st.st_gid == user.gid and mode & 0o010 or mode & 0o001:
            continue
        return parent
    return None


def code_paths() -> list[Path]:
    """What an API process reads besides the state folder: its Python and its packages."""
    import eomatch

    found = {
        Path(p).resolve()
        for p in (sys.base_prefix, sys.prefix, sys.base_exec_prefix, sys.exec_prefix, *sys.path)
        if p and Path(p).is_dir()
    }
    found.add(Path(os.path.realpath(sys.executable)).parent)
    found.add(Path(eomatch.__file__).resolve().parents[1])
    return sorted(found)


class ApiService:
    """One uvicorn replica of one audience's app, on its own unix socket."""

    def __init__(self, settings: Settings, audience: Audience, replica: int = 0) -> None:
        self.settings = settings
        self.audience = audience
        self.replica = replica
        self.paths = StatePaths(settings.stack.state_dir)
        self.name = api_service_name(audience, replica)
        self.proc: subprocess.Popen[bytes] | None = None
        """The process when this object started it (the supervisor reads its exit)."""

    @property
    def pid_file(self) -> Path:
        return self.paths.pid_file(self.name)

    @property
    def log_file(self) -> Path:
        return self.paths.log_file(self.name)

    @property
    def app_log_file(self) -> Path:
        return self.paths.logs / f"{self.name}.app.log"

    @property
    def socket(self) -> Path:
        return api_socket(self.settings, self.name)

    @property
    def factory(self) -> str:
        return f"eomatch.server.app:{self.audience}_app"

    def pid(self) -> int | None:
        # The socket path names this replica of this stack (the factory alone does not).
        return live_pid(self.pid_file, str(self.socket))

    def legacy_pid(self) -> int | None:
        """An API an older eomatch started from this pid file: on a TCP port, as root.
        ``up`` replaces it and ``down`` stops it (it would keep bypassing the proxy)."""
        pid = live_pid(self.pid_file, self.factory)
        return pid if pid is not None and str(self.socket) not in cmdline(pid) else None

    def stop_legacy(self) -> bool:
        pid = self.legacy_pid()
        if pid is None:
            return False
        self.pid_file.unlink(missing_ok=True)
        terminate(pid, timeout_s=10)
        return True

    def url(self) -> str:
        """Where status shows it listens."""
        return f"unix:{self.socket}"

    def client(self, timeout_s: float = 10.0) -> httpx.Client:
        """An HTTP client on this replica's socket (probes, tests): ``client.get("/collections")``."""
        return httpx.Client(transport=httpx.HTTPTransport(uds=str(self.socket)), base_url="http://localhost",
                            timeout=timeout_s)

    def _environment(self, user: RunAs | None) -> dict[str, str]:
        creds = stack_credentials(self.settings, "api" if self.audience == "internal" else "read")
        env = {k: v for k, v in os.environ.items() if k in _ENV_KEPT}
        env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
        env.update(creds.pg_env())
        if self.audience == "external" and self.settings.stack.db.replicas:
            # Read from a standby, the primary when none answers (libpq's variables,
            # which asyncpg also reads): the read-only role either way.
            from eomatch.stack.replica import REREAD_IDLE_S, REREAD_QUERIES, external_read_hosts

            env["PGHOST"], env["PGPORT"] = external_read_hosts(self.settings)
            env["PGTARGETSESSIONATTRS"] = "prefer-standby"
            # stac-fastapi-pgstac's pool settings: connections renew (and so choose
            # again, back on a standby that returned) after this idle time or this
            # many queries, instead of keeping the primary for 5 minutes / 50000 queries.
            env["DB_MAX_INACTIVE_CONN_LIFETIME"] = str(REREAD_IDLE_S)
            env["DB_MAX_QUERIES"] = str(REREAD_QUERIES)
            env["DB_MIN_CONN_SIZE"] = "0"  # asyncpg never closes a pool's floor connections
        env.update(
            EOMATCH_CONFIG=str(self.paths.conf / "settings.yaml"),
            EOMATCH_LOG_FILE=str(self.app_log_file),
        )
        if user is not None:
            env.update(HOME=user.home, USER=user.name, LOGNAME=user.name)
        return env

    def _command(self, user: RunAs | None) -> list[str]:
        uvicorn = [
            sys.executable, "-m", "uvicorn", "--factory", self.factory,
            "--uds", str(self.socket),
            # Only nginx can connect (the socket folder): trust its X-Forwarded-* headers.
            "--proxy-headers", "--forwarded-allow-ips", "*",
            "--workers", str(self.settings.stack.api.workers),
            "--no-access-log", "--log-level", "warning", "--timeout-graceful-shutdown", "5",
        ]
        if user is None:
            return uvicorn
        sandbox = [sys.executable, "-I", str(Path(__file__).with_name("sandbox.py")), "--user", user.name]
        for mask in HOME_MASKS:
            sandbox += ["--mask", mask]
        for path in code_paths():
            sandbox += ["--ro", str(path)]
        sandbox += ["--rw", str(self.paths.root.resolve()), "--rw", str(self.socket.parent.resolve())]
        return [*sandbox, "--", *uvicorn]

    def _claim_socket(self) -> None:
        """Remove a stale socket file; refuse one another process still answers on."""
        if not self.socket.exists():
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(1)
            try:
                probe.connect(str(self.socket))
            except OSError:
                self.socket.unlink(missing_ok=True)
                return
        raise StackError(f"{self.name}: another process answers on {self.socket} (not started by this stack); stop it first")

    def start(self) -> None:
        if self.pid() is not None:
            return
        self.pid_file.unlink(missing_ok=True)
        user = api_user(self.settings, create=True)
        self.paths.ensure()
        prepare_api_folders(self.settings, user)
        write_settings_file(self.settings, user)
        if user is not None:
            for path in [*code_paths(), self.paths.root]:
                blocked = _unreachable(path, user)
                if blocked is not None:
                    raise StackError(
                        f"{self.name}: the API user '{user.name}' cannot enter {blocked} (needed to reach {path}); "
                        f"give it o+x (chmod o+x {blocked}) or move the stack there"
                    )
            for log in self.paths.logs.glob(f"{self.name}.app.log*"):
                os.chown(log, user.uid, user.gid)  # made by an older eomatch that ran the APIs as root
        self._claim_socket()
        self.proc = spawn(self._command(user), self.pid_file, self.log_file, env=self._environment(user), cwd=Path("/"))
        if not wait_until(lambda: self.healthy() or self.pid() is None, self.settings.stack.health_timeout_s, 0.2):
            raise StackError(f"{self.name}: did not become healthy within {self.settings.stack.health_timeout_s:.0f}s (see {self.log_file})")
        if self.pid() is None:
            lines = [ln for ln in tail(self.log_file, 30).splitlines() if ln.strip()]
            raise StackError(f"{self.name}: exited at start: {lines[-1] if lines else 'no output'} (log: {self.log_file})")

    def stop(self) -> None:
        """Stop for good: the pid file goes first, which tells the supervisor this
        exit is wanted (it restarts only processes that die with their pid file)."""
        pid = self.pid()
        self.pid_file.unlink(missing_ok=True)
        if pid is not None:
            terminate(pid, timeout_s=10)
        self.socket.unlink(missing_ok=True)

    def healthy(self) -> bool:
        try:
            with self.client(timeout_s=2) as client:
                return client.get("/_mgmt/ping").status_code == 200
        except httpx.HTTPError:
            return False

    def status(self) -> dict[str, object]:
        pid = self.pid()
        return {"service": self.name, "pid": pid, "healthy": bool(pid) and self.healthy(), "url": self.url(),
                "socket": str(self.socket), "user": process_user(pid) if pid else None}


def process_user(pid: int) -> str | None:
    """Name of the real user ``pid`` runs as (from /proc)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Uid:"):
                uid = int(line.split()[1])
                try:
                    return pwd.getpwuid(uid).pw_name
                except KeyError:
                    return str(uid)
    except OSError:
        return None
    return None
