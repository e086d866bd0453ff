"""Logs, metrics and health of the local stack.

Read-mostly checks run on the session stack. Checks that need another log
format or rotate logs run on a second proxy (own state folder and port) in
front of the session stack's APIs, so the session's own logs stay untouched.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import RunningStack
from helpers import (
    bearer,
    derive_settings,
    make_collection,
    make_item,
    root_logging_restored,
    unique_id,
)
from helpers_stack import loopback_url, second_proxy

from eomatch.server.health import collect_health
from eomatch.settings import Settings
from eomatch.stack import Stack
from eomatch.stack.api import ApiService
from eomatch.stack.keys import add_key
from eomatch.stack.logfiles import rotate_nginx_logs
from eomatch.stack.proxy import Proxy
from eomatch.stack.state import StatePaths

BIN = Path(sys.executable).parent


def _metric(text: str, name: str, **labels: str) -> float:
    """Sum of a Prometheus sample over series whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        m = re.match(rf"^{re.escape(name)}\{{(.*)\}} (\S+)$", line)
        if not m:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(m.group(2))
    return total


def _wait_for_log(path: Path, needle: str, timeout_s: float = 5.0) -> str:
    """The log's text once it holds ``needle``: nginx logs a request after answering it."""
    from eomatch.stack.process import wait_until

    wait_until(lambda: path.exists() and needle in path.read_text(errors="replace"), timeout_s, 0.05)
    return path.read_text(errors="replace")


@pytest.fixture(scope="module")
def side_proxy(running_stack: RunningStack) -> Iterator[tuple[Settings, str]]:
    """A second nginx with JSON logs in front of the session stack's APIs."""
    with second_proxy(running_stack.settings, "eomatch-obs-", stack={"log_format": "json"}) as proxy:
        yield proxy.settings, loopback_url(proxy)


# --- logs --------------------------------------------------------------------------


def test_writes_log_the_key_name_and_never_the_key(running_stack: RunningStack) -> None:
    name = unique_id("obs-writer")
    key = add_key(running_stack.paths, name)
    Proxy(running_stack.settings).reload()
    cid = unique_id("obs")
    with httpx.Client(headers=bearer(key), timeout=30) as client:
        r = client.post(f"{running_stack.internal}/collections", json=make_collection(cid))
        assert r.status_code in (200, 201), r.text
        r = client.post(f"{running_stack.internal}/collections/{cid}/items", json=make_item(cid, "i1", 1.0, 2.0))
        assert r.status_code in (200, 201), r.text
        # A rejected write with a wrong key must not log that key either.
        bad = key[::-1]
        assert client.post(f"{running_stack.internal}/collections", json=make_collection(cid + "x"),
                           headers=bearer(bad)).status_code == 401
    logs = running_stack.paths.logs
    _wait_for_log(logs / "proxy-access.log", f"key={name}")
    time.sleep(0.2)  # let the last (rejected) write be logged too
    files = [p for p in logs.rglob("*") if p.is_file()]
    assert any(p.name == "proxy-access.log" for p in files)
    leaking = [str(p) for p in files if key.encode() in p.read_bytes() or bad.encode() in p.read_bytes()]
    assert leaking == []
    access = (logs / "proxy-access.log").read_text(errors="replace")
    posts = [ln for ln in access.splitlines() if f"key={name}" in ln and "POST /api/collections" in ln]
    assert len(posts) >= 2


def test_api_request_logs_carry_method_path_status_latency_and_request_id(running_stack: RunningStack) -> None:
    r = httpx.get(f"{running_stack.internal}/collections?limit=3", timeout=10)
    assert r.status_code == 200
    rid = r.headers["x-request-id"].split(",")[0].strip()
    app_log = running_stack.paths.logs / "api-internal.app.log"
    lines = [ln for ln in _wait_for_log(app_log, f"rid={rid}").splitlines() if f"rid={rid}" in ln]
    assert len(lines) == 1, app_log.read_text()[-1500:]
    assert re.search(r"eomatch\.access: GET /collections 200 \d+\.\dms rid=", lines[0])


def test_proxy_json_logs_one_object_per_line(side_proxy: tuple[Settings, str]) -> None:
    settings, base = side_proxy
    paths = StatePaths(settings.stack.state_dir)
    name = unique_id("json-writer")
    key = add_key(paths, name)
    Proxy(settings).reload()
    r = httpx.get(f"{base}/external/collections", timeout=10)
    assert r.status_code == 200
    rid = r.headers["x-request-id"].split(",")[0].strip()
    # A write through this proxy: rejected by the app (unknown collection) but logged by name.
    w = httpx.post(f"{base}/api/collections/{unique_id('none')}/items", json={}, headers=bearer(key), timeout=10)
    assert w.status_code not in (401, 403)
    lines = _wait_for_log(paths.logs / "proxy-access.log", name).splitlines()
    records = [json.loads(ln) for ln in lines]  # every line is one JSON object
    assert all({"time", "level", "service", "message", "request_id", "status"} <= rec.keys() for rec in records)
    mine = [rec for rec in records if rec["request_id"] == rid]
    assert len(mine) == 1 and mine[0]["path"] == "/external/collections" and mine[0]["status"] == 200
    assert mine[0]["service"] == "proxy"
    writes = [rec for rec in records if rec["method"] == "POST"]
    assert writes and writes[-1]["api_key_name"] == name
    assert key not in "\n".join(lines)


def test_api_json_logs_one_object_per_line(running_stack: RunningStack, tmp_path: Path) -> None:
    """The apps' request logs in JSON (what ``--log-format json`` gives the API services)."""
    from fastapi.testclient import TestClient

    from eomatch.logs import configure_logging
    from eomatch.server.app import create_app

    log_file = tmp_path / "api.log"
    with root_logging_restored():
        configure_logging("api-internal", "json", log_file=log_file)
        app = create_app(running_stack.settings, "internal", running_stack.credentials("ingest"))
        with TestClient(app) as client:
            r = client.get("/collections", headers={"X-Request-ID": "obs-json-1"})
            assert r.status_code == 200
            assert client.get("/collections/does-not-exist").status_code == 404
    records = [json.loads(ln) for ln in log_file.read_text().splitlines()]
    access = [rec for rec in records if rec.get("logger") == "eomatch.access"]
    ok = [rec for rec in access if rec.get("request_id") == "obs-json-1"]
    assert len(ok) == 1
    rec = ok[0]
    assert rec["service"] == "api-internal" and rec["level"] == "info"
    assert (rec["method"], rec["path"], rec["status"]) == ("GET", "/collections", 200)
    assert isinstance(rec["latency_ms"], float) and rec["latency_ms"] >= 0
    datetime.strptime(rec["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert any(r["status"] == 404 and r["path"] == "/collections/does-not-exist" for r in access)


def test_rotate_logs_renames_and_nginx_reopens(side_proxy: tuple[Settings, str]) -> None:
    settings, base = side_proxy
    paths = StatePaths(settings.stack.state_dir)
    access = paths.logs / "proxy-access.log"
    for _ in range(3):
        r = httpx.get(f"{base}/external/", timeout=10)
        assert r.status_code == 200
    _wait_for_log(access, r.headers["x-request-id"].split(",")[0].strip())
    old_size = access.stat().st_size
    assert old_size > 0
    nothing = rotate_nginx_logs(Stack(settings, quiet=True))  # 10 MB limit: nothing is that big
    assert "nothing rotated" in nothing and not access.with_name("proxy-access.log.1").exists()
    summary = rotate_nginx_logs(Stack(settings, quiet=True), max_bytes=1)
    assert "proxy-access.log" in summary
    rotated = access.with_name("proxy-access.log.1")
    assert rotated.stat().st_size == old_size
    r = httpx.get(f"{base}/external/collections", timeout=10)
    rid = r.headers["x-request-id"].split(",")[0].strip()
    assert rid in _wait_for_log(access, rid)  # nginx writes to the new file (reopened on USR1)
    assert rid not in rotated.read_text() and rotated.stat().st_size == old_size
    # A second rotation shifts .1 to .2.
    rotate_nginx_logs(Stack(settings, quiet=True), max_bytes=1)
    assert access.with_name("proxy-access.log.2").stat().st_size == old_size


def test_postgres_and_apis_log_to_files_under_the_state_folder(running_stack: RunningStack) -> None:
    logs = running_stack.paths.logs
    pg = list((logs / "postgres").glob("postgres-*.log"))
    assert pg, "PostgreSQL's logging collector writes its own (rotating) files"
    conf = (running_stack.paths.pgdata / "postgresql.auto.conf").read_text()
    assert "logging_collector = on" in conf and "log_rotation_size" in conf
    for name in ("api-internal.app.log", "api-external.app.log", "proxy-access.log", "browser-access.log"):
        assert (logs / name).stat().st_size > 0, name


# --- metrics -----------------------------------------------------------------------


def test_metrics_on_both_api_ports_and_under_api_but_not_external(running_stack: RunningStack) -> None:
    internal_app = ApiService(running_stack.settings, "internal").client()  # the app's own socket
    before = internal_app.get("/metrics")
    assert before.status_code == 200
    n0 = _metric(before.text, "http_requests_total", handler="/collections", method="GET", status="200")
    for _ in range(3):
        assert httpx.get(f"{running_stack.internal}/collections", timeout=10).status_code == 200
    after = httpx.get(f"{running_stack.internal}/metrics", timeout=10)  # through nginx
    assert after.status_code == 200
    assert _metric(after.text, "http_requests_total", handler="/collections", method="GET", status="200") == n0 + 3
    assert _metric(after.text, "http_request_duration_seconds_count", handler="/collections", status="200") >= 3
    # latency is labelled by status too: a 404 is counted apart from the 200s
    missing = f"{running_stack.internal}/collections/{unique_id('no-such')}"
    assert httpx.get(missing, timeout=10).status_code == 404
    latest = internal_app.get("/metrics").text
    assert _metric(latest, "http_request_duration_seconds_count", handler="/collections/{collection_id}", status="404") >= 1
    ext = ApiService(running_stack.settings, "external").client().get("/metrics")
    assert ext.status_code == 200 and "http_requests_total" in ext.text
    blocked = httpx.get(f"{running_stack.external}/metrics", timeout=10)
    assert blocked.status_code == 404
    assert "http_requests_total" not in blocked.text


# --- health ------------------------------------------------------------------------


def _write_fresh_item(running_stack: RunningStack) -> str:
    key = add_key(running_stack.paths, unique_id("obs-health"))
    Proxy(running_stack.settings).reload()
    cid = unique_id("health")
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    with httpx.Client(headers=bearer(key), timeout=30) as client:
        assert client.post(f"{running_stack.internal}/collections", json=make_collection(cid)).status_code in (200, 201)
        item = make_item(cid, "fresh", 3.0, 4.0, properties={"updated": now})
        assert client.post(f"{running_stack.internal}/collections/{cid}/items", json=item).status_code in (200, 201)
    return cid


def test_health_through_nginx_reports_components_and_freshness(running_stack: RunningStack) -> None:
    cid = _write_fresh_item(running_stack)
    r = httpx.get(running_stack.base_url + "/health", timeout=20)
    assert r.status_code == 200, r.text
    report: dict[str, Any] = r.json()
    assert report["status"] == "ok"
    assert {"db", "api-internal", "api-external", "browser"} <= set(report["components"])
    assert all(c["ok"] for c in report["components"].values())
    cat = report["catalogue"]
    assert cat["items_per_collection"][cid] == 1
    assert cat["items_total"] >= 1 and cat["newest_updated"] is not None
    assert report["stale"] is False  # default age limit: a week


def test_stale_beyond_the_configured_age(running_stack: RunningStack) -> None:
    _write_fresh_item(running_stack)
    dsn = running_stack.credentials("read").dsn
    fresh = collect_health(derive_settings(running_stack.settings, {"stale_after_s": 3600.0}), dsn)
    assert fresh["stale"] is False and fresh["catalogue"]["age_s"] < 3600
    stale = collect_health(derive_settings(running_stack.settings, {"stale_after_s": 0.0}), dsn)
    assert stale["stale"] is True
    assert stale["status"] == "ok"  # stale data is reported, not an outage


def test_status_command_prints_services_and_catalogue(running_stack: RunningStack) -> None:
    conf = running_stack.paths.conf / "settings.yaml"
    proc = subprocess.run([str(BIN / "eomatch-stack"), "--config", str(conf), "status"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    for service in ("db", "api-internal", "api-external", "browser", "proxy"):
        assert re.search(rf"^\s+{service}\s+up\s", proc.stdout, re.M), proc.stdout
    assert re.search(r"catalogue: \d+ items in \d+ collections", proc.stdout)
    js = subprocess.run([str(BIN / "eomatch-stack"), "--config", str(conf), "status", "--json"],
                        capture_output=True, text=True, timeout=60)
    assert js.returncode == 0
    assert json.loads(js.stdout)["health"]["status"] == "ok"


# --- scheduled ingest (deploy/systemd, deploy/cron.example) --------------------------

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _unit(name: str) -> Any:
    import configparser

    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read_string((DEPLOY / "systemd" / name).read_text())
    return parser


def test_ingest_units_run_the_console_script_on_a_timer() -> None:
    import shlex
    import tomllib

    service = _unit("eomatch-ingest.service")
    assert service["Service"]["Type"] == "oneshot"
    argv = shlex.split(service["Service"]["ExecStart"])
    scripts = tomllib.loads((DEPLOY.parent / "pyproject.toml").read_text())["project"]["scripts"]
    assert Path(argv[0]).name == "eomatch-ingest" and scripts["eomatch-ingest"] == "eomatch.cli.ingest:main"
    assert argv[argv.index("--since") + 1] == "last"
    assert argv[argv.index("--exit-codes") + 1] == "monitoring"
    assert argv[argv.index("--config") + 1] == "/etc/eomatch/run.yaml"
    assert set(service["Service"]["SuccessExitStatus"].split()) == {"3"}  # a locked run exits 0
    timer = _unit("eomatch-ingest.timer")
    assert timer["Timer"]["Unit"] == "eomatch-ingest.service"
    assert timer["Timer"]["Persistent"] == "true" and timer["Timer"]["OnCalendar"]
    assert timer["Install"]["WantedBy"] == "timers.target"
    cron = [ln for ln in (DEPLOY / "cron.example").read_text().splitlines() if "eomatch-ingest " in ln and not ln.startswith("#")]
    assert cron and all("--since last" in ln for ln in cron)


def test_the_units_command_line_runs(running_stack: RunningStack, tmp_path: Path) -> None:
    """ExecStart's arguments, with this venv's script and a config of the session stack:
    first run ingests (0), the next finds nothing to do (3, a success for systemd)."""
    import shlex
    import uuid

    import yaml
    from catalogue_factory import build_catalogue

    start = datetime(2020, 1 + uuid.uuid4().int % 12, 1 + uuid.uuid4().int % 27, 8, 0, tzinfo=UTC)
    cat = build_catalogue(tmp_path / "cat", n_events=1, start=start)
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({
        "matchup_catalogue": {"path": str(cat.root)},
        "stack": {"state_dir": str(running_stack.settings.stack.state_dir),
                  "db": {"port": running_stack.settings.stack.db.port}},
    }))
    argv = shlex.split(_unit("eomatch-ingest.service")["Service"]["ExecStart"])
    argv[0] = str(BIN / Path(argv[0]).name)
    argv[argv.index("--config") + 1] = str(config)
    ok = set(_unit("eomatch-ingest.service")["Service"]["SuccessExitStatus"].split()) | {"0"}
    first = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    second = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert second.returncode == 3, second.stdout + second.stderr
    assert str(second.returncode) in ok
