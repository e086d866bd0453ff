"""eomatch.http: the one retry policy of every HTTP read (query, providers, CelesTrak)."""

from __future__ import annotations

import socket

import pytest
import requests
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from eomatch.http import mount_retries, retry_policy, session_with_retries, timed_out


def _busy_then(n_busy: int, body: str = "{}"):  # type: ignore[no-untyped-def]
    seen: list[str] = []

    def handler(request: Request) -> Response:
        seen.append(request.method)
        if len(seen) <= n_busy:
            return Response("busy", status=503)
        return Response(body, content_type="application/json")

    return handler, seen


def test_a_post_search_is_retried_on_503_then_answers(httpserver: HTTPServer) -> None:
    handler, seen = _busy_then(2)
    httpserver.expect_request("/search", method="POST").respond_with_handler(handler)
    with session_with_retries(retry_policy(3, 0.0)) as session:
        resp = session.post(httpserver.url_for("/search"), json={"limit": 1}, timeout=5)
    assert resp.status_code == 200 and seen == ["POST", "POST", "POST"]


def test_the_last_answer_comes_back_after_the_retries(httpserver: HTTPServer) -> None:
    handler, seen = _busy_then(100)
    httpserver.expect_request("/x").respond_with_handler(handler)
    with session_with_retries(retry_policy(2, 0.0)) as session:
        resp = session.get(httpserver.url_for("/x"), timeout=5)
    assert resp.status_code == 503 and len(seen) == 3  # not raised: the caller names the status


def test_client_errors_are_not_retried(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/x").respond_with_data("no", status=400)
    with session_with_retries(retry_policy(3, 0.0)) as session:
        assert session.get(httpserver.url_for("/x"), timeout=5).status_code == 400
    assert len(httpserver.log) == 1


def test_unreachable_fails_at_once_until_the_server_answered() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    policy = retry_policy(5, 10.0, connect=False)  # 10 s backoff: a retry would show in the test's time
    assert policy.connect == 0 and retry_policy(5, 10.0).connect == 5
    with session_with_retries(policy) as session, pytest.raises(requests.ConnectionError) as err:
        session.get(f"http://127.0.0.1:{port}/", timeout=5)
    assert not timed_out(err.value)
    with session_with_retries(policy) as session:
        mount_retries(session, retry_policy(1, 0.0))
        assert session.get_adapter("http://x").max_retries.connect == 1


def test_timed_out_looks_through_the_wrapping() -> None:
    try:
        try:
            raise requests.ReadTimeout("read timed out")
        except requests.ReadTimeout as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as exc:
        assert timed_out(exc)
    assert not timed_out(ValueError("x"))
