"""Two external API replicas behind nginx (what ``--scale api-external=N`` gives Compose).

A separate stack: one replica gets killed.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator

import httpx
import pytest
from conftest import private_stack

from eomatch.stack import Stack
from eomatch.stack.process import wait_until


def _metric(text: str, name: str, **labels: str) -> float:
    """Sum of a Prometheus sample over series whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        m = re.match(rf"^{re.escape(name)}\{{(.*)\}} (\S+)$", line)
        if m and all(f'{k}="{v}"' in m.group(1) for k, v in labels.items()):
            total += float(m.group(2))
    return total


@pytest.fixture(scope="module")
def replica_stack() -> Iterator[Stack]:
    with private_stack("eomatch-replicas-", api={"external_replicas": 2}) as stack:
        yield stack


def _served(stack: Stack) -> dict[str, float]:
    """/collections requests each external replica has answered (its own metrics)."""
    out = {}
    for api in stack.apis:
        if api.audience == "external":
            with api.client() as client:
                text = client.get("/metrics").text
            out[api.name] = _metric(text, "http_requests_total", handler="/collections", method="GET")
    return out


def test_both_replicas_serve_and_one_may_die(replica_stack: Stack) -> None:
    ext = [a for a in replica_stack.apis if a.audience == "external"]
    assert [a.name for a in ext] == ["api-external", "api-external-2"]
    assert [a.socket.name for a in ext] == ["api-external.sock", "api-external-2.sock"]  # one socket each
    assert all(a.socket.is_socket() for a in ext)
    base = replica_stack.urls.external
    before = _served(replica_stack)
    n = 40
    with httpx.Client(timeout=10) as client:
        codes = [client.get(base + "collections").status_code for _ in range(n)]
    assert codes == [200] * n
    after = _served(replica_stack)
    delta = {name: after[name] - before[name] for name in after}
    assert sum(delta.values()) == n
    assert all(d >= n // 4 for d in delta.values()), delta  # round robin spreads the load

    # Kill one replica outright: nginx retries the other (proxy_next_upstream error)
    # while the supervisor brings the killed one back on its own socket.
    pid = ext[1].pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    with httpx.Client(timeout=10) as client:
        codes = [client.get(base + "collections").status_code for _ in range(20)]
    assert codes == [200] * 20
    assert wait_until(lambda: ext[1].pid() not in (None, pid) and ext[1].healthy(), 30, 0.1)
    # the supervisor records the restart once its health wait returns, a moment after
    # the replica already answers
    assert wait_until(lambda: replica_stack.health()["supervision"]["services"]["api-external-2"]["restarts"] == 1,
                      10, 0.1)
    seen = replica_stack.health()["supervision"]["services"]
    assert seen["api-external-2"]["restarts"] == 1 and seen["api-external-2"]["last_exit"]["signal"] == "SIGKILL"
    assert seen["api-external"]["restarts"] == 0

    # A replica stopped on purpose stays down: /health says which one.
    ext[1].stop()
    health = httpx.get(replica_stack.urls.health, timeout=20)
    assert health.status_code == 503
    assert health.json()["components"]["api-external-2"]["ok"] is False
    assert health.json()["components"]["api-external"]["ok"] is True

    ext[1].start()
    assert httpx.get(replica_stack.urls.health, timeout=20).status_code == 200
