"""What one request may ask of an API app, checked before stac-fastapi parses it.

A CQL2 filter nested a few hundred levels deep costs cql2's validation gigabytes of
memory and minutes of the event loop (every other request waits); a 10 000-item page
or a megabyte polygon stalls everyone too. :class:`RequestLimitsMiddleware` refuses
such requests with a one-line 400/413/414 after cheap scans of the raw text (no CQL2
parsing), serves an over-large ``limit`` as ``server.max_page_size`` (the STAC API
spec's rule for a limit above the maximum), and cancels the work of a reader whose
client has gone away, which makes asyncpg cancel the running PostgreSQL statement.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson

from eomatch.settings import ServerSettings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

JSON_MAX_DEPTH = 1024
"""orjson refuses documents nested deeper than this (it never recurses further)."""


@dataclass(frozen=True)
class Limits:
    """The ``server.*`` limits, as the middleware applies them."""

    max_filter_depth: int = 20
    max_filter_chars: int = 20_000
    max_page_size: int = 1000
    max_geometry_vertices: int = 10_000
    max_query_bytes: int = 16 * 1024
    max_search_body_bytes: int = 1024 * 1024
    max_body_bytes: int = 16 * 1024 * 1024

    @classmethod
    def from_settings(cls, server: ServerSettings) -> Limits:
        return cls(
            max_filter_depth=server.max_filter_depth,
            max_filter_chars=server.max_filter_chars,
            max_page_size=server.max_page_size,
            max_geometry_vertices=server.max_geometry_vertices,
            max_query_bytes=server.max_query_bytes,
            max_search_body_bytes=server.max_search_body_bytes,
            max_body_bytes=server.max_body_bytes,
        )


class RequestRefused(Exception):
    """A request the app will not run: its status, STAC error code and one-line reason."""

    def __init__(self, description: str, status: int = 400, code: str = "BadRequest") -> None:
        super().__init__(description)
        self.description = description
        self.status = status
        self.code = code


# --- cheap scans -----------------------------------------------------------------------

# Quoted literals and identifiers are skipped whole (a "(" inside 'a(b' is no nesting);
# an unterminated quote runs to the end, like the parser would read it.
_CQL2_TEXT_TOKENS = re.compile(r"'(?:[^']|'')*'?|\"(?:[^\"]|\"\")*\"?|[()\[\]]|[A-Za-z_][A-Za-z0-9_]*")


def text_filter_depth(text: str, stop_above: int | None = None) -> int:
    """Nesting of a CQL2 text filter: one for the predicate, plus open parentheses
    and pending ``NOT``s (so it matches :func:`json_depth` of the same filter as
    cql2-json in the common cases).

    ``NOT`` binds to the next predicate or parenthesis, so ``NOT NOT NOT x = 1`` nests
    as deep as ``NOT (NOT (NOT (x = 1)))`` for the parser (cql2 accepts both); a ``NOT``
    pending at one parenthesis level ends at the next ``AND``/``OR`` there. Stops early
    once the depth exceeds ``stop_above``.
    """
    frames = [0]  # pending NOTs per open parenthesis
    pending_nots = 0
    deepest = 1 if text.strip() else 0  # a lone predicate is one level, as in cql2-json
    after_not = False
    for match in _CQL2_TEXT_TOKENS.finditer(text):
        token = match.group()
        first = token[0]
        is_not = False
        if first in "'\"":
            pass
        elif first in "([":
            if after_not:  # "NOT (" is one level, not two
                frames[-1] -= 1
                pending_nots -= 1
            frames.append(0)
        elif first in ")]":
            if len(frames) > 1:
                pending_nots -= frames.pop()
        else:
            word = token.upper()
            if word == "NOT":
                frames[-1] += 1
                pending_nots += 1
                is_not = True
            elif word in ("AND", "OR"):
                pending_nots -= frames[-1]
                frames[-1] = 0
        after_not = is_not
        level = len(frames) + pending_nots
        if level > deepest:
            deepest = level
            if stop_above is not None and deepest > stop_above:
                break
    return deepest


def json_depth(doc: Any, stop_above: int | None = None) -> int:
    """Nesting of a parsed JSON value (cql2-json, ``query``), counted as CQL2 text nests:
    an object or array is a level only if it holds objects or arrays itself (a
    ``{"property": "id"}`` or an ``[x, y]`` position is none), and an operator's
    ``args`` array is part of its operator (``{"op": "not", "args": [...]}`` is one
    level, as ``NOT (...)`` is). Iterative: any depth is safe to measure."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(doc, 0)]
    while stack:
        value, depth = stack.pop()
        children: list[Any]
        if isinstance(value, dict):
            children = []
            for key, child in value.items():
                if key == "args" and isinstance(child, list):
                    children.extend(c for c in child if isinstance(c, dict | list))
                    if not children and child:
                        children.append(child)  # scalar args still make an operator a level
                elif isinstance(child, dict | list):
                    children.append(child)
        elif isinstance(value, list):
            children = [c for c in value if isinstance(c, dict | list)]
        else:
            continue
        if not children:
            continue
        depth += 1
        if depth > deepest:
            deepest = depth
            if stop_above is not None and deepest > stop_above:
                break
        stack.extend((c, depth) for c in children)
    return deepest


def geometry_vertices(geometry: Any, stop_above: int | None = None) -> int:
    """Positions (``[x, y]`` or ``[x, y, z]``) in a GeoJSON geometry, any type."""
    count = 0
    stack: list[Any] = [geometry]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(v for k, v in value.items() if k in ("coordinates", "geometries"))
        elif isinstance(value, list):
            if value and isinstance(value[0], int | float) and not isinstance(value[0], bool):
                count += 1
                if stop_above is not None and count > stop_above:
                    break
            else:
                stack.extend(value)
    return count


def member_depths(data: bytes) -> dict[str, int]:
    """Deepest ``[``/``{`` nesting under each top-level member of a raw JSON object,
    strings skipped: names the culprit when a body is too deep for the JSON parser."""
    depths: dict[str, int] = {}
    depth = 0
    key: str | None = None
    last_string: bytes | None = None
    for match in re.finditer(rb'"(?:[^"\\]|\\.)*"|[\[\]{}:,]', data):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if key is not None:
                depths[key] = max(depths.get(key, 0), depth - 1)
        elif token in (b"]", b"}"):
            depth -= 1
        elif token == b":" and depth == 1 and last_string is not None:
            key = last_string[1:-1].decode("utf-8", "replace")
            depths.setdefault(key, 0)
        elif token == b"," and depth == 1:
            key = None
        last_string = token if token[:1] == b'"' else None
    return depths


# --- checks ----------------------------------------------------------------------------


def check_filter(value: Any, limits: Limits, lang: str | None = None, where: str = "filter") -> None:
    """Refuse a CQL2 filter (text, JSON text, or parsed cql2-json) that is too long or
    too deeply nested, without parsing it as CQL2."""
    if isinstance(value, str):
        if len(value) > limits.max_filter_chars:
            raise RequestRefused(f"{where} longer than {limits.max_filter_chars} characters")
        if "\x00" in value:
            raise RequestRefused(f"{where} contains a NUL character")
        stripped = value.lstrip()
        if (lang or "").lower() == "cql2-json" or stripped.startswith(("{", "[")):
            try:
                parsed = orjson.loads(value)
            except orjson.JSONDecodeError as exc:
                if "depth" in str(exc):
                    raise RequestRefused(f"{where} nested deeper than {limits.max_filter_depth} levels") from None
                if (lang or "").lower() == "cql2-json":
                    raise RequestRefused(f"{where} is not valid cql2-json: {_json_reason(exc)}") from None
            else:
                check_filter(parsed, limits, where=where)
                return
        if text_filter_depth(value, limits.max_filter_depth) > limits.max_filter_depth:
            raise RequestRefused(f"{where} nested deeper than {limits.max_filter_depth} levels")
        return
    if isinstance(value, dict | list):
        if json_depth(value, limits.max_filter_depth) > limits.max_filter_depth:
            raise RequestRefused(f"{where} nested deeper than {limits.max_filter_depth} levels")
        if len(orjson.dumps(value)) > limits.max_filter_chars:
            raise RequestRefused(f"{where} longer than {limits.max_filter_chars} characters")


def check_geometry(geometry: Any, limits: Limits) -> None:
    if geometry_vertices(geometry, limits.max_geometry_vertices) > limits.max_geometry_vertices:
        raise RequestRefused(f"intersects geometry has more than {limits.max_geometry_vertices} vertices")


def check_bbox(values: Iterable[Any]) -> None:
    for v in values:
        if isinstance(v, int | float) and not isinstance(v, bool) and not math.isfinite(v):
            raise RequestRefused("bbox values must be finite numbers")


def _json_reason(exc: orjson.JSONDecodeError) -> str:
    return str(exc).splitlines()[0] if str(exc) else "not JSON"


def _name(key: str) -> str:
    return repr(key[:40])


def clamp_limit(value: Any, limits: Limits) -> Any:
    """``limit`` as served: at most ``max_page_size``; anything that is no positive
    integer is left for the app to refuse."""
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit() and int(text) > limits.max_page_size:
            return str(limits.max_page_size)
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value > limits.max_page_size:
        return limits.max_page_size
    return value


def check_query_string(query_string: bytes, limits: Limits) -> bytes:
    """Refuse a query string that is too long, carries NUL characters, a deep or long
    filter, a non-finite bbox or a huge ``intersects``; return it with ``limit`` capped."""
    if len(query_string) > limits.max_query_bytes:
        raise RequestRefused(f"query string longer than {limits.max_query_bytes} bytes", 414, "URITooLong")
    if not query_string:
        return query_string
    text = query_string.decode("latin-1")
    pairs = parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="replace")
    lang = next((value for key, value in pairs if key == "filter-lang"), None)
    changed = False
    out: list[tuple[str, str]] = []
    for key, value in pairs:  # every occurrence: which one the app takes is its business
        if "\x00" in value or "\x00" in key:
            raise RequestRefused(f"query parameter {_name(key)} contains a NUL character")
        if not value:
            pass
        elif key == "limit":
            capped = clamp_limit(value, limits)
            changed = changed or capped != value
            value = capped
        elif key == "filter":
            check_filter(value, limits, lang)
        elif key == "query":
            _check_json_param("query", value, limits)
        elif key == "intersects":
            check_geometry(_check_json_param("intersects", value, limits), limits)
        elif key == "bbox":
            with contextlib.suppress(ValueError):  # not numbers: the app answers 400 itself
                check_bbox(float(p) for p in value.split(","))
        out.append((key, value))
    return urlencode(out).encode() if changed else query_string


def _check_json_param(key: str, value: str, limits: Limits) -> Any:
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc):
            raise RequestRefused(f"{key} nested deeper than {limits.max_filter_depth} levels") from None
        raise RequestRefused(f"{key} is not valid JSON: {_json_reason(exc)}") from None
    if json_depth(doc, limits.max_filter_depth) > limits.max_filter_depth:
        raise RequestRefused(f"{key} nested deeper than {limits.max_filter_depth} levels")
    return doc


def check_search_body(body: bytes, limits: Limits) -> bytes:
    """Refuse a ``POST .../search`` body the app must not parse (not a JSON object, too
    deep a filter or query, NUL characters, a huge ``intersects``); cap its ``limit``."""
    if not body.strip():
        return body  # an empty search: the app's defaults
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc):
            depths = member_depths(body)
            culprit = max(depths, key=lambda k: depths[k]) if depths else None
            if culprit is None:
                raise RequestRefused(f"search body nested deeper than {JSON_MAX_DEPTH} levels") from None
            raise RequestRefused(f"{culprit[:40]} nested deeper than {limits.max_filter_depth} levels") from None
        raise RequestRefused(f"search body is not valid JSON: {_json_reason(exc)}") from None
    if not isinstance(doc, dict):
        kind = {type(None): "null", list: "an array", str: "a string", bool: "a boolean"}.get(type(doc), "a number")
        raise RequestRefused(f"search body must be a JSON object, not {kind}")
    if b"\\u0000" in body and _has_nul(doc):
        raise RequestRefused("search body contains a NUL character (\\u0000)")
    if "filter" in doc and doc["filter"] is not None:
        check_filter(doc["filter"], limits, doc.get("filter-lang") or doc.get("filter_lang"))
    if isinstance(doc.get("query"), dict | list) and json_depth(doc["query"], limits.max_filter_depth) > limits.max_filter_depth:
        raise RequestRefused(f"query nested deeper than {limits.max_filter_depth} levels")
    if doc.get("intersects") is not None:
        check_geometry(doc["intersects"], limits)
    if isinstance(doc.get("bbox"), list):
        check_bbox(doc["bbox"])
    if "limit" in doc:
        capped = clamp_limit(doc["limit"], limits)
        if capped != doc["limit"]:
            doc["limit"] = capped
            return orjson.dumps(doc)
    return body


def _has_nul(doc: Any) -> bool:
    stack = [doc]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return True
        elif isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return False


# --- the middleware -------------------------------------------------------------------


async def send_error(send: Send, status: int, code: str, description: str) -> None:
    """A STAC API error document (``code``, ``description``) as the whole response."""
    body = orjson.dumps({"code": code, "description": description})
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})


def _is_search(scope: Scope) -> bool:
    return str(scope.get("path", "")).rstrip("/").endswith("/search")


class RequestLimitsMiddleware:
    """Pure ASGI, outside stac-fastapi: checks run before any request model is built,
    and a refused request costs a few scans of at most ``max_query_bytes`` and
    ``max_search_body_bytes``.

    Reads (GET, HEAD, POST .../search) run as a task that is cancelled when the client
    disconnects before the response is complete: the database statement goes with it.
    """

    def __init__(self, app: ASGIApp, limits: Limits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = str(scope.get("method", "GET")).upper()
        search_post = method == "POST" and _is_search(scope)
        max_body = self.limits.max_search_body_bytes if search_post else self.limits.max_body_bytes
        try:
            query_string = check_query_string(scope.get("query_string", b""), self.limits)
            body = await _read_body(scope, receive, max_body)
            if body is None:
                return  # the client left while sending
            if search_post:
                body = check_search_body(body, self.limits)
        except RequestRefused as refused:
            await send_error(send, refused.status, refused.code, refused.description)
            return
        if query_string != scope.get("query_string", b""):
            scope = dict(scope)
            scope["query_string"] = query_string
        read = method in ("GET", "HEAD") or search_post
        await _run(self.app, scope, body, receive, send, cancel_on_disconnect=read)


async def _read_body(scope: Scope, receive: Receive, max_bytes: int) -> bytes | None:
    """The whole request body, refused (413) as soon as it exceeds ``max_bytes``;
    ``None`` when the client disconnected first."""
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                raise RequestRefused("Content-Length is not a number") from None
            if declared > max_bytes:
                raise RequestRefused(f"request body larger than {max_bytes} bytes", 413, "PayloadTooLarge")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise RequestRefused(f"request body larger than {max_bytes} bytes", 413, "PayloadTooLarge")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _run(app: ASGIApp, scope: Scope, body: bytes, receive: Receive, send: Send, cancel_on_disconnect: bool) -> None:
    """Run the app on the buffered body; for reads, watch the connection meanwhile."""
    delivered = False
    gone = asyncio.Event()
    response_done = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        if not cancel_on_disconnect:
            return await receive()
        await gone.wait()
        return {"type": "http.disconnect"}

    async def tracking_send(message: Message) -> None:
        nonlocal response_done
        if message["type"] == "http.response.body" and not message.get("more_body"):
            response_done = True
        await send(message)

    if not cancel_on_disconnect:
        await app(scope, replay, send)
        return

    task = asyncio.ensure_future(app(scope, replay, tracking_send))
    watcher: asyncio.Future[Message] = asyncio.ensure_future(receive())
    try:
        while True:
            await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                break
            if watcher.result()["type"] == "http.disconnect":
                gone.set()
                if not response_done:
                    # The client left: stop the work, and with it asyncpg's statement
                    # (asyncpg sends PostgreSQL a cancel request for it).
                    task.cancel()
                break
            watcher = asyncio.ensure_future(receive())  # a stray body message: keep watching
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        watcher.cancel()
    if gone.is_set() and not response_done:
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return
    await task
