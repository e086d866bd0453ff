"""The supervisor seen from outside: start, ask, wait for and stop it, and read what it recorded.

``eomatch-stack up/down/status`` (:class:`eomatch.stack.Stack`) and ``/health``
(:mod:`eomatch.server.health`) use this; the supervisor process itself (its loop
over the stack's services) is :mod:`eomatch.stack.supervisor`, which needs
:class:`~eomatch.stack.Stack`, so the two halves live apart and neither imports
its user back.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

from eomatch.errors import StackError
from eomatch.jsonio import write_bytes_atomic
from eomatch.settings import Settings
from eomatch.stack.process import describe_exit, live_pid, spawn, tail, terminate
from eomatch.stack.state import StatePaths

NAME = "supervisor"


class SupervisorExited(StackError):
    """The supervisor ended before answering a start request."""

    def __init__(self, message: str, silent: bool) -> None:
        super().__init__(message)
        self.silent = silent  # nothing in its log: it never got to say why


class SupervisorProcess:
    """start / request / stop / status of a stack's supervisor, from ``up``, ``down``, ``status``."""

    name = NAME

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.paths = StatePaths(settings.stack.state_dir)
        self._proc: subprocess.Popen[bytes] | None = None  # the one this object started

    @property
    def pid_file(self) -> Path:
        return self.paths.pid_file(NAME)

    @property
    def log_file(self) -> Path:
        return self.paths.log_file(NAME)

    @property
    def settings_file(self) -> Path:
        return self.paths.conf / "settings.yaml"

    def pid(self) -> int | None:
        return live_pid(self.pid_file, f"eomatch.stack.supervisor --config {self.settings_file}")

    def start(self, request_id: str | None = None) -> str:
        """Start the supervisor (which starts the services), or ask the running one for a
        start pass; return the request id to :meth:`wait` for."""
        request_id = request_id or uuid.uuid4().hex
        write_bytes_atomic(self.paths.supervisor_request, orjson.dumps({"id": request_id}))
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGUSR1)
            return request_id
        self.pid_file.unlink(missing_ok=True)
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "HOME")}
        # Born with SIGUSR1 blocked (the mask survives exec): a request signalled before
        # the supervisor has set its handler stays pending instead of killing it (the
        # default action); the supervisor unblocks it once its handler is in place.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
        try:
            self._proc = spawn(
                [sys.executable, "-m", "eomatch.stack.supervisor", "--config", str(self.settings_file),
                 "--request", request_id],
                self.pid_file, self.log_file, env=env, cwd=Path("/"),
            )
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        return request_id

    def start_and_wait(self, timeout_s: float) -> dict[str, str]:
        """:meth:`start` then :meth:`wait`; a supervisor that this call started and that
        ended silently before answering (a signal before its handlers were set, e.g. a
        stale pid file's recycled pid stopped by someone) is started once more."""
        try:
            return self.wait(self.start(), timeout_s)
        except SupervisorExited as exc:
            if not exc.silent:
                raise
            print(f"warning: {exc}; starting it once more", file=sys.stderr, flush=True)
            return self.wait(self.start(), timeout_s)

    def wait(self, request_id: str, timeout_s: float) -> dict[str, str]:
        """Errors by service of the start pass ``request_id`` (empty: all started)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            answer = read_supervision(self.paths).get("request") or {}
            if answer.get("id") == request_id and answer.get("done"):
                return dict(answer.get("errors") or {})
            if self.pid() is None:
                lines = [ln for ln in tail(self.log_file, 20).splitlines() if ln.strip()]
                how = ""
                if self._proc is not None:
                    try:  # a process being torn down has lost its command line before it can be reaped
                        self._proc.wait(timeout=2)
                    except subprocess.TimeoutExpired:
                        pass
                if self._proc is not None and self._proc.returncode is not None:
                    ended = describe_exit(self._proc.returncode)
                    how = f" ({'killed by ' + str(ended['signal']) if ended['signal'] else 'exit code ' + str(ended['code'])})"
                raise SupervisorExited(
                    f"supervisor: exited{how}: {lines[-1] if lines else 'no output'} (log: {self.log_file})",
                    silent=not lines and self._proc is not None,
                )
            time.sleep(0.1)
        raise StackError(f"supervisor: no answer within {timeout_s:.0f}s (see {self.log_file})")

    def stop(self) -> None:
        """Stop the supervisor only: the services keep running (``down`` stops them next)."""
        pid = self.pid()
        if pid is not None:
            terminate(pid, timeout_s=10)
        self.pid_file.unlink(missing_ok=True)

    def healthy(self) -> bool:
        return self.pid() is not None

    def status(self) -> dict[str, object]:
        pid = self.pid()
        return {"service": NAME, "pid": pid, "healthy": pid is not None, "url": str(self.log_file)}


def read_supervision(paths: StatePaths) -> dict[str, Any]:
    try:
        return dict(orjson.loads(paths.supervisor_state.read_bytes()))
    except (OSError, orjson.JSONDecodeError, TypeError, ValueError):
        return {}


def supervision_report(settings: Settings) -> dict[str, Any] | None:
    """The supervision part of ``/health`` and ``status``: is the supervisor running, and
    per service its state, restarts and last exit. None where no supervisor ever ran
    (Compose, where Docker restarts containers)."""
    paths = StatePaths(settings.stack.state_dir)
    data = read_supervision(paths)
    if not data:
        return None
    pid = live_pid(paths.pid_file(NAME), f"eomatch.stack.supervisor --config {paths.conf / 'settings.yaml'}")
    services = {
        name: {k: info.get(k) for k in ("state", "restarts", "last_exit", "last_restart_at", "last_error")}
        for name, info in (data.get("services") or {}).items()
        if isinstance(info, dict)
    }
    if pid is None:
        for info in services.values():
            info["state"] = "unsupervised"
    return {"supervisor": {"running": pid is not None, "pid": pid}, "services": services}
