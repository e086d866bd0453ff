"""``up`` / ``down`` / ``status`` of a stack of its own (own state folder and ports)."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest
from conftest import RunningStack, private_stack
from helpers import Writer, make_collection, make_item

from eomatch.cli.stack import main
from eomatch.errors import StackError
from eomatch.stack import Stack
from eomatch.stack.process import is_running, wait_until

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def life() -> Iterator[Stack]:
    with private_stack("eomatch-life-") as stack:
        yield stack


@pytest.fixture
def stranger() -> Iterator[int]:
    """A process that is not the stack's: nothing the stack does may signal it."""
    proc = subprocess.Popen(["sleep", "120"])
    yield proc.pid
    proc.kill()
    proc.wait()


def _handle(stack: Stack) -> RunningStack:
    return RunningStack(stack.settings, stack.urls.base)


def _pids(stack: Stack) -> dict[str, int | None]:
    return {svc.name: svc.pid() for svc in stack.services()}


def _dead_pid() -> int:
    pid = 4_000_000
    while is_running(pid):
        pid -= 1
    return pid


def _cli(stack: Stack, *argv: str) -> int:
    return main(["--config", str(stack.paths.conf / "settings.yaml"), *argv])


def test_up_is_idempotent(life: Stack) -> None:
    life.up()
    before = _pids(life)
    assert all(before.values()), before
    life.up()
    assert _pids(life) == before
    assert all(row["healthy"] for row in life.status())


def test_stopped_service_shows_down_and_up_restarts_it(life: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    """A service stopped on purpose stays down (the supervisor leaves it) until ``up``.
    (A killed one comes back by itself: tests/stack/test_supervision.py.)"""
    life.up()
    svc = life.service("api-external")
    old = svc.pid()
    assert old is not None
    svc.stop()
    assert wait_until(lambda: not is_running(old), 10)
    time.sleep(1.0)  # several supervisor polls: it must not bring the service back

    rows = {row["service"]: row for row in life.status()}
    assert rows["api-external"]["pid"] is None and not rows["api-external"]["healthy"]
    assert all(rows[name]["healthy"] for name in ("db", "api-internal", "browser"))
    assert rows["proxy"]["pid"] is not None  # still running (its probe goes through /external/)
    capsys.readouterr()
    assert _cli(life, "status") == 3
    out = capsys.readouterr()
    line = next(ln for ln in out.out.splitlines() if "api-external" in ln)
    assert "DOWN" in line
    assert "api-external" in out.err

    life.up()
    new = svc.pid()
    assert new is not None and new != old
    assert httpx.get(life.urls.external + "collections", timeout=10).status_code == 200


def test_down_stops_exactly_its_processes_and_data_survives(life: Stack, stranger: int) -> None:
    life.up()
    handle = _handle(life)
    with Writer(handle) as w:
        w.collection(make_collection("survivor", title="Survivor"))
        w.item(make_item("survivor", "kept", 5, 5))
    pids = {p for p in _pids(life).values() if p}
    assert len(pids) == 5
    supervisor = life.supervisor.pid()
    assert supervisor is not None

    stopped = life.down()
    assert stopped[0] == "supervisor"  # first, so that nothing is restarted behind down's back
    assert set(stopped) == {"supervisor", "db", "api-internal", "api-external", "browser", "proxy"}
    assert not any(is_running(p) for p in pids | {supervisor})
    assert is_running(stranger)
    assert all(row["pid"] is None and not row["healthy"] for row in life.status())
    assert life.down() == []  # nothing left to stop

    life.up()
    r = httpx.get(f"{handle.external}/collections/survivor/items/kept", timeout=10)
    assert r.status_code == 200 and r.json()["id"] == "kept"
    assert httpx.get(f"{handle.external}/collections/survivor", timeout=10).json()["title"] == "Survivor"


def test_stale_pid_files_are_handled(life: Stack, stranger: int) -> None:
    life.down()
    paths = life.paths
    paths.pid_file("api-internal").write_text(f"{stranger}\n")  # alive, but not ours
    (paths.run / "proxy.pid").write_text(f"{_dead_pid()}\n")  # nobody
    paths.pid_file("api-external").write_text("garbage\n")
    rows = {row["service"]: row for row in life.status()}
    assert rows["api-internal"]["pid"] is None and rows["proxy"]["pid"] is None
    assert life.down() == []
    assert is_running(stranger)

    life.up()
    assert all(row["healthy"] for row in life.status())
    assert is_running(stranger)
    assert life.service("api-internal").pid() != stranger


@pytest.mark.parametrize("service,setting", [("db", "stack.db.port"), ("proxy", "stack.proxy.port")])
def test_port_in_use_is_a_one_line_error(
    life: Stack, capsys: pytest.CaptureFixture[str], service: str, setting: str
) -> None:
    life.down()
    cfg = life.settings.stack
    port = cfg.db.port if service == "db" else cfg.proxy.port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT
        blocker.bind(("127.0.0.1", port))
        blocker.listen()
        with pytest.raises(StackError) as err:
            life.up()
        msg = str(err.value)
        assert "\n" not in msg
        assert str(port) in msg and setting in msg and msg.startswith(f"{service}:")
        # ports are checked before anything starts: nothing was left running
        assert [row["service"] for row in life.status() if row.get("pid")] == []
        capsys.readouterr()
        assert _cli(life, "up") == 2
        cli_err = capsys.readouterr().err.strip()
        assert cli_err.count("\n") == 0 and str(port) in cli_err and setting in cli_err
    life.up()
    assert all(row["healthy"] for row in life.status())


def test_keys_cli_with_only_state_dir_keeps_the_proxy_working(
    life: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    from eomatch.stack.proxy import Proxy

    life.up()
    try:
        assert main(["--state-dir", str(life.paths.root), "keys", "add", "state-dir-only"]) == 0
        key = capsys.readouterr().out.strip().splitlines()[-1]
        r = httpx.post(life.urls.internal + "collections", json=make_collection("via-state-dir"),
                       headers={"Authorization": f"Bearer {key}"}, timeout=10)
        assert r.status_code == 201
    finally:
        Proxy(life.settings).reload()  # put the proxy back as the stack runs it


def test_an_api_left_by_an_older_eomatch_is_replaced_by_up_and_stopped_by_down(life: Stack) -> None:
    """Before this version the APIs ran as root on TCP ports from the same pid files: an
    upgrade must not leave one running (it would keep taking writes without a key)."""
    import sys

    def legacy() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)",
                                 "--factory", "eomatch.server.app:internal_app", "--port", "8101"])
        life.paths.pid_file("api-internal").write_text(f"{proc.pid}\n")
        return proc

    life.down()
    old = legacy()
    try:
        assert life.service("api-internal").pid() is None  # not a socket API of this stack
        life.up()
        assert wait_until(lambda: not is_running(old.pid), 10)
        new = life.service("api-internal").pid()
        assert new is not None and new != old.pid
        life.down()
        old = legacy()
        assert "api-internal" in life.down()
        assert wait_until(lambda: not is_running(old.pid), 10)
    finally:
        old.kill()
        old.wait()
    life.up()
