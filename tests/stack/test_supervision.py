"""The supervisor: a killed API, browser or proxy comes back by itself, and /health,
``status`` and ``status --json`` say so. A stack of its own, started by the
``eomatch-stack up`` command, which exits: the supervisor must outlive it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from conftest import make_state_dir, private_stack, stack_settings

from eomatch.settings import Settings, load_settings
from eomatch.stack import Stack
from eomatch.stack.process import descendants, is_running, wait_until
from eomatch.stack.render import render_compose
from eomatch.stack.supervisor import backoff_s

pytestmark = pytest.mark.stack

BIN = Path(sys.executable).parent


def _cli(config: Path, *argv: str, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "eomatch-stack"), "--config", str(config), *argv],
                          capture_output=True, text=True, timeout=timeout_s)


def _settings_in_a_file(state: Path) -> Settings:
    """Settings the ``eomatch-stack`` command reads too (``state/test-settings.yaml``), with
    a slower back-off than the default, so a test can act between two attempts."""
    settings = stack_settings(state, restart_backoff_s=1.0, restart_backoff_max_s=4.0)
    config = state / "test-settings.yaml"
    config.write_text(yaml.safe_dump(settings.model_dump(mode="json", exclude={"config_file"})))
    return load_settings(config, environ={})


@pytest.fixture(scope="module")
def supervised() -> Iterator[Stack]:
    with private_stack("eomatch-supervision-", settings=_settings_in_a_file, up=False) as stack:
        config = stack.settings.stack.state_dir / "test-settings.yaml"
        try:
            proc = _cli(config, "up", "-q")
            assert proc.returncode == 0, proc.stderr
            yield stack  # 'up' has exited: whatever runs now runs without it
        finally:
            _cli(config, "down", "-q")


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _supervision(stack: Stack) -> dict[str, Any]:
    """What the internal /api/health reports of supervision (details stay off the public /health)."""
    r = httpx.get(stack.urls.internal + "health", timeout=20)
    assert r.status_code in (200, 503) and "supervision" in r.json(), (r.status_code, r.text[:500])
    return dict(r.json()["supervision"])


def _kill(stack: Stack, name: str) -> tuple[int, float]:
    pid = stack.service(name).pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    return pid, time.monotonic()


def test_killed_external_api_is_back_within_seconds_and_health_says_so(supervised: Stack) -> None:
    svc = supervised.service("api-external")
    before = _supervision(supervised)["services"]["api-external"]["restarts"]
    old, t0 = _kill(supervised, "api-external")
    back = wait_until(lambda: _ok(supervised.urls.external + "collections") and svc.pid() not in (None, old), 20, 0.05)
    back_s = time.monotonic() - t0
    log = (supervised.paths.logs / "supervisor.app.log").read_text()[-1500:]
    assert back and back_s < 10, f"/external/ was down {back_s:.1f}s; supervisor log:\n{log}"
    # the supervisor records the restart once its health wait returns, a moment after
    # the API already answers through the proxy
    settled = wait_until(lambda: _supervision(supervised)["services"]["api-external"]["state"] == "running", 10, 0.1)
    seen = _supervision(supervised)
    assert seen["supervisor"]["running"] is True
    ext = seen["services"]["api-external"]
    assert settled and ext["state"] == "running" and ext["restarts"] == before + 1, ext
    assert ext["last_exit"]["signal"] == "SIGKILL" and ext["last_exit"]["pid"] == old
    assert ext["last_restart_at"] is not None
    # the public /health is green again
    assert httpx.get(supervised.urls.health, timeout=20).status_code == 200


def test_killed_proxy_master_is_replaced_and_its_orphaned_workers_stopped(supervised: Stack) -> None:
    proxy = supervised.proxy
    workers = descendants(proxy.pid() or 0)
    assert workers, "nginx runs workers under its master"
    old, t0 = _kill(supervised, "proxy")
    # Orphaned workers would keep the port and serve the old config forever.
    assert wait_until(lambda: proxy.pid() not in (None, old) and proxy.healthy(), 20, 0.05)
    assert time.monotonic() - t0 < 10
    assert not any(is_running(pid) for pid, _ in workers)
    assert _ok(supervised.urls.external + "collections")
    assert _supervision(supervised)["services"]["proxy"]["last_exit"]["signal"] == "SIGKILL"


def test_killed_browser_comes_back(supervised: Stack) -> None:
    old, _ = _kill(supervised, "browser")
    assert wait_until(lambda: supervised.browser.pid() not in (None, old) and _ok(supervised.urls.browser), 20, 0.05)


def test_a_service_stopped_on_purpose_stays_stopped_until_up(supervised: Stack) -> None:
    api = supervised.service("api-internal")
    api.stop()
    time.sleep(2.5)  # > the back-off: a crash would have been restarted by now
    assert api.pid() is None
    assert _state(supervised, "api-internal") == "stopped"
    config = supervised.paths.conf / "settings.yaml"
    proc = _cli(config, "up", "-q")
    assert proc.returncode == 0, proc.stderr
    assert api.pid() is not None and api.healthy()
    assert wait_until(lambda: _state(supervised, "api-internal") == "running", 5, 0.1)


def _state(stack: Stack, name: str) -> str:
    report = stack.health()["supervision"]
    return str(report["services"][name]["state"])


def test_a_restart_that_fails_is_retried_with_back_off(supervised: Stack) -> None:
    """Something else holds the API's socket when it dies: the restart fails, the error
    is recorded, the supervisor tries again later, and succeeds once the socket is free."""
    api = supervised.service("api-internal")
    before = supervised.health()["supervision"]["services"]["api-internal"]["restarts"]
    squatter = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        pid, _ = _kill(supervised, "api-internal")
        assert wait_until(lambda: not is_running(pid), 5, 0.01)
        api.socket.unlink(missing_ok=True)
        squatter.bind(str(api.socket))
        squatter.listen()

        def failing() -> bool:
            info = supervised.health()["supervision"]["services"]["api-internal"]
            return info["state"] == "restarting" and "another process answers" in (info["last_error"] or "")

        assert wait_until(failing, 15, 0.1)
        info = supervised.health()["supervision"]["services"]["api-internal"]
        assert info["restarts"] == before  # a failed attempt is no restart
    finally:
        squatter.close()
        api.socket.unlink(missing_ok=True)
    # the next attempt (at most restart_backoff_max_s later) finds the socket free
    assert wait_until(lambda: _state(supervised, "api-internal") == "running", 30, 0.1)
    assert api.pid() is not None and api.healthy()
    info = supervised.health()["supervision"]["services"]["api-internal"]
    assert info["restarts"] == before + 1 and info["last_error"] is None


def test_back_off_doubles_up_to_its_limit() -> None:
    assert [backoff_s(n, 0.5, 4.0) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert backoff_s(10_000, 0.5, 30.0) == 30.0


def test_status_shows_supervisor_sockets_users_and_restarts(supervised: Stack) -> None:
    config = supervised.paths.conf / "settings.yaml"
    _kill(supervised, "api-external")
    ext = supervised.service("api-external")
    assert wait_until(lambda: ext.pid() is not None and ext.healthy(), 20, 0.1)
    text = _cli(config, "status")
    assert text.returncode == 0, text.stdout + text.stderr
    lines = {ln.split()[0]: ln for ln in text.stdout.splitlines() if ln.startswith("  ") and ln.split()}
    assert "supervisor" in lines and " up " in lines["supervisor"]
    assert f"unix:{ext.socket}" in lines["api-external"]
    assert "restarts=" in lines["api-external"] and "killed by SIGKILL" in lines["api-external"]
    if os.geteuid() == 0:
        assert f"as {supervised.settings.stack.api.run_as}" in lines["api-internal"]
    doc = json.loads(_cli(config, "status", "--json").stdout)
    rows = {row["service"]: row for row in doc["services"]}
    assert rows["supervisor"]["pid"] == supervised.supervisor.pid()
    assert rows["api-external"]["socket"] == str(ext.socket) and rows["api-external"]["restarts"] >= 1
    assert doc["health"]["supervision"]["services"]["api-external"]["last_exit"]["signal"] == "SIGKILL"


def test_status_exits_3_when_the_supervisor_is_down(supervised: Stack) -> None:
    config = supervised.paths.conf / "settings.yaml"
    supervised.supervisor.stop()
    try:
        proc = _cli(config, "status")
        assert proc.returncode == 3
        assert "supervisor" in proc.stderr
        assert supervised.health()["supervision"]["supervisor"]["running"] is False
        assert all(row["healthy"] for row in supervised.status() if row["service"] != "supervisor")
    finally:
        assert _cli(config, "up", "-q").returncode == 0
    assert supervised.supervisor.pid() is not None


def test_compose_restarts_and_probes_every_long_running_service() -> None:
    settings = load_settings(environ={})
    services = yaml.safe_load(render_compose(settings))["services"]
    for name in ("db", "api-internal", "api-external", "browser", "proxy"):
        assert services[name].get("restart") == "unless-stopped", name
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_stop_then_start_by_someone_else_is_no_crash(supervised: Stack) -> None:
    """An operator (or a test) restarting a service by hand: the supervisor watches the
    new process and counts no restart."""
    api = supervised.service("api-external")
    before = supervised.health()["supervision"]["services"]["api-external"]["restarts"]
    api.stop()
    api.start()
    new = api.pid()
    assert new is not None
    time.sleep(1.5)  # several polls
    info = supervised.health()["supervision"]["services"]["api-external"]
    assert info["state"] == "running" and info["restarts"] == before
    assert api.pid() == new


def test_one_supervisor_per_stack(supervised: Stack) -> None:
    first = supervised.supervisor.pid()
    assert first is not None
    proc = subprocess.run(
        [sys.executable, "-m", "eomatch.stack.supervisor", "--config", str(supervised.paths.conf / "settings.yaml")],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2 and "another supervisor" in proc.stderr, proc.stderr
    assert supervised.supervisor.pid() == first


def test_a_supervisor_killed_before_it_could_answer_is_named_with_its_signal() -> None:
    """A supervisor that dies silently (a signal before its handlers are set) is reported
    with how it ended, and flagged silent so ``up`` starts it once more."""
    from eomatch.stack.supervision import SupervisorExited, SupervisorProcess

    state_dir = make_state_dir("eomatch-supkill-")
    try:
        sup = SupervisorProcess(stack_settings(state_dir))
        request = sup.start()
        pid = sup.pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(SupervisorExited) as caught:
            sup.wait(request, 20)
        assert "killed by SIGKILL" in str(caught.value) and caught.value.silent
        assert "\n" not in str(caught.value)
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)


def test_a_request_signalled_while_a_new_supervisor_starts_is_held_not_fatal(supervised: Stack) -> None:
    """SIGUSR1 (a start request) that reaches a supervisor still importing Python waits for
    its handler instead of killing it (SIGUSR1's default action): it is born with the
    signal blocked and unblocks it once the handler is set."""
    from eomatch.stack.supervision import SupervisorProcess

    sup = SupervisorProcess(supervised.settings)
    sup.stop()  # the services keep running; a new supervisor takes them over
    assert sup.pid() is None
    request = sup.start()
    pid = sup.pid()
    assert pid is not None
    os.kill(pid, signal.SIGUSR1)  # milliseconds after the spawn: no handler can be set yet
    assert sup.wait(request, 120) == {}
    assert sup.pid() == pid
