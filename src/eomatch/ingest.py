"""Push a local matchup catalogue into pgSTAC (the design's ``eomatch-ingest``).

Files are the source of truth: after a successful run every item of the
catalogue is in the database with the content its file gives. Items stream from
disk in batches, formatted as pypgstac's ``Loader`` does, into pgSTAC's partitions
with :class:`eomatch.pgstac.ItemLoader` (COPY; upsert where the item may be there),
collections first (pypgstac's ``Loader``). Hrefs
are made to work in the database: relative asset hrefs become absolute
``file://`` URIs (or URLs under ``assets_base_url``), and item-to-item links
become API-relative (``collections/{c}/items/{i}``), which stac-fastapi resolves
against the root of whichever API serves the item, so they work on ``/api/``
and ``/external/``.

What the database holds is checked, not assumed. Every row ingest writes carries
a marker in pgSTAC's ``private`` column (never served by the APIs): the
catalogue it came from and a hash of the file. A write through the API resets
``private``, a delete removes the row, a restore brings back older markers. The
local state file (``<catalogue>/.eomatch/ingest-*.sqlite``) remembers what was
sent, so an unchanged file is not even parsed; at the start of each run a count
and a sum of the markers per collection, computed in the database, are compared
with the state's. Where they differ the state is corrected from the database's
rows and the files it lacks are looked at again, also with ``since="last"``
(which otherwise only reads files changed since the previous successful run).
The new / updated / unchanged counts are thus of the database.

Each item is checked before it is sent (:mod:`eomatch.validate`): ids,
collection ids and asset keys must be safe file names, known defects of older
catalogues are repaired and counted, and an item that breaks STAC core or the
``matchup:`` schema, or repeats an id another file has, is refused with one line
naming the file and the rule while the rest of the run goes on. Every JSON file
under a collection folder is ingested, unchanged, or reported; symbolic links to
folders are followed once (loops are reported).

A crash leaves the database consistent (every partition load is one
transaction; the state records a batch only after it is committed) and the next
run completes the work. One run at a time per catalogue and database: a second
one finds the lock taken and returns at once. Reading, parsing, checking,
rewriting and formatting files (down to the COPY text of each row) runs in a thread
ahead of the database loads, so the Python work overlaps the time the database
spends loading. A partition's datetime check constraints are opened once per run
and made the rows' ranges again at its end (see ``ItemLoader``), with the extents.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import logging
import math
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import orjson
from filelock import FileLock, Timeout

from eomatch import jsonio
from eomatch.catalogue import MatchupCatalogue
from eomatch.errors import CatalogueError, ConfigError, EomatchError, IngestError, first_line
from eomatch.hrefs import PLACE_RELS, AssetHrefs, links_to_api
from eomatch.model import MatchupError, to_utc
from eomatch.pgstac import (
    DbCredentials,
    FormattedRow,
    ItemLoader,
    RowFormatter,
    connect,
    copy_line,
    open_loader,
    resolve_credentials,
)
from eomatch.prefetch import Prefetcher
from eomatch.progress import Progress
from eomatch.safe_names import unsafe_reason
from eomatch.settings import Settings
from eomatch.validate import item_validator, repair_legacy

log = logging.getLogger(__name__)

_MAX_LISTED = 200_000
"""With ``since``, up to this many paths are listed in memory (one walk), beyond it streamed."""
_STATE_VERSION = "4"
"""Bump when transforms or the state's tables change: the state is then rebuilt."""
_MAX_REFUSALS_KEPT = 100
"""Refusal lines an :class:`IngestSummary` keeps for callers (all are logged)."""
MARK_SOURCE = "eomatch:source"
MARK_HASH = "eomatch:hash"
"""Keys of the marker ingest writes into ``pgstac.items.private``."""

# Exit codes of ``eomatch-ingest --exit-codes monitoring`` (schedulers, monitoring).
# A run that finds another one holding the lock did nothing wrong: it exits 0 and says so.
EXIT_INGESTED = 0
EXIT_FAILED = 2
EXIT_NOTHING_TO_DO = 3
EXIT_LOCKED = 0


@dataclass
class IngestSummary:
    """What one run did; ``line()`` is the one-line summary commands print.

    ``new`` items were not in the database, ``updated`` ones were there with other
    content (or written by someone else), ``unchanged`` ones are there as the
    file gives them. ``repaired`` counts items sent with a legacy defect repaired,
    ``refused`` the files not sent (see ``refusals``), ``skipped`` folders and
    files outside the item folders, by reason.
    """

    catalogue: str
    target: str
    collections: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    repaired: int = 0
    refused: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    scanned: int = 0
    seconds: float = 0.0
    dry_run: bool = False
    locked: bool = False
    refusals: list[str] = field(default_factory=list)
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
        extra = ""
        if self.repaired:
            extra += f"{self.repaired} repaired; "
        if self.refused:
            extra += f"{self.refused} refused; "
        if self.skipped:
            reasons = ", ".join(f"{n} {why}" for why, n in sorted(self.skipped.items()))
            extra += f"{sum(self.skipped.values())} skipped ({reasons}); "
        return (
            f"{verb} {self.catalogue} into {self.target}: {what}; {extra}"
            f"{self.collections} collections; {self.scanned} files scanned in {self.seconds:.1f}s "
            f"({rate:,.0f} items/s)"
        )


# --------------------------------------------------------------------------- targets


# --------------------------------------------------------------------------- transforms


HrefRewriter = AssetHrefs
"""What ingest makes of asset hrefs (:class:`eomatch.hrefs.AssetHrefs`; the old name)."""


def transform_item(item: dict[str, Any], path: str | Path, rewriter: AssetHrefs, now_iso: str) -> dict[str, Any]:
    """File item -> database item (drops structural links, rewrites hrefs).

    ``now_iso`` (when the file last changed here) becomes ``properties.updated``
    unless the item says it was updated later: the file changing is a metadata
    update, and ``eomatch-query --since last`` selects on ``updated``. (Keeping an
    older provider ``updated`` would hide e.g. a newly downloaded ``data`` asset.)
    """
    item_dir = os.path.dirname(os.fspath(path))
    item["links"] = links_to_api(item.get("links") or [], item_dir, rewriter)
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


def transform_collection(col: dict[str, Any], folder: Path, rewriter: AssetHrefs) -> dict[str, Any]:
    """File collection -> database collection (no item links; absolute asset hrefs)."""
    out = {k: v for k, v in col.items()}
    out["links"] = [
        lk for lk in col.get("links") or [] if lk.get("rel") not in PLACE_RELS and "://" in lk.get("href", "")
    ]
    for asset in (out.get("assets") or {}).values():
        if isinstance(asset, dict) and isinstance(asset.get("href"), str):
            asset["href"] = rewriter.asset_href(asset["href"], folder)
    return out


def _kept_link(link: Any) -> bool:
    """Whether :func:`transform_collection` keeps a collection link (others than dicts
    with a string href are kept, for it to judge)."""
    if not isinstance(link, dict) or not isinstance(link.get("href", ""), str):
        return True
    return link.get("rel") not in PLACE_RELS and "://" in link.get("href", "")


_WS = re.compile(r"[ \t\n\r]*")


def read_collection(path: Path) -> Any:
    """A ``collection.json`` as :func:`transform_collection` needs it, without its item links.

    A catalogue's collection lists every item (a 333k-item collection: 35 MB of JSON,
    ~400 MB as Python objects), and the database copy keeps none of those links. The
    top-level object is read member by member with the standard decoder, the
    ``links`` array link by link, dropping the links the transform drops, so memory is
    about the file's size, not its parse. Anything unusual (not an object, a syntax
    error) is read again the plain way, for the usual value or one-line error.
    """
    try:
        text = path.read_bytes().decode("utf-8")
        return _collection_without_item_links(text, json.JSONDecoder())
    except (ValueError, IndexError, TypeError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return jsonio.read_json(path)
    except OSError:
        return jsonio.read_json(path)  # the same one-line errors as elsewhere


def _collection_without_item_links(text: str, dec: json.JSONDecoder) -> dict[str, Any]:
    def skip(i: int) -> int:
        return _WS.match(text, i).end()  # type: ignore[union-attr]

    i = skip(0)
    if text[i] != "{":
        raise ValueError("not an object")
    out: dict[str, Any] = {}
    i = skip(i + 1)
    if text[i] == "}":
        i += 1
    else:
        while True:
            key, i = dec.raw_decode(text, i)
            if not isinstance(key, str):
                raise ValueError("key")
            i = skip(i)
            if text[i] != ":":
                raise ValueError(":")
            i = skip(i + 1)
            if key == "links" and text[i] == "[":
                links: list[Any] = []
                i = skip(i + 1)
                if text[i] == "]":
                    i += 1
                else:
                    while True:
                        link, i = dec.raw_decode(text, i)
                        if _kept_link(link):
                            links.append(link)
                        i = skip(i)
                        if text[i] == ",":
                            i = skip(i + 1)
                            continue
                        if text[i] != "]":
                            raise ValueError("]")
                        i += 1
                        break
                value: Any = links
            else:
                value, i = dec.raw_decode(text, i)
            out[key] = value
            i = skip(i)
            if text[i] == ",":
                i = skip(i + 1)
                continue
            if text[i] != "}":
                raise ValueError("}")
            i += 1
            break
    if skip(i) != len(text):
        raise ValueError("extra data")
    return out


# --------------------------------------------------------------------------- state


def _state_key(creds: DbCredentials) -> str:
    return hashlib.sha1(f"{creds.host}:{creds.port}/{creds.dbname}".encode()).hexdigest()[:12]


def hash_halves(digest: str) -> tuple[int, int]:
    """The first 64 bits of a hex digest as two unsigned 32-bit numbers.

    Their sums per collection are compared between the state and the database
    (where the same numbers come from ``('x' || substr(h, 1, 8))::bit(32)::bigint``):
    32-bit parts keep SQLite's 64-bit sums exact up to 2**31 rows.
    """
    return int(digest[:8], 16), int(digest[8:16], 16)


Aggregate = tuple[int, int, int]
"""(rows, sum of high halves, sum of low halves) of one collection's markers."""


@dataclass
class _Recorded:
    hash: str | None
    path: str | None


class IngestState:
    """Per catalogue + database memory of what the database holds from this catalogue.

    ``sent``: (collection, id) -> hash of the file last loaded (and its two 32-bit
    halves) and its path; ``sums``: count and sums of those per collection, kept
    as rows change so a run compares them with the database's without a scan;
    ``refused``: files refused, read again by ``since`` runs until they are fixed;
    ``seen`` (temporary): items of a dry run so far, to find duplicate ids.
    """

    def __init__(self, root: Path, creds: DbCredentials) -> None:
        key = _state_key(creds)
        self.dir = root / ".eomatch"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / f"ingest-{key}.sqlite"
        self.lock_path = self.dir / f"ingest-{key}.lock"
        self.conn = sqlite3.connect(self.path, timeout=30)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        if self.get("version") != _STATE_VERSION:
            # Older states hold other tables (and hashes of other transforms): rebuilt,
            # then refilled from the database's markers by the first run.
            self.conn.executescript(
                "DROP TABLE IF EXISTS sent; DROP TABLE IF EXISTS sums; DROP TABLE IF EXISTS refused; DELETE FROM meta;"
            )
        self.conn.executescript(
            "CREATE TABLE IF NOT EXISTS sent (collection TEXT NOT NULL, id TEXT NOT NULL, hash TEXT, path TEXT,"
            " hi INTEGER, lo INTEGER, PRIMARY KEY (collection, id));"
            "CREATE TABLE IF NOT EXISTS sums (collection TEXT PRIMARY KEY, n INTEGER, hi INTEGER, lo INTEGER);"
            "CREATE TABLE IF NOT EXISTS refused (path TEXT PRIMARY KEY, reason TEXT, run TEXT);"
            "CREATE TEMP TABLE seen (collection TEXT NOT NULL, id TEXT NOT NULL, path TEXT,"
            " PRIMARY KEY (collection, id));"
        )
        self.conn.commit()
        self.set("version", _STATE_VERSION)

    def get(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set(self, key: str, value: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
        self.conn.commit()

    def aggregates(self) -> dict[str, Aggregate]:
        return _state_aggregates(self.conn)

    def lookup(self, collection: str, ids: list[str]) -> dict[str, _Recorded]:
        # The ids go in as one JSON array: one statement, whatever their number.
        rows = self.conn.execute(
            "SELECT id, hash, path FROM sent WHERE collection = ? AND id IN (SELECT value FROM json_each(?))",
            (collection, orjson.dumps(ids).decode()),
        )
        return {item_id: _Recorded(digest, path) for item_id, digest, path in rows}

    def record(
        self, rows: list[tuple[str, str, str | None, str | None]], previous: dict[tuple[str, str], str | None]
    ) -> None:
        """(collection, id, hash, path) rows: what the database now holds. ``previous``
        has the hash each row had here before (absent: the row is new here)."""
        deltas: dict[str, list[int]] = {}
        out = []
        for c, i, h, p in rows:
            d = deltas.setdefault(c, [0, 0, 0])
            if (c, i) in previous:
                old_hi, old_lo = _halves_or_zero(previous[(c, i)])
                d[1] -= old_hi
                d[2] -= old_lo
            else:
                d[0] += 1
            new_hi, new_lo = _halves_or_zero(h)
            d[1] += new_hi
            d[2] += new_lo
            out.append((c, i, h, p, new_hi, new_lo))
        # One statement over a JSON array: SQLite does the loop, not Python.
        self.conn.execute(
            "INSERT OR REPLACE INTO sent (collection, id, hash, path, hi, lo) SELECT value->>0, value->>1,"
            " value->>2, value->>3, value->>4, value->>5 FROM json_each(?)",
            (orjson.dumps(out).decode(),),
        )
        self._add_sums(deltas)
        self.conn.commit()

    def forget(self, rows: list[tuple[str, str, str | None]]) -> None:
        """(collection, id, hash) rows the database no longer holds."""
        deltas: dict[str, list[int]] = {}
        for c, _, h in rows:
            d = deltas.setdefault(c, [0, 0, 0])
            hi, lo = _halves_or_zero(h)
            d[0] -= 1
            d[1] -= hi
            d[2] -= lo
        self.conn.executemany("DELETE FROM sent WHERE collection = ? AND id = ?", ((c, i) for c, i, _ in rows))
        self._add_sums(deltas)
        self.conn.commit()

    def _add_sums(self, deltas: dict[str, list[int]]) -> None:
        self.conn.executemany(
            "INSERT INTO sums VALUES (?, ?, ?, ?) ON CONFLICT (collection) DO UPDATE SET "
            "n = n + excluded.n, hi = hi + excluded.hi, lo = lo + excluded.lo",
            ((c, n, hi, lo) for c, (n, hi, lo) in deltas.items()),
        )

    def recount(self, collection: str) -> None:
        """Sums of one collection from its rows (after a reconciliation rewrote them)."""
        n, hi, lo = self.conn.execute(
            "SELECT count(*), coalesce(sum(hi), 0), coalesce(sum(lo), 0) FROM sent WHERE collection = ?", (collection,)
        ).fetchone()
        self.conn.execute("INSERT OR REPLACE INTO sums VALUES (?, ?, ?, ?)", (collection, n, hi, lo))
        self.conn.commit()

    def seen_paths(self, collection: str, ids: list[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for i in range(0, len(ids), 900):
            chunk = ids[i : i + 900]
            q = f"SELECT id, path FROM seen WHERE collection = ? AND id IN ({','.join('?' * len(chunk))})"
            out.update(self.conn.execute(q, (collection, *chunk)).fetchall())
        return out

    def add_seen(self, collection: str, rows: list[tuple[str, str]]) -> None:
        self.conn.executemany("INSERT OR REPLACE INTO seen VALUES (?, ?, ?)", ((collection, i, p) for i, p in rows))

    def refused_paths(self) -> list[str]:
        return [p for (p,) in self.conn.execute("SELECT path FROM refused ORDER BY path")]

    def has_refused(self) -> bool:
        return self.conn.execute("SELECT 1 FROM refused LIMIT 1").fetchone() is not None

    def set_refused(self, path: str, reason: str, run: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO refused VALUES (?, ?, ?)", (path, reason, run))
        self.conn.commit()

    def clear_refused(self, paths: Iterable[str]) -> None:
        self.conn.executemany("DELETE FROM refused WHERE path = ?", ((p,) for p in paths))
        self.conn.commit()

    def clear_refused_before(self, run: str) -> None:
        """After a full run: files no longer refused (fixed or gone) are forgotten."""
        self.conn.execute("DELETE FROM refused WHERE run IS NOT ?", (run,))
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()


def _halves_or_zero(digest: str | None) -> tuple[int, int]:
    return hash_halves(digest) if digest else (0, 0)


def _state_aggregates(conn: sqlite3.Connection) -> dict[str, Aggregate]:
    """Count and sums of the recorded hashes per collection (what the database should hold)."""
    rows = conn.execute("SELECT collection, n, hi, lo FROM sums WHERE n != 0 OR hi != 0 OR lo != 0").fetchall()
    return {c: (int(n), int(hi), int(lo)) for c, n, hi, lo in rows}


def _recorded_files(conn: sqlite3.Connection, files: list[tuple[str, str]]) -> set[tuple[str, str, str]]:
    """(collection folder, file stem, hash) of the given files as last loaded, looked up
    by the id the layout gives (``{collection}/.../{id}.json``); the hash covers the path,
    so a match is this very file. Runs in the reading thread, on its own connection."""
    by_folder: dict[str, list[str]] = {}
    for folder, stem in files:
        by_folder.setdefault(folder, []).append(stem)
    out: set[tuple[str, str, str]] = set()
    for folder, stems in by_folder.items():
        q = "SELECT id, hash FROM sent WHERE collection = ? AND id IN (SELECT value FROM json_each(?))"
        out.update((folder, item_id, digest) for item_id, digest in conn.execute(q, (folder, orjson.dumps(stems).decode())))
    return out


# --------------------------------------------------------------------------- reading


@dataclass
class _FileItem:
    collection: str
    id: str
    digest: str
    path: str
    item: dict[str, Any] | None = None
    """The database row (formatted) or item (not formatted); None when unchanged or refused."""
    refusal: str | None = None
    """Why the file is not sent (one line), or None."""
    repairs: list[str] | None = None

    @property
    def unchanged(self) -> bool:
        return self.item is None and self.refusal is None


def _iso_utc(epoch_s: float) -> str:
    return _iso_utc_s(math.floor(epoch_s))


@functools.lru_cache(maxsize=1024)
def _iso_utc_s(epoch_s: int) -> str:
    """Files written together share their second: formatted once."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_s))


Report = Callable[[str, str, str], None]
"""``report(kind, path, reason)``: a folder or file the walk does not ingest."""


def _walk(
    dirs: dict[str, Path],
    since_ns: int | None,
    full: frozenset[str] = frozenset(),
    report: Report | None = None,
) -> Iterator[tuple[str, str]]:
    """(collection folder, path) of every item file; a stat only with ``since``
    (except for the collections in ``full``, all of whose files are listed).

    Directories are read through a file descriptor, so each stat resolves one
    name rather than the whole path (twice as fast on a 100k-file catalogue).
    Symbolic links to folders are followed; a folder reached a second time (a
    loop, or two links to it) is walked once and reported.
    """
    skip = ("collection.json", "catalog.json")
    visited: set[tuple[int, int]] = set()
    for name, folder in sorted(dirs.items()):
        coll_since = None if name in full else since_ns
        stack = [os.fspath(folder)]
        while stack:
            current = stack.pop()
            try:
                fd = os.open(current, os.O_RDONLY | os.O_DIRECTORY)
            except OSError:
                continue  # vanished or not a folder
            subdirs = []
            try:
                st = os.fstat(fd)
                if (st.st_dev, st.st_ino) in visited:
                    if report is not None:
                        report("folder", current, "already walked (symbolic link loop)")
                    continue
                visited.add((st.st_dev, st.st_ino))
                with os.scandir(fd) as it:
                    for entry in it:
                        n = entry.name
                        if n.startswith("."):
                            continue
                        if entry.is_dir(follow_symlinks=False):
                            subdirs.append(f"{current}/{n}")
                            continue
                        if entry.is_symlink():
                            try:
                                if entry.is_dir():
                                    subdirs.append(f"{current}/{n}")
                                    continue
                            except OSError:
                                pass
                        if n.endswith(".json") and n not in skip:
                            if coll_since is None:
                                yield name, f"{current}/{n}"
                                continue
                            # ctime too: files copied in with their old mtime (rsync -a, cp -p)
                            # still changed here when they arrived.
                            try:
                                est = entry.stat()
                            except OSError:  # a broken symbolic link: read (and reported) anyway
                                yield name, f"{current}/{n}"
                                continue
                            if max(est.st_mtime_ns, est.st_ctime_ns) > coll_since:
                                yield name, f"{current}/{n}"
            finally:
                os.close(fd)
            subdirs.sort(reverse=True)
            stack.extend(subdirs)


def _changed_ns(st: os.stat_result) -> int:
    """When a file last changed here: its content (mtime) or its arrival (ctime)."""
    return max(st.st_mtime_ns, st.st_ctime_ns)


def _read_items(
    paths: Iterable[tuple[str, str | Path]], rewriter: AssetHrefs, salt: bytes
) -> Iterator[_FileItem]:
    """Read, hash, check and transform item files (the hash is of path and bytes: cheap, stable)."""
    prepare = _Preparer(rewriter, source="", formatter=None)
    for batch in _read_batches(paths, salt, 1, None, prepare):
        yield from batch


_unsafe_key = functools.lru_cache(maxsize=4096)(unsafe_reason)
"""``unsafe_reason`` of asset keys (strings, as JSON object keys are), which repeat from
item to item."""


def item_problem(item: Any) -> str | None:
    """Why a parsed file cannot be an item (one line), before any schema: the
    checks that keep ids, collection ids and asset keys usable as file names."""
    if not isinstance(item, dict):
        return f"not a JSON object but a JSON {type(item).__name__}"
    if "type" not in item:
        return 'no "type" member: not a STAC Item ("type": "Feature")'
    if item["type"] != "Feature":
        return f'"type" is {item["type"]!r}, not "Feature": not a STAC Item'
    if "id" not in item:
        return 'no "id" member'
    for key, what in (("id", "item id"), ("collection", "collection id")):
        if key == "collection" and key not in item:
            continue
        reason = unsafe_reason(item.get(key))
        if reason is not None:
            return f"{what} {item.get(key)!r} is not a safe file name: {reason}"
    for key, kind in (("properties", dict), ("links", list), ("assets", dict)):
        if key in item and not isinstance(item[key], kind):
            return f'"{key}" is not a JSON {"object" if kind is dict else "array"}'
    assets = item.get("assets")
    if isinstance(assets, dict):
        for key in assets:
            reason = _unsafe_key(key)
            if reason is not None:
                return f"asset key {key!r} is not a safe file name: {reason}"
    return None


class _Preparer:
    """Parsed file -> checked, repaired, transformed (and formatted) item, or a refusal."""

    def __init__(
        self, rewriter: AssetHrefs, source: str, formatter: Callable[[str, dict[str, Any], str], Any] | None
    ) -> None:
        self.rewriter = rewriter
        self.source = source
        self.formatter = formatter

    def __call__(self, fi: _FileItem, item: Any, mtime_s: float) -> None:
        problem = item_problem(item)
        if problem is not None:
            fi.refusal = problem
            return
        item.setdefault("collection", fi.collection)
        fi.collection, fi.id = str(item["collection"]), str(item["id"])
        fi.repairs = repair_legacy(item)
        try:
            item = transform_item(item, fi.path, self.rewriter, _iso_utc(mtime_s))
        except (TypeError, AttributeError, ValueError) as exc:  # members of the wrong JSON type
            fi.refusal = f"not a valid STAC Item: {first_line(exc)}"
            return
        problem = item_validator().problem(item)  # compiled at the first item read
        if problem is not None:
            fi.refusal = problem
            return
        if self.formatter is not None:
            try:
                # The row with its COPY line, here in the reading thread, not in the loading
                # one; its ``private`` is the marker the database keeps (never served).
                item = self.formatter(fi.collection, item, marker(fi.digest, self.source))
            except EomatchError:
                raise
            except Exception as exc:
                fi.refusal = f"cannot be loaded: {first_line(exc)}"
                return
        fi.item = item


def _stem(path: str) -> str:
    return os.path.basename(path)[: -len(".json")]


def _read_file(path: str) -> tuple[bytes, float]:
    """(bytes, when it last changed here: see :func:`_changed_ns`) of a file, with one
    ``open``, ``fstat`` and usually one ``read`` system call and no Python file object
    (7 instead of 11 us a file: it runs for every item file read)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        data = os.read(fd, st.st_size + 1)
        if len(data) != st.st_size:  # changed since the stat, or a short read: to the end
            parts = [data]
            while chunk := os.read(fd, 1 << 16):
                parts.append(chunk)
            data = b"".join(parts)
    finally:
        os.close(fd)
    return data, max(st.st_mtime, st.st_ctime)


def _read_batches(
    paths: Iterable[tuple[str, str | Path]],
    salt: bytes,
    batch: int,
    recorded: Callable[[list[tuple[str, str]]], set[tuple[str, str, str]]] | None,
    prepare: _Preparer,
) -> Iterator[list[_FileItem]]:
    """Batches of read items; files recorded with the same hash (``recorded``) are not parsed."""
    raw: list[tuple[str, str, bytes | None, float]] = []

    def finish() -> list[_FileItem]:
        out: list[_FileItem] = []
        known = recorded([(coll, _stem(path)) for coll, path, _, _ in raw]) if recorded is not None else set()
        for coll, path, data, mtime_s in raw:
            if data is None:
                out.append(_FileItem(coll, "", "", path, refusal="broken symbolic link"))
                continue
            # The path is hashed too: relative hrefs become absolute from where the file is.
            h = hashlib.blake2b(path.encode(), digest_size=16, key=salt)
            h.update(data)
            fi = _FileItem(coll, "", h.hexdigest(), path)
            if (coll, _stem(path), fi.digest) in known:
                out.append(fi)
                continue
            try:
                item = orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                raise CatalogueError(f"malformed JSON in {path} line {exc.lineno}: {exc.msg}") from None
            prepare(fi, item, mtime_s)
            out.append(fi)
        raw.clear()
        return out

    for coll, path in paths:
        path = os.fspath(path)
        try:
            data, mtime_s = _read_file(path)
        except FileNotFoundError:
            if not os.path.islink(path):
                continue  # removed since the walk saw it
            raw.append((coll, path, None, 0.0))
            continue
        except OSError as exc:
            raise CatalogueError(f"cannot read {path}: {exc.strerror}") from None
        raw.append((coll, path, data, mtime_s))
        if len(raw) >= batch:
            yield finish()
    if raw:
        yield finish()


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
    progress: Progress | None = None,
) -> IngestSummary:
    """Push ``catalogue`` into pgSTAC; the same parameters as ``eomatch-ingest``.

    ``progress`` counts item files read (its total, when unset, becomes the number of
    files to read) and is left open for the caller; without one, a ``Progress``
    (silent with ``quiet``) is made and closed here."""
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
            run = _Run(cat, conn, creds, state, summary, AssetHrefs(root, base_url), dry_run, quiet, batch,
                       partition_trunc=settings.ingest.partition_trunc, progress=progress)  # fmt: skip
            run.run(since)
        except EomatchError:
            raise
        except Exception as exc:  # database errors mid-run: one line, not a traceback
            raise IngestError(f"ingest into {creds.redacted()} failed: {first_line(exc)}") from None
        finally:
            state.close()
            conn.close()
    finally:
        lock.release()
    summary.seconds = time.monotonic() - t0
    return summary


MARKERS_SQL = f"""
SELECT c.id, coalesce(s.n, 0), coalesce(s.mine, 0), coalesce(s.hi, 0), coalesce(s.lo, 0)
FROM pgstac.collections c LEFT JOIN (
    SELECT collection, count(*) AS n,
        count(*) FILTER (WHERE private->>'{MARK_SOURCE}' = %(src)s) AS mine,
        sum(('x' || substr(private->>'{MARK_HASH}', 1, 8))::bit(32)::bigint)
            FILTER (WHERE private->>'{MARK_SOURCE}' = %(src)s) AS hi,
        sum(('x' || substr(private->>'{MARK_HASH}', 9, 8))::bit(32)::bigint)
            FILTER (WHERE private->>'{MARK_SOURCE}' = %(src)s) AS lo
    FROM pgstac.items GROUP BY collection
) s ON s.collection = c.id
"""
"""Each collection's item count and the count and sums of one catalogue's markers
(``%(src)s``); read from ``pgstac.items``' marker index alone when the database has
it (:func:`eomatch.pgstac.ensure_marker_index`)."""


@dataclass
class _DbCollection:
    rows: int
    """Items of the collection in the database, whoever wrote them."""
    mine: Aggregate
    """Count and sums of the markers of this catalogue's rows."""


def _db_overview(conn: Any, source: str) -> dict[str, _DbCollection]:
    """Every collection in the database with its item count and this catalogue's markers.

    One pass over ``pgstac.items`` (about 80 ms for 100k items); runs while the
    ``since`` walk stats the files.
    """
    return {
        cid: _DbCollection(int(n), (int(mine), int(hi), int(lo)))
        for cid, n, mine, hi, lo in conn.execute(MARKERS_SQL, {"src": source}).fetchall()
    }


class _Background:
    """A function run in a thread; ``result()`` waits for it (and raises what it raised)."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self._value: Any = None
        self._error: BaseException | None = None

        def work() -> None:
            try:
                self._value = fn()
            except BaseException as exc:  # handed to the caller
                self._error = exc

        self._thread = threading.Thread(target=work, name="ingest-check", daemon=True)
        self._thread.start()

    def result(self) -> Any:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


class _Run:
    """One ingest run: check the database against the state, read, load, record."""

    def __init__(
        self,
        cat: Any,
        conn: Any,
        creds: DbCredentials,
        state: IngestState,
        summary: IngestSummary,
        rewriter: AssetHrefs,
        dry_run: bool,
        quiet: bool,
        batch: int,
        partition_trunc: str = "year",
        progress: Progress | None = None,
    ) -> None:
        self.cat, self.conn, self.creds, self.state, self.summary = cat, conn, creds, state, summary
        self.partition_trunc = partition_trunc
        self.progress = progress
        self.rewriter, self.dry_run, self.quiet, self.batch = rewriter, dry_run, quiet, batch
        self.root = os.fspath(rewriter.root)
        # Item hashes cover the file and what the transform depends on; the source
        # names this catalogue (and transform) in the database's markers.
        self.salt = hashlib.blake2b(
            f"{_STATE_VERSION}|{rewriter.root}|{rewriter.base or ''}".encode(), digest_size=32
        ).digest()
        self.source = hashlib.blake2b(self.salt, digest_size=8).hexdigest()
        self.run_id = f"{time.time():.6f}"
        self.loaders: dict[str, Any] = {}
        self.item_loader: ItemLoader | None = None
        self.known: set[str] = set()
        self.in_db: dict[str, _DbCollection] = {}
        self.touched: set[str] = set()
        self.had_refused = False
        self.reported: set[str] = set()

    # ----------------------------------------------------------------- helpers

    def get_loader(self, role: str) -> Any:
        """pypgstac is imported and connected only when something is to be loaded (a
        scheduled run with nothing to do stays fast): one loader for the loads, one
        for formatting items in the reading thread."""
        if role not in self.loaders:
            self.loaders[role] = open_loader(self.creds)
        return self.loaders[role][1]

    def report_skip(self, kind: str, path: str, reason: str) -> None:
        """A folder or file left out on purpose: one warning, counted by reason."""
        if path in self.reported:
            return
        self.reported.add(path)
        log.warning("skipped %s %s: %s", kind, path, reason)
        self.summary.skipped[reason] = self.summary.skipped.get(reason, 0) + 1

    def refuse(self, path: str, reason: str) -> None:
        """A file not sent: one warning naming it and the rule, remembered for ``since`` runs."""
        line = f"refused {path}: {reason}"
        log.warning("%s", line)
        self.summary.refused += 1
        if len(self.summary.refusals) < _MAX_REFUSALS_KEPT:
            self.summary.refusals.append(line)
        if not self.dry_run:
            self.state.set_refused(path, reason, self.run_id)
            self.had_refused = True

    # ----------------------------------------------------------------- the run

    def run(self, since: str | None) -> None:
        started_epoch = time.time()
        state, summary = self.state, self.summary
        since_ns: int | None = None
        if since == "last":
            last = state.get("last_success_epoch")
            since_ns = int(float(last) * 1e9) if last else None
        dirs = self.cat.collection_dirs()
        self.touched = set(orjson.loads(state.get("extents_pending") or "[]"))

        # The database's markers and the state's, counted while the ``since`` walk
        # stats the files (PostgreSQL and SQLite work without holding the GIL).
        def counts() -> tuple[dict[str, _DbCollection], dict[str, Aggregate]]:
            in_db = _db_overview(self.conn, self.source)
            own = sqlite3.connect(state.path, timeout=30)
            try:
                return in_db, _state_aggregates(own)
            finally:
                own.close()

        overview = _Background(counts)
        changed: list[tuple[str, str]] = []
        streamed = False
        if since_ns is not None:
            changed = list(itertools.islice(_walk(dirs, since_ns, report=self.report_skip), _MAX_LISTED))
            streamed = len(changed) >= _MAX_LISTED
        self.in_db, mine_in_state = overview.result()
        self.known = set(self.in_db)

        # Where the database and the state disagree, the database is right.
        look_again: dict[str, None] = {}
        full: set[str] = set()
        full_all = False
        for collection in sorted(set(mine_in_state) | {c for c, d in self.in_db.items() if d.mine[0]}):
            in_db = self.in_db.get(collection)
            if (in_db.mine if in_db else (0, 0, 0)) == mine_in_state.get(collection, (0, 0, 0)):
                continue
            paths, needs_full = self._reconcile(collection, collect=since_ns is not None)
            log.info("the database's %s differs from what this catalogue sent: %d files looked at again",
                     collection, len(paths))
            if needs_full:
                if collection in dirs:
                    full.add(collection)
                else:
                    full_all = True
            for p in paths:
                look_again[p] = None
        if full_all:
            since_ns = None
        had_refused = state.has_refused()
        self.had_refused = had_refused

        self._load_collections(dirs, since_ns)
        self._report_strays(dirs)

        # Which files: with ``since``, the changed ones (one walk, a stat per file,
        # usually few), then those the database lacks or holds otherwise and those
        # refused before; a full run streams the walk and counts it (for the ETA)
        # with a second, stat-free walk that overlaps the first reads.
        paths: Iterable[tuple[str, str]]
        count: Callable[[], int]
        full_set = frozenset(full)
        if since_ns is None:
            paths = _walk(dirs, None, report=self.report_skip)
            count = lambda: sum(1 for _ in _walk(dirs, None))  # noqa: E731
        else:
            again = dict.fromkeys(itertools.chain(look_again, self._refused_still_there() if had_refused else ()))
            if not streamed and not full_set:
                listed = [(c, p) for c, p in changed if p not in again]
                listed += [(self._folder_of(p), p) for p in again]
                paths, n_listed = listed, len(listed)
                count = lambda: n_listed  # noqa: E731
            else:  # too many changes to list, or whole collections to look at again
                paths = itertools.chain(
                    ((self._folder_of(p), p) for p in again),
                    ((c, p) for c, p in _walk(dirs, since_ns, full_set, report=self.report_skip) if p not in again),
                )
                count = lambda: len(again) + sum(1 for _, p in _walk(dirs, since_ns, full_set) if p not in again)  # noqa: E731

        reader = sqlite3.connect(state.path, timeout=30, check_same_thread=False)
        prefetch: Prefetcher[list[_FileItem]] | None = None
        try:

            def recorded(files: list[tuple[str, str]]) -> set[tuple[str, str, str]]:
                return _recorded_files(reader, files)

            rows: RowFormatter | None = None

            def formatter(collection: str, item: dict[str, Any], private: str) -> Any:
                nonlocal rows
                if self.dry_run or collection not in self.known:
                    return item  # nothing will be loaded (dry run) or the batch fails anyway
                if rows is None:
                    rows = RowFormatter(self.get_loader("format"))
                return rows.row(item, private)

            prepare = _Preparer(self.rewriter, self.source, formatter)
            # Reading, parsing, checking, rewriting and formatting run in a thread ahead of the loads.
            prefetch = Prefetcher(_read_batches(paths, self.salt, self.batch, recorded, prepare), name="ingest-read")
            progress = self.progress
            if progress is None:
                # Quiet, nobody reads the total: no second walk (1M files: seconds before the first load).
                progress = Progress("ingest", total=None if self.quiet else count(), quiet=self.quiet)
            elif progress.total is None:
                progress.total = count()
            for pending in prefetch:
                summary.scanned += len(pending)
                self._load_batch(pending)
                progress.update(len(pending))
            if self.progress is None:  # the caller's stays open for the caller
                progress.close()
        finally:
            if prefetch is not None:
                prefetch.close()
            reader.close()
            for db, _ in self.loaders.values():
                db.close()
        if not self.dry_run:
            self._update_extents()
            if since_ns is None and self.had_refused:
                state.clear_refused_before(self.run_id)
            state.set("last_success_epoch", repr(started_epoch))

    def _refused_still_there(self) -> list[str]:
        """Files refused before, to read again (those gone since are forgotten)."""
        out = []
        for p in self.state.refused_paths():
            if os.path.lexists(p):
                out.append(p)
            else:
                self.state.clear_refused([p])
        return out

    def _folder_of(self, path: str) -> str:
        rel = os.path.relpath(path, self.root)
        return rel.split(os.sep, 1)[0]

    # ----------------------------------------------------------------- reconcile

    def _reconcile(self, collection: str, collect: bool) -> tuple[list[str], bool]:
        """Make the state's rows of ``collection`` what the database holds from this catalogue.

        Both sides stream in id order (byte order on both) and are merged, so
        memory does not grow with the collection. Returns the files to look at
        again (with ``collect``: their rows were missing or different in the
        database) and whether a full look at the collection is needed instead
        (the database holds rows whose file the state cannot name).
        """
        paths: list[str] = []
        needs_full = False
        upserts: list[tuple[str, str, str | None, str | None]] = []
        deletes: list[tuple[str, str, str | None]] = []

        def flush() -> None:
            if upserts:
                self.state.record(upserts, {})  # sums recounted below
                upserts.clear()
            if deletes:
                self.state.forget(deletes)
                deletes.clear()

        def again(path: str | None) -> None:
            nonlocal needs_full
            if not collect or needs_full:
                return
            if path is None or len(paths) >= _MAX_LISTED:
                needs_full = True
                paths.clear()
            else:
                paths.append(path)

        reader = sqlite3.connect(self.state.path, timeout=30)
        try:
            mine = reader.execute("SELECT id, hash, path FROM sent WHERE collection = ? ORDER BY id", (collection,))
            db = self.conn.cursor().stream(
                f"SELECT id, private->>'{MARK_HASH}' FROM pgstac.items WHERE collection = %s "
                f"AND private->>'{MARK_SOURCE}' = %s ORDER BY id COLLATE \"C\"",
                (collection, self.source),
            )
            d = next(db, None)
            s = next(mine, None)
            while d is not None or s is not None:
                if s is None or (d is not None and d[0] < s[0]):  # in the database only
                    upserts.append((collection, d[0], d[1], None))  # type: ignore[index]
                    needs_full = needs_full or collect
                    paths.clear()
                    d = next(db, None)
                elif d is None or s[0] < d[0]:  # sent, but the database lacks it
                    deletes.append((collection, s[0], s[1]))
                    again(s[2])
                    s = next(mine, None)
                else:
                    if d[1] != s[1]:  # the database holds other content
                        upserts.append((collection, s[0], d[1], s[2]))
                        again(s[2])
                    d, s = next(db, None), next(mine, None)
                if len(upserts) + len(deletes) >= 5000:
                    flush()
            flush()
        finally:
            reader.close()
        self.state.recount(collection)
        return paths, needs_full

    # ----------------------------------------------------------------- collections

    def _load_collections(self, dirs: dict[str, Path], since_ns: int | None) -> None:
        """Collections first. With ``since``, a collection.json not modified since the
        last run, of a collection the database still has, is not even read (their item
        links make them large)."""
        changed_cols = []
        new_ids: list[str] = []
        for name, folder in sorted(dirs.items()):
            col_path = folder / "collection.json"
            try:
                col_mtime_ns = _changed_ns(col_path.stat())
            except FileNotFoundError:
                continue
            self.summary.collections += 1
            if since_ns is not None and name in self.in_db and col_mtime_ns <= since_ns:
                continue
            col = read_collection(col_path)
            if not isinstance(col, dict):
                raise CatalogueError(f"{col_path} is not a JSON object")
            reason = unsafe_reason(col.get("id"))
            if reason is not None:
                raise CatalogueError(f"{col_path}: collection id {col.get('id')!r} is not a safe file name: {reason}")
            doc = transform_collection(col, folder, self.rewriter)
            self.known.add(doc["id"])
            stored = _db_collection(self.conn, doc["id"])
            held = self.in_db.get(doc["id"])
            if stored is not None and held is not None and held.rows:
                # The extent in the database is computed from the items it holds (see
                # _update_extents); the file's may be older, or cover other items.
                doc["extent"] = stored.get("extent", doc.get("extent"))
            if doc != stored:
                changed_cols.append(doc)
                if stored is None:
                    new_ids.append(doc["id"])
        if changed_cols and not self.dry_run:
            from pypgstac.load import Methods

            self._touch(c["id"] for c in changed_cols)
            try:
                self.get_loader("load").load_collections(iter(changed_cols), insert_mode=Methods.upsert)
                # Partitioned by time from their first item on (pgSTAC's default is one
                # partition per collection); only new ones: a change re-partitions.
                self.conn.execute(
                    "UPDATE pgstac.collections SET partition_trunc = %s WHERE id = ANY(%s) AND partition_trunc IS NULL",
                    (self.partition_trunc, new_ids),
                )
            except Exception as exc:
                raise IngestError(f"loading collections failed: {first_line(exc)}") from None

    def _report_strays(self, dirs: dict[str, Path]) -> None:
        """JSON files and folders at the catalogue's top that no collection holds."""
        folders = {os.path.realpath(f) for f in dirs.values()}
        try:
            entries = sorted(os.scandir(self.root), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir and os.path.realpath(entry.path) not in folders:
                self.report_skip("folder", entry.path, "not a collection (no collection.json)")
            elif not is_dir and entry.name.endswith(".json") and entry.name != "catalog.json":
                self.report_skip("file", entry.path, "not in a collection folder")

    def _touch(self, collections: Iterable[str]) -> None:
        """Remember (in the state, before the load commits) that these collections'
        extents are to be computed again: a run that dies before the end leaves the
        work to the next one, even if that one has nothing else to load."""
        new = set(collections) - self.touched
        if new:
            self.touched |= new
            self.state.set("extents_pending", orjson.dumps(sorted(self.touched)).decode())

    def _update_extents(self) -> None:
        """Extents of the collections loaded into (this run or a run that died), from
        the items the database holds.

        pgSTAC's ``collection_extent(id, true)`` refreshes the partitions' statistics
        and aggregates them; a collection without items keeps the file's extent.
        """
        for collection in sorted(self.touched):
            self.conn.execute(
                "UPDATE pgstac.collections c SET content = jsonb_set(c.content, '{extent}', x.e) "
                "FROM (SELECT pgstac.collection_extent(%s, true) AS e) x "
                "WHERE c.id = %s AND x.e IS NOT NULL AND c.content->'extent' IS DISTINCT FROM x.e",
                (collection, collection),
            )
        if self.touched:
            self._forget_counts()
            self.state.set("extents_pending", "[]")

    def _forget_counts(self) -> None:
        """Make every search count again once: pgSTAC keeps each search's total
        (``numberMatched``) for ``context_stats_ttl`` (a day by default), so after a load
        the APIs would go on reporting the old totals (at 1M: 3,580 for a collection
        now holding 33,050). Recounting is lazy, on each search's next request."""
        self.conn.execute(
            "UPDATE pgstac.search_wheres SET statslastupdated = NULL WHERE statslastupdated IS NOT NULL"
        )

    # ----------------------------------------------------------------- items

    def _load_batch(self, pending: list[_FileItem]) -> None:
        """Classify one batch (new / updated / unchanged / refused), upsert what
        changed, mark it, remember it."""
        summary, state = self.summary, self.state
        by_collection: dict[str, list[_FileItem]] = {}
        in_batch: dict[tuple[str, str], str] = {}
        accepted: list[str] = []
        for fi in pending:
            if fi.unchanged:  # the file's hash matched what the database holds: not even parsed
                summary.unchanged += 1
                continue
            if fi.refusal is not None:
                self.refuse(fi.path, fi.refusal)
                continue
            other = in_batch.get((fi.collection, fi.id))
            if other is not None:
                if other != fi.path:
                    self.refuse(fi.path, _duplicate(fi, other))
                continue
            in_batch[(fi.collection, fi.id)] = fi.path
            if fi.collection not in self.known:
                raise IngestError(
                    f"item {fi.id} ({fi.path}) belongs to collection '{fi.collection}', "
                    "which is neither in the catalogue nor in the database"
                )
            by_collection.setdefault(fi.collection, []).append(fi)
        to_send: list[FormattedRow] = []
        new_ids: set[tuple[str, str]] = set()
        sent_rows: list[tuple[str, str, str | None, str | None]] = []
        previous: dict[tuple[str, str], str | None] = {}
        loading: set[str] = set()
        for collection, rows in by_collection.items():
            ids = [r.id for r in rows]
            # Earlier batches of this run are recorded already (a dry run records
            # nothing: it keeps the ids it saw apart), so one lookup finds ids that
            # another file has, in this run or before it.
            recorded = state.lookup(collection, ids)
            seen = state.seen_paths(collection, ids) if self.dry_run else {}
            keep = []
            for fi in rows:
                rec = recorded.get(fi.id)
                earlier = seen.get(fi.id)
                if earlier is not None and earlier != fi.path:
                    self.refuse(fi.path, _duplicate(fi, earlier))
                    continue
                if rec is not None and rec.path and rec.path != fi.path and self._holds(rec.path, fi):
                    self.refuse(fi.path, _duplicate(fi, rec.path))
                    continue
                keep.append(fi)
            if self.dry_run:
                state.add_seen(collection, [(fi.id, fi.path) for fi in keep])
            # Lookups only where they can find something: a collection empty at the
            # start of the run needs no query.
            fresh = [fi.id for fi in keep if fi.id not in recorded]
            held = self.in_db.get(collection)
            existing = _existing_ids(self.conn, collection, fresh) if fresh and held and held.rows else set()
            for fi in keep:
                accepted.append(fi.path)
                rec = recorded.get(fi.id)
                if rec is not None:
                    previous[(collection, fi.id)] = rec.hash
                if rec is not None and rec.hash == fi.digest:
                    summary.unchanged += 1  # the markers' sums vouch for it; the state had lost its path
                    if rec.path != fi.path:
                        sent_rows.append((collection, fi.id, fi.digest, fi.path))
                    continue
                if rec is None and fi.id not in existing:
                    summary.new += 1
                    new_ids.add((collection, fi.id))
                else:
                    summary.updated += 1
                if fi.repairs:
                    summary.repaired += 1
                    log.debug("repaired %s: %s", fi.path, "; ".join(fi.repairs))
                if not self.dry_run:
                    to_send.append(self._row(fi))
                loading.add(collection)
                sent_rows.append((collection, fi.id, fi.digest, fi.path))
        if self.dry_run:
            return
        if to_send:
            self._touch(loading)
            if self.item_loader is None:
                self.item_loader = ItemLoader(self.conn)
            try:
                # Rows carry their marker in ``private``, written on conflicts too.
                self.item_loader.load(to_send, new_ids)
            except Exception as exc:
                raise IngestError(f"loading items failed: {first_line(exc)}") from None
        if sent_rows:
            state.record(sent_rows, previous)
        if self.had_refused and accepted:
            state.clear_refused(accepted)

    def _row(self, fi: _FileItem) -> FormattedRow:
        """The database row of an accepted item: formatted in the reading thread, or here
        (an item the reader could not format yet)."""
        row = fi.item
        if not isinstance(row, FormattedRow):
            row = FormattedRow(self.get_loader("format").format_item(row))
        if row.line is None:
            row["private"] = marker(fi.digest, self.source)
            row.line = copy_line(row)
        return row

    def _holds(self, path: str, fi: _FileItem) -> bool:
        """Whether the file at ``path`` still is item ``fi.id`` of ``fi.collection``
        (it may have been edited or removed since it was loaded)."""
        try:
            with open(path, "rb") as fh:
                other = orjson.loads(fh.read())
        except (OSError, orjson.JSONDecodeError):
            return False
        if not isinstance(other, dict) or other.get("id") != fi.id:
            return False
        return other.get("collection", self._folder_of(path)) == fi.collection


def marker(digest: str, source: str) -> str:
    """The JSON ingest writes into ``pgstac.items.private``: which catalogue, which file content."""
    return f'{{"{MARK_HASH}": "{digest}", "{MARK_SOURCE}": "{source}"}}'


def _duplicate(fi: _FileItem, other: str) -> str:
    return f"duplicate id {fi.id!r} in collection {fi.collection!r}: {other} has it too (kept)"


def _db_collection(conn: Any, collection_id: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT content FROM pgstac.collections WHERE id = %s", (collection_id,)).fetchone()
    return dict(row[0]) if row else None


def _existing_ids(conn: Any, collection: str, ids: list[str]) -> set[str]:
    rows = conn.execute(
        "SELECT id FROM pgstac.items WHERE collection = %s AND id = ANY(%s)", (collection, ids)
    ).fetchall()
    return {r[0] for r in rows}


def urljoin_base(base: str, rel: str) -> str:
    return urljoin(base.rstrip("/") + "/", rel)
