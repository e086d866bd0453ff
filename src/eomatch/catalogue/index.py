"""The catalogue's SQLite id index (``.eomatch/index.sqlite``): where every item is.

One row per item (id, collection, type, path, times, bbox, platforms, event id),
kept up to date on every write and rebuilt by one streaming folder walk when it
is missing or stale (its ``catalog_stamp`` differs from catalog.json's), so
catalogues copied from elsewhere or written by other tools open as they are.
The files stay the source of truth: the index is only ever derived from them.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from eomatch import jsonio
from eomatch.catalogue.locks import INDEX_DIR, CatalogueLocks
from eomatch.errors import MatchupError
from eomatch.ids import EVENTS_PREFIX, infer_item_type
from eomatch.layout import link_target_id
from eomatch.times import item_times

INDEX_FILE = "index.sqlite"
INDEX_VERSION = "1"
FETCH_ROWS = 256
"""Rows fetched at a time by streaming reads."""

_SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS items (
    collection TEXT NOT NULL,
    id TEXT NOT NULL,
    type TEXT NOT NULL,
    path TEXT NOT NULL,
    dt_ts REAL,
    start_ts REAL,
    end_ts REAL,
    minx REAL, miny REAL, maxx REAL, maxy REAL,
    platforms TEXT,
    collections TEXT,
    event_id TEXT,
    mtime_ns INTEGER,
    PRIMARY KEY (collection, id)
);
CREATE INDEX IF NOT EXISTS items_id ON items(id);
CREATE INDEX IF NOT EXISTS items_path ON items(path);
CREATE INDEX IF NOT EXISTS items_type_start ON items(type, start_ts);
CREATE INDEX IF NOT EXISTS items_event ON items(event_id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""

ItemFiles = Callable[[], Iterator[tuple[str, Path, int]]]
"""Walks every item file: (collection folder, path, mtime ns)."""


class ItemRef(NamedTuple):
    """Where one item is: its collection, kind (product/event/matchup) and root-relative path."""

    collection: str
    kind: str
    relpath: str
    id: str


def bar(values: Sequence[Any] | None) -> str | None:
    """``|a|b|`` so that SQL LIKE '%|a|%' finds one member."""
    vals = [str(v) for v in values or [] if v]
    return "|" + "|".join(vals) + "|" if vals else None


def index_row(item: Mapping[str, Any], rel: str, mtime_ns: int, folder_collection: str | None) -> tuple[Any, ...]:
    """The ``items`` row of one item file."""
    props = item.get("properties") or {}
    collection = str(item.get("collection") or folder_collection or rel.split("/", 1)[0])
    kind = infer_item_type(item, collection)
    try:
        centre, start, end = item_times(item)
        dt_ts, start_ts, end_ts = centre.timestamp(), start.timestamp(), end.timestamp()
    except MatchupError:
        dt_ts = start_ts = end_ts = None
    bbox = item.get("bbox")
    if not bbox or len(bbox) not in (4, 6):
        bbox = None
        if item.get("geometry"):
            from shapely.geometry import shape

            with contextlib.suppress(Exception):
                bbox = list(shape(item["geometry"]).bounds)
    if bbox is not None and len(bbox) == 6:
        bbox = [bbox[0], bbox[1], bbox[3], bbox[4]]
    minx, miny, maxx, maxy = bbox if bbox else (None, None, None, None)
    platforms = props.get("matchup:platforms") or ([props["platform"]] if props.get("platform") else [])
    event_id = None
    if kind == "matchup":
        event_id = props.get("matchup:event_id")
        if not event_id:
            for link in item.get("links") or []:
                if link.get("rel") == "related" and link.get("matchup:role") == "event":
                    event_id = link_target_id(link)
                    break
    return (
        collection, str(item["id"]), kind, rel, dt_ts, start_ts, end_ts,
        minx, miny, maxx, maxy, bar(platforms), bar(props.get("matchup:collections")),
        event_id, mtime_ns,
    )  # fmt: skip


def _kind_and_collection(kind: str | None, collection: str | None) -> tuple[str, list[str]]:
    """The ``AND ...`` conditions (and their parameters) of ``count`` and ``iter_ids``:
    one item kind and/or one collection, none when not given."""
    where, params = "", list[str]()
    if kind:
        where += " AND type=?"
        params.append(kind)
    if collection:
        where += " AND collection=?"
        params.append(collection)
    return where, params


def events_sql(
    collections: Sequence[str] | None,
    platform_spellings: Sequence[str],
    start_ts: float | None,
    end_ts: float | None,
    bbox: Sequence[float] | None,
) -> tuple[str, list[Any]]:
    """SELECT (id, path) of the events matching the filters, by start time.

    ``collections``: events/matchup collection ids, or product collection names
    that must all be in the pair. ``platform_spellings``: any of them (lower-case).
    ``bbox`` is [west, south, east, north] (west > east crosses the antimeridian).
    """
    sql = "SELECT id, path FROM items WHERE type='event'"
    params: list[Any] = []
    for name in collections or []:
        if name.startswith(f"{EVENTS_PREFIX}-") or "-vs-" in name:
            continue
        # legacy events may lack matchup:collections: fall back on the collection id
        sql += " AND (collections LIKE ? OR (collections IS NULL AND collection LIKE ?))"
        params += [f"%|{name}|%", f"%{name}-%"]
    pair_ids = [
        c if c.startswith(f"{EVENTS_PREFIX}-") else f"{EVENTS_PREFIX}-{c}"
        for c in collections or []
        if c.startswith(f"{EVENTS_PREFIX}-") or "-vs-" in c
    ]
    if pair_ids:
        sql += f" AND collection IN ({','.join('?' * len(pair_ids))})"
        params.extend(pair_ids)
    if platform_spellings:
        # instr, not LIKE: '_' in names such as LANDSAT_9 is no wildcard here.
        sql += " AND (" + " OR ".join("instr(lower(platforms), ?) > 0" for _ in platform_spellings) + ")"
        params.extend(f"|{s}|" for s in platform_spellings)
    if start_ts is not None:
        sql += " AND end_ts >= ?"
        params.append(start_ts)
    if end_ts is not None:
        sql += " AND start_ts <= ?"
        params.append(end_ts)
    if bbox is not None:
        west, south, east, north = (float(v) for v in bbox)
        sql += " AND miny <= ? AND maxy >= ?"
        params += [north, south]
        # Either box may cross the antimeridian (west > east, STAC's convention).
        if west <= east:
            sql += " AND ((minx <= maxx AND minx <= ? AND maxx >= ?) OR (minx > maxx AND (minx <= ? OR maxx >= ?)))"
            params += [east, west, east, west]
        else:
            sql += " AND (minx > maxx OR maxx >= ? OR minx <= ?)"
            params += [west, east]
    sql += " ORDER BY start_ts, id"
    return sql, params


def event_matchup_rows(conn: sqlite3.Connection, event_id: str, matchup_ids: Sequence[str]) -> list[tuple[str, str]]:
    """(id, path) of an event's matchups: those naming the event, then those it links to,
    in the event's link order (duplicates are the caller's to drop)."""
    # Two index lookups (event_id, then id), never one OR that SQLite would answer
    # by reading every matchup row: per event this stays O(its matchups).
    rows = conn.execute(
        "SELECT id, path FROM items INDEXED BY items_event WHERE event_id=? AND type='matchup'", (event_id,)
    ).fetchall()
    for i in range(0, len(matchup_ids), 500):
        chunk = matchup_ids[i : i + 500]
        rows += conn.execute(
            f"SELECT id, path FROM items INDEXED BY items_id WHERE id IN ({','.join('?' * len(chunk))})"
            " AND type='matchup'",
            chunk,
        ).fetchall()
    order = {mid: i for i, mid in enumerate(matchup_ids)}
    rows.sort(key=lambda r: (order.get(r[0], len(order)), r[0]))
    return rows


class CatalogueIndex:
    """The index of one catalogue folder: one connection per process and thread.

    ``item_files`` walks the folder when the index has to be rebuilt.
    """

    def __init__(self, root: Path, locks: CatalogueLocks, item_files: ItemFiles) -> None:
        self.root = root
        self.path = root / INDEX_DIR / INDEX_FILE
        self._locks = locks
        self._item_files = item_files
        self._conns: dict[tuple[int, int], sqlite3.Connection] = {}
        self._checked = False
        self._init_lock = threading.Lock()
        self._bulk_conn: sqlite3.Connection | None = None
        self._bulk_every = 1000
        self._bulk_pending = 0

    # ------------------------------------------------------------------ connections

    def connect(self) -> sqlite3.Connection:
        """A new connection of the caller's own (streaming readers close it themselves)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(self.path), timeout=60.0, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(_SCHEMA_SQL)
        return conn

    def thread_conn(self) -> sqlite3.Connection:
        """One SQLite connection per process and thread (connections cannot be shared)."""
        key = (os.getpid(), threading.get_ident())
        conn = self._conns.get(key)
        if conn is None:
            conn = self.connect()
            self._conns[key] = conn
        return conn

    @property
    def db(self) -> sqlite3.Connection:
        """This thread's connection; the index is checked (and rebuilt if stale) on first use."""
        conn = self.thread_conn()
        if not self._checked:
            with self._init_lock:
                if not self._checked:
                    if not self.is_fresh(conn):
                        with self._locks.index_rebuild():
                            if not self.is_fresh(conn):
                                self.reindex()
                    self._checked = True
        return conn

    def close(self) -> None:
        for key, conn in list(self._conns.items()):
            if key[0] == os.getpid():
                conn.close()
            del self._conns[key]
        self._checked = False

    # ------------------------------------------------------------------ freshness

    def catalog_stamp(self) -> str:
        """catalog.json's mtime and size: what the index was built against."""
        st = (self.root / "catalog.json").stat()
        return f"{st.st_mtime_ns}:{st.st_size}"

    def _meta(self, conn: sqlite3.Connection, key: str) -> str | None:
        row = conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def is_fresh(self, conn: sqlite3.Connection | None = None) -> bool:
        """Whether the index was built by this version against catalog.json as it is now."""
        conn = conn if conn is not None else self.db
        return self._meta(conn, "version") == INDEX_VERSION and self._meta(conn, "catalog_stamp") == self.catalog_stamp()

    def record_catalog_stamp(self) -> None:
        """catalog.json changed under a fresh index (we wrote it): the index is still right."""
        self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('catalog_stamp', ?)", (self.catalog_stamp(),))

    def reindex(self, progress: Any = None) -> int:
        """Bring the index in line with the files by one streaming directory scan.

        Files whose mtime matches the index are not re-read; vanished files are
        dropped. Returns the number of item files (re)read.
        """
        conn = self.thread_conn()
        stamp = self.catalog_stamp()
        read = 0
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS seen (path TEXT PRIMARY KEY)")
            conn.execute("DELETE FROM seen")
            for folder_collection, path, mtime_ns in self._item_files():
                rel = path.relative_to(self.root).as_posix()
                conn.execute("INSERT OR IGNORE INTO seen(path) VALUES (?)", (rel,))
                row = conn.execute("SELECT mtime_ns FROM items WHERE path=?", (rel,)).fetchone()
                if row is not None and row[0] == mtime_ns:
                    continue
                item = jsonio.read_json(path)
                if not isinstance(item, dict) or item.get("type") != "Feature" or not item.get("id"):
                    continue
                conn.execute("DELETE FROM items WHERE path=?", (rel,))
                self._write_row(conn, item, rel, mtime_ns, folder_collection)
                read += 1
                if progress is not None:
                    progress.update(1)
            conn.execute("DELETE FROM items WHERE path NOT IN (SELECT path FROM seen)")
            conn.execute("DELETE FROM seen")
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('version', ?)", (INDEX_VERSION,))
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('catalog_stamp', ?)", (stamp,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return read

    # ------------------------------------------------------------------ rows

    def upsert(
        self,
        conn: sqlite3.Connection,
        item: Mapping[str, Any],
        rel: str,
        mtime_ns: int,
        folder_collection: str | None = None,
    ) -> None:
        """Write one item's row (in bulk mode, committed every ``commit_every`` rows)."""
        self._write_row(conn, item, rel, mtime_ns, folder_collection)
        self._bulk_tick(conn)

    def _write_row(
        self, conn: sqlite3.Connection, item: Mapping[str, Any], rel: str, mtime_ns: int, folder_collection: str | None
    ) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO items VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            index_row(item, rel, mtime_ns, folder_collection),
        )

    def lookup(self, item_id: str, collection: str | None = None) -> ItemRef | None:
        """Where an item is, or None."""
        if collection is None:
            row = self.db.execute(
                "SELECT collection, type, path FROM items WHERE id=? ORDER BY collection LIMIT 1", (item_id,)
            ).fetchone()
        else:
            row = self.db.execute(
                "SELECT collection, type, path FROM items WHERE id=? AND collection=?", (item_id, collection)
            ).fetchone()
        return ItemRef(row[0], row[1], row[2], item_id) if row else None

    def count(self, kind: str | None = None, collection: str | None = None) -> int:
        """How many items the index holds (optionally of one type / collection)."""
        where, params = _kind_and_collection(kind, collection)
        return int(self.db.execute("SELECT COUNT(*) FROM items WHERE 1=1" + where, params).fetchone()[0])

    def iter_ids(self, kind: str | None = None, collection: str | None = None) -> Iterator[ItemRef]:
        """Every item (optionally of one kind / collection) by collection and id, streamed
        on a connection of its own, so the caller may write while it iterates."""
        where, params = _kind_and_collection(kind, collection)
        sql = "SELECT collection, type, path, id FROM items WHERE 1=1" + where + " ORDER BY collection, id"
        _ = self.db  # make sure the index is fresh
        reader = self.connect()
        try:
            cur = reader.execute(sql, params)
            while rows := cur.fetchmany(FETCH_ROWS):
                for row in rows:
                    yield ItemRef(*row)
        finally:
            reader.close()

    # ------------------------------------------------------------------ bulk

    def begin_bulk(self, commit_every: int) -> None:
        """Open one transaction on this thread's connection, committed every ``commit_every`` rows."""
        conn = self.db  # checks (and rebuilds) the index before the transaction starts
        self._bulk_every = max(1, int(commit_every))
        self._bulk_pending = 0
        self._bulk_conn = conn
        conn.execute("BEGIN IMMEDIATE")

    def end_bulk(self) -> None:
        """Commit what the bulk transaction holds."""
        conn, self._bulk_conn = self._bulk_conn, None
        if conn is not None:
            conn.execute("COMMIT")

    def _bulk_tick(self, conn: sqlite3.Connection) -> None:
        if self._bulk_conn is not conn:
            return
        self._bulk_pending += 1
        if self._bulk_pending >= self._bulk_every:
            conn.execute("COMMIT")
            conn.execute("BEGIN IMMEDIATE")
            self._bulk_pending = 0
