"""Error answers of the API apps: bad input is a one-line 400, never a 500.

stac-fastapi lets several user mistakes through to places that raise 500s: PostgreSQL
refusing a value (a NUL character, a one-argument CQL2 operator, a forged paging
token), or FastAPI failing to serialise its own validation error (an infinite bbox
value). The handlers here map those *classes* of errors to 400, with a STAC error
document (``code``, ``description``) of one line. Everything else (a genuine bug, a
missing privilege, an undefined function) stays a 500.
"""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from eomatch.errors import first_line

log = logging.getLogger("eomatch.server")

_PYDANTIC_TAIL = re.compile(r"\s*\[type=[^\n]*?input_type=\w+\]|\s*\[type=[^\]\n]*\]")
_PYDANTIC_URL = re.compile(r"\s*For further information visit \S+")


def one_line(text: str, max_chars: int = 300) -> str:
    """A message as one line: pydantic's per-error tails (which echo the input and
    point at a web page) dropped, whitespace collapsed, length bounded."""
    text = _PYDANTIC_URL.sub("", _PYDANTIC_TAIL.sub("", text))
    text = " ".join(text.split())
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


def error_response(status: int, description: str, code: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    if code is None:
        code = "".join(w.capitalize() for w in HTTPStatus(status).phrase.split()) if status in HTTPStatus._value2member_map_ else "Error"
    return JSONResponse({"code": code, "description": description}, status_code=status, headers=headers)


def _validation_description(errors: list[Any]) -> str:
    """``bbox: Value error, ...`` from FastAPI's validation errors, without their input
    (which may hold values JSON cannot carry, such as an infinite float)."""
    if not errors:
        return "invalid request"
    err = errors[0]
    loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header")]
    msg = str(err.get("msg", "invalid value"))
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return one_line(f"{'.'.join(loc) + ': ' if loc else ''}{msg}{more}")


def add_error_handlers(app: FastAPI, statement_timeout_s: float) -> None:
    """Install the handlers (after stac-fastapi's own, which they replace where they overlap)."""
    import asyncpg

    async def validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(400, _validation_description(list(exc.errors())), "BadRequest")

    async def http_exception(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        headers = dict(exc.headers) if exc.headers else None
        return error_response(exc.status_code, one_line(str(exc.detail)), headers=headers)

    async def bad_value(request: Request, exc: Exception) -> JSONResponse:
        # PostgreSQL refused a value the request carried (class 22 "data exception")
        # or pgSTAC raised on it (invalid paging token, a malformed spatial operand).
        reason = first_line(exc)
        log.info("400 %s %s: %s: %s", request.method, printable(request.url.path), type(exc).__name__, printable(reason))
        return error_response(400, one_line(f"invalid request: {reason}"), "BadRequest")

    async def timed_out(request: Request, exc: Exception) -> JSONResponse:
        limit = f"after {statement_timeout_s:g} s" if statement_timeout_s else "at its statement timeout"
        log.warning("504 %s %s: statement cancelled %s", request.method, printable(request.url.path), limit)
        return error_response(
            504,
            f"the database stopped this request {limit}; narrow it (collections, bbox, datetime, filter) or lower limit",
            "Timeout",
        )

    from stac_fastapi.types.errors import (
        ConflictError,
        DatabaseError,
        ForeignKeyError,
        InvalidQueryParameter,
        NotFoundError,
    )

    def stac_error(status: int) -> Any:
        async def handler(request: Request, exc: Exception) -> JSONResponse:
            # stac-fastapi's own handler logs these at ERROR with a traceback whose text
            # holds the request's ids: a user mistake is the access log's one line.
            if status >= 420:
                log.warning("%s %s %s: %s: %s", status, request.method, printable(request.url.path),
                            type(exc).__name__, printable(first_line(exc, "")))
            return error_response(status, one_line(str(exc)) or HTTPStatus(status).phrase, type(exc).__name__)

        return handler

    for exc_class, status in ((NotFoundError, 404), (ConflictError, 409), (ForeignKeyError, 424),
                              (DatabaseError, 424), (InvalidQueryParameter, 400)):
        app.add_exception_handler(exc_class, stac_error(status))
    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(StarletteHTTPException, http_exception)
    app.add_exception_handler(asyncpg.exceptions.DataError, bad_value)
    app.add_exception_handler(asyncpg.exceptions.RaiseError, bad_value)
    app.add_exception_handler(asyncpg.exceptions.QueryCanceledError, timed_out)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def printable(text: str) -> str:
    """``text`` with control characters escaped (``\\x0a``): a logged value is one line
    and cannot forge another record."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}", text)



class EscapeControlCharacters(logging.Filter):
    """Every record's message as one line: whatever a library logs of a request (an id
    with ``%0A`` in it) cannot start a record of its own. Tracebacks keep their lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is the formatter's to report
            return True
        escaped = printable(message)
        if escaped != message:
            record.msg, record.args = escaped, None
        return True


def escape_log_records() -> None:
    """Install :class:`EscapeControlCharacters` on the root logger's handlers (an app's
    process, after its logging is configured)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, EscapeControlCharacters) for f in handler.filters):
            handler.addFilter(EscapeControlCharacters())
