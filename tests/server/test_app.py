"""The app's answer while PostgreSQL is going away: 503 + Retry-After, never a 500."""

from __future__ import annotations

import asyncpg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from eomatch.server.app import _add_db_unavailable_handler


def _app_raising(exc: Exception) -> FastAPI:
    app = FastAPI()
    _add_db_unavailable_handler(app)

    @app.get("/collections")
    def collections() -> dict[str, str]:
        raise exc

    @app.get("/bug")
    def bug() -> dict[str, str]:
        raise ValueError("a bug, not an outage")

    return app


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(111, "Connection refused"),
        asyncpg.exceptions.CannotConnectNowError("the database system is shutting down"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        # what a query on a connection the server dropped mid-flight raises
        asyncpg.exceptions.InternalClientError("cannot switch to state 12; another operation (2) is in progress"),
        asyncpg.exceptions.InterfaceError("connection is closed"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_connection_failures_answer_503_with_retry_after(exc: Exception, caplog: pytest.LogCaptureFixture) -> None:
    client = TestClient(_app_raising(exc), raise_server_exceptions=False)
    r = client.get("/collections")
    assert r.status_code == 503
    assert r.headers["retry-after"] == "2"
    assert r.json()["code"] == "ServiceUnavailable"
    warning = [rec.getMessage() for rec in caplog.records if rec.name == "eomatch.server"]
    assert warning and type(exc).__name__ in warning[0] and "\n" not in warning[0]


def test_other_errors_stay_500() -> None:
    client = TestClient(_app_raising(RuntimeError()), raise_server_exceptions=False)
    assert client.get("/bug").status_code == 500
