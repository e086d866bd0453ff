"""ASGI middlewares of the eomatch apps: the external href policy on responses, request logs."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from eomatch.logs import request_id_var
from eomatch.server.errors import printable
from eomatch.server.external_policy import HrefPolicy, scrub

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

access_log = logging.getLogger("eomatch.access")

_JSON_TYPES = (b"application/json", b"application/geo+json", b"application/schema+json")


class ExternalFilterMiddleware:
    """Rewrites every JSON response so nothing internal leaves the external API.

    Compression is disabled for the inner app (we must read the body); nginx may
    compress again on the way out.
    """

    def __init__(self, app: ASGIApp, policy: HrefPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope = dict(scope)
        scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"accept-encoding"]
        start: Message | None = None
        chunks: list[bytes] = []
        passthrough = False

        async def capture(message: Message) -> None:
            nonlocal start, passthrough
            if message["type"] == "http.response.start":
                start = message
                ctype = dict(message.get("headers", [])).get(b"content-type", b"")
                if ctype.split(b";")[0].strip() not in _JSON_TYPES:
                    passthrough = True
                    await send(message)
                return
            if message["type"] == "http.response.body":
                if passthrough:
                    await send(message)
                    return
                chunks.append(message.get("body", b""))
                if message.get("more_body"):
                    return
                body = self._filter(b"".join(chunks))
                assert start is not None
                headers = [(k, v) for k, v in start.get("headers", []) if k != b"content-length"]
                headers.append((b"content-length", str(len(body)).encode()))
                await send({**start, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        await self.app(scope, receive, capture)

    def _filter(self, body: bytes) -> bytes:
        if not body or self.policy.body_is_clean(body):
            return body
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            # Not JSON after all: never pass something we could not inspect.
            return b"" if self.policy.leaks(body.decode(errors="replace")) else body
        return orjson.dumps(scrub(doc, self.policy, strings=self.policy.body_leaks(body)))


CLIENT_CLOSED = 499
"""Logged status of a request whose client left before any response (nginx's code)."""


class RequestLogMiddleware:
    """One access log record per request with method, path, status, latency, request id.

    Logged values come from the client (a path may hold ``%0A``): control characters
    are escaped, so one request is one line and cannot forge another record.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        rid = printable(headers.get(b"x-request-id", b"").decode("latin-1")) or uuid.uuid4().hex
        token = request_id_var.set(rid)
        t0 = time.perf_counter()
        status: int | None = None

        async def wrapped(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message = dict(message)
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode("latin-1"))]
            await send(message)

        try:
            await self.app(scope, receive, wrapped)
        except BaseException:
            status = status or 500
            raise
        finally:
            latency_ms = round((time.perf_counter() - t0) * 1000, 2)
            logged = status or CLIENT_CLOSED  # no answer and no error: the client left
            method = printable(str(scope.get("method")))
            path = printable(str(scope.get("path")))
            access_log.info(
                "%s %s %s %.1fms rid=%s",
                method,
                path,
                logged,
                latency_ms,
                rid,
                extra={
                    "method": method,
                    "path": path,
                    "status": logged,
                    "latency_ms": latency_ms,
                    "request_id": rid,
                },
            )
            request_id_var.reset(token)
