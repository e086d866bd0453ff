"""A PostgreSQL hot standby for the external API (``stack.db.replicas``).

A separate stack with one standby (``db-replica-1``): the external API reads from it,
writes through ``/api/`` reach it within seconds, it may die (``/external/`` falls back
to the primary, ``/health`` names it down) and ``up`` brings it back; lowering the
setting to 0 removes it. (tests/stack/test_replicas.py is about API replicas.)
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from helpers import api_key, bearer, derive_settings, make_collection, make_item, unique_id
from helpers_replica import read_sessions, replica_stack

from eomatch.pgstac import stack_credentials
from eomatch.stack import Stack
from eomatch.stack.process import wait_until
from eomatch.stack.replica import REREAD_IDLE_S, replica_credentials

VISIBLE_WITHIN_S = 5.0
"""A write on the primary shows on /external/ within this (the issue's 'a few seconds')."""


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with replica_stack("eomatch-db-replica-") as st:
        yield st


def _external_ok(stack: Stack, n: int = 5) -> bool:
    with httpx.Client(timeout=10) as client:
        return all(client.get(stack.urls.external + "collections").status_code == 200 for _ in range(n))


def _row(stack: Stack, name: str) -> dict[str, object]:
    return next(r for r in stack.status() if r["service"] == name)


def test_external_reads_from_the_standby_and_sees_writes_within_seconds(stack: Stack) -> None:
    replica = stack.db_replicas[0]
    row = _row(stack, "db-replica-1")
    assert row["pid"] == replica.server_pid() and row["pid"] is not None
    assert row["healthy"] is True
    assert isinstance(row["lag_bytes"], int)

    cid = unique_id("replica-visible")
    r = httpx.post(stack.urls.internal + "collections", json=make_collection(cid), headers=bearer(api_key(stack)),
                   timeout=30)
    assert r.status_code in (200, 201), r.text
    t0 = time.monotonic()
    with httpx.Client(timeout=10) as client:
        seen = wait_until(lambda: client.get(stack.urls.external + f"collections/{cid}").status_code == 200,
                          VISIBLE_WITHIN_S, 0.05)
    assert seen, f"not on /external/ within {VISIBLE_WITHIN_S} s"
    print(f"write visible on /external/ after {time.monotonic() - t0:.3f} s")

    # Items and searches too, not only collections: pgSTAC's search() records each search
    # unless pgstac.readonly is set, and a hot standby refuses that write.
    item = make_item(cid, "on-the-standby", 10.0, 45.0)
    r = httpx.post(stack.urls.internal + f"collections/{cid}/items", json=item, headers=bearer(api_key(stack)),
                   timeout=30)
    assert r.status_code in (200, 201), r.text
    with httpx.Client(timeout=10) as client:
        assert wait_until(lambda: client.get(stack.urls.external + f"collections/{cid}/items/on-the-standby")
                          .status_code == 200, VISIBLE_WITHIN_S, 0.05)
        for _ in range(3):  # several pooled connections, all on the standby
            found = client.get(stack.urls.external + "search", params={"collections": cid, "bbox": "9,44,11,46"})
            assert found.status_code == 200, found.text[:300]
            assert [f["id"] for f in found.json()["features"]] == ["on-the-standby"]
            page = client.get(stack.urls.external + f"collections/{cid}/items")
            assert page.status_code == 200 and len(page.json()["features"]) == 1

    # The external API's pool is on the standby, none of its sessions on the primary.
    assert read_sessions(stack, replica.port) >= 1
    assert read_sessions(stack, stack.settings.stack.db.port) == 0

    health = httpx.get(stack.urls.health, timeout=10).json()
    assert health["components"]["db-replica-1"] == {"ok": True}
    report = stack.health()
    state = report["replication"]["db-replica-1"]
    assert state["ok"] is True and state["lag_bytes"] >= 0 and state["lag_s"] >= 0


def test_cli_status_and_logs_name_the_standby(stack: Stack) -> None:
    import subprocess
    import sys

    cli = [str(Path(sys.executable).parent / "eomatch-stack"), "--config", str(stack.paths.conf / "settings.yaml")]
    status = subprocess.run([*cli, "status"], capture_output=True, text=True, timeout=120)
    assert status.returncode == 0, status.stderr
    line = next(ln for ln in status.stdout.splitlines() if ln.strip().startswith("db-replica-1"))
    assert " up " in line and f"pid={stack.db_replicas[0].server_pid()}" in line and "lag=" in line
    logs = subprocess.run([*cli, "logs", "db-replica-1", "-n", "3"], capture_output=True, text=True, timeout=60)
    assert logs.returncode == 0, logs.stderr
    files = [Path(ln[4:-4]).name for ln in logs.stdout.splitlines() if ln.startswith("==> ")]
    assert files and all(f.startswith("db-replica-1-") for f in files), files
    primary = subprocess.run([*cli, "logs", "db", "-n", "3"], capture_output=True, text=True, timeout=60)
    assert primary.returncode == 0, primary.stderr
    files = [Path(ln[4:-4]).name for ln in primary.stdout.splitlines() if ln.startswith("==> ")]
    assert files and not any(f.startswith("db-replica-") for f in files), files


def test_metrics_report_the_standby(stack: Stack) -> None:
    with stack.apis[0].client() as client:
        text = client.get("/metrics").text
    assert 'eomatch_db_replica_up{replica="db-replica-1"} 1' in text
    assert 'eomatch_db_replica_lag_bytes{replica="db-replica-1"}' in text


def test_a_dead_standby_falls_back_to_the_primary_and_up_brings_it_back(stack: Stack) -> None:
    replica = stack.db_replicas[0]
    pid = replica.server_pid()
    assert pid is not None and _external_ok(stack)
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: replica.server_pid() is None, 10, 0.05)
    # Within seconds every read answers again, from the primary, with the read-only role.
    t0 = time.monotonic()
    assert wait_until(lambda: _external_ok(stack), 10, 0.2)
    print(f"reads on the primary {time.monotonic() - t0:.2f} s after the standby was killed")
    assert read_sessions(stack, stack.settings.stack.db.port) >= 1
    r = httpx.get(stack.urls.health, timeout=10)
    assert r.status_code == 503
    assert r.json()["components"]["db-replica-1"] == {"ok": False}
    assert _row(stack, "db-replica-1")["pid"] is None

    stack.up()  # restarts the crashed standby
    assert replica.server_pid() not in (None, pid) and replica.healthy()
    # Pooled connections renew after REREAD_IDLE_S idle (or REREAD_QUERIES): the
    # primary's read sessions close, and the next reads go to the standby again.
    primary_port = stack.settings.stack.db.port
    assert wait_until(lambda: read_sessions(stack, primary_port) == 0, REREAD_IDLE_S + 15, 0.5)
    assert _external_ok(stack)
    assert read_sessions(stack, replica.port) >= 1
    assert read_sessions(stack, primary_port) == 0


def test_a_broken_standby_is_rebuilt_by_up(stack: Stack) -> None:
    replica = stack.db_replicas[0]
    replica.stop()
    (replica.data_dir / "global" / "pg_control").unlink()  # it cannot start from this
    stack.up()
    assert replica.server_pid() is not None and replica.healthy()
    cid = unique_id("replica-rebuilt")
    r = httpx.post(stack.urls.internal + "collections", json=make_collection(cid), headers=bearer(api_key(stack)),
                   timeout=30)
    assert r.status_code in (200, 201), r.text
    creds = replica_credentials(stack.settings, 1)
    with psycopg.connect(creds.dsn) as conn:
        assert wait_until(lambda: conn.execute("SELECT 1 FROM pgstac.collections WHERE id = %s",
                                               (cid,)).fetchone() is not None, VISIBLE_WITHIN_S, 0.05)


def test_a_running_standby_that_does_not_stream_is_rebuilt_by_up(stack: Stack) -> None:
    replica = stack.db_replicas[0]
    admin = stack_credentials(stack.settings, "admin")
    with psycopg.connect(admin.dsn, autocommit=True) as conn:  # its slot goes: it cannot stream any more

        def drop_slot() -> bool:
            """End the slot's WAL sender, then drop the slot; the standby may reconnect in
            between (it retries at once), so this is tried until the drop wins the race."""
            conn.execute("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                         "WHERE slot_name = %s AND active", (replica.slot,))
            try:
                conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                             "WHERE slot_name = %s AND NOT active", (replica.slot,))
            except psycopg.errors.ObjectInUse:  # reconnected between the check and the drop
                return False
            return not conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s",
                                    (replica.slot,)).fetchall()

        assert wait_until(drop_slot, 15, 0.01)
    pid = replica.server_pid()
    assert pid is not None and wait_until(lambda: not replica.streaming(), 10, 0.2)
    assert wait_until(lambda: stack.health()["components"]["db-replica-1"]["ok"] is False, 10, 0.2)
    stack.up()
    assert replica.server_pid() not in (None, pid) and replica.streaming()
    cid = unique_id("replica-restreams")
    r = httpx.post(stack.urls.internal + "collections", json=make_collection(cid), headers=bearer(api_key(stack)),
                   timeout=30)
    assert r.status_code in (200, 201), r.text
    with httpx.Client(timeout=10) as client:
        assert wait_until(lambda: client.get(stack.urls.external + f"collections/{cid}").status_code == 200,
                          VISIBLE_WITHIN_S, 0.05)


def test_restore_reaches_the_standby(stack: Stack, tmp_path: Path) -> None:
    from eomatch.stack.backup import backup, restore

    key = api_key(stack)
    kept, dropped = unique_id("replica-restore-kept"), unique_id("replica-restore-dropped")
    r = httpx.post(stack.urls.internal + "collections", json=make_collection(kept), headers=bearer(key), timeout=30)
    assert r.status_code in (200, 201), r.text
    backup(stack.settings, tmp_path / "cat.dump")
    r = httpx.post(stack.urls.internal + "collections", json=make_collection(dropped), headers=bearer(key), timeout=30)
    assert r.status_code in (200, 201), r.text
    summary = restore(stack.settings, tmp_path / "cat.dump")
    assert summary.endswith("; db-replica-1 in step"), summary
    # True of the standby when restore returns: no waiting here.
    creds = replica_credentials(stack.settings, 1)
    with psycopg.connect(creds.dsn) as conn:
        ids = {row[0] for row in conn.execute("SELECT id FROM pgstac.collections WHERE id IN (%s, %s)",
                                              (kept, dropped))}
    assert ids == {kept}
    with httpx.Client(timeout=10) as client:
        assert client.get(stack.urls.external + f"collections/{kept}").status_code == 200
        assert wait_until(lambda: client.get(stack.urls.external + f"collections/{dropped}").status_code == 404,
                          VISIBLE_WITHIN_S, 0.05)


def test_down_up_keeps_the_standby_and_replicas_0_removes_it(stack: Stack) -> None:
    replica = stack.db_replicas[0]
    cid = unique_id("replica-kept")
    r = httpx.post(stack.urls.internal + "collections", json=make_collection(cid), headers=bearer(api_key(stack)),
                   timeout=30)
    assert r.status_code in (200, 201), r.text
    stopped = stack.down()
    assert "db-replica-1" in stopped and replica.server_pid() is None
    stack.up()
    assert replica.server_pid() is not None
    with httpx.Client(timeout=10) as client:
        assert wait_until(lambda: client.get(stack.urls.external + f"collections/{cid}").status_code == 200,
                          VISIBLE_WITHIN_S, 0.05)

    stack.down()
    without = Stack(derive_settings(stack.settings, {"db": {"replicas": 0}}), quiet=True)
    try:
        without.up()
        assert not replica.data_dir.exists()
        assert "db-replica-1" not in [r["service"] for r in without.status()]
        admin = replica_credentials(stack.settings, 1, "admin")
        with psycopg.connect(admin.dsn.replace(f":{admin.port}/", f":{stack.settings.stack.db.port}/")) as conn:
            assert conn.execute("SELECT slot_name FROM pg_replication_slots").fetchall() == []
        with httpx.Client(timeout=10) as client:  # the external API reads the primary
            assert client.get(stack.urls.external + f"collections/{cid}").status_code == 200
        assert read_sessions(stack, stack.settings.stack.db.port) >= 1
    finally:
        without.down()
        stack.up()  # as the fixture's teardown expects (it has the standby again)


# --- Compose: the same topology from the same settings ------------------------------


def test_compose_renders_a_db_replica_the_external_api_reads(tmp_path: Path) -> None:
    import re

    import yaml

    from eomatch.settings import load_settings
    from eomatch.stack.render import render_deploy_files
    from eomatch.stack.replica import replica_address

    settings = load_settings(overrides={"stack": {"db": {"replicas": 1}}}, environ={})
    files = render_deploy_files(settings)
    compose = yaml.safe_load(files["compose.yaml"])
    services = compose["services"]
    replica = services["db-replica"]
    assert replica["image"] == services["db"]["image"]  # the same image
    script = replica["command"][0]
    assert "pg_basebackup" in script and "-S eomatch_replica_1" in script and "-U eomatch_replication" in script
    assert replica["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "pgdata-replica-1" in compose["volumes"]
    ext = services["api-external"]["environment"]
    assert ext["PGHOST"] == "db-replica,${POSTGRES_HOST:-db}" and ext["PGPORT"] == "5432,${POSTGRES_PORT:-5432}"
    assert ext["PGTARGETSESSIONATTRS"] == "prefer-standby" and ext["PGUSER"] == settings.stack.db.read_user
    internal = services["api-internal"]["environment"]
    assert internal["PGHOST"] == "${POSTGRES_HOST:-db}"  # writers: the primary only
    assert "EOMATCH_REPLICATION_PASSWORD" in services["migrate"]["environment"]
    # The primary accepts the replication role (and only it) for replication.
    assert services["db"]["command"] == ["postgres", "-c", "hba_file=/etc/eomatch/pg_hba.conf"]
    assert re.search(r"^host\s+replication\s+eomatch_replication\s+all\s+scram-sha-256$", files["db/pg_hba.conf"], re.M)
    # The APIs' settings know where the standby is (health, metrics).
    api_settings = load_settings(overrides=yaml.safe_load(files["settings.yaml"]), environ={})
    assert api_settings.stack.db.replicas == 1
    assert replica_address(api_settings, 1) == ("db-replica", 5432)
    env_example = (Path(__file__).resolve().parents[2] / "deploy" / ".env.example").read_text()
    assert "EOMATCH_REPLICATION_PASSWORD=" in env_example

    # Without standbys nothing of it is rendered.
    plain = render_deploy_files(load_settings(environ={}))
    assert "db-replica" not in plain["compose.yaml"] and "db/pg_hba.conf" not in plain


def test_db_setup_creates_the_replication_role_and_slots(stack: Stack, tmp_path: Path) -> None:
    """Compose's migrate service, run against this stack's primary with two standbys."""
    import subprocess
    import sys

    import yaml

    from eomatch.pgstac import stack_credentials
    from eomatch.stack.render import compose_settings_yaml
    from eomatch.stack.state import load_secrets

    role = unique_id("repl").replace("-", "_")
    conf = tmp_path / "settings.yaml"
    conf.write_text(compose_settings_yaml(derive_settings(stack.settings, {"db": {"replicas": 2, "replication_user": role}})))
    assert yaml.safe_load(conf.read_text())["stack"]["db"]["replicas"] == 2
    admin = stack_credentials(stack.settings, "admin")
    secrets = load_secrets(stack.paths)  # the stack's own: its roles stay as they are
    secrets_env = {f"EOMATCH_{k.upper()}_PASSWORD": secrets[f"{k}_password"] for k in ("api", "ingest", "read")}
    env = {"PATH": os.environ["PATH"], **admin.pg_env(), **secrets_env, "EOMATCH_CONFIG": str(conf)}
    cli = [str(Path(sys.executable).parent / "eomatch-stack"), "db-setup"]
    missing = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=120)
    assert missing.returncode != 0 and "EOMATCH_REPLICATION_PASSWORD" in missing.stderr.strip().splitlines()[-1]
    replication_pw = "r" + unique_id("pw")
    done = subprocess.run(cli, env={**env, "EOMATCH_REPLICATION_PASSWORD": replication_pw},
                          capture_output=True, text=True, timeout=120)
    try:
        assert done.returncode == 0, done.stderr
        assert role in done.stdout
        with psycopg.connect(admin.dsn) as conn:
            slots = {r[0] for r in conn.execute("SELECT slot_name FROM pg_replication_slots")}
            assert {"eomatch_replica_1", "eomatch_replica_2"} <= slots
            assert conn.execute("SELECT rolreplication FROM pg_roles WHERE rolname = %s", (role,)).fetchone() == (True,)
        # The role logs in for replication with the password db-setup gave it.
        repl = psycopg.connect(f"host={admin.host} port={admin.port} user={role} "
                               f"password={replication_pw} replication=true dbname=replication", autocommit=True)
        repl.close()
    finally:
        from eomatch.stack.replica import drop_slot

        drop_slot(stack.settings, "eomatch_replica_2")  # this stack has one standby
        with psycopg.connect(admin.dsn, autocommit=True) as conn:
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')
