"""The access log of the apps: one line per request, whatever the client puts in it."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
from conftest import RunningStack

pytestmark = pytest.mark.stack


def test_a_newline_in_the_path_cannot_forge_a_log_line(running_stack: RunningStack) -> None:
    marker = uuid.uuid4().hex
    log = running_stack.paths.logs / "api-external.app.log"
    r = httpx.get(f"{running_stack.external}/collections/{marker}%0AINFO%20forged%0D{marker}", timeout=30)
    assert r.status_code == 404
    deadline = time.monotonic() + 5
    mine: list[str] = []
    while not mine and time.monotonic() < deadline:
        mine = [ln for ln in log.read_text(errors="replace").splitlines() if marker in ln]
        time.sleep(0.1)
    assert len(mine) == 1, mine  # the request is one record on one line
    assert f"/external/collections/{marker}\\x0aINFO forged\\x0d{marker}" in mine[0] or \
        f"/collections/{marker}\\x0aINFO forged\\x0d{marker}" in mine[0], mine[0]
    assert not any(ln.startswith("INFO forged") for ln in log.read_text(errors="replace").splitlines())
