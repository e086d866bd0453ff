"""Per-role timeouts and the Compose ``db-setup`` refusing placeholder secrets, on a
database of its own (only PostgreSQL runs: these are role settings).

Before: ``statement_timeout`` was 0 for every role, so one runaway query could hold
the database for as long as it liked; ``db-setup`` accepted ``change-me-read``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from conftest import RunningStack, private_database
from helpers import derive_settings

from eomatch.settings import Settings
from eomatch.stack.db import Database, stack_credentials

pytestmark = pytest.mark.stack

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
API_TIMEOUT_S = 1.0


@pytest.fixture(scope="module")
def db_only() -> Iterator[Settings]:
    timeouts = {"statement_timeout_s": API_TIMEOUT_S, "idle_in_transaction_timeout_s": API_TIMEOUT_S}
    with private_database("eomatch-roles-", db=timeouts) as settings:
        yield settings


def _show(settings: Settings, role: str) -> tuple[str, str]:
    with psycopg.connect(stack_credentials(settings, role).dsn) as conn:
        statement = conn.execute("SHOW statement_timeout").fetchone()
        idle = conn.execute("SHOW idle_in_transaction_session_timeout").fetchone()
    assert statement is not None and idle is not None
    return str(statement[0]), str(idle[0])


def test_each_role_gets_its_timeouts(db_only: Settings) -> None:
    assert _show(db_only, "api") == ("1s", "1s")  # the internal API
    assert _show(db_only, "read") == ("1s", "1s")  # the external API
    assert _show(db_only, "ingest") == ("0", "0")  # bulk loads: none
    assert _show(db_only, "admin") == ("0", "0")  # migrations, restores: none


@pytest.mark.parametrize("role", ["api", "read"])
def test_a_long_api_query_is_cancelled(db_only: Settings, role: str) -> None:
    with psycopg.connect(stack_credentials(db_only, role).dsn, autocommit=True) as conn:
        t0 = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled, match="statement timeout"):
            conn.execute("SELECT pg_sleep(5)")
        assert time.monotonic() - t0 < 4
        assert conn.execute("SELECT 1").fetchone() == (1,)  # the session itself lives on


def test_an_ingest_query_is_not(db_only: Settings) -> None:
    with psycopg.connect(stack_credentials(db_only, "ingest").dsn) as conn:
        assert conn.execute("SELECT pg_sleep(1.5), 1").fetchone() == ("", 1)


def test_an_api_session_idle_in_a_transaction_is_ended(db_only: Settings) -> None:
    with psycopg.connect(stack_credentials(db_only, "read").dsn) as conn:
        conn.execute("SELECT 1")  # opens a transaction (psycopg is not autocommit)
        time.sleep(API_TIMEOUT_S + 1.0)
        # the server ended the session; psycopg reports why, or a closed connection
        with pytest.raises((psycopg.errors.IdleInTransactionSessionTimeout, psycopg.OperationalError)):
            conn.execute("SELECT 1")


def test_changed_settings_apply_on_setup_and_zero_means_none(db_only: Settings) -> None:
    relaxed = derive_settings(db_only, {"db": {"statement_timeout_s": 0, "idle_in_transaction_timeout_s": 0,
                                                "ingest_statement_timeout_s": 3600}})
    try:
        Database(relaxed).setup_database()
        assert _show(relaxed, "read") == ("0", "0")
        assert _show(relaxed, "ingest") == ("1h", "0")
    finally:
        Database(db_only).setup_database()
    assert _show(db_only, "read") == ("1s", "1s")


def _parallel(settings: Settings, role: str) -> str:
    with psycopg.connect(stack_credentials(settings, role).dsn) as conn:
        row = conn.execute("SHOW max_parallel_workers_per_gather").fetchone()
    assert row is not None
    return str(row[0])


def test_api_searches_launch_no_parallel_workers(db_only: Settings) -> None:
    """At 1M items a search's count was planned in parallel, and starting the workers
    cost more than the scans they shared (bbox + month p50 34.6 -> 53.6 ms, 100k -> 1M)."""
    with psycopg.connect(stack_credentials(db_only, "admin").dsn) as conn:
        server_default = str(conn.execute("SHOW max_parallel_workers_per_gather").fetchone()[0])  # type: ignore[index]
    assert server_default != "0"  # else this test could not tell
    assert _parallel(db_only, "api") == "0"
    assert _parallel(db_only, "read") == "0"
    assert _parallel(db_only, "ingest") == server_default  # bulk work keeps the server's
    changed = derive_settings(db_only, {"db": {"api_parallel_workers": 3}})
    try:
        Database(changed).setup_database()
        assert (_parallel(changed, "api"), _parallel(changed, "read")) == ("3", "3")
    finally:
        Database(db_only).setup_database()
    assert _parallel(db_only, "read") == "0"


def test_session_stack_defaults(running_stack: RunningStack) -> None:
    """The defaults the session stack runs with: a minute for the APIs, none for ingest."""
    assert _show(running_stack.settings, "read") == ("1min", "1min")
    assert _show(running_stack.settings, "api") == ("1min", "1min")
    assert _show(running_stack.settings, "ingest") == ("0", "0")


# --- Compose's db-setup: placeholders from deploy/.env.example are refused ---------------


def _env_example() -> dict[str, str]:
    pairs = {}
    for line in (REPO / "deploy" / ".env.example").read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def _db_setup(settings: Settings, **secrets: str) -> subprocess.CompletedProcess[str]:
    admin = stack_credentials(settings, "admin")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EOMATCH_", "PG"))}
    env.update(PGHOST=admin.host, PGPORT=str(admin.port), PGDATABASE=admin.dbname, PGUSER=admin.user,
               PGPASSWORD=admin.password)
    env.update(secrets)
    conf = settings.stack.state_dir / "db-setup.yaml"
    conf.write_text(f"stack:\n  db:\n    name: {settings.stack.db.name}\n")
    return subprocess.run([str(BIN / "eomatch-stack"), "--config", str(conf), "db-setup"],
                          capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize(
    "example_key,env_key,named",
    [
        ("EOMATCH_ADMIN_PASSWORD", "PGPASSWORD", "PGPASSWORD"),  # Compose passes it as PGPASSWORD
        ("EOMATCH_API_PASSWORD", "EOMATCH_API_PASSWORD", "EOMATCH_API_PASSWORD"),
        ("EOMATCH_READ_PASSWORD", "EOMATCH_READ_PASSWORD", "EOMATCH_READ_PASSWORD"),
        ("EOMATCH_API_KEYS", "EOMATCH_API_KEYS", "API key 'pipeline'"),
    ],
)
def test_db_setup_refuses_the_env_example_placeholders(
    db_only: Settings, example_key: str, env_key: str, named: str
) -> None:
    example = _env_example()
    assert example_key in example, f"deploy/.env.example has no {example_key}"
    good = {"EOMATCH_API_PASSWORD": "a" * 32, "EOMATCH_INGEST_PASSWORD": "b" * 32,
            "EOMATCH_READ_PASSWORD": "c" * 32, "EOMATCH_API_KEYS": "pipeline:" + "d" * 32}
    proc = _db_setup(db_only, **{**good, env_key: example[example_key]})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = proc.stderr.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert "placeholder" in err and named in err, err
    # nothing was changed: the stack's own read password still logs in
    with psycopg.connect(stack_credentials(db_only, "read").dsn) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_compose_proxy_refuses_the_placeholder_key(tmp_path: Path) -> None:
    """The proxy container's entrypoint script (nginx runs the ones in
    /docker-entrypoint.d/ and stops when one fails)."""
    script = REPO / "deploy" / "nginx" / "render-keys.sh"
    out = tmp_path / "keys.conf"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "EOMATCH_KEYS_CONF": str(out)}
    refused = subprocess.run(["sh", str(script)], env={**env, "EOMATCH_API_KEYS": _env_example()["EOMATCH_API_KEYS"]},
                             capture_output=True, text=True, timeout=30)
    assert refused.returncode != 0 and "placeholder" in refused.stderr
    assert not out.exists()
    key = "k" * 43
    accepted = subprocess.run(["sh", str(script)], env={**env, "EOMATCH_API_KEYS": f"pipeline:{key}"},
                              capture_output=True, text=True, timeout=30)
    assert accepted.returncode == 0, accepted.stderr
    line = next(ln for ln in out.read_text().splitlines() if key in ln)  # the key's map entry
    assert line.rstrip().endswith('"pipeline";')
