"""network_reason: the cause of a failed request in a few words, whichever library raised it."""

from __future__ import annotations

import socket

import httpx
import pytest
import requests
import urllib3

from eomatch.errors import network_reason


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_refused_connections_from_each_http_library() -> None:
    port = _closed_port()
    url = f"http://127.0.0.1:{port}/x"
    with pytest.raises(httpx.ConnectError) as a:
        httpx.get(url, timeout=5)
    with pytest.raises(requests.ConnectionError) as b:
        requests.get(url, timeout=5)
    pool = urllib3.PoolManager(retries=urllib3.Retry(total=0))
    with pytest.raises(urllib3.exceptions.HTTPError) as c:
        pool.request("GET", url)
    for err in (a.value, b.value, c.value):
        assert network_reason(err) == "connection refused", repr(err)


def test_timeouts_and_unknown_hosts() -> None:
    with socket.socket() as server:  # accepts, never answers
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with pytest.raises(httpx.ReadTimeout) as err:
            httpx.get(f"http://127.0.0.1:{server.getsockname()[1]}/", timeout=0.2)
    assert network_reason(err.value) == "timed out"
    try:
        try:
            raise socket.gaierror(-2, "Name or service not known")
        except socket.gaierror as inner:
            raise urllib3.exceptions.NameResolutionError("example.invalid", None, inner) from inner  # type: ignore[arg-type]
    except urllib3.exceptions.HTTPError as exc:
        assert network_reason(exc) == "host name not found"


def test_anything_else_is_its_first_line() -> None:
    assert network_reason(ValueError("bad JSON at line 3\nmore detail")) == "bad JSON at line 3"
    assert network_reason(RuntimeError()) == "RuntimeError"
