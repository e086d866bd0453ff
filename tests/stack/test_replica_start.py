"""``up`` with a standby that does not answer yet (``stack.db.replicas``).

A hot standby runs before it can answer: it replays WAL to a consistent state first, and
on a loaded machine it may answer nothing for a while. The standby here is held for real
(its postmaster paused with SIGSTOP: connections queue unanswered, as on a machine too
busy to serve them) and resumed later. ``up`` must wait for it (not rebuild it, not start
the external API ahead of it), and the external API must then read from it; a standby
that never answers fails ``up`` with one line naming it, its port and the last error.
An API whose first start fails is tried again within ``up``'s start pass.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Iterator

import httpx
import pytest
from helpers import derive_settings
from helpers_replica import read_sessions, replica_stack

from eomatch.errors import StackError
from eomatch.stack import Stack
from eomatch.stack.api import ApiService
from eomatch.stack.process import wait_until
from eomatch.stack.replica import STREAMING_WITHIN_S, Replica
from eomatch.stack.supervision import supervision_report

HOLD_S = STREAMING_WITHIN_S + 5
"""How long the standby is held: longer than ``up`` allowed a running standby before it
took it for broken and rebuilt it from the primary."""


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with replica_stack("eomatch-replica-start-") as st:
        yield st


def _externals(stack: Stack) -> list[ApiService]:
    return [api for api in stack.apis if isinstance(api, ApiService) and api.audience == "external"]


class _Held:
    """The standby's postmaster paused (SIGSTOP) until :meth:`resume`, at the latest on exit."""

    def __init__(self, replica: Replica) -> None:
        pid = replica.server_pid()
        assert pid is not None
        self.pid = pid

    def __enter__(self) -> _Held:
        os.kill(self.pid, signal.SIGSTOP)
        return self

    def resume(self) -> None:
        try:
            os.kill(self.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass  # stopped meanwhile (what 'up' must not do): the assertions say so

    def resume_after(self, seconds: float) -> threading.Timer:
        timer = threading.Timer(seconds, self.resume)
        timer.start()
        return timer

    def __exit__(self, *exc: object) -> None:
        self.resume()


def test_up_waits_for_a_standby_that_does_not_answer_yet_then_reads_from_it(stack: Stack) -> None:
    replica = stack.db_replicas[0]
    pid = replica.server_pid()
    marker = replica.data_dir / "eomatch-test-same-standby"
    marker.write_text("a rebuild from the primary would remove this file\n")
    for api in _externals(stack):
        api.stop()  # 'up' starts them again: after the standby answers
    with _Held(replica) as held:
        assert replica.ready_error() is not None  # it does not answer now
        timer = held.resume_after(HOLD_S)
        try:
            stack.up()
        finally:
            timer.cancel()
            held.resume()
    # The same standby, waited for: not taken for broken and rebuilt.
    assert replica.server_pid() == pid and marker.exists()
    assert replica.ready_error() is None and replica.streaming()
    assert all(api.pid() is not None for api in _externals(stack))
    with httpx.Client(timeout=10) as client:
        for _ in range(5):
            assert client.get(stack.urls.external + "collections").status_code == 200
    # Started after the standby answered: its pool is on the standby, none on the primary.
    assert read_sessions(stack, replica.port) >= 1
    assert read_sessions(stack, stack.settings.stack.db.port) == 0


def test_a_standby_that_never_answers_fails_up_in_one_line_naming_it(stack: Stack) -> None:
    replica = stack.db_replicas[0]
    pid = replica.server_pid()
    impatient = Stack(derive_settings(stack.settings, {"health_timeout_s": 4.0}), quiet=True)
    with _Held(impatient.db_replicas[0]), pytest.raises(StackError) as failed:
        impatient.up()
    message = str(failed.value)
    assert "\n" not in message
    host = stack.settings.stack.db.host
    assert message.startswith("db-replica-1: ") and f"{host}:{replica.port}" in message, message
    assert "within 4s" in message and "timeout" in message, message  # the last error: no answer in time
    # Reported, not rebuilt; it answers again once resumed.
    assert replica.server_pid() == pid
    assert wait_until(lambda: replica.ready_error() is None, 30, 0.2)


def test_an_api_that_cannot_start_at_first_is_tried_again_within_up(stack: Stack) -> None:
    """api-external's first start fails (another process still answers on its socket, as
    an API of a previous run being torn down would): the start pass tries it again with
    back-off instead of failing 'up', which then succeeds with reads on the standby."""
    api = _externals(stack)[0]
    api.stop()
    squatter = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    squatter.bind(str(api.socket))
    squatter.listen()
    outcome: dict[str, object] = {}

    def up() -> None:
        try:
            stack.up()
            outcome["ok"] = True
        except Exception as exc:  # reported below
            outcome["error"] = exc

    def first_attempt_failed() -> bool:
        report = supervision_report(stack.settings) or {}
        info = (report.get("services") or {}).get(api.name) or {}
        return "another process answers" in str(info.get("last_error") or "") or "error" in outcome

    thread = threading.Thread(target=up)
    try:
        thread.start()
        assert wait_until(first_attempt_failed, 120, 0.05), "the supervisor never tried api-external"
    finally:
        squatter.close()
        api.socket.unlink(missing_ok=True)
        thread.join(180)
    assert outcome.get("ok") is True, outcome.get("error")
    assert api.pid() is not None and api.healthy()
    with httpx.Client(timeout=10) as client:
        assert client.get(stack.urls.external + "collections").status_code == 200
    assert read_sessions(stack, stack.db_replicas[0].port) >= 1
