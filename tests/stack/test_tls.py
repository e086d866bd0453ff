"""Optional HTTPS at the proxy: a second nginx with a self-signed certificate in front
of the session stack's APIs (own state folder and ports)."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import RunningStack, free_port
from helpers import derive_settings, links_of
from helpers_stack import second_proxy

from eomatch.errors import StackError
from eomatch.settings import Settings
from eomatch.stack.proxy import Proxy
from eomatch.stack.render import render_proxy_conf
from eomatch.stack.state import StatePaths


def _self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-days", "1",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


@pytest.fixture(scope="module")
def tls_proxy(running_stack: RunningStack) -> Iterator[tuple[Settings, Path]]:
    def with_certificate(state_dir: Path) -> dict[str, Any]:
        cert, key = _self_signed(state_dir)
        return {"proxy": {"tls_cert": str(cert), "tls_key": str(key)}}

    with second_proxy(running_stack.settings, "eomatch-tls-", stack=with_certificate, tls_port=free_port()) as proxy:
        yield proxy.settings, Path(str(proxy.settings.stack.proxy.tls_cert))


def test_https_serves_the_external_api_with_https_links(tls_proxy: tuple[Settings, Path]) -> None:
    settings, cert = tls_proxy
    port = settings.stack.proxy.tls_port
    verify = ssl.create_default_context(cafile=str(cert))
    r = httpx.get(f"https://127.0.0.1:{port}/external/", verify=verify, timeout=10)
    assert r.status_code == 200
    hrefs = [lk["href"] for lk in links_of(r.json(), {"self", "root", "data", "conformance", "search"})]
    assert hrefs
    assert all(h.startswith(f"https://127.0.0.1:{port}/external") for h in hrefs), hrefs
    # Following a link works over TLS too.
    data = next(lk["href"] for lk in r.json()["links"] if lk["rel"] == "data")
    assert httpx.get(data, verify=verify, timeout=10).status_code == 200


def test_plain_http_port_still_answers_with_http_links(tls_proxy: tuple[Settings, Path]) -> None:
    settings, _ = tls_proxy
    port = settings.stack.proxy.port
    r = httpx.get(f"http://127.0.0.1:{port}/external/", timeout=10)
    assert r.status_code == 200
    self_link = next(lk["href"] for lk in r.json()["links"] if lk["rel"] == "self")
    assert self_link.startswith(f"http://127.0.0.1:{port}/")


def test_an_untrusted_certificate_is_rejected(tls_proxy: tuple[Settings, Path]) -> None:
    settings, _ = tls_proxy
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"https://127.0.0.1:{settings.stack.proxy.tls_port}/external/", timeout=10)


def test_without_a_certificate_there_is_no_tls_server(running_stack: RunningStack) -> None:
    conf = render_proxy_conf(running_stack.settings, "local")
    assert " ssl;" not in conf and "ssl_certificate" not in conf


def test_missing_certificate_file_is_a_one_line_error(running_stack: RunningStack, tmp_path: Path) -> None:
    settings = derive_settings(
        running_stack.settings,
        {
            "state_dir": str(tmp_path),
            "proxy": {"port": free_port(), "tls_port": free_port(),
                      "tls_cert": str(tmp_path / "nope.pem"), "tls_key": str(tmp_path / "nope.key")},
        },
    )
    StatePaths(tmp_path).ensure()
    with pytest.raises(StackError, match="nginx config rejected"):
        Proxy(settings).start()
