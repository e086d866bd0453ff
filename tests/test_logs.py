"""Service logs: asyncpg's reconnect retries are one line each, other tracebacks stay whole."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import root_logging_restored

from eomatch.logs import configure_logging


@pytest.fixture
def service_log(tmp_path: Path) -> Iterator[Path]:
    log_file = tmp_path / "api.log"
    with root_logging_restored():
        configure_logging("api-test", "text", log_file=log_file)
        yield log_file


def _log_with_exc(logger: str, exc: Exception, msg: str) -> None:
    try:
        raise exc
    except Exception:
        logging.getLogger(logger).warning(msg, exc_info=True)


def test_pool_retry_while_db_down_is_one_line(service_log: Path) -> None:
    _log_with_exc("asyncpg.pool", ConnectionRefusedError(111, "Connection refused"),
                  "Failed to restore the pool connection floor; retrying")
    lines = service_log.read_text().splitlines()
    assert len(lines) == 1, lines
    assert "Failed to restore the pool connection floor" in lines[0]
    assert "ConnectionRefusedError" in lines[0] and "Traceback" not in lines[0]


def test_other_tracebacks_are_kept(service_log: Path) -> None:
    _log_with_exc("uvicorn.error", ValueError("boom"), "Exception in ASGI application")
    text = service_log.read_text()
    assert "Traceback (most recent call last)" in text and "ValueError: boom" in text
