"""eomatch.pgstac.RowFormatter against pypgstac's own formatting, on a real pgSTAC
database: the COPY line of every item of a realistic catalogue (as ingest transforms
it) is the one ``Loader.format_item`` + ``copy_line`` give, whatever the collection's
partitioning or base item; what the fast path does not cover goes through pypgstac."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from eomatch.hrefs import AssetHrefs
from eomatch.ingest import transform_item
from eomatch.pgstac import FormattedRow, RowFormatter, copy_line, fast_loader_class
from eomatch.stack.db import DbCredentials, setup_database, stack_credentials
from eomatch.validate import repair_legacy

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import _synth  # noqa: E402

MARK = '{"eomatch:hash": "00ff", "eomatch:source": "s\\\\t"}'
"""A ``private`` whose backslashes COPY text must escape."""


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> _synth.SynthCatalogue:
    return _synth.generate(tmp_path_factory.mktemp("rows") / "cat", 300, seed=3, workers=1, shape="realistic")


@pytest.fixture
def db(running_stack: Any, catalogue: _synth.SynthCatalogue) -> DbCredentials:
    """A fresh pgSTAC database with the catalogue's collections, partitioned by year,
    by month and not at all in turn, half with ``item_assets`` (a base item with assets)."""
    admin = stack_credentials(running_stack.settings, "admin")
    role = stack_credentials(running_stack.settings, "ingest")
    name = f"rows_test_{uuid.uuid4().hex[:10]}"
    setup_database(admin, name, {role.user: role.password}, {})
    creds = DbCredentials(role.host, role.port, name, role.user, role.password)
    truncs = ["year", "month", None]
    with psycopg.connect(creds.dsn, autocommit=True) as conn:
        for k, path in enumerate(sorted(catalogue.root.glob("*/collection.json"))):
            col = orjson.loads(path.read_bytes())
            col["links"] = []
            if k % 2 == 0:
                col["item_assets"] = {
                    "thumbnail": {"type": "image/jpeg", "roles": ["thumbnail"]},
                    "comparison": {"type": "application/netcdf", "roles": ["data"]},
                }
            conn.execute("SELECT pgstac.create_collection(%s::jsonb)", (orjson.dumps(col).decode(),))
            conn.execute(
                "UPDATE pgstac.collections SET partition_trunc = %s WHERE id = %s", (truncs[k % 3], col["id"])
            )
    return creds


def reference(loader: Any, item: dict[str, Any]) -> FormattedRow:
    """The row as pypgstac formats it (with eomatch's geometry encoder), marked."""
    row = loader.format_item(orjson.loads(orjson.dumps(item)))  # it writes into the item
    row["private"] = MARK
    row.line = copy_line(row)
    return row


def test_rows_of_a_realistic_catalogue_are_pypgstacs(db: DbCredentials, catalogue: _synth.SynthCatalogue) -> None:
    from pypgstac.db import PgstacDB

    rewriter = AssetHrefs(catalogue.root, None)
    with PgstacDB(dsn=db.dsn) as pg:
        loader = fast_loader_class()(db=pg)
        rows = RowFormatter(loader)
        paths = sorted(catalogue.root.glob("*/*/*/*/*.json"))
        assert len(paths) == catalogue.items
        partitions = set()
        with_assets = 0
        for path in paths:
            item = orjson.loads(path.read_bytes())
            repair_legacy(item)
            item = transform_item(item, path, rewriter, "2024-01-01T00:00:00Z")
            want = reference(loader, item)
            got = rows.row(item, MARK)
            assert got.line == want.line, path
            for key in ("id", "collection", "datetime", "end_datetime", "partition"):
                assert got[key] == want[key], (path, key)
            partitions.add(got["partition"])
            assets = item.get("assets") or {}
            with_assets += ("thumbnail" in assets or "comparison" in assets) and "roles" not in want["content"]
    assert len({p.count("_") for p in partitions}) > 1  # partitions by time and not
    assert with_assets  # items dehydrated against a base item with assets


def test_what_the_fast_path_does_not_cover_is_formatted_by_pypgstac(
    db: DbCredentials, catalogue: _synth.SynthCatalogue
) -> None:
    from pypgstac.db import PgstacDB

    path = sorted(catalogue.root.glob("*/*/*/*/*.json"))[0]
    base = orjson.loads(path.read_bytes())
    base["properties"]["note"] = "tab\there, back\\slash\nnew line"
    base["private"] = {"theirs": 1}
    collection_geom = {"type": "GeometryCollection", "geometries": [{"type": "Point", "coordinates": [1.0, 2.0]}]}
    cases = [
        {**base},
        {**base, "geometry": collection_geom},
        {**base, "properties": {**base["properties"], "start_datetime": "2022-03-01T02:00:00+02:00",
                                "end_datetime": "2022-03-01T01:00:00+01:00"}},
    ]  # fmt: skip
    with PgstacDB(dsn=db.dsn) as pg:
        loader = fast_loader_class()(db=pg)
        rows = RowFormatter(loader)
        for case in cases:
            assert rows.row(orjson.loads(orjson.dumps(case)), MARK).line == reference(loader, case).line
        backwards = {**base, "properties": {**base["properties"], "start_datetime": "2022-03-02T00:00:00Z",
                                            "end_datetime": "2022-03-01T00:00:00Z"}}  # fmt: skip
        no_time = {**base, "properties": {"title": "x"}}
        for bad in (backwards, no_time):
            with pytest.raises(Exception) as theirs:
                reference(loader, bad)
            with pytest.raises(Exception) as ours:
                rows.row(orjson.loads(orjson.dumps(bad)), MARK)
            assert str(ours.value) == str(theirs.value)
