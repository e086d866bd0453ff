"""The one retry policy of eomatch's HTTP reads (STAC APIs, provider searches, CelesTrak).

Every client that reads over HTTP is a ``requests`` session (pystac-client's
:class:`~pystac_client.stac_api_io.StacApiIO` is one) whose adapters carry the
urllib3 :class:`~urllib3.util.retry.Retry` built here: connection errors, read
errors and the statuses of :data:`RETRY_STATUSES` are retried ``retries`` times with
exponential backoff (``backoff_s`` × 2ⁿ, at most :data:`BACKOFF_MAX_S`), a
``Retry-After`` header is obeyed, and the last answer is handed back rather than
raised so the caller can name the status in its one-line error. POST is retried
too: ``POST /search`` and POST ``next`` links are reads.

``eomatch-download`` keeps its own loop, which resumes a partial file from the
bytes on disk; writes (``eomatch-add-asset --push``) are not retried.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from urllib3.util.retry import Retry

if TYPE_CHECKING:
    import requests

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
"""Answers that say "try again later": rate limits and server or gateway failures."""
BACKOFF_MAX_S = 30.0
"""Longest wait between two attempts (unless the server's Retry-After asks for more)."""
REDIRECTS = 10


def retry_policy(retries: int, backoff_s: float, *, connect: bool = True) -> Retry:
    """The policy of every HTTP read: ``retries`` more attempts after the first.

    ``connect=False`` fails at once when the host cannot be reached: used for the
    first request to a URL a user typed, so a wrong URL is one quick error rather
    than a minute of backoff; once the server has answered, connection errors are
    retried too (:func:`mount_retries` with the full policy).
    """
    n = max(0, int(retries))
    return Retry(
        total=None,  # each kind counts on its own; redirects are not failures
        connect=n if connect else 0,
        read=n,
        status=n,
        other=n,
        redirect=REDIRECTS,
        backoff_factor=max(0.0, backoff_s),
        backoff_max=BACKOFF_MAX_S,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=None,  # POST /search is a read: retry it too
        raise_on_status=False,  # the last answer comes back: its status names the failure
        respect_retry_after_header=True,
    )


def mount_retries(session: requests.Session, policy: Retry) -> None:
    """Give ``session`` the policy for both schemes (the adapters it replaces are closed)."""
    from requests.adapters import HTTPAdapter

    for scheme in ("http://", "https://"):
        old = session.adapters.get(scheme)
        session.mount(scheme, HTTPAdapter(max_retries=policy))
        if old is not None:
            old.close()


def session_with_retries(policy: Retry, headers: dict[str, str] | None = None) -> requests.Session:
    """A ``requests`` session whose every request follows ``policy``."""
    import requests

    session = requests.Session()
    mount_retries(session, policy)
    session.headers.update(headers or {})
    return session


def timed_out(exc: BaseException) -> bool:
    """Whether a failure from requests, urllib3 or pystac-client was a timeout (at any
    depth of the exception chain they wrap each other in)."""
    import socket

    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo and len(seen) < 20:
        e = todo.pop()
        if e is None or any(e is s for s in seen):
            continue
        seen.append(e)
        if isinstance(e, TimeoutError | socket.timeout) or "Timeout" in type(e).__name__:
            return True
        reason = getattr(e, "reason", None)
        todo.extend([reason if isinstance(reason, BaseException) else None, e.__cause__, e.__context__])
        todo.extend(a for a in e.args if isinstance(a, BaseException))
    return False
