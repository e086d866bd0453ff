"""MatchupCatalogue: the local STAC catalogue on disk, with an id index beside it.

Files are the source of truth, laid out as pystac writes a SELF_CONTAINED
catalogue::

    catalog.json
    {collection}/collection.json
    {collection}/{YYYY}/{MM}/{DD}/{item-id}.json

Lookups go through a SQLite index (``.eomatch/index.sqlite``: id, collection,
type, path, times, bbox, platforms) kept up to date on every write and rebuilt
by a streaming directory scan when it is missing or stale, so catalogues copied
from elsewhere or written by other tools open as they are. Item writes are
atomic and serialised per item by file locks, so two processes updating one
item both keep their changes.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import threading
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from filelock import FileLock

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

from eomatch import jsonio
from eomatch.errors import CatalogueError
from eomatch.model import (
    EVENTS_PREFIX,
    JSON_MEDIA_TYPE,
    STAC_VERSION,
    Matchup,
    MatchupError,
    MatchupEvent,
    Product,
    default_relpath,
    infer_item_type,
    item_relpath,
    item_times,
    link_target_id,
    parse_time_bound,
    platform_spellings,
    relative_href,
    structural_links,
)
from eomatch.safe_names import unsafe_reason

if TYPE_CHECKING:
    from eomatch.settings import SatelliteSpec

INDEX_DIR = ".eomatch"
INDEX_FILE = "index.sqlite"
INDEX_VERSION = "1"
LOCK_STRIPES = 1024
"""Item locks are striped over this many lock files: per-item safety, bounded file count."""
_FETCH = 256
_STRUCTURAL = ("root", "parent", "collection", "self")
_RELINKED = ("derived_from", "related")

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

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda v, t: v == t,
    "ne": lambda v, t: v != t,
    "lt": lambda v, t: v < t,
    "lte": lambda v, t: v <= t,
    "gt": lambda v, t: v > t,
    "gte": lambda v, t: v >= t,
    "in": lambda v, t: v in t,
}


def _epoch(value: Any, end: bool = False) -> float | None:
    """Seconds since 1970 of a time bound; a date alone is its whole UTC day (as in find/query)."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return parse_time_bound(value, end=end).timestamp()
    except MatchupError as exc:
        raise CatalogueError(str(exc)) from None


def _bar(values: Sequence[Any] | None) -> str | None:
    """``|a|b|`` so that SQL LIKE '%|a|%' finds one member."""
    vals = [str(v) for v in values or [] if v]
    return "|" + "|".join(vals) + "|" if vals else None


def _props_match(props: Mapping[str, Any], conditions: Mapping[str, Any]) -> bool:
    """Exact-match filters; a dict value holds operators (lt, lte, gt, gte, eq, ne, in)."""
    for key, cond in conditions.items():
        if key not in props:
            return False
        value = props[key]
        if isinstance(cond, Mapping):
            for op, threshold in cond.items():
                fn = _OPS.get(op)
                if fn is None:
                    raise CatalogueError(f"unknown property filter operator {op!r} (use one of {', '.join(_OPS)})")
                try:
                    if value is None or not fn(value, threshold):
                        return False
                except TypeError:
                    return False
        elif value != cond:
            return False
    return True


def fast_relative_href(from_relpath: str, to_relpath: str) -> str:
    """:func:`eomatch.model.relative_href` for normalised root-relative paths, without
    ``posixpath.relpath``'s abspath calls (it runs for every link of every item)."""
    src = from_relpath.split("/")[:-1]
    dst = to_relpath.split("/")
    common = 0
    for a, b in zip(src, dst[:-1], strict=False):
        if a != b:
            break
        common += 1
    ups = len(src) - common
    rest = "/".join(dst[common:])
    return "../" * ups + rest if ups else f"./{rest}"


def _structural_links(rel: str) -> list[dict[str, Any]]:
    """:func:`structural_links`, computed once per folder (relpath is slow on hot paths)."""
    return [dict(lk) for lk in _structural_links_of_dir(rel.rsplit("/", 1)[0] if "/" in rel else "")]


@functools.lru_cache(maxsize=4096)
def _structural_links_of_dir(folder: str) -> tuple[dict[str, Any], ...]:
    return tuple(structural_links(f"{folder}/x.json" if folder else "x.json"))


def _link_key(link: Mapping[str, Any]) -> tuple[Any, ...]:
    return (link.get("rel"), link_target_id(link) or link.get("href"), link.get("matchup:role"))


def merge_items(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """Upsert rule: new fields win, but properties and assets are merged key by key
    and links are unioned, so re-runs keep what others added (assets, enrichments)."""
    out = {**old, **new}
    out["properties"] = {**(old.get("properties") or {}), **(new.get("properties") or {})}
    out["assets"] = {**(old.get("assets") or {}), **(new.get("assets") or {})}
    exts = list(old.get("stac_extensions") or [])
    exts += [e for e in new.get("stac_extensions") or [] if e not in exts]
    out["stac_extensions"] = exts
    links: list[dict[str, Any]] = []
    seen: set[tuple[Any, ...]] = set()
    for link in list(old.get("links") or []) + list(new.get("links") or []):
        if link.get("rel") in _STRUCTURAL:
            continue
        key = _link_key(link)
        if key in seen:
            continue
        seen.add(key)
        links.append(dict(link))
    out["links"] = links
    return out


def _merge_extent(col: dict[str, Any], ext: Sequence[float | None]) -> None:
    """Grow a collection's extent by ``[minx, miny, maxx, maxy, t0, t1]`` (epoch s).

    A temporal interval of [null, null] marks a collection with no items yet:
    its placeholder world bbox is then replaced rather than grown.
    """
    from eomatch.model import format_datetime

    extent = col.setdefault("extent", {})
    spatial = extent.setdefault("spatial", {})
    temporal = extent.setdefault("temporal", {})
    bboxes = list(spatial.get("bbox") or [])
    intervals = list(temporal.get("interval") or [])
    empty = not intervals or not intervals[0] or intervals[0] == [None, None]
    if ext[0] is not None:
        box = [ext[0], ext[1], ext[2], ext[3]]
        if not empty and bboxes:
            old = bboxes[0]
            box = [min(old[0], box[0]), min(old[1], box[1]), max(old[-2], box[2]), max(old[-1], box[3])]  # type: ignore[type-var]
        bboxes = [box] + bboxes[1:]
    if ext[4] is not None or ext[5] is not None:
        old_lo, old_hi = (None, None) if empty else (intervals[0][0], intervals[0][1])
        lows = [v for v in (_epoch(old_lo), ext[4]) if v is not None]
        highs = [v for v in (_epoch(old_hi), ext[5]) if v is not None]
        interval = [
            format_datetime(datetime.fromtimestamp(min(lows), tz=UTC)) if lows else None,
            format_datetime(datetime.fromtimestamp(max(highs), tz=UTC)) if highs else None,
        ]
        intervals = [interval] + intervals[1:]
    spatial["bbox"] = bboxes or [[-180.0, -90.0, 180.0, 90.0]]
    temporal["interval"] = intervals or [[None, None]]


class _StripeLock:
    """An exclusive lock on one lock file, held across processes (flock) and threads.

    The file descriptor stays open, so taking the lock is one system call; the
    thread lock makes it exclusive between threads too, and it is re-entrant.
    Falls back to :class:`filelock.FileLock` where ``fcntl`` does not exist.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread_lock = threading.RLock()
        self._fd: int | None = None
        self._depth = 0
        self._pid = os.getpid()
        self._fallback = FileLock(str(path)) if fcntl is None else None

    def __enter__(self) -> _StripeLock:
        if self._fallback is not None:
            self._fallback.acquire()
            return self
        self._thread_lock.acquire()
        if self._pid != os.getpid():  # inherited through fork: the fd is shared, open our own
            self._fd, self._depth, self._pid = None, 0, os.getpid()
        if self._depth == 0:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        self._depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fallback is not None:
            self._fallback.release()
            return
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._thread_lock.release()

    def close(self) -> None:
        if self._fd is not None and self._depth == 0:
            os.close(self._fd)
            self._fd = None


class MatchupCatalogue:
    """A local matchup catalogue: pystac-compatible files plus an SQLite id index."""

    def __init__(self, root: Path, catalog: dict[str, Any]) -> None:
        """Use :meth:`open` or :meth:`create`."""
        self.root = root
        self._catalog = catalog
        self._conns: dict[tuple[int, int], sqlite3.Connection] = {}
        self._index_checked = False
        self._init_lock = threading.Lock()
        self._locks: dict[int, _StripeLock] = {}
        self._known: set[str] = set(self._child_dirs_from_catalog())
        self._pending_extent: dict[str, list[float | None]] = {}
        self._pending_links: dict[str, dict[str, None]] = {}
        self._kinds: dict[str, str] = {}
        self._bulk_depth = 0
        self._bulk_every = 1000
        self._bulk_pending = 0
        self._bulk_collections: set[str] = set()
        self._bulk_conn: sqlite3.Connection | None = None
        self.satellites: Sequence[SatelliteSpec] | None = None
        """Platform registry for ``get_events(platforms=)`` aliases (default: the packaged one;
        set ``settings.satellites`` here for a custom registry)."""

    # ------------------------------------------------------------------ open / create

    @staticmethod
    def root_of(path: str | os.PathLike[str]) -> Path:
        """The catalogue folder a path names (the folder itself or its ``catalog.json``)."""
        p = Path(path).expanduser()
        if p.name.endswith(".json"):
            return p.parent.resolve()
        return p.resolve()

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> MatchupCatalogue:
        """Open a catalogue folder or its ``catalog.json`` (reads catalog.json only)."""
        root = cls.root_of(path)
        catalog_json = root / "catalog.json"
        if not catalog_json.is_file():
            raise CatalogueError(f"no catalog.json at {root}")
        catalog = jsonio.read_json(catalog_json)
        if not isinstance(catalog, dict) or catalog.get("type") not in ("Catalog", "Collection"):
            raise CatalogueError(f"{catalog_json} is not a STAC catalog")
        return cls(root, catalog)

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        title: str = "eomatch matchup catalogue",
        description: str = "Satellite matchups: events, matchups and their products.",
        id: str = "eomatch-catalogue",
    ) -> MatchupCatalogue:
        """Create an empty catalogue, or open the one already there (re-runs are safe)."""
        root = cls.root_of(path)
        if (root / "catalog.json").is_file():
            return cls.open(root)
        catalog = {
            "type": "Catalog",
            "id": id,
            "stac_version": STAC_VERSION,
            "description": description,
            "title": title,
            "links": [{"rel": "root", "href": "./catalog.json", "type": JSON_MEDIA_TYPE, "title": title}],
        }
        root.mkdir(parents=True, exist_ok=True)
        with _StripeLock(cls._lock_dir(root) / "catalog.lock"):
            if not (root / "catalog.json").is_file():
                jsonio.write_json_atomic(root / "catalog.json", catalog)
        return cls.open(root)

    def __enter__(self) -> MatchupCatalogue:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        try:
            if exc_type is None:
                self.save()
        finally:
            self.close()

    def __repr__(self) -> str:
        return f"<MatchupCatalogue {self.root}>"

    def close(self) -> None:
        for lock in self._locks.values():
            lock.close()
        for key, conn in list(self._conns.items()):
            if key[0] == os.getpid():
                conn.close()
            del self._conns[key]
        self._index_checked = False

    @property
    def catalog_json(self) -> Path:
        return self.root / "catalog.json"

    @property
    def id(self) -> str:
        return str(self._catalog.get("id", ""))

    @property
    def title(self) -> str | None:
        return self._catalog.get("title")

    # ------------------------------------------------------------------ locks

    @staticmethod
    def _lock_dir(root: Path) -> Path:
        d = root / INDEX_DIR / "locks"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def _item_lock(self, collection: str, item_id: str) -> _StripeLock:
        """The lock of one item: ``.eomatch/locks/item-NNNN.lock``, NNNN = crc32(collection/id) % 1024."""
        stripe = zlib.crc32(f"{collection}/{item_id}".encode()) % LOCK_STRIPES
        lock = self._locks.get(stripe)
        if lock is None:
            lock = _StripeLock(self._lock_dir(self.root) / f"item-{stripe:04d}.lock")
            self._locks[stripe] = lock
        return lock

    def lock_collection(self, collection_id: str) -> _StripeLock:
        """The lock to hold while rewriting ``collection_id``'s collection.json.

        It is the lock :meth:`save` merges extents and links under, so writers of
        collection files never overwrite each other.
        """
        del collection_id  # collection files share the catalogue-wide lock
        return self._catalog_lock()

    def _catalog_lock(self) -> _StripeLock:
        key = -1
        lock = self._locks.get(key)
        if lock is None:
            lock = _StripeLock(self._lock_dir(self.root) / "catalog.lock")
            self._locks[key] = lock
        return lock

    # ------------------------------------------------------------------ index

    @property
    def index_path(self) -> Path:
        return self.root / INDEX_DIR / INDEX_FILE

    def _connect(self) -> sqlite3.Connection:
        self.index_path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(self.index_path), timeout=60.0, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(_SCHEMA_SQL)
        return conn

    def _catalog_stamp(self) -> str:
        st = self.catalog_json.stat()
        return f"{st.st_mtime_ns}:{st.st_size}"

    def _meta(self, conn: sqlite3.Connection, key: str) -> str | None:
        row = conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def _index_fresh(self, conn: sqlite3.Connection) -> bool:
        return (
            self._meta(conn, "version") == INDEX_VERSION
            and self._meta(conn, "catalog_stamp") == self._catalog_stamp()
        )

    def _thread_conn(self) -> sqlite3.Connection:
        """One SQLite connection per process and thread (connections cannot be shared)."""
        key = (os.getpid(), threading.get_ident())
        conn = self._conns.get(key)
        if conn is None:
            conn = self._connect()
            self._conns[key] = conn
        return conn

    @property
    def db(self) -> sqlite3.Connection:
        """The index connection; the index is checked (and rebuilt if stale) on first use."""
        conn = self._thread_conn()
        if not self._index_checked:
            with self._init_lock:
                if not self._index_checked:
                    if not self._index_fresh(conn):
                        with FileLock(str(self._lock_dir(self.root) / "index.lock")):
                            if not self._index_fresh(conn):
                                self.reindex()
                    self._index_checked = True
        return conn

    def reindex(self, progress: Any = None) -> int:
        """Bring the index in line with the files by one streaming directory scan.

        Files whose mtime matches the index are not re-read; vanished files are
        dropped. Returns the number of item files (re)read.
        """
        conn = self._thread_conn()
        stamp = self._catalog_stamp()
        read = 0
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS seen (path TEXT PRIMARY KEY)")
            conn.execute("DELETE FROM seen")
            for folder_collection, path, mtime_ns in self._walk_items():
                rel = path.relative_to(self.root).as_posix()
                conn.execute("INSERT OR IGNORE INTO seen(path) VALUES (?)", (rel,))
                row = conn.execute("SELECT mtime_ns FROM items WHERE path=?", (rel,)).fetchone()
                if row is not None and row[0] == mtime_ns:
                    continue
                item = jsonio.read_json(path)
                if not isinstance(item, dict) or item.get("type") != "Feature" or not item.get("id"):
                    continue
                conn.execute("DELETE FROM items WHERE path=?", (rel,))
                self._index_upsert(conn, item, rel, mtime_ns, folder_collection)
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

    @staticmethod
    def _index_row(item: Mapping[str, Any], rel: str, mtime_ns: int, folder_collection: str | None) -> tuple[Any, ...]:
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
            minx, miny, maxx, maxy, _bar(platforms), _bar(props.get("matchup:collections")),
            event_id, mtime_ns,
        )  # fmt: skip

    def _index_upsert(
        self,
        conn: sqlite3.Connection,
        item: Mapping[str, Any],
        rel: str,
        mtime_ns: int,
        folder_collection: str | None = None,
    ) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO items VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            self._index_row(item, rel, mtime_ns, folder_collection),
        )

    def lookup(self, item_id: str, collection: str | None = None) -> tuple[str, str, str] | None:
        """(collection, type, root-relative path) of an item from the index, or None."""
        return self._lookup(item_id, collection)

    def _lookup(self, item_id: str, collection: str | None = None) -> tuple[str, str, str] | None:
        """(collection, type, root-relative path) of an item, or None."""
        if collection is None:
            row = self.db.execute(
                "SELECT collection, type, path FROM items WHERE id=? ORDER BY collection LIMIT 1", (item_id,)
            ).fetchone()
        else:
            row = self.db.execute(
                "SELECT collection, type, path FROM items WHERE id=? AND collection=?", (item_id, collection)
            ).fetchone()
        return (row[0], row[1], row[2]) if row else None

    def _require(self, item_id: str, collection: str | None = None, kind: str | None = None) -> tuple[str, str, str]:
        found = self._lookup(item_id, collection)
        if found is None:
            where = f" in collection {collection!r}" if collection else ""
            raise CatalogueError(f"unknown item id {item_id!r}{where} in catalogue {self.root}")
        if kind is not None and found[1] != kind:
            raise CatalogueError(f"item {item_id!r} is a {found[1]}, not a {kind}")
        return found

    def count(self, kind: str | None = None, collection: str | None = None) -> int:
        """How many items the index holds (optionally of one type / collection)."""
        sql, params = "SELECT COUNT(*) FROM items WHERE 1=1", []
        if kind:
            sql += " AND type=?"
            params.append(kind)
        if collection:
            sql += " AND collection=?"
            params.append(collection)
        return int(self.db.execute(sql, params).fetchone()[0])

    def has_item(self, item_id: str, collection: str | None = None) -> bool:
        return self._lookup(item_id, collection) is not None

    # ------------------------------------------------------------------ layout / walking

    def item_path(self, collection: str, item_id: str, when: datetime | str) -> Path:
        """Where an item of this id and date lives in the layout."""
        return self.root / item_relpath(collection, item_id, when)

    def path_of(self, item_id: str, collection: str | None = None) -> Path:
        """The file of an existing item (CatalogueError if unknown)."""
        return self.root / self._require(item_id, collection)[2]

    def _child_dirs_from_catalog(self) -> dict[str, Path]:
        out: dict[str, Path] = {}
        for link in self._catalog.get("links") or []:
            if link.get("rel") != "child" or not isinstance(link.get("href"), str):
                continue
            href = link["href"]
            if href.startswith("file://"):
                href = href[len("file://") :]
            target = Path(href) if os.path.isabs(href) else (self.root / href)
            folder = target.parent
            if not folder.is_dir() or not str(folder.resolve()).startswith(str(self.root)):
                folder = self.root / target.parent.name
            out[folder.name] = folder
        return out

    def collection_dirs(self) -> dict[str, Path]:
        """Collection id -> folder of every collection (catalogue links, then folders with a collection.json)."""
        return self._collection_dirs()

    def _collection_dirs(self) -> dict[str, Path]:
        dirs = self._child_dirs_from_catalog()
        with os.scandir(self.root) as entries:
            for entry in entries:
                if entry.name.startswith(".") or not entry.is_dir() or entry.name in dirs:
                    continue
                if os.path.isfile(os.path.join(entry.path, "collection.json")):
                    dirs[entry.name] = Path(entry.path)
        return {k: v for k, v in dirs.items() if v.is_dir()}

    def _walk_items(self, collection: str | None = None, changed_since_ns: int | None = None) -> Iterator[tuple[str, Path, int]]:
        dirs = self._collection_dirs()
        if collection is not None:
            dirs = {collection: dirs[collection]} if collection in dirs else {}
        for name, folder in sorted(dirs.items()):
            stack = [folder]
            while stack:
                current = stack.pop()
                try:
                    entries = sorted(os.scandir(current), key=lambda e: e.name)
                except FileNotFoundError:
                    continue
                subdirs = []
                for entry in entries:
                    if entry.name.startswith("."):
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        subdirs.append(Path(entry.path))
                    elif entry.name.endswith(".json") and entry.name not in ("collection.json", "catalog.json"):
                        mtime_ns = entry.stat().st_mtime_ns
                        if changed_since_ns is None or mtime_ns > changed_since_ns:
                            yield name, Path(entry.path), mtime_ns
                stack.extend(reversed(subdirs))

    def iter_item_paths(
        self, collection: str | None = None, changed_since: datetime | float | None = None
    ) -> Iterator[tuple[str, Path]]:
        """(collection folder, path) of every item file, by a streaming os.scandir walk.

        ``changed_since`` (datetime or epoch seconds) keeps files modified after it.
        """
        since_ns = None
        if changed_since is not None:
            since_ns = int(_epoch(changed_since) * 1e9)  # type: ignore[operator]
        for name, path, _ in self._walk_items(collection, since_ns):
            yield name, path

    def iter_items(self, collection: str | None = None) -> Iterator[dict[str, Any]]:
        """Every item dict (optionally of one collection), streamed from the files."""
        for _, path in self.iter_item_paths(collection):
            item = jsonio.read_json(path)
            if isinstance(item, dict) and item.get("type") == "Feature":
                yield item

    # ------------------------------------------------------------------ collections

    def iter_collections(self) -> Iterator[dict[str, Any]]:
        """Collection dicts of the catalogue's children."""
        for _, folder in sorted(self._collection_dirs().items()):
            path = folder / "collection.json"
            if path.is_file():
                yield jsonio.read_json(path)

    def get_collection(self, collection_id: str) -> dict[str, Any]:
        folder = self._collection_dirs().get(collection_id)
        if folder is None or not (folder / "collection.json").is_file():
            raise CatalogueError(f"unknown collection {collection_id!r} in catalogue {self.root}")
        return jsonio.read_json(folder / "collection.json")

    @staticmethod
    def _kind_of_collection(collection_id: str) -> str:
        if collection_id.startswith(f"{EVENTS_PREFIX}-"):
            return "event"
        if "-vs-" in collection_id:
            return "matchup"
        return "product"

    def ensure_collection(
        self,
        collection_id: str,
        kind: str | None = None,
        title: str | None = None,
        description: str | None = None,
        bbox: Sequence[float] | None = None,
        interval: tuple[datetime | str | None, datetime | str | None] | None = None,
    ) -> str:
        """Create the collection (and its catalog.json child link) if missing; note extent updates.

        Extent updates are kept in memory and merged into collection.json by :meth:`save`.
        """
        if not collection_id or "/" in collection_id or collection_id.startswith("."):
            raise CatalogueError(f"invalid collection id {collection_id!r}")
        if bbox is not None or interval is not None:
            start, end = interval or (None, None)
            self._note_extent(collection_id, list(bbox) if bbox else None, _epoch(start), _epoch(end))
        if collection_id in self._bulk_collections:
            return collection_id
        if collection_id in self._known and (self.root / collection_id / "collection.json").is_file():
            if self._bulk_depth:
                self._bulk_collections.add(collection_id)
            return collection_id
        kind = kind or self._kind_of_collection(collection_id)
        self._kinds[collection_id] = kind
        _ = self.db  # check the index before catalog.json changes under it
        with self._catalog_lock():
            fresh_before = self._index_fresh(self.db)
            col_path = self.root / collection_id / "collection.json"
            if not col_path.is_file():
                jsonio.write_json_atomic(col_path, self._new_collection(collection_id, kind, title, description))
            catalog = jsonio.read_json(self.catalog_json)
            hrefs = {lk.get("href") for lk in catalog.get("links") or [] if lk.get("rel") == "child"}
            href = f"./{collection_id}/collection.json"
            if href not in hrefs and not any(
                isinstance(h, str) and h.rstrip("/").endswith(f"/{collection_id}/collection.json") for h in hrefs
            ):
                catalog.setdefault("links", []).append(
                    {"rel": "child", "href": href, "type": JSON_MEDIA_TYPE, "title": title or collection_id}
                )
                jsonio.write_json_atomic(self.catalog_json, catalog)
                if fresh_before:
                    self.db.execute(
                        "INSERT OR REPLACE INTO meta(key, value) VALUES ('catalog_stamp', ?)", (self._catalog_stamp(),)
                    )
            self._catalog = catalog
        self._known.add(collection_id)
        return collection_id

    def _new_collection(self, collection_id: str, kind: str, title: str | None, description: str | None) -> dict[str, Any]:
        if description is None:
            description = {
                "product": f"EO products of collection {collection_id}.",
                "event": f"Matchup events (satellite crossovers) of sensor pair {collection_id[len(EVENTS_PREFIX) + 1:]}.",
                "matchup": f"Matchups (product pairs) of sensor pair {collection_id}.",
            }.get(kind, collection_id)
        return {
            "type": "Collection",
            "id": collection_id,
            "stac_version": STAC_VERSION,
            "stac_extensions": [],
            "title": title or collection_id,
            "description": description,
            "license": "proprietary",
            "matchup:type": kind,
            "extent": {
                "spatial": {"bbox": [[-180.0, -90.0, 180.0, 90.0]]},
                "temporal": {"interval": [[None, None]]},
            },
            "links": [
                {"rel": "root", "href": "../catalog.json", "type": JSON_MEDIA_TYPE},
                {"rel": "parent", "href": "../catalog.json", "type": JSON_MEDIA_TYPE},
            ],
        }

    def _note_extent(self, collection: str, bbox: Sequence[float] | None, start: float | None, end: float | None) -> None:
        """Grow this process's pending extent of a collection (merged into the file by save())."""
        cur = self._pending_extent.setdefault(collection, [None] * 6)
        if bbox and len(bbox) in (4, 6):
            half = len(bbox) // 2
            vals = [bbox[0], bbox[1], bbox[half], bbox[half + 1]]
            if vals[0] > vals[2]:  # across the antimeridian: the extent spans all longitudes
                vals[0], vals[2] = -180.0, 180.0
            for i, fn in ((0, min), (1, min), (2, max), (3, max)):
                cur[i] = vals[i] if cur[i] is None else fn(cur[i], vals[i])  # type: ignore[type-var]
        for i, value, fn in ((4, start, min), (5, end, max)):
            if value is not None:
                cur[i] = value if cur[i] is None else fn(cur[i], value)  # type: ignore[type-var]

    def save(self) -> None:
        """Merge pending extents and new item links into each collection.json.

        Extents grow by what this process wrote (never by re-reading items);
        item links are what pystac walks. Runs under the catalog lock so several
        writers merge rather than overwrite.
        """
        touched = set(self._pending_extent) | set(self._pending_links)
        if not touched:
            return
        with self._catalog_lock():
            for coll in sorted(touched):
                path = self.root / coll / "collection.json"
                if not path.is_file():
                    self.ensure_collection(coll)
                col = jsonio.read_json(path)
                ext = self._pending_extent.get(coll)
                if ext is not None:
                    _merge_extent(col, ext)
                new_links = self._pending_links.get(coll)
                if new_links:
                    links = col.setdefault("links", [])
                    # Known links as root-relative paths, whatever their form (relative,
                    # absolute, file://: older tools wrote absolute ones).
                    have = {self._link_relpath(coll, lk.get("href")) for lk in links if lk.get("rel") == "item"}
                    for rel in new_links:
                        if rel not in have:
                            href = relative_href(f"{coll}/collection.json", rel)
                            links.append({"rel": "item", "href": href, "type": JSON_MEDIA_TYPE})
                            have.add(rel)
                jsonio.write_json_atomic(path, col)
        self._pending_extent.clear()
        self._pending_links.clear()

    def _link_relpath(self, collection: str, href: Any) -> str | None:
        """An item link of ``{collection}/collection.json`` as a path relative to the root."""
        if not isinstance(href, str) or not href:
            return None
        if href.startswith("file://"):
            href = href[len("file://") :]
        if "://" in href:
            return None
        path = href if os.path.isabs(href) else os.path.join(str(self.root), collection, href)
        try:
            return Path(os.path.normpath(path)).relative_to(self.root).as_posix()
        except ValueError:
            return None

    # ------------------------------------------------------------------ writes

    @contextlib.contextmanager
    def bulk(self, commit_every: int = 1000) -> Iterator[MatchupCatalogue]:
        """Batch many writes: one index transaction per ``commit_every`` items.

        Per-item writes stay atomic and locked (concurrent ``update_item`` callers
        are still safe); what bulk mode saves is an SQLite commit per item and the
        repeated collection checks, which dominate when thousands of items arrive
        at once (``eomatch-query``). Index rows are committed when the block ends,
        also on error, so they always match the files already written. Only the
        thread that opened the block writes in bulk; nesting is allowed.
        """
        if self._bulk_depth:
            self._bulk_depth += 1
            try:
                yield self
            finally:
                self._bulk_depth -= 1
            return
        conn = self.db  # checks (and rebuilds) the index before the transaction starts
        self._bulk_every = max(1, int(commit_every))
        self._bulk_pending = 0
        self._bulk_conn = conn
        conn.execute("BEGIN IMMEDIATE")
        self._bulk_depth = 1
        try:
            yield self
        finally:
            self._bulk_depth = 0
            self._bulk_conn = None
            self._bulk_collections.clear()
            conn.execute("COMMIT")

    def _bulk_tick(self, conn: sqlite3.Connection) -> None:
        if self._bulk_conn is not conn:
            return
        self._bulk_pending += 1
        if self._bulk_pending >= self._bulk_every:
            conn.execute("COMMIT")
            conn.execute("BEGIN IMMEDIATE")
            self._bulk_pending = 0

    def _relink(self, item: dict[str, Any], rel: str) -> None:
        """Structural links from the item's real place; item links to their targets' files."""
        links = [lk for lk in item.get("links") or [] if lk.get("rel") not in _STRUCTURAL]
        for link in links:
            if link.get("rel") not in _RELINKED:
                continue
            target = link_target_id(link)
            if not target:
                continue
            found = self._lookup(target)
            if found is not None:
                link["href"] = fast_relative_href(rel, found[2])
        item["links"] = _structural_links(rel) + links

    def _write_item(self, item: dict[str, Any], collection: str, existed: bool, rel: str) -> dict[str, Any]:
        self._relink(item, rel)
        path = self.root / rel
        jsonio.write_json_atomic(path, item)
        conn = self.db
        self._index_upsert(conn, item, rel, path.stat().st_mtime_ns, collection)
        if self._bulk_depth:
            self._bulk_tick(conn)
        try:
            _, start, end = item_times(item)
            self._note_extent(collection, item.get("bbox"), start.timestamp(), end.timestamp())
        except MatchupError:
            self._note_extent(collection, item.get("bbox"), None, None)
        # Linked on every write, not only a file's first: a run killed before save()
        # left files unlinked, and this re-run must link them (save() skips known links).
        self._pending_links.setdefault(collection, {})[rel] = None
        return item

    def add_item(self, item: Mapping[str, Any], collection: str | None = None) -> dict[str, Any]:
        """Upsert one item dict by id (merging with what is on disk); returns what was written."""
        new, coll, rel = self._prepare_item(item, collection)
        with self._item_lock(coll, str(new["id"])):
            path = self.root / rel
            existed = path.is_file()
            if existed:
                new = merge_items(jsonio.read_json(path), new)
            return self._write_item(new, coll, existed, rel)

    def _prepare_item(self, item: Mapping[str, Any], collection: str | None = None) -> tuple[dict[str, Any], str, str]:
        """Check an incoming item, fill STAC defaults, ensure its collection and find its
        relative path (where it already is, else the default layout)."""
        if not isinstance(item, Mapping) or item.get("type") != "Feature" or not item.get("id"):
            raise CatalogueError("not a STAC item: expected a dict with type 'Feature' and an id")
        coll = collection or item.get("collection")
        if not coll:
            raise CatalogueError(f"item {item.get('id')!r} has no collection")
        for what, name in (("item id", str(item["id"])), ("collection id", str(coll))):
            if (reason := unsafe_reason(name)) is not None:  # ids become paths: never outside the root
                raise CatalogueError(f"{what} {name!r} is not a safe file name ({reason})")
        new = dict(item)
        new["collection"] = coll
        new.setdefault("stac_version", STAC_VERSION)
        new.setdefault("properties", {})
        new.setdefault("assets", {})
        new["links"] = [dict(lk) for lk in item.get("links") or []]
        self.ensure_collection(str(coll), kind=infer_item_type(new, str(coll)))
        found = self._lookup(str(new["id"]), str(coll))
        try:
            rel = found[2] if found else default_relpath(new)
        except MatchupError as exc:
            raise CatalogueError(str(exc)) from None
        return new, str(coll), rel

    def add_items(self, items: Sequence[Mapping[str, Any]], workers: int = 4) -> list[dict[str, Any]]:
        """Upsert a batch of item dicts like :meth:`add_item`, writing the files in parallel.

        Creating files is I/O latency (journal, directory updates), so a few
        threads overlap it; lookups, relinking and index rows stay on the calling
        thread (one SQLite connection, cheap inside :meth:`bulk`). Each file is
        still written atomically under its item lock, merged with what is on disk.
        """
        prepared: list[tuple[dict[str, Any], str, str]] = []
        for item in items:
            new, coll, rel = self._prepare_item(item)
            self._relink(new, rel)
            prepared.append((new, coll, rel))

        def write(job: tuple[dict[str, Any], str, str]) -> tuple[dict[str, Any], str, str, bool, int]:
            new, coll, rel = job
            with self._item_lock(coll, str(new["id"])):
                path = self.root / rel
                existed = path.is_file()
                if existed:
                    new = merge_items(jsonio.read_json(path), new)
                    new["links"] = _structural_links(rel) + new["links"]
                jsonio.write_json_atomic(path, new)
                return new, coll, rel, existed, path.stat().st_mtime_ns

        if workers > 1 and len(prepared) > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=workers) as pool:
                results = list(pool.map(write, prepared))
        else:
            results = [write(job) for job in prepared]
        conn = self.db
        for new, coll, rel, _existed, mtime_ns in results:
            self._index_upsert(conn, new, rel, mtime_ns, coll)
            if self._bulk_depth:
                self._bulk_tick(conn)
            try:
                _, start, end = item_times(new)
                self._note_extent(coll, new.get("bbox"), start.timestamp(), end.timestamp())
            except MatchupError:
                self._note_extent(coll, new.get("bbox"), None, None)
            self._pending_links.setdefault(coll, {})[rel] = None  # see _write_item
        return [r[0] for r in results]

    def add_product(self, product: Mapping[str, Any] | Product) -> dict[str, Any]:
        """Upsert a product item (tagged ``matchup:type: product``)."""
        view = product if isinstance(product, Product) else Product.from_item(dict(product))
        return self.add_item(view.to_dict())

    def add_matchup(
        self,
        matchup: Matchup,
        products: tuple[Mapping[str, Any] | Product, Mapping[str, Any] | Product] | None = None,
    ) -> Matchup:
        """Upsert a matchup and its two products (given, or kept from Matchup.create)."""
        from eomatch.schema import validate_item

        chosen = products if products is not None else matchup._products
        if chosen is not None:
            for p in chosen:
                self.add_product(p)
        validate_item(matchup.to_dict())
        written = self.add_item(matchup.to_dict())
        matchup._item = written
        matchup._catalogue = self
        return matchup

    def add_event(self, event: MatchupEvent) -> MatchupEvent:
        """Upsert an event and all its matchups; an existing event gains the new matchups."""
        from eomatch.schema import validate_item

        for matchup in event.matchup_set:
            self.add_matchup(matchup)
        validate_item(event.to_dict())
        written = self.add_item(event.to_dict())
        event._item = written
        event._catalogue = self
        return event

    def update_item(
        self,
        item_id: str,
        fn: Callable[[dict[str, Any]], dict[str, Any] | None],
        collection: str | None = None,
    ) -> dict[str, Any]:
        """Read-modify-write one item under its lock; ``fn`` edits the dict (or returns a new one)."""
        coll, _, rel = self._require(item_id, collection)
        with self._item_lock(coll, item_id):
            path = self.root / rel
            item = jsonio.read_json(path)
            result = fn(item)
            if result is not None:
                item = result
            if item.get("id") != item_id:
                raise CatalogueError(f"update of {item_id!r} changed its id to {item.get('id')!r}")
            return self._write_item(item, coll, True, rel)

    # ------------------------------------------------------------------ reads

    def get_item(self, item_id: str, collection: str | None = None) -> dict[str, Any]:
        """One item dict by id (CatalogueError if unknown)."""
        return jsonio.read_json(self.root / self._require(item_id, collection)[2])

    def get_product(self, item_id: str) -> dict[str, Any]:
        return jsonio.read_json(self.root / self._require(item_id, kind="product")[2])

    def get_matchup(self, item_id: str) -> Matchup:
        return Matchup(jsonio.read_json(self.root / self._require(item_id, kind="matchup")[2]), self)

    def get_event(self, item_id: str) -> MatchupEvent:
        """One event with its ``matchup_set`` filled."""
        event = MatchupEvent(jsonio.read_json(self.root / self._require(item_id, kind="event")[2]), self)
        event.matchup_set = list(self._event_matchups(self.db, event))
        return event

    def _event_matchups(self, conn: sqlite3.Connection, event: MatchupEvent) -> Iterator[Matchup]:
        ids = event.matchup_ids
        # Two index lookups (event_id, then id), never one OR that SQLite would answer
        # by reading every matchup row: per event this stays O(its matchups).
        rows = conn.execute(
            "SELECT id, path FROM items INDEXED BY items_event WHERE event_id=? AND type='matchup'", (event.id,)
        ).fetchall()
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            rows += conn.execute(
                f"SELECT id, path FROM items INDEXED BY items_id WHERE id IN ({','.join('?' * len(chunk))})"
                " AND type='matchup'",
                chunk,
            ).fetchall()
        order = {mid: i for i, mid in enumerate(ids)}
        rows.sort(key=lambda r: (order.get(r[0], len(order)), r[0]))
        seen: set[str] = set()
        for mid, rel in rows:
            if mid in seen:
                continue
            seen.add(mid)
            yield Matchup(jsonio.read_json(self.root / rel), self)

    def get_events(
        self,
        collections: Sequence[str] | None = None,
        platforms: Sequence[str] | None = None,
        start_time: datetime | str | None = None,
        stop_time: datetime | str | None = None,
        bbox: Sequence[float] | None = None,
        properties: Mapping[str, Any] | None = None,
    ) -> Iterator[MatchupEvent]:
        """Stream events (``matchup_set`` filled) selected through the index.

        ``collections``: events/matchup collection ids, or product collection names
        that must all be in the pair. ``platforms``: events with any of them, by
        registry name or alias in any case (``S2A``, ``LANDSAT_9``; see :attr:`satellites`).
        Times keep events overlapping [start_time, stop_time]; ``bbox`` is
        [west, south, east, north] (west > east crosses the antimeridian).
        ``properties``: exact-match filters (a dict value holds operators lt/lte/
        gt/gte/eq/ne/in); keys the event has are tested on the event, others on its
        matchups, and events left with no matchup are dropped.
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
        if platforms:
            spellings = sorted({s.casefold() for p in platforms for s in platform_spellings(p, self.satellites)})
            # instr, not LIKE: '_' in names such as LANDSAT_9 is no wildcard here.
            sql += " AND (" + " OR ".join("instr(lower(platforms), ?) > 0" for _ in spellings) + ")"
            params.extend(f"|{s}|" for s in spellings)
        if start_time is not None:
            sql += " AND end_ts >= ?"
            params.append(_epoch(start_time))
        if stop_time is not None:
            sql += " AND start_ts <= ?"
            params.append(_epoch(stop_time, end=True))
        if bbox is not None:
            if len(bbox) != 4:
                raise CatalogueError("bbox must be [west, south, east, north]")
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
        _ = self.db  # make sure the index is fresh
        reader = self._connect()
        try:
            cur = reader.execute(sql, params)
            while True:
                rows = cur.fetchmany(_FETCH)
                if not rows:
                    break
                for _, rel in rows:
                    event = MatchupEvent(jsonio.read_json(self.root / rel), self)
                    if properties:
                        ev_cond = {k: v for k, v in properties.items() if k in event.properties}
                        mu_cond = {k: v for k, v in properties.items() if k not in event.properties}
                        if not _props_match(event.properties, ev_cond):
                            continue
                        matchups = list(self._event_matchups(reader, event))
                        if mu_cond:
                            matchups = [m for m in matchups if _props_match(m.properties, mu_cond)]
                            if not matchups:
                                continue
                    else:
                        matchups = list(self._event_matchups(reader, event))
                    event.matchup_set = matchups
                    yield event
        finally:
            reader.close()


def open_catalogue(path: str | os.PathLike[str]) -> MatchupCatalogue:
    """Shorthand for :meth:`MatchupCatalogue.open`."""
    return MatchupCatalogue.open(path)


def dumps_item(item: Mapping[str, Any]) -> bytes:
    """Compact JSON of an item (for loaders that want bytes)."""
    return orjson.dumps(item)
