"""``eomatch-stack up --log-format json``: every service's log is one JSON object per
line, and one request can be followed by its id from nginx to the API."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml
from conftest import make_state_dir, stack_settings

pytestmark = pytest.mark.stack

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def json_stack() -> Iterator[tuple[Any, Path]]:
    state_dir = make_state_dir("eomatch-jsonlogs-")
    settings = stack_settings(state_dir)
    config = state_dir / "test-settings.yaml"
    config.write_text(yaml.safe_dump(settings.model_dump(mode="json", exclude={"config_file"})))
    cmd = [str(BIN / "eomatch-stack"), "--config", str(config)]
    up = subprocess.run([*cmd, "up", "--log-format", "json", "-q"], capture_output=True, text=True, timeout=300)
    try:
        assert up.returncode == 0, up.stderr
        yield settings, state_dir / "logs"
    finally:
        subprocess.run([*cmd, "down"], capture_output=True, text=True, timeout=120)
        shutil.rmtree(state_dir, ignore_errors=True)


def _records(path: Path) -> list[dict[str, Any]]:
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    assert lines, f"{path} is empty"
    return [json.loads(ln) for ln in lines]  # every line is one JSON object


def test_every_service_logs_json_lines_with_request_ids(json_stack: tuple[Any, Path]) -> None:
    settings, logs = json_stack
    base = f"http://127.0.0.1:{settings.stack.proxy.port}"
    r = httpx.get(f"{base}/external/collections", timeout=30)
    assert r.status_code == 200
    rid = r.headers["X-Request-ID"]
    page = httpx.get(f"{base}/", timeout=30)
    assert page.status_code == 200
    browser_rid = page.headers["X-Request-ID"]
    db = settings.stack.db
    with pytest.raises(psycopg.OperationalError):  # something for PostgreSQL to log
        psycopg.connect(host=db.host, port=db.port, dbname=db.name, user="nobody_here", password="x", connect_timeout=5)
    time.sleep(1.0)

    proxy = _records(logs / "proxy-access.log")
    assert any(rec.get("request_id") == rid and rec["path"] == "/external/collections" for rec in proxy)
    api = _records(logs / "api-external.app.log")
    mine = [rec for rec in api if rec.get("request_id") == rid]
    assert mine and {"method", "path", "status", "latency_ms"} <= set(mine[-1])
    assert all({"time", "level", "service", "message"} <= set(rec) for rec in api)
    browser = _records(logs / "browser-access.log")
    assert any(rec.get("request_id") == browser_rid for rec in browser)
    pg_json = sorted((logs / "postgres").glob("*.json"))
    assert pg_json, "PostgreSQL wrote no JSON log"
    pg = [rec for f in pg_json for rec in _records(f)]
    assert any("nobody_here" in json.dumps(rec) for rec in pg)
