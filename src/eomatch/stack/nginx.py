"""One nginx master per service (proxy, browser), each with its own config and pid."""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path

import httpx

from eomatch.errors import StackError
from eomatch.settings import Settings
from eomatch.stack.process import check_port_free, live_pid, tail, terminate, wait_until
from eomatch.stack.render import worker_user
from eomatch.stack.state import StatePaths


class NginxInstance:
    """Shared start / stop / reload / health for an nginx-based service."""

    name = "nginx"
    port_setting = "stack.proxy.port"
    """The setting that chooses ``port`` (named in port-in-use errors)."""

    def __init__(self, settings: Settings, name: str) -> None:
        self.settings = settings
        self.name = name
        self.paths = StatePaths(settings.stack.state_dir)

    # subclasses
    @property
    def port(self) -> int:
        raise NotImplementedError

    def prepare(self) -> str:
        """Return the rendered nginx config (and write anything it needs)."""
        raise NotImplementedError

    def health_url(self) -> str:
        return f"http://{self.settings.stack.proxy.host}:{self.port}/"

    # common
    @property
    def conf_file(self) -> Path:
        return self.paths.conf / f"nginx-{self.name}.conf"

    @property
    def pid_file(self) -> Path:
        return self.paths.run / f"{self.name}.pid"

    @property
    def error_log(self) -> Path:
        return self.paths.logs / f"{self.name}-error.log"

    def _nginx(self) -> str:
        binary = self.settings.stack.proxy.nginx_bin
        if not binary.exists():
            raise StackError(f"{self.name}: nginx not found at {binary}; install it (as root: apt-get install nginx) or run 'make demo'")
        return str(binary)

    def pid(self) -> int | None:
        # The master's command line names its own config: "nginx" alone would match any
        # process whose arguments mention it, and a signal for us would reach a stranger.
        return live_pid(self.pid_file, f"-c {self.conf_file}")

    def _write_conf(self) -> None:
        text = self.prepare()
        tmp_root = self.paths.root / "nginx-tmp" / self.name
        tmp_root.mkdir(parents=True, exist_ok=True)
        user = worker_user()
        if user:
            pw = pwd.getpwnam(user)
            for d in (tmp_root, *tmp_root.iterdir()):
                os.chown(d, pw.pw_uid, pw.pw_gid)
        self.paths.conf.mkdir(parents=True, exist_ok=True)
        self.conf_file.write_text(text)
        self.test_config()

    def test_config(self) -> None:
        proc = subprocess.run(
            [self._nginx(), "-t", "-q", "-e", str(self.error_log), "-c", str(self.conf_file)],
            capture_output=True, text=True,
        )
        if proc.returncode != 0:
            msg = [ln for ln in proc.stderr.splitlines() if "emerg" in ln or "error" in ln]
            raise StackError(f"{self.name}: nginx config rejected: {(msg or proc.stderr.splitlines() or ['?'])[-1]}")

    def start(self) -> None:
        if self.pid() is not None:
            self.reload()
            return
        self.pid_file.unlink(missing_ok=True)  # stale
        check_port_free(self.settings.stack.proxy.host, self.port, self.name, self.port_setting)
        self._write_conf()
        proc = subprocess.run(
            [self._nginx(), "-e", str(self.error_log), "-c", str(self.conf_file)],
            capture_output=True, text=True,
        )
        if proc.returncode != 0:
            raise StackError(f"{self.name}: nginx did not start: {(proc.stderr.strip().splitlines() or [tail(self.error_log, 1)])[-1]}")
        if not wait_until(lambda: self.pid() is not None and self.healthy(), 15):
            raise StackError(f"{self.name}: nginx started but does not answer on port {self.port}: {tail(self.error_log, 1)}")

    def reload(self) -> None:
        """Re-render and reload gracefully: requests in flight finish on old workers.

        Returns once the old workers no longer accept connections, so a key added
        or revoked just before is in force for the very next request.
        """
        self._write_conf()
        master = self.pid()
        old = set(_children(master)) if master is not None else set()
        proc = subprocess.run(
            [self._nginx(), "-e", str(self.error_log), "-c", str(self.conf_file), "-s", "reload"],
            capture_output=True, text=True,
        )
        if proc.returncode != 0:
            raise StackError(f"{self.name}: reload failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
        if master is not None and old:
            wait_until(lambda: _reloaded(master, old), 10, 0.02)

    def stop(self) -> None:
        pid = self.pid()
        if pid is not None:
            import signal

            terminate(pid, timeout_s=10, sig=signal.SIGQUIT)
        self.pid_file.unlink(missing_ok=True)

    def reopen_logs(self) -> None:
        pid = self.pid()
        if pid is not None:
            import signal

            os.kill(pid, signal.SIGUSR1)

    def healthy(self) -> bool:
        try:
            r = httpx.get(self.health_url(), timeout=2)
            return r.status_code < 500
        except httpx.HTTPError:
            return False

    def status(self) -> dict[str, object]:
        pid = self.pid()
        return {"service": self.name, "pid": pid, "healthy": bool(pid) and self.healthy(), "url": self.health_url()}


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _reloaded(master: int, old: set[int]) -> bool:
    """New workers run and every old one has exited or is draining (closed its listeners)."""
    children = _children(master)
    if not any(c not in old for c in children):
        return False
    for pid in old & set(children):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue  # exited meanwhile
        if title and b"shutting down" not in title:
            return False
    return True
