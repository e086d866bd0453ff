"""Errors that carry a one-line message for the user.

Commands catch :class:`EomatchError` at the edge and print ``error: <message>``
with no traceback: these are user or environment problems, not bugs.
"""

from __future__ import annotations


class EomatchError(Exception):
    """Base of every error whose message is meant for the user."""

    exit_code: int = 2


class ConfigError(EomatchError):
    """A setting, flag or config file is wrong."""


class StackError(EomatchError):
    """A local stack service could not be started, stopped or reached."""


class CatalogueError(EomatchError):
    """The local catalogue is missing, unreadable or inconsistent."""


class IngestError(EomatchError):
    """Pushing items into pgSTAC failed."""


class QueryError(EomatchError):
    """Pulling items from a STAC API failed."""


class DownloadError(EomatchError):
    """Downloading product assets failed."""


class DatasetError(EomatchError):
    """Building a matchup dataset failed."""


class MatchupError(EomatchError):
    """A matchup, event or product cannot be built from the inputs given."""


def first_line(exc: BaseException, fallback: str | None = None) -> str:
    """The first line of an exception's message; ``fallback`` (default: the class
    name) when it has none. Library messages can run to pages; a user line must not."""
    text = str(exc).strip()
    if text:
        return text.splitlines()[0]
    return type(exc).__name__ if fallback is None else fallback


def network_reason(exc: BaseException) -> str:
    """A short cause for a failed request ("connection refused", "host name not found",
    "timed out", ...), whatever library raised it.

    urllib3, requests and httpx wrap the socket error in layers whose text repeats
    the URL, the pool and the retry policy; users need the cause, once.
    """
    import socket
    import ssl

    chain: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo and len(chain) < 20:
        e = todo.pop(0)
        if e is None or any(e is seen for seen in chain):
            continue
        chain.append(e)
        todo.extend([getattr(e, "reason", None) if isinstance(getattr(e, "reason", None), BaseException) else None,
                     e.__cause__, e.__context__])  # fmt: skip
        todo.extend(a for a in e.args if isinstance(a, BaseException))
    names = " ".join(type(e).__name__ for e in chain)
    text = " ".join(str(e) for e in chain).lower()
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "connection refused" in text:
        return "connection refused"
    if (any(isinstance(e, socket.gaierror) for e in chain) or "NameResolution" in names
            or "name or service not known" in text or "temporary failure in name resolution" in text
            or "nodename nor servname" in text):  # fmt: skip
        return "host name not found"
    if any(isinstance(e, TimeoutError) for e in chain) or "Timeout" in names or "timed out" in text:
        return "timed out"
    if any(isinstance(e, ConnectionResetError) for e in chain) or "connection reset" in text:
        return "connection reset by the server"
    if any(isinstance(e, ssl.SSLError) for e in chain) or "SSLError" in names or "certificate" in text:
        ssl_err = next((e for e in chain if isinstance(e, ssl.SSLError)), chain[-1])
        return f"TLS error: {first_line(ssl_err)[:200]}"
    return first_line(exc)[:200]
