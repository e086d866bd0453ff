"""Push a local matchup catalogue into pgSTAC (the design's ``eomatch-ingest``).

Files are the source of truth. Items stream from disk in batches into
pypgstac's ``Loader`` (upsert), collections first. Hrefs are made to work in the
database: relative asset hrefs become absolute ``file://`` URIs (or URLs under
``assets_base_url``), and item-to-item links become API-relative
(``collections/{c}/items/{i}``), which stac-fastapi resolves against the root of
whichever API serves the item, so they work on ``/api/`` and ``/external/``.

Idempotent: a per catalogue + database state file remembers a hash of every
item sent, so an unchanged item is not sent again, and the run reports new /
updated / unchanged counts. ``since="last"`` only looks at files modified after
the previous successful run. A crash leaves the database consistent (each
batch is one transaction) and the next run completes the work.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin

import orjson
from filelock import FileLock, Timeout

from eomatch.errors import CatalogueError, ConfigError, IngestError
from eomatch.progress import Progress
from eomatch.settings import Settings
from eomatch.stack.db import DbCredentials

log = logging.getLogger(__name__)

_STRUCTURAL = {"self", "root", "parent", "collection", "item", "child", "items"}
_ITEM_LINK_RELS = {"derived_from", "related", "via", "source", "predecessor-version", "successor-version"}

# Exit codes for schedulers: distinct "nothing to do", "ingested", "failed".
EXIT_INGESTED = 0
EXIT_NOTHING_TO_DO = 0
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

    def line(self) -> str:
        if self.locked:
            return f"another ingest of {self.catalogue} into {self.target} is running; nothing done"
        rate = self.scanned / self.seconds if self.seconds > 0 else 0.0
        verb = "would ingest" if self.dry_run else "ingested"
        what = f"{self.new} new, {self.updated} updated, {self.unchanged} unchanged"
        if self.changed == 0:
            what = f"nothing to do ({self.unchanged} unchanged)"
        return (
            f"{verb} {self.catalogue} into {self.target}: {what}; "
            f"{self.collections} collections; {self.scanned} files in {self.seconds:.1f}s ({rate:,.0f} items/s)"
        )


# --------------------------------------------------------------------------- targets


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
        except Exception as exc:  # StackError: no local stack state
            raise ConfigError(
                f"no database given (--db-host/--db-user or ingest.* in the config) and {exc}"
            ) from None
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
        msg = str(exc).strip().splitlines()
        detail = msg[-1] if msg else "connection failed"
        if "password authentication failed" in str(exc):
            detail = f"password authentication failed for user {creds.user}"
        elif "Connection refused" in str(exc) or "could not connect" in str(exc):
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


def _file_uri(path: Path) -> str:
    return "file://" + quote(str(path))


class HrefRewriter:
    """Makes an item's hrefs meaningful outside its folder."""

    def __init__(self, root: Path, assets_base_url: str | None) -> None:
        self.root = root.resolve()
        self.base = assets_base_url.rstrip("/") + "/" if assets_base_url else None

    def asset_href(self, href: str, item_dir: Path) -> str:
        if "://" in href:
            if href.startswith("file://") and self.base:
                return self._under_base(Path(href[len("file://"):]), href)
            return href
        path = Path(href) if os.path.isabs(href) else (item_dir / href)
        path = Path(os.path.normpath(path))
        if self.base:
            return self._under_base(path, _file_uri(path))
        return _file_uri(path)

    def _under_base(self, path: Path, fallback: str) -> str:
        try:
            rel = path.resolve().relative_to(self.root)
        except ValueError:
            return fallback  # outside the catalogue: not served by the proxy
        return self.base + quote(rel.as_posix()) if self.base else fallback


def api_item_href(collection: str, item_id: str) -> str:
    """Relative to an API's root, so the link resolves on any API that serves it."""
    return f"collections/{quote(collection, safe='')}/items/{quote(item_id, safe='')}"


def transform_item(item: dict[str, Any], path: Path, rewriter: HrefRewriter, now_iso: str) -> dict[str, Any]:
    """File item -> database item (drops structural links, rewrites hrefs)."""
    item_dir = path.parent
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
    props.setdefault("updated", now_iso)
    return item


def _target_from_path(item_dir: Path, href: str) -> tuple[str, str] | None:
    """``../../S2/2022/05/21/x.json`` -> (collection, id) from the catalogue layout."""
    parts = Path(os.path.normpath(item_dir / href)).parts
    if len(parts) < 5:
        return None
    item_id = parts[-1][: -len(".json")]
    # {collection}/{YYYY}/{MM}/{DD}/{id}.json
    if parts[-2].isdigit() and parts[-3].isdigit() and parts[-4].isdigit():
        return parts[-5], item_id
    return parts[-2], item_id


def transform_collection(col: dict[str, Any], folder: Path, rewriter: HrefRewriter) -> dict[str, Any]:
    out = {k: v for k, v in col.items()}
    out["links"] = [
        lk for lk in col.get("links") or [] if lk.get("rel") not in _STRUCTURAL and "://" in lk.get("href", "")
    ]
    for asset in (out.get("assets") or {}).values():
        if isinstance(asset, dict) and isinstance(asset.get("href"), str):
            asset["href"] = rewriter.asset_href(asset["href"], folder)
    return out


# --------------------------------------------------------------------------- state


class IngestState:
    """Per catalogue + database memory of what was sent (sqlite in the catalogue)."""

    def __init__(self, root: Path, creds: DbCredentials) -> None:
        key = hashlib.sha1(f"{creds.host}:{creds.port}/{creds.dbname}".encode()).hexdigest()[:12]
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


# --------------------------------------------------------------------------- ingest


def _iter_file_items(
    paths: Iterator[tuple[str, Path]],
) -> Iterator[tuple[str, Path, dict[str, Any]]]:
    for folder_collection, path in paths:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CatalogueError(f"cannot read {path}: {exc.strerror}") from None
        try:
            item = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise CatalogueError(f"malformed JSON in {path} line {exc.lineno}: {exc.msg}") from None
        if not isinstance(item, dict) or item.get("type") != "Feature":
            continue
        item.setdefault("collection", folder_collection)
        yield folder_collection, path, item


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
    from eomatch.catalogue import MatchupCatalogue

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
    summary = IngestSummary(catalogue=str(root), target=creds.redacted(), dry_run=dry_run)
    t0 = time.monotonic()
    conn = connect(creds)
    state = IngestState(root, creds)
    lock = FileLock(str(state.lock_path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        summary.locked = True
        state.close()
        conn.close()
        return summary
    try:
        _run(cat, conn, creds, state, summary, HrefRewriter(root, base_url), since, dry_run, quiet, batch)
    finally:
        lock.release()
        state.close()
        conn.close()
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
    from pypgstac.db import PgstacDB
    from pypgstac.load import Loader, Methods

    started_iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
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

    pg = PgstacDB(dsn=creds.dsn, commit_on_exit=True)
    loader = Loader(db=pg)
    try:
        # Collections first.
        collections = []
        for col in cat.iter_collections():
            folder = cat.root / col["id"]
            collections.append(transform_collection(col, folder, rewriter))
        summary.collections = len(collections)
        known = set(in_db) | {c["id"] for c in collections}
        if collections and not dry_run:
            try:
                loader.load_collections(iter(collections), insert_mode=Methods.upsert)
            except Exception as exc:
                raise IngestError(f"loading collections failed: {_first_line(exc)}") from None

        total = sum(1 for _ in cat.iter_item_paths(changed_since=changed_since))
        progress = Progress("ingest", total=total, quiet=quiet)
        pending: list[tuple[str, str, str, dict[str, Any]]] = []

        def flush() -> None:
            if not pending:
                return
            by_collection: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
            for collection, item_id, digest, item in pending:
                by_collection.setdefault(collection, []).append((item_id, digest, item))
            to_send: list[dict[str, Any]] = []
            sent_rows: list[tuple[str, str, str]] = []
            for collection, rows in by_collection.items():
                previous = state.hashes(collection, [r[0] for r in rows])
                fresh = [r for r in rows if r[0] not in previous]
                existing = _existing_ids(conn, collection, [r[0] for r in fresh]) if fresh else set()
                for item_id, digest, item in rows:
                    old = previous.get(item_id)
                    if old == digest:
                        summary.unchanged += 1
                        continue
                    if old is None and item_id not in existing:
                        summary.new += 1
                    else:
                        summary.updated += 1
                    to_send.append(item)
                    sent_rows.append((item_id, collection, digest))
            if to_send and not dry_run:
                try:
                    loader.load_items(iter(to_send), insert_mode=Methods.upsert, chunksize=len(to_send))
                except Exception as exc:
                    raise IngestError(f"loading items failed: {_first_line(exc)}") from None
                state.record(sent_rows)
            progress.update(len(pending))
            pending.clear()

        paths = cat.iter_item_paths(changed_since=changed_since)
        for folder_collection, path, item in _iter_file_items(paths):
            summary.scanned += 1
            collection = item["collection"]
            if collection not in known:
                raise IngestError(
                    f"item {item.get('id')} ({path}) belongs to collection '{collection}', "
                    "which is neither in the catalogue nor in the database"
                )
            out = transform_item(item, path, rewriter, started_iso)
            digest = hashlib.blake2b(orjson.dumps(out, option=orjson.OPT_SORT_KEYS), digest_size=16).hexdigest()
            pending.append((collection, str(out["id"]), digest, out))
            if len(pending) >= batch:
                flush()
        flush()
        progress.close()
    finally:
        pg.close()
    if not dry_run:
        state.set("last_success_epoch", repr(started_epoch))


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
