"""Logging: plain text or one JSON object per line, to the console or rotated files."""

from __future__ import annotations

import contextvars
import json
import logging
import logging.handlers
import sys
import time
from pathlib import Path

from eomatch.errors import first_line

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "eomatch_request_id", default=None
)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, service, message, request id, extras."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None) or request_id_var.get()
        if rid:
            data["request_id"] = rid
        for key in ("method", "path", "status", "latency_ms", "client"):
            value = getattr(record, key, None)
            if value is not None:
                data[key] = value
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__(f"%(asctime)s %(levelname)s {service} %(name)s: %(message)s")


class ShortFormatter(logging.Formatter):
    """``warning: message``: what a person at a terminal wants from a command."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


def make_formatter(service: str, log_format: str, console_style: str = "full") -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter(service)
    return ShortFormatter() if console_style == "short" else TextFormatter(service)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at emit time (it may be swapped, e.g. by tests)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self):  # type: ignore[no-untyped-def]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # type: ignore[no-untyped-def]
        pass


def configure_logging(
    service: str,
    log_format: str = "text",
    log_file: Path | None = None,
    max_bytes: int = 10 * 1024 * 1024,
    backups: int = 5,
    level: int = logging.INFO,
    console_style: str = "full",
) -> None:
    """Install one handler on the root logger (console or rotated file).

    A service owns its process: its handler replaces all others. A command
    (``console_style="short"``: text lines without time and logger name) may run
    inside another program, e.g. a notebook or a test: it only replaces the
    handler it installed itself and filters by its handler's level.
    """
    root = logging.getLogger()
    handler: logging.Handler
    if console_style == "short" and log_file is None:
        for old in list(root.handlers):
            if isinstance(old, _StderrHandler):  # only ever installed here
                root.removeHandler(old)
        handler = _StderrHandler()
        handler.setLevel(level)
        handler.setFormatter(make_formatter(service, log_format, console_style))
        root.addHandler(handler)
        return
    for old in list(root.handlers):
        root.removeHandler(old)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(
            log_file, maxBytes=max_bytes, backupCount=backups
        )
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(make_formatter(service, log_format, console_style))
    handler.addFilter(_expected_outage_one_line)
    root.addHandler(handler)
    root.setLevel(level)


def _expected_outage_one_line(record: logging.LogRecord) -> bool:
    """asyncpg's pool logs a full traceback each time it retries its connection floor
    while PostgreSQL is down; during a restart that buries the log. Keep one line
    naming the error instead."""
    if record.name == "asyncpg.pool" and record.exc_info and record.exc_info[1] is not None:
        exc = record.exc_info[1]
        record.msg = f"{record.getMessage()}: {type(exc).__name__}: {first_line(exc, '')}".rstrip(": ")
        record.args = None
        record.exc_info = None
        record.exc_text = None
    return True
