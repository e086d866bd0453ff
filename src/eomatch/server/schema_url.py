"""The matchup schema on the stack itself: a route that serves it and a rewrite of its
canonical URL in every JSON response.

Catalogue files name the schema by its canonical URL, whose host does not exist
(``eomatch.example``), so third-party validators fail on every item. Both APIs
therefore answer with ``<public base>/schemas/matchup/v1.0.0/schema.json``, built
from the same forwarded scheme/host/port that stac-fastapi builds its links from
(nginx sets those headers from trusted values only), and serve the schema there
with that URL as its ``$id``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response

from eomatch.schema import SCHEMA_PATH, SCHEMA_URL, served_schema, served_schema_url

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_CANONICAL = SCHEMA_URL.encode()
_JSON_TYPES = (b"application/json", b"application/geo+json", b"application/schema+json")
SCHEMA_CACHE_MAX_AGE_S = 3600


def public_base(scope: Scope) -> str:
    """``scheme://host[:port]`` of a request as stac-fastapi's links see it."""
    from stac_fastapi.api.middleware import ProxyHeaderMiddleware

    # stac-fastapi's own (private) parsing of the forwarded headers: the same answer as its links
    proto, domain, port = ProxyHeaderMiddleware(app=None)._get_forwarded_url_parts(scope)  # type: ignore[arg-type]  # noqa: SLF001
    default = 443 if proto == "https" else 80
    host = domain if port in (None, default) else f"{domain}:{port}"
    return f"{proto}://{host}"


class SchemaUrlMiddleware:
    """Replaces the canonical schema URL in JSON responses with the served one.

    The inner app is asked not to compress (we must read the body); nginx
    compresses on the way out. Bodies without the URL pass unchanged.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # JSON-escaped, so a hostile Host header (direct access) cannot break the JSON.
        served = orjson.dumps(served_schema_url(public_base(scope)))[1:-1]
        scope = dict(scope)
        scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"accept-encoding"]
        if scope.get("method") in ("POST", "PUT", "PATCH"):
            # An item read here and written back keeps the canonical URL in the database.
            receive = await _canonical_body(receive, served)
        start: Message | None = None
        chunks: list[bytes] = []
        passthrough = False

        async def rewrite(message: Message) -> None:
            nonlocal start, passthrough
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers", []))
                ctype = headers.get(b"content-type", b"").split(b";")[0].strip()
                if ctype not in _JSON_TYPES or b"content-encoding" in headers:
                    passthrough = True
                    await send(message)
                else:
                    start = message
                return
            if message["type"] != "http.response.body" or passthrough:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = b"".join(chunks)
            assert start is not None
            if _CANONICAL in body:
                body = body.replace(_CANONICAL, served)
                headers = [(k, v) for k, v in start.get("headers", []) if k != b"content-length"]
                headers.append((b"content-length", str(len(body)).encode()))
                start = {**start, "headers": headers}
            await send(start)
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, rewrite)


async def _canonical_body(receive: Receive, served: bytes) -> Receive:
    """The request body with this stack's schema URL turned back into the canonical one."""
    chunks: list[bytes] = []
    final: Message = {"type": "http.request", "body": b"", "more_body": False}
    while True:
        message = await receive()
        if message["type"] != "http.request":
            final = message  # the client went away: pass that on
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = b"".join(chunks).replace(served, _CANONICAL)
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            if final["type"] != "http.request":
                return final
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def add_schema_route(app: Any) -> None:
    """``GET /schemas/matchup/v1.0.0/schema.json`` (the proxy routes ``/schemas/`` here)."""

    async def matchup_schema(request: Request) -> Response:
        body = orjson.dumps(served_schema(public_base(request.scope)))
        return Response(
            body,
            media_type="application/schema+json",
            headers={"Cache-Control": f"public, max-age={SCHEMA_CACHE_MAX_AGE_S}"},
        )

    app.add_api_route(SCHEMA_PATH, matchup_schema, methods=["GET", "HEAD"], include_in_schema=False)
