"""Request limits (``server.*``): deep filters, big pages and polygons, clients that left.

The scans are checked on their own first; then the attacks of issue 10 go through the
real stack (nginx, both apps, PostgreSQL): a 600-level filter answers 400 in well under a
second while other requests keep answering and api-external's memory stays put, a
10 000-item page is served as ``max_page_size`` items, and a search whose client gives
up stops running in PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import pytest
from conftest import RunningStack
from cql2 import Expr
from helpers import Writer, load_with_pypgstac, make_collection, make_item, unique_id

from eomatch.server.limits import (
    Limits,
    RequestLimitsMiddleware,
    RequestRefused,
    check_filter,
    check_query_string,
    check_search_body,
    geometry_vertices,
    json_depth,
    member_depths,
    text_filter_depth,
)
from eomatch.settings import load_settings

LIMITS = Limits.from_settings(load_settings(environ={}).server)


def nested_not_text(levels: int) -> str:
    """The attack of issue 10: ``NOT (`` x levels around one predicate."""
    return "NOT (" * levels + "id = 'a'" + ")" * levels


def nested_not_json(levels: int) -> str:
    """The same filter as cql2-json text (built as text: json.dumps would recurse)."""
    return '{"op":"not","args":[' * levels + '{"op":"=","args":[{"property":"id"},"a"]}' + "]}" * levels


# --- the scans -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "id = 'a'",
        "NOT (id = 'a')",
        "NOT NOT id = 'a'",
        "(a = 1 OR (b = 2 AND NOT (c = 3)))",
        "S_INTERSECTS(geometry, POLYGON((1 2, 3 4, 5 6, 1 2)))",
        nested_not_text(7),
        "NOT " * 7 + "id = 'a'",
    ],
)
def test_text_and_json_depths_agree_with_the_parsed_filter(text: str) -> None:
    """Text is scanned without parsing; its depth matches the cql2-json of the same filter."""
    as_json = Expr(text).to_json()
    assert text_filter_depth(text) == json_depth(as_json)


def test_quoted_parentheses_and_flat_chains_are_not_nesting() -> None:
    assert text_filter_depth("x = 'a((((((((' AND \"we(ird\" = 1") == 1
    assert text_filter_depth(" AND ".join(f"NOT p{i} = {i}" for i in range(500))) == 2
    assert json_depth(Expr(" AND ".join(f"p{i} = {i}" for i in range(500))).to_json()) == 2


def test_deep_filters_are_refused_before_parsing_and_fast() -> None:
    levels = LIMITS.max_filter_depth + 1
    t0 = time.perf_counter()
    for value, lang in (
        (nested_not_text(600), None),
        ("NOT " * 600 + "id = 'a'", None),  # cql2 accepts NOT NOT ... without parentheses
        (nested_not_json(30), "cql2-json"),
        (orjson.loads(nested_not_json(levels)), None),
        (nested_not_text(levels), None),
    ):
        with pytest.raises(RequestRefused, match=f"filter nested deeper than {LIMITS.max_filter_depth} levels"):
            check_filter(value, LIMITS, lang)
    assert time.perf_counter() - t0 < 0.5
    check_filter(nested_not_text(LIMITS.max_filter_depth - 1), LIMITS)  # deep but allowed
    with pytest.raises(RequestRefused, match="longer than"):
        check_filter("id = '" + "x" * LIMITS.max_filter_chars + "'", LIMITS)


def test_a_body_too_deep_for_the_json_parser_names_its_member() -> None:
    body = b'{"limit": 1, "filter": ' + nested_not_json(600).encode() + b"}"
    assert member_depths(body)["filter"] > 1000 and member_depths(body)["limit"] == 0
    with pytest.raises(RequestRefused, match="^filter nested deeper than"):
        check_search_body(body, LIMITS)


def test_vertices_are_counted_for_every_geometry_type() -> None:
    ring = [[0, 0], [1, 0], [1, 1], [0, 0]]
    assert geometry_vertices({"type": "Point", "coordinates": [1, 2]}) == 1
    assert geometry_vertices({"type": "MultiPolygon", "coordinates": [[ring], [ring, ring]]}) == 12
    assert geometry_vertices({"type": "GeometryCollection", "geometries": [
        {"type": "LineString", "coordinates": ring}, {"type": "Point", "coordinates": [0, 0, 5]}]}) == 5


def test_query_strings_limit_is_capped_and_bad_values_refused() -> None:
    capped = check_query_string(b"collections=a&limit=10000", LIMITS)
    assert dict(x.split("=") for x in capped.decode().split("&"))["limit"] == str(LIMITS.max_page_size)
    assert check_query_string(b"limit=5&bbox=0,0,1,1", LIMITS) == b"limit=5&bbox=0,0,1,1"  # untouched
    for qs, message in (
        (b"bbox=nan,0,1,1", "bbox values must be finite"),
        (b"bbox=0,0,1e999,1", "bbox values must be finite"),
        (b"ids=a%00b", "'ids' contains a NUL"),
        (b"intersects=%7Bnot-json", "intersects is not valid JSON"),
        (b"query=%5B", "query is not valid JSON"),
        (b"x=" + b"a" * LIMITS.max_query_bytes, "query string longer than"),
        (b"filter=" + nested_not_text(40).replace(" ", "+").encode() + b"&filter=id%3D1", "nested deeper"),
    ):
        with pytest.raises(RequestRefused, match=message):
            check_query_string(qs, LIMITS)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"null", "must be a JSON object, not null"),
        (b"[1,2]", "must be a JSON object, not an array"),
        (b'"s"', "must be a JSON object, not a string"),
        (b'{"bbox": [0, 0, 1e400, 1]}', "not valid JSON"),
        (b'{"bbox": [NaN, 0, 1, 1]}', "not valid JSON"),
        (b'{"ids": ["a\\u0000b"]}', "NUL character"),
    ],
)
def test_search_bodies_the_app_cannot_take(body: bytes, message: str) -> None:
    with pytest.raises(RequestRefused, match=message):
        check_search_body(body, LIMITS)


def test_search_body_limit_is_capped_and_nothing_else_changes() -> None:
    doc = {"collections": ["c"], "limit": 10**6, "filter": {"op": "=", "args": [{"property": "id"}, "\\u0000"]}}
    out = orjson.loads(check_search_body(orjson.dumps(doc), LIMITS))
    assert out == {**doc, "limit": LIMITS.max_page_size}  # a literal backslash-u is no NUL
    same = orjson.dumps({"limit": 3})
    assert check_search_body(same, LIMITS) is same


# --- the middleware on a bare ASGI app ------------------------------------------------


class _Recorder:
    """An ASGI app that records what reached it and answers 200 after ``work_s``."""

    def __init__(self, work_s: float = 0.0) -> None:
        self.work_s = work_s
        self.calls: list[tuple[bytes, bytes]] = []
        self.cancelled = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = (await receive())["body"]
        self.calls.append((scope["query_string"], body))
        try:
            await asyncio.sleep(self.work_s)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def _call(app: Any, method: str, path: str, qs: bytes = b"", body: bytes = b"",
          chunks: int = 1, disconnect_after_s: float | None = None) -> list[dict[str, Any]]:
    """Run one request through ``app``; returns the messages it sent."""
    sent: list[dict[str, Any]] = []
    step = -(-len(body) // chunks) or 1
    parts = [body[i : i + step] for i in range(0, len(body), step)] or [b""]
    messages = [{"type": "http.request", "body": p, "more_body": i < len(parts) - 1} for i, p in enumerate(parts)]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        if disconnect_after_s is None:
            await asyncio.sleep(3600)
        await asyncio.sleep(disconnect_after_s or 0)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "query_string": qs, "headers": []}
    asyncio.run(asyncio.wait_for(app(scope, receive, send), 10))
    return sent


def test_middleware_refuses_with_a_stac_error_document() -> None:
    inner = _Recorder()
    app = RequestLimitsMiddleware(inner, Limits(max_search_body_bytes=2048, max_body_bytes=4096))
    sent = _call(app, "POST", "/search", body=b'{"filter": "' + b"NOT (" * 30 + b"a=1" + b")" * 30 + b'"}')
    assert sent[0]["status"] == 400
    assert orjson.loads(sent[1]["body"]) == {"code": "BadRequest", "description": "filter nested deeper than 20 levels"}
    sent = _call(app, "POST", "/search", body=b"{" + b" " * 3000 + b"}", chunks=3)
    assert sent[0]["status"] == 413 and b"larger than 2048 bytes" in sent[1]["body"]
    sent = _call(app, "POST", "/collections/c/items", body=b"{" + b" " * 3000 + b"}")  # writes may be bigger
    assert sent[0]["status"] == 200
    assert inner.calls == [(b"", b"{" + b" " * 3000 + b"}")]


def test_middleware_hands_the_app_the_capped_request() -> None:
    inner = _Recorder()
    app = RequestLimitsMiddleware(inner, LIMITS)
    _call(app, "GET", "/collections/c/items", qs=b"limit=99999")
    _call(app, "POST", "/search", body=b'{"limit": 99999}', chunks=2)
    assert inner.calls[0][0] == f"limit={LIMITS.max_page_size}".encode()
    assert orjson.loads(inner.calls[1][1]) == {"limit": LIMITS.max_page_size}


def test_a_read_whose_client_leaves_is_cancelled_but_a_write_is_not() -> None:
    for method, path in (("GET", "/search"), ("POST", "/search")):
        reader = _Recorder(work_s=0.5)
        sent = _call(RequestLimitsMiddleware(reader, LIMITS), method, path, body=b"{}", disconnect_after_s=0.05)
        assert reader.cancelled and sent == [], method
    finished = _Recorder(work_s=0.1)  # a disconnect after the answer cancels nothing
    sent = _call(RequestLimitsMiddleware(finished, LIMITS), "GET", "/search", disconnect_after_s=0.3)
    assert not finished.cancelled and sent[0]["status"] == 200
    writer = _Recorder(work_s=0.3)  # a write runs to its end: nothing half done
    sent = _call(RequestLimitsMiddleware(writer, LIMITS), "POST", "/collections/c/items", body=b"{}",
                 disconnect_after_s=0.05)
    assert not writer.cancelled and sent[0]["status"] == 200


# --- through the real stack ------------------------------------------------------------


def _api_pids(stack: RunningStack, audience: str) -> list[int]:
    """Processes of one audience's app of this stack (whatever runs them)."""
    state = str(stack.settings.stack.state_dir)
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if f"{audience}_app".encode() in cmdline and state.encode() in environ:
            pids.append(int(proc.name))
    return pids


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


@pytest.mark.stack
def test_the_nesting_attack_answers_400_fast_while_others_keep_answering(running_stack: RunningStack) -> None:
    """Issue 10's done-when: 600 levels on /external/ (and /api/) is a 400 in < 1 s, other
    requests answer meanwhile, and api-external's memory does not grow."""
    limit = running_stack.settings.server.max_filter_depth
    expected = {"code": "BadRequest", "description": f"filter nested deeper than {limit} levels"}
    pids = _api_pids(running_stack, "external")
    assert pids, "api-external process not found"
    with httpx.Client(timeout=30) as warm:  # the app's own first-request allocations
        assert warm.get(f"{running_stack.external}/collections").status_code == 200
    rss_before = {pid: _rss_kb(pid) for pid in pids}

    attacks: list[tuple[str, str, dict[str, Any]]] = []
    for base in (running_stack.external, running_stack.internal):
        attacks += [
            ("GET", f"{base}/search", {"params": {"filter": nested_not_text(600)}}),
            ("GET", f"{base}/search", {"params": {"filter": "NOT " * 600 + "id = 'a'"}}),
            ("GET", f"{base}/collections/any/items", {"params": {"filter": nested_not_text(600)}}),
            ("GET", f"{base}/search", {"params": {"filter": nested_not_json(60), "filter-lang": "cql2-json"}}),
            ("POST", f"{base}/search", {"content": b'{"filter": ' + nested_not_json(600).encode() + b"}",
                                        "headers": {"content-type": "application/json"}}),
            ("POST", f"{base}/search", {"json": {"filter": nested_not_text(600), "filter-lang": "cql2-text"}}),
        ]
    results: list[tuple[str, int, float, Any]] = []
    probes: list[tuple[int, float]] = []
    stop = threading.Event()

    def attack(method: str, url: str, kwargs: dict[str, Any]) -> None:
        with httpx.Client(timeout=60) as client:
            for _ in range(3):
                t0 = time.perf_counter()
                r = client.request(method, url, **kwargs)
                results.append((url, r.status_code, time.perf_counter() - t0, r.json()))

    def probe() -> None:
        with httpx.Client(timeout=60) as client:
            while not stop.is_set():
                t0 = time.perf_counter()
                r = client.get(f"{running_stack.external}/collections")
                probes.append((r.status_code, time.perf_counter() - t0))

    prober = threading.Thread(target=probe)
    prober.start()
    workers = [threading.Thread(target=attack, args=a) for a in attacks]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    stop.set()
    prober.join()

    assert len(results) == 3 * len(attacks)
    for url, status, elapsed_s, body in results:
        assert (status, body) == (400, expected), url
        assert elapsed_s < 1.0, (url, elapsed_s)
    assert probes and all(status == 200 for status, _ in probes)
    assert max(s for _, s in probes) < 1.0, probes
    for pid, before in rss_before.items():
        assert _rss_kb(pid) - before < 50_000, "api-external grew by more than 50 MB"


@pytest.fixture(scope="module")
def big_collection(running_stack: RunningStack) -> Iterator[str]:
    """A collection ten times ``max_page_size``, bulk-loaded (the ingest path)."""
    cid = unique_id("limits-big")
    n = 10 * running_stack.settings.server.max_page_size
    props = {"platform": "sentinel-2a", "note": "x" * 800}
    items = (make_item(cid, f"i{i:05d}", -170 + (i % 340), -60 + (i // 340) % 120, properties=props,
                       assets={"data": {"href": f"https://data.example.org/{i}.tif"}}) for i in range(n))
    load_with_pypgstac(running_stack.credentials("ingest").dsn, [make_collection(cid)], items)
    yield cid
    with Writer(running_stack) as w:
        w.client.delete(f"{running_stack.internal}/collections/{cid}")


@pytest.mark.stack
def test_an_over_large_limit_is_served_as_the_maximum(running_stack: RunningStack, big_collection: str) -> None:
    cap = running_stack.settings.server.max_page_size
    with httpx.Client(timeout=120) as client:
        for base in (running_stack.external, running_stack.internal):
            for r in (
                client.get(f"{base}/search", params={"collections": big_collection, "limit": 10_000}),
                client.post(f"{base}/search", json={"collections": [big_collection], "limit": 10_000}),
                client.get(f"{base}/collections/{big_collection}/items", params={"limit": 10_000}),
            ):
                assert r.status_code == 200, r.text[:200]
                page = r.json()
                assert len(page["features"]) == cap == page["numberReturned"]
                assert [link for link in page["links"] if link["rel"] == "next"], "no next page"


@pytest.mark.stack
def test_a_small_request_stays_fast_while_big_pages_are_served(running_stack: RunningStack, big_collection: str) -> None:
    """Four clients asking for 10 000 items each (18 MB pages before the cap) made a 5 ms
    request wait 5-11 s; served as max_page_size pages, it waits well under 2.5 s."""
    done: list[int] = []
    url = f"{running_stack.external}/search?collections={big_collection}&limit=10000"

    def big() -> None:
        with httpx.Client(timeout=120) as client:
            done.append(client.get(url).status_code)

    workers = [threading.Thread(target=big) for _ in range(4)]
    for w in workers:
        w.start()
    latencies_s = []
    with httpx.Client(timeout=60) as client:
        while any(w.is_alive() for w in workers):
            t0 = time.perf_counter()
            assert client.get(f"{running_stack.external}/collections/{big_collection}").status_code == 200
            latencies_s.append(time.perf_counter() - t0)
            time.sleep(0.05)
    for w in workers:
        w.join()
    assert done == [200] * 4
    assert latencies_s and max(latencies_s) < 2.5, latencies_s


@pytest.mark.stack
def test_intersects_and_body_sizes_are_bounded(running_stack: RunningStack) -> None:
    server = running_stack.settings.server
    n = server.max_geometry_vertices
    ring = [[i * 1e-4, 0.0] for i in range(n)] + [[0.0, 1.0], [0.0, 0.0]]  # n + 2 vertices
    too_many = {"type": "Polygon", "coordinates": [ring]}
    with httpx.Client(timeout=60) as client:
        for base in (running_stack.external, running_stack.internal):
            r = client.post(f"{base}/search", json={"intersects": too_many})
            assert r.status_code == 400
            assert r.json()["description"] == f"intersects geometry has more than {n} vertices"
            small = {"type": "Polygon", "coordinates": [ring[: n - 2] + [[0.0, 1.0], [0.0, 0.0]]]}
            assert client.post(f"{base}/search", json={"intersects": small, "limit": 1}).status_code == 200
            big = b'{"ids": ["' + b"x" * server.max_search_body_bytes + b'"]}'
            r = client.post(f"{base}/search", content=big, headers={"content-type": "application/json"})
            assert r.status_code == 413, r.text[:200]


def _blocked_searches(admin_dsn: str, lock_pid: int) -> list[int]:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))", (lock_pid,))
        return [pid for (pid,) in rows.fetchall()]


@pytest.fixture()
def locked_collection(running_stack: RunningStack) -> Iterator[tuple[str, psycopg.Connection[Any]]]:
    """A collection whose items partition another session holds locked: a search of it
    waits in PostgreSQL (as a slow search would run) until the lock goes."""
    cid = unique_id("limits-lock")
    with Writer(running_stack) as w:
        w.collection(make_collection(cid))
        w.item(make_item(cid, "a", 1.0, 2.0))
    admin = running_stack.credentials("admin").dsn
    with psycopg.connect(admin, autocommit=True) as conn:
        row = conn.execute("SELECT partition FROM pgstac.partitions_view WHERE collection = %s", (cid,)).fetchone()
    assert row is not None
    lock = psycopg.connect(admin)
    lock.execute(f'LOCK TABLE pgstac."{row[0]}" IN ACCESS EXCLUSIVE MODE')
    try:
        yield cid, lock
    finally:
        lock.rollback()
        lock.close()
        with Writer(running_stack) as w:
            w.client.delete(f"{running_stack.internal}/collections/{cid}")


@pytest.mark.stack
def test_a_search_stops_in_postgresql_when_its_client_leaves(
    running_stack: RunningStack, locked_collection: tuple[str, psycopg.Connection[Any]]
) -> None:
    cid, lock = locked_collection
    admin = running_stack.credentials("admin").dsn
    lock_pid = lock.info.backend_pid
    for base in (running_stack.external, running_stack.internal):
        seen: list[list[int]] = []
        timer = threading.Timer(0.8, lambda seen=seen: seen.append(_blocked_searches(admin, lock_pid)))
        timer.start()
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(f"{base}/search", params={"collections": cid}, timeout=1.5)
        timer.join()
        assert seen and len(seen[0]) == 1, f"the search was not running in PostgreSQL: {seen}"
        deadline = time.monotonic() + 3.0
        while _blocked_searches(admin, lock_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _blocked_searches(admin, lock_pid) == [], f"{base}: the search ran on after its client left"


@pytest.mark.stack
def test_a_read_beyond_the_statement_timeout_is_a_504(
    running_stack: RunningStack, locked_collection: tuple[str, psycopg.Connection[Any]]
) -> None:
    """``server.statement_timeout_s`` on the real database (the app in-process: a short
    timeout without restarting the session stack)."""
    from fastapi.testclient import TestClient

    from eomatch.server.app import create_app

    cid, _lock = locked_collection
    base = running_stack.settings
    settings = base.model_copy(update={"server": base.server.model_copy(update={"statement_timeout_s": 0.5})})
    app = create_app(settings, "external", running_stack.credentials("read"))
    with TestClient(app) as client:
        t0 = time.perf_counter()
        r = client.get("/search", params={"collections": cid})
        assert r.status_code == 504, r.text
        assert time.perf_counter() - t0 < 5
        assert r.json()["code"] == "Timeout" and "0.5 s" in r.json()["description"]
        assert client.get("/collections").status_code == 200  # the pool is still fine


def test_server_settings_come_from_yaml_and_env(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(json.dumps({"server": {"max_filter_depth": 7}}))
    settings = load_settings(config, environ={"EOMATCH_SERVER__MAX_PAGE_SIZE": "250"})
    assert (settings.server.max_filter_depth, settings.server.max_page_size) == (7, 250)
