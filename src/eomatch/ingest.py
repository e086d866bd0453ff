"""Push a local matchup catalogue into pgSTAC (the design's ``eomatch-ingest``).

Files are the source of truth. Items stream from disk in batches into
pypgstac's ``Loader`` (upsert), collections first. Hrefs are made to work in the
database: relative asset hrefs become absolute ``file://`` URIs (or URLs under
``assets_base_url``), and item-to-item links become API-relative
(``collections/{c}/items/{i}``), which stac-fastapi resolves against the root of
whichever API serves the item, so they work on ``/api/`` and ``/external/``.

Idempotent: a per catalogue + database state file remembers a hash of every
item file sent, so an unchanged item is not sent again, and the run reports new /
updated / unchanged counts. ``since="last"`` only looks at files modified after
the previous successful run. A crash leaves the database consistent (every
partition load is one transaction; the state records a batch only after it is
committed) and the next run completes the work. One run at a time per catalogue
and database: a second one finds the lock taken and returns at once.

Reading, parsing and rewriting files runs in a thread ahead of the database
loads, so the Python work overlaps the time the database spends upserting.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import queue
import sqlite3
import struct
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urljoin

import orjson
from filelock import FileLock, Timeout

from eomatch import jsonio
from eomatch.catalogue import MatchupCatalogue
from eomatch.errors import CatalogueError, ConfigError, EomatchError, IngestError
from eomatch.model import MatchupError, to_utc
from eomatch.progress import Progress
from eomatch.settings import Settings
from eomatch.stack.db import DbCredentials

log = logging.getLogger(__name__)

_STRUCTURAL = {"self", "root", "parent", "collection", "item", "child", "items"}
_ITEM_LINK_RELS = {"derived_from", "related", "via", "source", "predecessor-version", "successor-version"}
_MAX_LISTED = 200_000
"""With ``since``, up to this many changed paths are listed in memory (one walk), beyond it streamed."""
_STATE_VERSION = "3"
"""Bump when transforms change: item hashes of older versions then no longer match."""

# Exit codes of ``eomatch-ingest --exit-codes monitoring`` (schedulers, monitoring).
# A run that finds another one holding the lock did nothing wrong: it exits 0 and says so.
EXIT_INGESTED = 0
EXIT_FAILED = 2
EXIT_NOTHING_TO_DO = 3
EXIT_LOCKED = 0


@dataclass
class IngestSummary:
    """What one run did; ``line()`` is the one-line summary commands print."""

    catalogue: str
    target: str
    collections: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    scanned: int = 0
    seconds: float = 0.0
    dry_run: bool = False
    locked: bool = False
    errors: list[str] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return self.new + self.updated

    def exit_code(self) -> int:
        """The ``--exit-codes monitoring`` code of this run (failures raise instead)."""
        if self.locked:
            return EXIT_LOCKED
        return EXIT_INGESTED if self.changed else EXIT_NOTHING_TO_DO

    def line(self) -> str:
        if self.locked:
            return (
                f"another run holds the lock on ingesting {self.catalogue} into {self.target}; "
                "nothing done"
            )
        rate = self.scanned / self.seconds if self.seconds > 0 else 0.0
        verb = "would ingest" if self.dry_run else "ingested"
        what = f"{self.new} new, {self.updated} updated, {self.unchanged} unchanged"
        if self.changed == 0:
            what = f"nothing to do ({self.unchanged} unchanged)"
        return (
            f"{verb} {self.catalogue} into {self.target}: {what}; "
            f"{self.collections} collections; {self.scanned} files scanned in {self.seconds:.1f}s "
            f"({rate:,.0f} items/s)"
        )


# --------------------------------------------------------------------------- targets


def _running_stack_port(settings: Settings) -> int | None:
    """The port the local stack's PostgreSQL really listens on (``postmaster.pid``, line 4).

    Lets ``--state-dir`` alone select a stack started on another port.
    """
    from eomatch.stack.state import StatePaths

    pidfile = StatePaths(settings.stack.state_dir).pgdata / "postmaster.pid"
    try:
        lines = pidfile.read_text().splitlines()
        return int(lines[3])
    except (OSError, ValueError, IndexError):
        return None


def resolve_credentials(
    settings: Settings,
    db_host: str | None = None,
    db_port: int | None = None,
    db_name: str | None = None,
    db_user: str | None = None,
    db_password: str | None = None,
) -> DbCredentials:
    """Flags, then ``ingest.*`` config, then the local stack's ingest role."""
    cfg = settings.ingest
    host = db_host or cfg.db_host
    user = db_user or cfg.db_user
    port = db_port or cfg.db_port
    name = db_name or cfg.db_name
    password = db_password if db_password is not None else cfg.db_password
    if host is None and user is None and port is None and name is None:
        from eomatch.stack.db import stack_credentials

        try:
            local = stack_credentials(settings, "ingest")
        except EomatchError as exc:  # StackError: no local stack state
            raise ConfigError(
                f"no database given (--db-host/--db-user or ingest.* in the config) and {exc}"
            ) from None
        running = _running_stack_port(settings)
        if running is not None and running != local.port:
            local = DbCredentials(local.host, running, local.dbname, local.user, local.password)
        return local
    if password is None:
        raise ConfigError("no database password: set PGPASSWORD (or ingest.db_password in the config)")
    return DbCredentials(
        host=host or "127.0.0.1",
        port=int(port or 5432),
        dbname=name or "postgres",
        user=user or os.environ.get("USER", "postgres"),
        password=password,
    )


def connect(creds: DbCredentials) -> Any:
    """Open a psycopg connection; turn every failure into one line naming the target."""
    import psycopg

    try:
        conn = psycopg.connect(creds.dsn, connect_timeout=5, autocommit=True)
    except psycopg.OperationalError as exc:
        text = str(exc)
        msg = text.strip().splitlines()
        detail = msg[-1] if msg else "connection failed"
        if "password authentication failed" in text:
            detail = f"password authentication failed for user {creds.user}"
        elif "does not exist" in text and "database" in text:
            detail = f"database {creds.dbname} does not exist"
        elif "Connection refused" in text or "could not connect" in text or "timeout expired" in text:
            detail = "connection refused (is the database running?)"
        raise IngestError(f"cannot connect to {creds.redacted()}: {detail}") from None
    try:
        version = conn.execute("SELECT pgstac.get_version()").fetchone()
    except psycopg.Error:
        conn.close()
        raise IngestError(
            f"pgSTAC is not installed in {creds.redacted()} (run 'pypgstac migrate' as a superuser)"
        ) from None
    log.debug("pgSTAC %s at %s", version[0] if version else "?", creds.redacted())
    return conn


# --------------------------------------------------------------------------- transforms


def _file_uri(path: str | Path) -> str:
    return "file://" + quote(os.fspath(path))


class HrefRewriter:
    """Makes an item's hrefs meaningful outside its folder (string work, no syscalls)."""

    def __init__(self, root: Path, assets_base_url: str | None) -> None:
        self.root = root.resolve()
        self._root_prefix = os.fspath(self.root).rstrip(os.sep) + os.sep
        self.base = assets_base_url.rstrip("/") + "/" if assets_base_url else None

    def asset_href(self, href: str, item_dir: str | Path) -> str:
        if "://" in href:
            if href.startswith("file://") and self.base:
                return self._under_base(os.path.normpath(unquote(href[len("file://") :])), href)
            return href
        path = href if os.path.isabs(href) else os.path.join(item_dir, href)
        path = os.path.normpath(path)
        if self.base:
            return self._under_base(path, _file_uri(path))
        return _file_uri(path)

    def _under_base(self, path: str, fallback: str) -> str:
        if self.base is None or not path.startswith(self._root_prefix):
            return fallback  # outside the catalogue: not served by the proxy
        rel = path[len(self._root_prefix) :]
        return self.base + quote(rel.replace(os.sep, "/"))


def api_item_href(collection: str, item_id: str) -> str:
    """Relative to an API's root, so the link resolves on any API that serves it."""
    return f"collections/{quote(collection, safe='')}/items/{quote(item_id, safe='')}"


def transform_item(item: dict[str, Any], path: str | Path, rewriter: HrefRewriter, now_iso: str) -> dict[str, Any]:
    """File item -> database item (drops structural links, rewrites hrefs).

    ``now_iso`` (when the file last changed here) becomes ``properties.updated``
    unless the item says it was updated later: the file changing is a metadata
    update, and ``eomatch-query --since last`` selects on ``updated``. (Keeping an
    older provider ``updated`` would hide e.g. a newly downloaded ``data`` asset.)
    """
    item_dir = os.path.dirname(os.fspath(path))
    links_out = []
    for link in item.get("links") or []:
        rel = link.get("rel")
        if rel in _STRUCTURAL:
            continue
        href = link.get("href", "")
        if rel in _ITEM_LINK_RELS and "://" not in href and href.endswith(".json"):
            target = _target_from_path(item_dir, href)
            if target is not None:
                link = {**link, "href": api_item_href(*target)}
        elif "://" not in href and href:
            link = {**link, "href": rewriter.asset_href(href, item_dir)}
        links_out.append(link)
    item["links"] = links_out
    assets = item.get("assets") or {}
    for asset in assets.values():
        if isinstance(asset, dict) and isinstance(asset.get("href"), str):
            asset["href"] = rewriter.asset_href(asset["href"], item_dir)
    props = item.setdefault("properties", {})
    if not _later(props.get("updated"), now_iso):
        props["updated"] = now_iso
    return item


def _later(value: Any, than_iso: str) -> bool:
    """Whether ``value`` is a datetime string after ``than_iso`` (False if unreadable)."""
    if not isinstance(value, str):
        return False
    try:
        return to_utc(value) > to_utc(than_iso)
    except (ValueError, MatchupError):
        return False


def _target_from_path(item_dir: str | Path, href: str) -> tuple[str, str] | None:
    """``../../S2/2022/05/21/x.json`` -> (collection, id) from the catalogue layout."""
    parts = os.path.normpath(os.path.join(item_dir, href)).split(os.sep)
    if len(parts) < 5:
        return None
    item_id = parts[-1][: -len(".json")]
    # {collection}/{YYYY}/{MM}/{DD}/{id}.json
    if parts[-2].isdigit() and parts[-3].isdigit() and parts[-4].isdigit():
        return parts[-5], item_id
    return parts[-2], item_id


def transform_collection(col: dict[str, Any], folder: Path, rewriter: HrefRewriter) -> dict[str, Any]:
    """File collection -> database collection (no item links; absolute asset hrefs)."""
    out = {k: v for k, v in col.items()}
    out["links"] = [
        lk for lk in col.get("links") or [] if lk.get("rel") not in _STRUCTURAL and "://" in lk.get("href", "")
    ]
    for asset in (out.get("assets") or {}).values():
        if isinstance(asset, dict) and isinstance(asset.get("href"), str):
            asset["href"] = rewriter.asset_href(asset["href"], folder)
    return out


# --------------------------------------------------------------------------- state


def _state_key(creds: DbCredentials) -> str:
    return hashlib.sha1(f"{creds.host}:{creds.port}/{creds.dbname}".encode()).hexdigest()[:12]


class IngestState:
    """Per catalogue + database memory of what was sent (sqlite in the catalogue)."""

    def __init__(self, root: Path, creds: DbCredentials) -> None:
        key = _state_key(creds)
        self.dir = root / ".eomatch"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / f"ingest-{key}.sqlite"
        self.lock_path = self.dir / f"ingest-{key}.lock"
        self.conn = sqlite3.connect(self.path, timeout=30)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS sent (id TEXT, collection TEXT, hash TEXT, PRIMARY KEY (collection, id))"
        )
        self.conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        self.conn.commit()
        if self.get("version") != _STATE_VERSION:
            self.conn.execute("DELETE FROM sent")
            self.conn.execute("DELETE FROM meta")
            self.set("version", _STATE_VERSION)

    def get(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set(self, key: str, value: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
        self.conn.commit()

    def hashes(self, collection: str, ids: list[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for i in range(0, len(ids), 900):
            chunk = ids[i : i + 900]
            q = f"SELECT id, hash FROM sent WHERE collection = ? AND id IN ({','.join('?' * len(chunk))})"
            out.update(self.conn.execute(q, (collection, *chunk)).fetchall())
        return out

    def record(self, rows: Iterable[tuple[str, str, str]]) -> None:
        self.conn.executemany("INSERT OR REPLACE INTO sent (id, collection, hash) VALUES (?, ?, ?)", rows)
        self.conn.commit()

    def counts(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT collection, count(*) FROM sent GROUP BY collection").fetchall())

    def forget(self, collection: str) -> None:
        self.conn.execute("DELETE FROM sent WHERE collection = ?", (collection,))
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()


# --------------------------------------------------------------------------- reading


_WKB_TYPES = {"Point": 1, "LineString": 2, "Polygon": 3, "MultiPoint": 4, "MultiLineString": 5, "MultiPolygon": 6}


def _ewkb_hex(geom: dict[str, Any]) -> str | None:
    """GeoJSON -> little-endian EWKB hex with SRID 4326, as pypgstac writes it (via plpygis).

    A direct encoder: plpygis builds an object per vertex, which made geometry the
    largest single cost of formatting an item. None for what it does not cover
    (GeometryCollection, mixed dimensions): the caller then falls back on plpygis.
    """
    kind = _WKB_TYPES.get(geom.get("type"))  # type: ignore[arg-type]
    coords = geom.get("coordinates")
    if kind is None or coords is None:
        return None
    try:
        dims = _first_dims(coords, kind)
        if dims not in (2, 3):
            return None
        parts: list[bytes] = []
        _wkb_body(parts, kind, coords, dims, with_header=False)
    except (TypeError, ValueError, struct.error, IndexError):
        return None
    flags = kind | 0x20000000 | (0x80000000 if dims == 3 else 0)
    return (struct.pack("<BII", 1, flags, 4326) + b"".join(parts)).hex()


def _first_dims(coords: Any, kind: int) -> int:
    depth = {1: 0, 2: 1, 3: 2, 4: 1, 5: 2, 6: 3}[kind]
    c = coords
    for _ in range(depth):
        c = c[0]
    return len(c)


def _points(parts: list[bytes], pts: Any, dims: int) -> None:
    flat = [v for pt in pts for v in pt]
    if len(flat) != dims * len(pts):
        raise ValueError("mixed coordinate dimensions")
    parts.append(struct.pack(f"<I{len(flat)}d", len(pts), *flat))


def _wkb_body(parts: list[bytes], kind: int, coords: Any, dims: int, with_header: bool) -> None:
    if with_header:
        parts.append(struct.pack("<BI", 1, kind | (0x80000000 if dims == 3 else 0)))
    if kind == 1:
        if len(coords) != dims:
            raise ValueError("mixed coordinate dimensions")
        parts.append(struct.pack(f"<{dims}d", *coords))
    elif kind == 2:
        _points(parts, coords, dims)
    elif kind == 3:
        parts.append(struct.pack("<I", len(coords)))
        for ring in coords:
            _points(parts, ring, dims)
    else:
        parts.append(struct.pack("<I", len(coords)))
        for member in coords:
            _wkb_body(parts, kind - 3, member, dims, with_header=True)


class _Formatted(dict):  # type: ignore[type-arg]
    """A database row pypgstac's loader has already been given the item of."""


def _fast_loader_class() -> type:
    from pypgstac.load import Loader

    class FastLoader(Loader):  # type: ignore[misc]
        """pypgstac's Loader with a direct geometry encoder; passes pre-formatted rows through."""

        def format_item(self, _item: Any) -> dict[str, Any]:
            if isinstance(_item, _Formatted):
                return _item
            if isinstance(_item, dict) and isinstance(_item.get("geometry"), dict):
                ewkb = _ewkb_hex(_item["geometry"])
                if ewkb is not None:
                    _item["geometry"] = None
                    out: dict[str, Any] = super().format_item(_item)
                    out["geometry"] = ewkb
                    return _Formatted(out)
            return _Formatted(super().format_item(_item))

    return FastLoader


@dataclass
class _FileItem:
    collection: str
    id: str
    digest: str
    path: str
    item: dict[str, Any] | None = None
    """The database row (formatted) or item (not formatted); None when unchanged."""


def _iso_utc(epoch_s: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_s))


def _walk(dirs: dict[str, Path], since_ns: int | None) -> Iterator[tuple[str, str]]:
    """(collection folder, path) of every item file; a stat only with ``since``.

    Directories are read through a file descriptor, so each stat resolves one
    name rather than the whole path (twice as fast on a 100k-file catalogue).
    """
    skip = ("collection.json", "catalog.json")
    for name, folder in sorted(dirs.items()):
        stack = [os.fspath(folder)]
        while stack:
            current = stack.pop()
            try:
                fd = os.open(current, os.O_RDONLY | os.O_DIRECTORY)
            except OSError:
                continue  # vanished or not a folder
            subdirs = []
            try:
                with os.scandir(fd) as it:
                    for entry in it:
                        n = entry.name
                        if n.startswith("."):
                            continue
                        if entry.is_dir(follow_symlinks=False):
                            subdirs.append(f"{current}/{n}")
                        elif n.endswith(".json") and n not in skip:
                            # ctime too: files copied in with their old mtime (rsync -a, cp -p)
                            # still changed here when they arrived.
                            if since_ns is None or _changed_ns(entry.stat()) > since_ns:
                                yield name, f"{current}/{n}"
            finally:
                os.close(fd)
            subdirs.sort(reverse=True)
            stack.extend(subdirs)


def _changed_ns(st: os.stat_result) -> int:
    """When a file last changed here: its content (mtime) or its arrival (ctime)."""
    return max(st.st_mtime_ns, st.st_ctime_ns)


def _read_items(
    paths: Iterable[tuple[str, str | Path]], rewriter: HrefRewriter, salt: bytes
) -> Iterator[_FileItem]:
    """Read, hash and transform item files (the hash is of path and bytes: cheap, stable)."""
    for batch in _read_batches(paths, rewriter, salt, 1, None, None):
        yield from batch


def _read_batches(
    paths: Iterable[tuple[str, str | Path]],
    rewriter: HrefRewriter,
    salt: bytes,
    batch: int,
    known_hashes: Any,
    formatter: Any,
) -> Iterator[list[_FileItem]]:
    """Batches of read items; unchanged files (``known_hashes``) are not parsed at all.

    ``known_hashes(collection, ids) -> {id: hash}`` looks up what was sent before;
    ``formatter(item) -> row`` turns a transformed item into pypgstac's row.
    """
    raw: list[tuple[str, str, bytes, float]] = []

    def finish() -> list[_FileItem]:
        out: list[_FileItem] = []
        previous: dict[tuple[str, str], str] = {}
        if known_hashes is not None:
            by_coll: dict[str, list[str]] = {}
            for coll, path, _, _ in raw:
                by_coll.setdefault(coll, []).append(os.path.basename(path)[: -len(".json")])
            for coll, ids in by_coll.items():
                for item_id, digest in known_hashes(coll, ids).items():
                    previous[(coll, item_id)] = digest
        for coll, path, data, mtime_s in raw:
            # The path is hashed too: relative hrefs become absolute from where the file is.
            h = hashlib.blake2b(path.encode(), digest_size=16, key=salt)
            h.update(data)
            digest = h.hexdigest()
            stem = os.path.basename(path)[: -len(".json")]
            if previous.get((coll, stem)) == digest:
                out.append(_FileItem(coll, stem, digest, path, None))
                continue
            try:
                item = orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                raise CatalogueError(f"malformed JSON in {path} line {exc.lineno}: {exc.msg}") from None
            if not isinstance(item, dict) or item.get("type") != "Feature" or not item.get("id"):
                continue
            item.setdefault("collection", coll)
            item = transform_item(item, path, rewriter, _iso_utc(mtime_s))
            fi = _FileItem(str(item["collection"]), str(item["id"]), digest, path, item)
            if formatter is not None:
                try:
                    fi.item = formatter(fi.collection, item)
                except EomatchError:
                    raise
                except Exception as exc:
                    raise IngestError(f"item {fi.id} ({path}) cannot be loaded: {_first_line(exc)}") from None
            out.append(fi)
        raw.clear()
        return out

    for coll, path in paths:
        path = os.fspath(path)
        try:
            with open(path, "rb") as fh:
                data = fh.read()
                st = os.fstat(fh.fileno())
                mtime_s = max(st.st_mtime, st.st_ctime)  # see _changed_ns
        except FileNotFoundError:
            continue  # removed since the walk saw it
        except OSError as exc:
            raise CatalogueError(f"cannot read {path}: {exc.strerror}") from None
        raw.append((coll, path, data, mtime_s))
        if len(raw) >= batch:
            yield finish()
    if raw:
        yield finish()


class _Prefetch:
    """Runs a batch generator in a thread, at most ``depth`` batches ahead of the consumer."""

    _DONE = object()

    def __init__(self, batches: Iterator[list[_FileItem]], depth: int = 1) -> None:
        self._batches = batches
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="ingest-read", daemon=True)
        self._thread.start()

    def _put(self, value: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(value, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _work(self) -> None:
        try:
            for batch in self._batches:
                if not self._put(batch):
                    return
            self._put(self._DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(exc)

    def __iter__(self) -> Iterator[list[_FileItem]]:
        while True:
            value = self._queue.get()
            if value is self._DONE:
                return
            if isinstance(value, BaseException):
                raise value
            yield value

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


# --------------------------------------------------------------------------- ingest


def ingest(
    settings: Settings,
    catalogue: str | Path | None = None,
    db_host: str | None = None,
    db_port: int | None = None,
    db_name: str | None = None,
    db_user: str | None = None,
    db_password: str | None = None,
    assets_base_url: str | None = None,
    since: str | None = None,
    dry_run: bool = False,
    quiet: bool = False,
    batch_size: int | None = None,
) -> IngestSummary:
    """Push ``catalogue`` into pgSTAC; the same parameters as ``eomatch-ingest``."""
    cat_path = catalogue or settings.matchup_catalogue.path
    if cat_path is None:
        raise ConfigError("no catalogue given: pass --catalogue or set matchup_catalogue.path in the config")
    if since not in (None, "last"):
        raise ConfigError(f"--since takes 'last', not {since!r}")
    cat = MatchupCatalogue.open(cat_path)
    root = cat.root
    creds = resolve_credentials(settings, db_host, db_port, db_name, db_user, db_password)
    base_url = assets_base_url or settings.ingest.assets_base_url
    batch = batch_size or settings.ingest.batch_size
    if batch < 1:
        raise ConfigError(f"ingest batch size must be at least 1, got {batch}")
    summary = IngestSummary(catalogue=str(root), target=creds.redacted(), dry_run=dry_run)
    t0 = time.monotonic()
    state_dir = root / ".eomatch"
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CatalogueError(f"cannot write ingest state in {state_dir}: {exc.strerror}") from None
    # One run per catalogue + database: taken before anything else, released by
    # the OS if the process dies (flock).
    lock = FileLock(str(state_dir / f"ingest-{_state_key(creds)}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        summary.locked = True
        summary.seconds = time.monotonic() - t0
        return summary
    try:
        conn = connect(creds)
        state = IngestState(root, creds)
        try:
            _run(cat, conn, creds, state, summary, HrefRewriter(root, base_url), since, dry_run, quiet, batch)
        except EomatchError:
            raise
        except Exception as exc:  # database errors mid-run: one line, not a traceback
            raise IngestError(f"ingest into {creds.redacted()} failed: {_first_line(exc)}") from None
        finally:
            state.close()
            conn.close()
    finally:
        lock.release()
    summary.seconds = time.monotonic() - t0
    return summary


def _db_collections(conn: Any) -> dict[str, int]:
    return {
        cid: int(n)
        for cid, n in conn.execute(
            "SELECT c.id, coalesce(s.n, 0) FROM pgstac.collections c LEFT JOIN "
            "(SELECT collection, count(*) AS n FROM pgstac.items GROUP BY collection) s ON s.collection = c.id"
        ).fetchall()
    }


def _run(
    cat: Any,
    conn: Any,
    creds: DbCredentials,
    state: IngestState,
    summary: IngestSummary,
    rewriter: HrefRewriter,
    since: str | None,
    dry_run: bool,
    quiet: bool,
    batch: int,
) -> None:
    started_epoch = time.time()
    changed_since: float | None = None
    if since == "last":
        last = state.get("last_success_epoch")
        changed_since = float(last) if last else None

    # The database may have been reset or restored since we last sent: trust our
    # memory of a collection only if the database still holds at least that much.
    in_db = _db_collections(conn)
    for collection, n in state.counts().items():
        if in_db.get(collection, 0) < n:
            state.forget(collection)
            changed_since = None  # a full look is needed to refill it
    remembered = state.counts()
    since_ns = int(changed_since * 1e9) if changed_since is not None else None
    dirs = cat._collection_dirs()

    # Collections first. With ``since``, a collection.json not modified since the
    # last run, of a collection the database still has, is not even read (their
    # item links make them large).
    collections = []
    known = set(in_db)
    for name, folder in sorted(dirs.items()):
        col_path = folder / "collection.json"
        try:
            col_mtime_ns = _changed_ns(col_path.stat())
        except FileNotFoundError:
            continue
        if since_ns is not None and name in in_db and col_mtime_ns <= since_ns:
            summary.collections += 1
            continue
        col = jsonio.read_json(col_path)
        collections.append(transform_collection(col, folder, rewriter))
        known.add(str(col["id"]))
        summary.collections += 1

    # pypgstac is imported and connected only when something is to be loaded (a
    # scheduled run with nothing to do stays fast): one loader for the loads, one
    # for formatting items in the reading thread.
    loaders: dict[str, Any] = {}

    def get_loader(role: str) -> Any:
        if role not in loaders:
            from pypgstac.db import PgstacDB

            db = PgstacDB(dsn=creds.dsn, commit_on_exit=True)
            loaders[role] = (db, _fast_loader_class()(db=db))
        return loaders[role][1]

    reader = sqlite3.connect(state.path, timeout=30, check_same_thread=False)
    prefetch: _Prefetch | None = None
    try:
        changed_cols = [c for c in collections if c != _db_collection(conn, c["id"])]
        if changed_cols and not dry_run:
            from pypgstac.load import Methods

            try:
                get_loader("load").load_collections(iter(changed_cols), insert_mode=Methods.upsert)
            except Exception as exc:
                raise IngestError(f"loading collections failed: {_first_line(exc)}") from None

        def known_hashes(collection: str, ids: list[str]) -> dict[str, str]:
            if not remembered.get(collection):
                return {}
            return _hashes(reader, collection, ids)

        def formatter(collection: str, item: dict[str, Any]) -> dict[str, Any]:
            if dry_run or collection not in known:
                return item  # nothing will be loaded (dry run) or the batch fails anyway
            return get_loader("format").format_item(item)  # type: ignore[no-any-return]

        # Item hashes cover the file and what the transform depends on.
        salt = hashlib.blake2b(f"{_STATE_VERSION}|{rewriter.root}|{rewriter.base or ''}".encode(), digest_size=32).digest()
        # Which files: with ``since``, one walk (a stat per file) lists the changed
        # ones, usually few; a full run streams the walk and counts it (for the
        # ETA) with a second, stat-free walk that overlaps the first reads.
        paths: Iterable[tuple[str, str]]
        total: int | None = None
        if since_ns is not None:
            changed = list(itertools.islice(_walk(dirs, since_ns), _MAX_LISTED))
            if len(changed) < _MAX_LISTED:
                paths, total = changed, len(changed)
            else:
                paths = _walk(dirs, since_ns)
        else:
            paths = _walk(dirs, None)
        # Reading, parsing, rewriting and formatting run in a thread ahead of the loads.
        prefetch = _Prefetch(_read_batches(paths, rewriter, salt, batch, known_hashes, formatter))
        if total is None:
            total = sum(1 for _ in _walk(dirs, since_ns))
        progress = Progress("ingest", total=total, quiet=quiet)
        for pending in prefetch:
            summary.scanned += len(pending)
            _load_batch(pending, conn, state, remembered, in_db, known, get_loader, summary, dry_run)
            progress.update(len(pending))
        progress.close()
    finally:
        if prefetch is not None:
            prefetch.close()
        reader.close()
        for db, _ in loaders.values():
            db.close()
    if not dry_run:
        state.set("last_success_epoch", repr(started_epoch))


def _db_collection(conn: Any, collection_id: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT content FROM pgstac.collections WHERE id = %s", (collection_id,)).fetchone()
    return dict(row[0]) if row else None


def _hashes(conn: sqlite3.Connection, collection: str, ids: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for i in range(0, len(ids), 900):
        chunk = ids[i : i + 900]
        q = f"SELECT id, hash FROM sent WHERE collection = ? AND id IN ({','.join('?' * len(chunk))})"
        out.update(conn.execute(q, (collection, *chunk)).fetchall())
    return out


def _load_batch(
    pending: list[_FileItem],
    conn: Any,
    state: IngestState,
    remembered: dict[str, int],
    in_db: dict[str, int],
    known: set[str],
    get_loader: Any,
    summary: IngestSummary,
    dry_run: bool,
) -> None:
    """Classify one batch (new / updated / unchanged), upsert what changed, remember it."""
    by_collection: dict[str, list[_FileItem]] = {}
    for fi in pending:
        if fi.item is None:  # the file's hash matched: not even parsed
            summary.unchanged += 1
            continue
        if fi.collection not in known:
            raise IngestError(
                f"item {fi.id} ({fi.path}) belongs to collection '{fi.collection}', "
                "which is neither in the catalogue nor in the database"
            )
        by_collection.setdefault(fi.collection, []).append(fi)
    to_send: list[dict[str, Any]] = []
    sent_rows: list[tuple[str, str, str]] = []
    for collection, rows in by_collection.items():
        # Lookups only where they can find something: an empty memory or an
        # empty collection in the database needs no query.
        previous = state.hashes(collection, [r.id for r in rows]) if remembered.get(collection) else {}
        fresh = [r.id for r in rows if r.id not in previous]
        existing = _existing_ids(conn, collection, fresh) if fresh and in_db.get(collection) else set()
        for fi in rows:
            old = previous.get(fi.id)
            if old == fi.digest:
                summary.unchanged += 1
                continue
            if old is None and fi.id not in existing:
                summary.new += 1
            else:
                summary.updated += 1
            to_send.append(fi.item)  # type: ignore[arg-type]
            sent_rows.append((fi.id, collection, fi.digest))
    if to_send and not dry_run:
        from pypgstac.load import Methods

        try:
            get_loader("load").load_items(iter(to_send), insert_mode=Methods.upsert, chunksize=len(to_send))
        except Exception as exc:
            raise IngestError(f"loading items failed: {_first_line(exc)}") from None
        state.record(sent_rows)


def _existing_ids(conn: Any, collection: str, ids: list[str]) -> set[str]:
    rows = conn.execute(
        "SELECT id FROM pgstac.items WHERE collection = %s AND id = ANY(%s)", (collection, ids)
    ).fetchall()
    return {r[0] for r in rows}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def urljoin_base(base: str, rel: str) -> str:
    return urljoin(base.rstrip("/") + "/", rel)
