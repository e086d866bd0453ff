"""The local stack's supervisor: an API, the browser or the proxy that dies comes back.

``eomatch-stack up`` starts one supervisor per stack once the database runs (pid file
``run/supervisor.pid``, log ``logs/supervisor.log``); it outlives ``up`` and ``down``
stops it first. The supervisor itself starts the supervised services, so they are
its children; it is also a *child subreaper*, so each nginx master, which forks away
from its launcher, becomes its child as well. Either way it learns how a process
ended (exit code, or the signal that killed it).

What a death means depends on the pid file, the one thing every deliberate stop
removes (``down``, ``svc.stop()``, nginx's own graceful quit):

- pid file still there: the process crashed or was killed. Its leftover children
  (nginx workers still holding the port) are stopped and the service is started
  again after a back-off (``stack.restart_backoff_s``, doubling per crash in a row up
  to ``stack.restart_backoff_max_s``; a minute of uptime resets it).
- pid file gone: it was stopped on purpose and stays stopped until ``up``.

A service someone else started (``up`` while the supervisor runs, a test) is adopted
and watched the same way, its exit status unknown. Everything is recorded in
``run/supervision.json`` (restarts, last exit and when, state), which ``/health``
and ``eomatch-stack status`` show. ``up`` asks a running supervisor for a start pass
through ``run/supervisor-request.json`` and ``SIGUSR1``, and waits for its answer
there.

Why not ``supervisord`` (PyPI ``supervisor``)? It would need its own config rendered
from the settings, a control socket, and nginx run in the foreground; it would not
know the stack's start order and health checks (``svc.start()`` waits for health)
nor the pid-file rule above. The whole loop here is one small module on code the
stack already has, with no new dependency.
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import logging
import os
import signal
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from eomatch.errors import EomatchError, StackError, first_line
from eomatch.jsonio import write_bytes_atomic
from eomatch.settings import Settings
from eomatch.stack.process import (
    descendants,
    describe_exit,
    same_process,
    start_ticks,
    terminate,
    wait_until,
)
from eomatch.stack.state import StatePaths
from eomatch.stack.supervision import NAME  # starting and asking it from outside: there

if TYPE_CHECKING:
    from eomatch.stack import Service, Stack

log = logging.getLogger("eomatch.supervisor")

POLL_INTERVAL_S = 0.25
"""How often the supervisor looks at its services (a few /proc reads each time)."""
STABLE_AFTER_S = 60.0
"""Uptime after which a service's back-off starts again from ``restart_backoff_s``."""
START_ATTEMPTS = 4
"""A start pass tries a service this often when it ends at start (the process exited,
or another process still held its socket), with back-off from ``restart_backoff_s``
(0.5 + 1 + 2 s by default), while ``stack.health_timeout_s`` lasts: a transient exit
under load does not fail ``up``, and a lasting one is still reported within seconds."""
PR_SET_CHILD_SUBREAPER = 36


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def backoff_s(crashes_in_row: int, first_s: float, max_s: float) -> float:
    """Wait before restart number ``crashes_in_row + 1`` of a crash loop."""
    return min(max_s, first_s * 2 ** min(crashes_in_row, 30))


@dataclass
class Watch:
    """What the supervisor knows of one service."""

    svc: Service
    state: str = "stopped"
    """running | stopped (on purpose) | restarting (waiting out the back-off) | failed"""
    pid: int | None = None
    ticks: int | None = None
    child: bool = False
    """Started by this supervisor (or an nginx it started): its exit status is known."""
    family: list[tuple[int, int]] = field(default_factory=list)
    running_since: float | None = None
    restarts: int = 0
    crashes_in_row: int = 0
    next_try_at: float | None = None
    last_exit: dict[str, Any] | None = None
    last_restart_at: str | None = None
    last_error: str | None = None

    def report(self) -> dict[str, Any]:
        retry = None if self.next_try_at is None else round(max(0.0, self.next_try_at - time.monotonic()), 1)
        return {
            "state": self.state,
            "pid": self.pid,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
            "last_restart_at": self.last_restart_at,
            "restart_in_s": retry if self.state == "restarting" else None,
            "last_error": self.last_error,
        }


class Supervisor:
    """The loop: start pass, then watch; restart with back-off; record everything."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.paths = stack.paths
        st = stack.settings.stack
        self.first_backoff_s = st.restart_backoff_s
        self.max_backoff_s = st.restart_backoff_max_s
        self.watches = [Watch(svc) for svc in (*stack.apis, stack.browser, stack.proxy)]
        self.reaped: dict[int, int] = {}
        """Exit statuses of children reaped here (Popen-style: negative = signal)."""
        self.request: dict[str, Any] = {}
        self.started_at = _now()

    # --- bookkeeping -----------------------------------------------------------------
    def save(self) -> None:
        data = {
            "supervisor": {"pid": os.getpid(), "started_at": self.started_at, "updated_at": _now()},
            "request": self.request,
            "services": {w.svc.name: w.report() for w in self.watches},
        }
        write_bytes_atomic(self.paths.supervisor_state, orjson.dumps(data, option=orjson.OPT_INDENT_2))

    def reap(self) -> None:
        """Collect every child that ended (APIs, nginx masters, orphaned workers)."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.reaped[pid] = os.waitstatus_to_exitcode(status)

    def _adopt(self, w: Watch, pid: int, started_here: bool) -> None:
        w.pid, w.ticks, w.state = pid, start_ticks(pid), "running"
        w.child = started_here or _parent_of(pid) == os.getpid()
        w.family = descendants(pid)
        w.running_since = time.monotonic()
        w.next_try_at = None

    def _start(self, w: Watch) -> None:
        """Start one service, or adopt it when it runs (an nginx reloads its config, as
        ``up`` always did); StackError when it does not come up healthy."""
        before = w.svc.pid()
        w.svc.start()
        pid = w.svc.pid()
        if pid is None:
            raise StackError(f"{w.svc.name}: exited right after start")
        self._adopt(w, pid, started_here=pid != before)
        w.last_error = None

    def _start_retrying(self, w: Watch) -> None:
        """:meth:`_start`, tried again with back-off when the service is not running
        after a failed attempt (up to :data:`START_ATTEMPTS`, within the start deadline);
        one that runs but is not healthy in time is not started twice."""
        deadline = time.monotonic() + self.stack.settings.stack.health_timeout_s
        for attempt in range(START_ATTEMPTS):
            try:
                self._start(w)
                return
            except Exception as exc:
                delay = backoff_s(attempt, self.first_backoff_s, self.max_backoff_s)
                if (attempt + 1 >= START_ATTEMPTS or w.svc.pid() is not None
                        or time.monotonic() + delay >= deadline):
                    raise
                w.last_error = _problem(exc)
                log.warning("%s: %s; starting it again in %.1fs", w.svc.name, w.last_error, delay)
                self.save()  # the attempt shows in /health and status meanwhile
                time.sleep(delay)
                self.reap()

    # --- passes ------------------------------------------------------------------------
    def start_pass(self, request_id: str) -> None:
        """Start everything not running, in order (what ``up`` asks for); answer ``request_id``."""
        self.request = {"id": request_id, "done": False, "errors": {}}
        self.save()
        errors: dict[str, str] = {}
        for w in self.watches:
            self.reap()
            try:
                self._start_retrying(w)
                w.crashes_in_row = 0
            except Exception as exc:  # one service's failure must not stop the others' start
                message = _problem(exc)
                errors[w.svc.name] = message
                w.state, w.last_error, w.next_try_at = "failed", message, None
                log.error("%s: %s", w.svc.name, message)
        self.request = {"id": request_id, "done": True, "errors": errors}
        self.save()

    def poll(self) -> None:
        """One look at every service; restart what crashed once its back-off is over."""
        self.reap()
        changed = False
        now = time.monotonic()
        for w in self.watches:
            if w.state == "running":
                if w.pid is not None and w.ticks is not None and w.pid not in self.reaped and same_process(w.pid, w.ticks):
                    w.family = descendants(w.pid) or w.family
                    if w.running_since is not None and now - w.running_since >= STABLE_AFTER_S:
                        w.crashes_in_row = 0
                    continue
                self._ended(w)
                changed = True
            elif w.state in ("stopped", "failed"):
                pid = w.svc.pid()
                if pid is not None:  # started by 'up', a test, an operator
                    self._adopt(w, pid, started_here=False)
                    w.last_error = None
                    changed = True
            elif w.state == "restarting" and w.next_try_at is not None and now >= w.next_try_at:
                self._restart(w)
                changed = True
        # Keep only statuses still to be read (orphaned workers' would pile up).
        watched = {w.pid for w in self.watches}
        self.reaped = {pid: code for pid, code in self.reaped.items() if pid in watched}
        if changed:
            self.save()

    def _ended(self, w: Watch) -> None:
        assert w.pid is not None
        self.reap()  # it may have become a zombie since this poll's first reap
        code = self.reaped.pop(w.pid, None)
        if code is None and w.child:
            code = self._wait_status(w.pid)
        w.last_exit = {**describe_exit(code), "at": _now(), "pid": w.pid}
        if code is None and not w.child:
            w.last_exit["note"] = "not started by the supervisor: exit status unknown"
        self._stop_leftovers(w)
        successor = w.svc.pid()
        if successor is not None and successor != w.last_exit["pid"]:
            # stopped and started again by someone else between two polls (a test, an
            # operator): not a crash, just a new process to watch
            log.info("%s (pid %s) was replaced by pid %s", w.svc.name, w.pid, successor)
            self._adopt(w, successor, started_here=False)
            return
        if w.svc.pid_file.exists():
            delay = backoff_s(w.crashes_in_row, self.first_backoff_s, self.max_backoff_s)
            w.crashes_in_row += 1
            w.state, w.next_try_at = "restarting", time.monotonic() + delay
            log.warning("%s (pid %s) died (%s); restarting in %.1fs", w.svc.name, w.pid, _exit_text(w.last_exit), delay)
        else:
            w.state, w.next_try_at = "stopped", None
            log.info("%s (pid %s) was stopped", w.svc.name, w.pid)
        w.pid = w.ticks = None
        w.running_since = None

    def _wait_status(self, pid: int, within_s: float = 2.0) -> int | None:
        """The exit status of a child already seen gone. A killed multi-threaded process
        (a uvicorn master) shows as a zombie while its other threads still exit, and
        cannot be reaped until they have: without this wait its ``last_exit`` was
        sometimes recorded as unknown instead of SIGKILL."""
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            time.sleep(0.01)
            self.reap()
            if pid in self.reaped:
                return self.reaped.pop(pid)
        return None

    def _stop_leftovers(self, w: Watch) -> None:
        """Workers of a killed master keep the port (nginx) or the database pool: stop them."""
        alive = [(pid, ticks) for pid, ticks in w.family if same_process(pid, ticks)]
        for pid, _ in alive:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        if not wait_until(lambda: self._reaped_all(alive), 5, 0.05):
            for pid, ticks in alive:
                if same_process(pid, ticks):
                    terminate(pid, timeout_s=1, sig=signal.SIGKILL)
        self.reap()
        w.family = []

    def _reaped_all(self, procs: list[tuple[int, int]]) -> bool:
        self.reap()
        return not any(same_process(pid, ticks) for pid, ticks in procs)

    def _restart(self, w: Watch) -> None:
        try:
            self._start(w)
            w.restarts += 1
            w.last_restart_at = _now()
            log.warning("%s restarted (pid %s, restart %d)", w.svc.name, w.pid, w.restarts)
        except Exception as exc:  # whatever it is, try again later rather than die
            w.last_error = _problem(exc)
            delay = backoff_s(w.crashes_in_row, self.first_backoff_s, self.max_backoff_s)
            w.crashes_in_row += 1
            w.state, w.next_try_at = "restarting", time.monotonic() + delay
            log.error("%s did not start again: %s; next try in %.1fs", w.svc.name, w.last_error, delay)


def _problem(exc: BaseException) -> str:
    """One line for the state file and ``up``: a user-facing message as is, else its type too."""
    if isinstance(exc, EomatchError):
        return first_line(exc)
    return f"{type(exc).__name__}: {first_line(exc, '')}".rstrip(": ")


def _parent_of(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("PPid:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _exit_text(last_exit: dict[str, Any] | None) -> str:
    if not last_exit:
        return "exit unknown"
    if last_exit.get("signal"):
        return f"killed by {last_exit['signal']}"
    if last_exit.get("code") is not None:
        return f"exit code {last_exit['code']}"
    return "exit status unknown"


def run(settings: Settings, request_id: str) -> int:
    """The supervisor process's body: returns on SIGTERM/SIGINT, leaving the services running."""
    from eomatch.stack import Stack

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    flags = {"stop": False, "request": False}

    def on_stop(signum: int, frame: object) -> None:
        flags["stop"] = True

    def on_request(signum: int, frame: object) -> None:
        flags["request"] = True

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGUSR1, on_request)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # Started with SIGUSR1 blocked (SupervisorProcess.start): a request sent while this
    # process was still importing was held pending and is delivered to the handler now.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})
    paths = StatePaths(settings.stack.state_dir)
    # Held for life: one supervisor per stack. A plain non-blocking flock (as transfer.py's
    # .part lock): taken once per process, so filelock would do too, but it would add its
    # polling machinery for nothing (benchmarks/locks.py measures both).
    lock = open(paths.run / "supervisor.lock", "a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise StackError(f"another supervisor already watches the stack in {paths.root}") from None
    sup = Supervisor(Stack(settings, quiet=True))
    log.info("supervisor %d watching %s", os.getpid(), ", ".join(w.svc.name for w in sup.watches))
    sup.start_pass(request_id)
    while not flags["stop"]:
        if flags["request"]:
            flags["request"] = False
            pending = _read_request(sup.paths)
            if pending and pending != sup.request.get("id"):
                sup.start_pass(pending)
        try:
            sup.poll()
        except Exception:  # a supervisor that dies supervises nothing: log, keep watching
            log.exception("supervisor: poll failed")
        time.sleep(POLL_INTERVAL_S)
    log.info("supervisor %d stopping; the services keep running", os.getpid())
    return 0


def _read_request(paths: StatePaths) -> str | None:
    try:
        return str(orjson.loads(paths.supervisor_request.read_bytes())["id"])
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError):
        return None


# --- the process (python -m eomatch.stack.supervisor); SupervisorProcess starts it ----------


def main(argv: list[str] | None = None) -> int:
    from eomatch.logs import configure_logging
    from eomatch.settings import load_settings

    parser = argparse.ArgumentParser(prog="eomatch.stack.supervisor", description="(started by 'eomatch-stack up')")
    parser.add_argument("--config", required=True)
    parser.add_argument("--request", default=uuid.uuid4().hex)
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config, environ={})
        st = settings.stack
        configure_logging(NAME, st.log_format, log_file=StatePaths(st.state_dir).logs / f"{NAME}.app.log",
                          max_bytes=st.log_max_bytes, backups=st.log_backups)
        logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per health probe
        return run(settings, args.request)
    except EomatchError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
