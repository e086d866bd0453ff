"""Outages on a separate stack: a component down, PostgreSQL restarted under load,
nginx reloaded during ``keys add``. Loads are bounded loops on loopback."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import httpx
import pytest
from conftest import private_stack
from helpers import bearer, make_collection, unique_id

from eomatch.stack import Stack
from eomatch.stack.api import ApiService
from eomatch.stack.process import wait_until

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with private_stack("eomatch-resilience-") as st:
        yield st


class Load:
    """A background loop of GETs (at most ``max_requests``) recording every status."""

    def __init__(self, urls: list[str], max_requests: int = 3000) -> None:
        self.urls = urls
        self.max_requests = max_requests
        self.codes: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            i = 0
            while not self._stop.is_set() and i < self.max_requests:
                try:
                    self.codes.append(client.get(self.urls[i % len(self.urls)]).status_code)
                except httpx.HTTPError:
                    self.codes.append(-1)  # connection refused/reset: counted as a failure
                i += 1
                time.sleep(0.01)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def _cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    conf = stack.paths.conf / "settings.yaml"
    return subprocess.run([str(BIN / "eomatch-stack"), "--config", str(conf), *args],
                          capture_output=True, text=True, timeout=120)


def _all_ok(urls: list[str], apis: Iterable[ApiService] = ()) -> Callable[[], bool]:
    """Every URL answers 200, and ``/collections`` on every API's own socket."""
    def check() -> bool:
        try:
            if not all(httpx.get(u, timeout=2).status_code == 200 for u in urls):
                return False
            for api in apis:
                with api.client(timeout_s=2) as client:
                    if client.get("/collections").status_code != 200:
                        return False
            return True
        except httpx.HTTPError:
            return False
    return check


def test_a_stopped_component_makes_health_503_and_status_exit_3(stack: Stack) -> None:
    assert httpx.get(stack.urls.health, timeout=20).status_code == 200
    stack.browser.stop()
    try:
        r = httpx.get(stack.urls.health, timeout=20)
        assert r.status_code == 503
        report = r.json()
        assert report["status"] == "degraded"
        assert report["components"]["browser"]["ok"] is False
        assert report["components"]["db"]["ok"] is True
        proc = _cli(stack, "status")
        assert proc.returncode == 3
        assert "browser" in proc.stderr and "DOWN" in proc.stdout
    finally:
        stack.browser.start()
    assert httpx.get(stack.urls.health, timeout=20).status_code == 200
    assert _cli(stack, "status").returncode == 0


def test_apis_recover_by_themselves_after_a_postgres_restart(stack: Stack) -> None:
    pids = {a.name: a.pid() for a in stack.apis}
    urls = [stack.urls.internal + "collections", stack.urls.external + "collections"]
    with Load(urls) as load:
        time.sleep(0.5)
        stack.db.stop()
        time.sleep(1.5)
        stack.db.start()
        t_up = time.monotonic()
        recovered = wait_until(_all_ok(urls, stack.apis), 10, 0.1)
        elapsed = time.monotonic() - t_up
        time.sleep(0.3)
    assert recovered, f"APIs did not answer 200 within 10 s of PostgreSQL's restart ({elapsed:.1f}s)"
    assert {a.name: a.pid() for a in stack.apis} == pids  # nobody restarted them
    codes = load.codes
    assert len(codes) > 20
    assert 503 in codes  # the outage was seen: the apps answer 503 while the db is down
    assert set(codes) <= {200, 503}, sorted(set(codes))
    assert codes[-1] == 200


def test_nginx_reload_during_keys_add_drops_nothing(stack: Stack) -> None:
    proxy_pid = stack.proxy.pid()
    urls = [stack.urls.external, stack.urls.internal + "collections", stack.urls.external + "collections"]
    keys = []
    with Load(urls) as load:
        for _ in range(3):
            name = unique_id("reload")
            proc = _cli(stack, "keys", "add", name)
            assert proc.returncode == 0, proc.stderr
            keys.append(proc.stdout.strip().splitlines()[-1])
            time.sleep(0.2)
    codes = load.codes
    assert len(codes) > 20
    bad = [c for c in codes if c == -1 or (c >= 500 and c not in (502, 503))]
    assert bad == []
    assert codes.count(200) >= len(codes) - 2
    assert stack.proxy.pid() == proxy_pid  # reloaded, not restarted
    cid = unique_id("after-reload")
    r = httpx.post(stack.urls.internal + "collections", json=make_collection(cid), headers=bearer(keys[-1]), timeout=30)
    assert r.status_code in (200, 201), r.text


def test_nginx_restart_during_keys_add(stack: Stack) -> None:
    """nginx stopped and started while ``keys add`` runs: requests in the window are
    refused or 502/503, never another 5xx; the command succeeds and the key works."""
    urls = [stack.urls.external, stack.urls.internal + "collections", stack.urls.external + "collections"]
    result: list[subprocess.CompletedProcess[str]] = []
    with Load(urls) as load:
        time.sleep(0.3)
        adder = threading.Thread(target=lambda: result.append(_cli(stack, "keys", "add", unique_id("restart"))))
        adder.start()
        stack.proxy.stop()
        stack.proxy.start()
        adder.join(timeout=120)
        assert wait_until(_all_ok(urls), 10, 0.1), "the proxy did not come back"
        time.sleep(0.3)
    proc = result[0]
    assert proc.returncode == 0, proc.stderr
    key = proc.stdout.strip().splitlines()[-1]
    codes = load.codes
    assert len(codes) > 10 and codes[-1] == 200
    assert [c for c in codes if c >= 500 and c not in (502, 503)] == []
    cid = unique_id("after-restart")
    r = httpx.post(stack.urls.internal + "collections", json=make_collection(cid), headers=bearer(key), timeout=30)
    assert r.status_code in (200, 201), r.text


def test_rotate_logs_bounds_nginx_api_and_postgres_logs(stack: Stack) -> None:
    import psycopg

    from eomatch.stack.logfiles import rotate_nginx_logs

    logs = stack.paths.logs
    day_logs = sorted((logs / "postgres").glob("postgres-*.log"), key=lambda p: p.stat().st_mtime)
    assert day_logs and day_logs[-1].stat().st_size > 0
    pg_log = day_logs[-1]
    summary = _cli(stack, "rotate-logs")
    assert summary.returncode == 0 and "nothing rotated" in summary.stdout
    text = rotate_nginx_logs(stack, max_bytes=1)
    assert "proxy-access.log" in text and f"postgres/{pg_log.name}" in text
    assert pg_log.with_name(pg_log.name + ".1").stat().st_size > 0
    # PostgreSQL keeps appending to the truncated file: a failed login lands at its start.
    creds = stack.settings.stack.db
    marker = unique_id("no-such-role")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(host=creds.host, port=creds.port, dbname=creds.name, user=marker, password="x", connect_timeout=5)
    assert wait_until(lambda: marker in pg_log.read_text(errors="replace"), 5, 0.1)
    assert pg_log.read_bytes()[:4] != b"\0\0\0\0"  # no sparse gap before the new lines
    # nginx reopened its files: new requests are logged in the fresh proxy-access.log.
    r = httpx.get(stack.urls.external, timeout=10)
    rid = r.headers["x-request-id"].split(",")[0].strip()
    assert wait_until(lambda: rid in (logs / "proxy-access.log").read_text(), 5, 0.05)
    assert rid not in (logs / "proxy-access.log.1").read_text()
