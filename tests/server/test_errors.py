"""Bad input is a one-line 400 on both APIs, through nginx; a server fault stays a 500.

Each row was a 500 before (issue 10, item 6): PostgreSQL refused a value (a NUL
character, a one-argument operator), pgSTAC raised on a forged paging token or a
malformed spatial operand, FastAPI could not serialise its own error about an infinite
bbox value, or stac-pydantic choked on a body that is no JSON object.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from conftest import RunningStack
from helpers import unique_id

from eomatch.server.errors import one_line, printable

ONE_ARG = json.dumps({"op": "=", "args": [{"property": "id"}]})

# (method, path and query, raw body or None, what the description must say)
BAD_INPUT: list[tuple[str, str, bytes | None, str]] = [
    ("GET", "/search?bbox=nan,0,1,1", None, "bbox"),
    ("GET", "/search?bbox=0,0,inf,1", None, "bbox"),
    ("GET", "/search?ids=a%00b", None, "NUL"),
    ("GET", "/search?collections=a%00b", None, "NUL"),
    ("GET", "/search?filter=id%3D%27a%00b%27", None, "NUL"),
    ("GET", "/collections/c/items?filter=id%3D%27a%00b%27", None, "NUL"),
    ("GET", "/search?token=next:garbage", None, "paging token"),
    ("GET", "/search?token=prev:abc%3A%3Axyz", None, "paging token"),
    ("GET", "/search?filter=S_INTERSECTS(geometry,%20POINT(1))", None, "Spatial operand"),
    ("GET", "/search?filter-lang=cql2-json&filter=" + httpx.QueryParams({"f": ONE_ARG})["f"], None, "filter"),
    ("GET", "/search?intersects=%7Bnot-json", None, "intersects"),
    ("GET", "/search?query=%7Bnot-json", None, "query"),
    ("POST", "/search", b"null", "JSON object"),
    ("POST", "/search", b"[1,2]", "JSON object"),
    ("POST", "/search", b'{"filter": ' + ONE_ARG.encode() + b"}", "invalid request"),
    ("POST", "/search", b'{"filter": "S_INTERSECTS(geometry, POINT(1))", "filter-lang": "cql2-text"}', "filter"),
    ("POST", "/search", b'{"ids": ["a\\u0000b"]}', "NUL"),
    ("POST", "/search", b'{"collections": ["a\\u0000b"]}', "NUL"),
    ("POST", "/search", b'{"bbox": [0, 0, 1e400, 1]}', "JSON"),
    ("POST", "/search", b'{"bbox": [NaN, 0, 1, 1]}', "JSON"),
    ("POST", "/search", b'{"token": "next:garbage"}', "paging token"),
    ("POST", "/search", b'{"limit": "many"}', "limit"),
]


@pytest.mark.stack
@pytest.mark.parametrize("api", ["external", "internal"])
@pytest.mark.parametrize(("method", "path", "body", "says"), BAD_INPUT, ids=[f"{m} {p[:50]} {b!r:.40}" for m, p, b, _ in BAD_INPUT])
def test_bad_input_is_a_one_line_400(running_stack: RunningStack, api: str, method: str, path: str,
                                      body: bytes | None, says: str) -> None:
    base = running_stack.external if api == "external" else running_stack.internal
    headers = {"content-type": "application/json"} if body is not None else {}
    r = httpx.request(method, base + path, content=body, headers=headers, timeout=30)
    assert r.status_code == 400, r.text[:300]
    assert r.headers["content-type"].startswith("application/json")
    doc = r.json()
    assert set(doc) == {"code", "description"} and doc["code"] == "BadRequest", doc
    assert "\n" not in doc["description"] and len(doc["description"]) <= 300, doc
    assert says.lower() in doc["description"].lower(), doc
    assert "errors.pydantic.dev" not in doc["description"]  # no pointer to another host


@pytest.fixture()
def role_without_grants(running_stack: RunningStack) -> Iterator[Any]:
    """A login role that may connect but use nothing of pgSTAC: a misconfigured server."""
    from eomatch.stack.db import DbCredentials

    name, password = unique_id("nogrants").replace("-", "_"), unique_id("pw")
    admin = running_stack.credentials("admin")
    with psycopg.connect(admin.dsn, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
    try:
        yield DbCredentials(host=admin.host, port=admin.port, dbname=admin.dbname, user=name, password=password)
    finally:
        with psycopg.connect(admin.dsn, autocommit=True) as conn:
            conn.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{name}'")
            conn.execute(f"DROP ROLE IF EXISTS {name}")


@pytest.mark.stack
def test_a_server_fault_stays_a_500(running_stack: RunningStack, role_without_grants: Any) -> None:
    """A missing privilege is the server's fault, not the request's: the 400 mapping is
    by error class (data exceptions, pgSTAC's raises), not "anything from PostgreSQL"."""
    from fastapi.testclient import TestClient

    from eomatch.server.app import create_app

    app = create_app(running_stack.settings, "external", role_without_grants)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/search", params={"ids": "a"}).status_code == 500
        assert client.get("/search", params={"ids": "a\x00b"}).status_code == 400  # refused before the database


def test_one_line_drops_pydantic_tails_and_newlines() -> None:
    detail = (
        "Invalid parameters provided 1 validation error for SearchPostRequest\nbbox\n  Value error, "
        "Bounding box must be within (-180, -90, 180, 90) [type=value_error, input_value=(0.0, 0.0, inf, 1.0), "
        "input_type=tuple]\n    For further information visit https://errors.pydantic.dev/2.11/v/value_error"
    )
    assert one_line(detail) == (
        "Invalid parameters provided 1 validation error for SearchPostRequest bbox Value error, "
        "Bounding box must be within (-180, -90, 180, 90)"
    )
    assert len(one_line("x" * 1000)) == 300


def test_printable_escapes_what_could_forge_a_log_line() -> None:
    assert printable("/external/a\nINFO forged\r\x1b[31m\u2028x") == "/external/a\\x0aINFO forged\\x0d\\x1b[31m\\u2028x"
    assert printable("/external/collections/é") == "/external/collections/é"
