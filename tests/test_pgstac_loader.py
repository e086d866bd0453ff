"""eomatch.pgstac.ItemLoader against a real pgSTAC database: rows thought new that are
there after all, times beyond the partition's constraints that text order misjudges,
constraints opened once per run and tightened at its end."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import orjson
import psycopg
import pytest

from eomatch.pgstac import FormattedRow, ItemLoader, copy_line, fast_loader_class
from eomatch.stack.db import DbCredentials, setup_database, stack_credentials

COLLECTION = "loader-test"


@pytest.fixture
def db(running_stack: Any) -> DbCredentials:
    """A fresh pgSTAC database in the stack's cluster with one collection (no time
    partitioning: one partition), as the ingest role."""
    admin = stack_credentials(running_stack.settings, "admin")
    role = stack_credentials(running_stack.settings, "ingest")
    name = f"loader_test_{uuid.uuid4().hex[:10]}"
    setup_database(admin, name, {role.user: role.password}, {})
    creds = DbCredentials(role.host, role.port, name, role.user, role.password)
    collection = {
        "type": "Collection", "stac_version": "1.1.0", "id": COLLECTION, "description": "d", "license": "other",
        "links": [], "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]},
                                "temporal": {"interval": [["2022-01-01T00:00:00Z", None]]}},
    }  # fmt: skip
    with psycopg.connect(creds.dsn, autocommit=True) as conn:
        conn.execute("SELECT pgstac.create_collection(%s::jsonb)", (orjson.dumps(collection).decode(),))
    return creds


def item(item_id: str, when: str, note: str = "a") -> dict[str, Any]:
    return {
        "type": "Feature", "stac_version": "1.1.0", "id": item_id, "collection": COLLECTION,
        "geometry": {"type": "Point", "coordinates": [1.0, 2.0]}, "bbox": [1.0, 2.0, 1.0, 2.0],
        "properties": {"datetime": when, "note": note}, "links": [], "assets": {},
    }  # fmt: skip


def formatter(creds: DbCredentials) -> Callable[[dict[str, Any], str], FormattedRow]:
    """Items -> rows as ingest makes them (formatted, marked, as COPY lines)."""
    from pypgstac.db import PgstacDB

    pg = PgstacDB(dsn=creds.dsn)
    loader = fast_loader_class()(db=pg)

    def fmt(it: dict[str, Any], mark: str) -> FormattedRow:
        row = loader.format_item(it)
        row["private"] = orjson.dumps({"mark": mark}).decode()
        row.line = copy_line(row)
        return row

    return fmt


def rows_of(conn: psycopg.Connection) -> dict[str, tuple[str, str]]:
    """id -> (content's note, private's mark)."""
    got = conn.execute("SELECT id, content->'properties'->>'note', private->>'mark' FROM pgstac.items").fetchall()
    return {i: (n, m) for i, n, m in got}


def constraints(conn: psycopg.Connection) -> tuple[str, str]:
    """The datetime and end_datetime ranges the partition's check constraint allows (in UTC)."""
    conn.execute("SET TIME ZONE 'UTC'")
    row = conn.execute(
        "SELECT m.constraint_dtrange::text, m.constraint_edtrange::text FROM pgstac.partition_stats s, "
        "LATERAL pgstac.partition_catalog_meta(s.partition) m WHERE s.collection = %s",
        (COLLECTION,),
    ).fetchone()
    assert row is not None
    return row[0], row[1]


def test_rows_thought_new_that_are_there_are_upserted(db: DbCredentials) -> None:
    """Rows the caller calls new are copied straight in; when one exists after all (a
    writer came first) the partition's load becomes an upsert, private included."""
    fmt = formatter(db)
    with psycopg.connect(db.dsn, autocommit=True) as conn:
        loader = ItemLoader(conn)
        first = [fmt(item(f"i{k}", f"2022-03-0{k + 1}T00:00:00Z"), "one") for k in range(3)]
        loader.load(first, {(COLLECTION, f"i{k}") for k in range(3)})
        assert rows_of(conn) == {f"i{k}": ("a", "one") for k in range(3)}
        again = [fmt(item(f"i{k}", f"2022-03-0{k + 1}T00:00:00Z", note="b"), "two") for k in range(4)]
        loader.load(again, {(COLLECTION, f"i{k}") for k in range(4)})
        assert rows_of(conn) == {f"i{k}": ("b", "two") for k in range(4)}


def test_constraints_open_once_per_run_and_tighten_at_its_end(db: DbCredentials) -> None:
    """Batches in time order do not re-validate the partition each: the first opens its
    constraints, later ones find them open; collection_extent(id, true), which ingest
    runs at the end, makes them the rows' ranges again."""
    fmt = formatter(db)
    with psycopg.connect(db.dsn, autocommit=True) as conn:
        loader = ItemLoader(conn)
        loader.load([fmt(item("a", "2022-01-05T00:00:00Z"), "m")])
        opened = constraints(conn)
        assert "2022-01-05" not in opened[0] and "2022-01-05" not in opened[1]  # open, not the row's times
        loader.load([fmt(item("b", "2022-02-05T00:00:00Z"), "m")])
        assert constraints(conn) == opened
        conn.execute("SELECT pgstac.collection_extent(%s, true)", (COLLECTION,))
        dt, edt = constraints(conn)
        assert dt == edt == '["2022-01-05 00:00:00+00","2022-02-05 00:00:00+00"]'


def test_times_beyond_the_constraints_that_text_order_misses_are_loaded(db: DbCredentials) -> None:
    """A later run finds tight constraints. An item at 23:00-05:00 (04:00Z next day)
    sorts between 03-05 and 23:30Z as text, so the batch's first and last times lie
    inside them: the check constraint refuses the row, the loader opens the
    constraints and loads it."""
    fmt = formatter(db)
    with psycopg.connect(db.dsn, autocommit=True) as conn:
        ItemLoader(conn).load([fmt(item("a", "2022-03-01T00:00:00Z"), "m"), fmt(item("b", "2022-03-10T00:00:00Z"), "m")])
        conn.execute("SELECT pgstac.collection_extent(%s, true)", (COLLECTION,))
        assert constraints(conn)[0] == '["2022-03-01 00:00:00+00","2022-03-10 00:00:00+00"]'
        times = {"c": "2022-03-05T00:00:00Z", "d": "2022-03-09T23:00:00-05:00", "e": "2022-03-09T23:30:00Z"}
        ItemLoader(conn).load([fmt(item(k, t), "m") for k, t in times.items()], {(COLLECTION, k) for k in times})
        assert set(rows_of(conn)) == {"a", "b", "c", "d", "e"}
