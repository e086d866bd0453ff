"""eomatch.pgstac.ensure_marker_index: the database's setup indexes the items' markers
(also on a database that had items before), every partition has the index, ingest's
check of the markers reads the index alone, and what the check finds is unchanged."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Any

import psycopg

from eomatch.ingest import MARKERS_SQL, ingest
from eomatch.pgstac import MARKER_INDEX
from eomatch.stack.db import DbCredentials, setup_database, stack_credentials

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import _synth  # noqa: E402


def partitions_without_index(conn: psycopg.Connection) -> list[str]:
    """Item partitions (leaves of ``pgstac.items``) without the marker index's copy."""
    rows = conn.execute(
        "SELECT t.relid::regclass::text FROM pg_partition_tree('pgstac.items') t WHERE t.isleaf AND NOT EXISTS ("
        " SELECT 1 FROM pg_index x WHERE x.indrelid = t.relid"
        " AND pg_get_indexdef(x.indexrelid) LIKE '%(collection) INCLUDE (private)')"
    ).fetchall()
    return [r[0] for r in rows]


def test_setup_indexes_the_markers_and_the_check_reads_the_index(running_stack: Any, tmp_path: Path) -> None:
    settings = running_stack.settings
    admin = stack_credentials(settings, "admin")
    role = stack_credentials(settings, "ingest")
    name = f"marker_test_{uuid.uuid4().hex[:10]}"
    setup_database(admin, name, {role.user: role.password}, {})
    creds = DbCredentials(role.host, role.port, name, role.user, role.password)
    root = tmp_path / "cat"
    made = _synth.generate(root, 120, seed=7, workers=1)

    def run(**kw: Any) -> Any:
        return ingest(settings, catalogue=root, db_host=creds.host, db_port=creds.port, db_name=name,
                      db_user=creds.user, db_password=creds.password, quiet=True, **kw)  # fmt: skip

    with psycopg.connect(DbCredentials(admin.host, admin.port, name, admin.user, admin.password).dsn,
                         autocommit=True) as conn:  # fmt: skip
        # A database from before the index: its items are loaded without it.
        conn.execute(f"DROP INDEX pgstac.{MARKER_INDEX}")
        assert run().new == made.items
        assert partitions_without_index(conn)  # the partitions exist, unindexed
        setup_database(admin, name, {role.user: role.password}, {})  # the next 'eomatch-stack up'
        setup_database(admin, name, {role.user: role.password}, {})  # idempotent
        assert partitions_without_index(conn) == []
        assert conn.execute(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = 'pgstac' AND indexname = %s", (MARKER_INDEX,)
        ).fetchone() == (1,)

        source = conn.execute("SELECT private->>'eomatch:source' FROM pgstac.items LIMIT 1").fetchone()[0]  # type: ignore[index]
        conn.execute("VACUUM (ANALYZE) pgstac.items")  # as autovacuum does after a load
        # These partitions are a page or two, where reading the table is cheaper: ask for
        # what a large one gets, the index alone.
        conn.execute("SET enable_seqscan = off")
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + MARKERS_SQL, {"src": source}))
        assert "Index Only Scan" in plan and "Seq Scan on _items" not in plan, plan
        by_index = conn.execute(MARKERS_SQL, {"src": source}).fetchall()
        conn.execute("RESET enable_seqscan")
        conn.execute("SET enable_indexonlyscan = off")
        conn.execute("SET enable_indexscan = off")
        conn.execute("SET enable_bitmapscan = off")
        assert sorted(conn.execute(MARKERS_SQL, {"src": source}).fetchall()) == sorted(by_index)
        assert sum(r[2] for r in by_index) == made.items

        # What the check finds is what it found without the index: nothing to do, then
        # the rows deleted in the database.
        again = run(since="last")
        assert (again.new, again.updated) == (0, 0)
        conn.execute("DELETE FROM pgstac.items WHERE id IN (SELECT id FROM pgstac.items ORDER BY id LIMIT 3)")
        back = run(since="last")
    assert (back.new, back.updated) == (3, 0)


def test_a_fresh_database_has_one_marker_index(running_stack: Any) -> None:
    admin = stack_credentials(running_stack.settings, "admin")
    name = f"marker_fresh_{uuid.uuid4().hex[:10]}"
    setup_database(admin, name, {}, {})
    with psycopg.connect(DbCredentials(admin.host, admin.port, name, admin.user, admin.password).dsn) as conn:
        defs = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'pgstac' AND tablename = 'items' AND indexname = %s",
            (MARKER_INDEX,),
        ).fetchall()
    assert len(defs) == 1 and "INCLUDE (private)" in defs[0][0], defs


def test_pgstac_index_maintenance_keeps_the_marker_index(running_stack: Any, tmp_path: Path) -> None:
    """pgSTAC's own upkeep (``maintain_partitions`` with ``dropindexes``, which drops every
    partition index no queryable asks for) neither fails on the marker index nor drops it."""
    settings = running_stack.settings
    admin = stack_credentials(settings, "admin")
    role = stack_credentials(settings, "ingest")
    name = f"marker_upkeep_{uuid.uuid4().hex[:10]}"
    setup_database(admin, name, {role.user: role.password}, {})
    root = tmp_path / "cat"
    made = _synth.generate(root, 60, seed=11, workers=1)
    loaded = ingest(settings, catalogue=root, db_host=role.host, db_port=role.port, db_name=name,
                    db_user=role.user, db_password=role.password, quiet=True)  # fmt: skip
    assert loaded.new == made.items
    with psycopg.connect(DbCredentials(admin.host, admin.port, name, admin.user, admin.password).dsn,
                         autocommit=True) as conn:  # fmt: skip
        conn.execute("SET search_path TO pgstac, public")  # as pypgstac's sessions have it
        orphans = conn.execute(
            "SELECT partition, indexname FROM pgstac.queryable_indexes('items', true)"
            " WHERE queryable_id IS NULL AND indexname IS NOT NULL"
        ).fetchall()
        assert orphans == [], orphans  # what dropindexes would drop
        conn.execute("SELECT pgstac.maintain_partitions('items', true, false)")
        assert partitions_without_index(conn) == []
        assert conn.execute("SELECT count(*) FROM pgstac.items").fetchone() == (made.items,)
