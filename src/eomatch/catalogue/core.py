"""MatchupCatalogue: the local STAC catalogue on disk, with an id index beside it.

Files are the source of truth, laid out as pystac writes a SELF_CONTAINED
catalogue (:mod:`eomatch.layout`). This class is the facade other modules use;
the parts it is made of each live in a module of their own:

- :mod:`eomatch.catalogue.locks`: per-item and catalogue file locks;
- :mod:`eomatch.catalogue.index`: the SQLite id index (lookups, rebuilds, bulk);
- :mod:`eomatch.catalogue.folders`: which folders are collections, item walks;
- :mod:`eomatch.catalogue.merge`: how items and extents merge with the files;
- :mod:`eomatch.catalogue.filters`: time bounds and property conditions.

Item writes are atomic and serialised per item by file locks, so two processes
updating one item both keep their changes.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from eomatch import jsonio
from eomatch.catalogue import folders
from eomatch.catalogue.filters import epoch_s, props_match
from eomatch.catalogue.index import CatalogueIndex, ItemRef, event_matchup_rows, events_sql
from eomatch.catalogue.locks import CatalogueLocks, StripeLock, lock_dir
from eomatch.catalogue.merge import Extent, grow_extent, merge_extent, merge_items
from eomatch.errors import CatalogueError, MatchupError
from eomatch.hrefs import ITEM_LINK_RELS
from eomatch.ids import EVENTS_PREFIX, collection_kind, infer_item_type
from eomatch.items import Matchup, MatchupEvent, Product
from eomatch.layout import (
    JSON_MEDIA_TYPE,
    STAC_VERSION,
    STRUCTURAL_RELS,
    default_relpath,
    fast_relative_href,
    item_relpath,
    link_target_id,
    structural_links_cached,
)
from eomatch.platforms import platform_spellings
from eomatch.safe_names import unsafe_reason
from eomatch.schema import validate_item
from eomatch.times import item_times

if TYPE_CHECKING:
    from eomatch.settings import SatelliteSpec

_RELINKED = ITEM_LINK_RELS
"""Links to other items, pointed at their targets' files: the relations ingest and query rewrite."""


class MatchupCatalogue:
    """A local matchup catalogue: pystac-compatible files plus an SQLite id index."""

    def __init__(self, root: Path, catalog: dict[str, Any]) -> None:
        """Use :meth:`open` or :meth:`create`."""
        self.root = root
        self._catalog = catalog
        self._locks = CatalogueLocks(root)
        self._index = CatalogueIndex(root, self._locks, lambda: folders.walk_items(self.root, self._catalog))
        self._known: set[str] = set(folders.child_dirs_from_catalog(root, catalog))
        self._pending_extent: dict[str, Extent] = {}
        self._pending_links: dict[str, dict[str, None]] = {}
        self._bulk_depth = 0
        self._bulk_collections: set[str] = set()
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
        with StripeLock(lock_dir(root) / "catalog.lock"):
            if not (root / "catalog.json").is_file():
                jsonio.write_json_atomic(root / "catalog.json", catalog)
        return cls.open(root)

    def reopen(self) -> MatchupCatalogue:
        """A new handle on the same folder: its own index connections and pending changes."""
        handle = type(self).open(self.root)
        handle.satellites = self.satellites
        return handle

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
        """Close lock files and index connections (the handle reopens them if used again)."""
        self._locks.close()
        self._index.close()

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

    def lock_collection(self, collection_id: str) -> StripeLock:
        """The lock to hold while rewriting ``collection_id``'s collection.json.

        It is the lock :meth:`save` merges extents and links under, so writers of
        collection files never overwrite each other.
        """
        del collection_id  # collection files share the catalogue-wide lock
        return self._locks.catalogue()

    # ------------------------------------------------------------------ index

    @property
    def index_path(self) -> Path:
        return self._index.path

    @property
    def db(self) -> sqlite3.Connection:
        """The index connection; the index is checked (and rebuilt if stale) on first use."""
        return self._index.db

    def reindex(self, progress: Any = None) -> int:
        """Bring the index in line with the files by one streaming directory scan.

        Files whose mtime matches the index are not re-read; vanished files are
        dropped. Returns the number of item files (re)read.
        """
        return self._index.reindex(progress)

    def lookup(self, item_id: str, collection: str | None = None) -> ItemRef | None:
        """Where an item is (collection, kind, root-relative path, id), from the index; None if unknown."""
        return self._index.lookup(item_id, collection)

    def require(self, item_id: str, collection: str | None = None, kind: str | None = None) -> ItemRef:
        """:meth:`lookup`, but an unknown item (or one of another ``kind``) is a CatalogueError."""
        found = self._index.lookup(item_id, collection)
        if found is None:
            where = f" in collection {collection!r}" if collection else ""
            raise CatalogueError(f"unknown item id {item_id!r}{where} in catalogue {self.root}")
        if kind is not None and found.kind != kind:
            raise CatalogueError(f"item {item_id!r} is a {found.kind}, not a {kind}")
        return found

    def count(self, kind: str | None = None, collection: str | None = None) -> int:
        """How many items the index holds (optionally of one type / collection)."""
        return self._index.count(kind, collection)

    def has_item(self, item_id: str, collection: str | None = None) -> bool:
        return self._index.lookup(item_id, collection) is not None

    def iter_ids(self, kind: str | None = None, collection: str | None = None) -> Iterator[ItemRef]:
        """Where every item is (optionally of one kind: product, event, matchup), by
        collection and id, streamed from the index; writes during the walk are safe."""
        return self._index.iter_ids(kind, collection)

    # ------------------------------------------------------------------ layout / walking

    def item_path(self, collection: str, item_id: str, when: datetime | str) -> Path:
        """Where an item of this id and date lives in the layout."""
        return self.root / item_relpath(collection, item_id, when)

    def path_of(self, item_id: str, collection: str | None = None) -> Path:
        """The file of an existing item (CatalogueError if unknown)."""
        return self.root / self.require(item_id, collection).relpath

    def collection_dirs(self) -> dict[str, Path]:
        """Collection id -> folder of every collection (catalogue links, then folders with a collection.json)."""
        return folders.collection_dirs(self.root, self._catalog)

    def iter_item_paths(
        self, collection: str | None = None, changed_since: datetime | float | None = None
    ) -> Iterator[tuple[str, Path]]:
        """(collection folder, path) of every item file, by a streaming os.scandir walk.

        ``changed_since`` (datetime or epoch seconds) keeps files modified after it.
        """
        since_ns = None
        if changed_since is not None:
            since_ns = int(epoch_s(changed_since) * 1e9)  # type: ignore[operator]
        for name, path, _ in folders.walk_items(self.root, self._catalog, collection, since_ns):
            yield name, path

    def iter_items(self, collection: str | None = None) -> Iterator[dict[str, Any]]:
        """Every item dict (optionally of one collection), streamed from the files."""
        for _, path in self.iter_item_paths(collection):
            item = jsonio.read_json(path)
            if isinstance(item, dict) and item.get("type") == "Feature":
                yield item

    def to_geodataframe(self, collection: str | None = None) -> Any:
        """Every matchup (optionally of one collection) as a row of a geopandas GeoDataFrame
        in EPSG:4326: the columns of ``eomatch-export`` (:mod:`eomatch.export`; needs the
        ``export`` extra)."""
        from eomatch.export import to_geodataframe

        return to_geodataframe(self, collection)

    # ------------------------------------------------------------------ collections

    def iter_collections(self) -> Iterator[dict[str, Any]]:
        """Collection dicts of the catalogue's children."""
        for _, folder in sorted(self.collection_dirs().items()):
            path = folder / "collection.json"
            if path.is_file():
                yield jsonio.read_json(path)

    def get_collection(self, collection_id: str) -> dict[str, Any]:
        folder = self.collection_dirs().get(collection_id)
        if folder is None or not (folder / "collection.json").is_file():
            raise CatalogueError(f"unknown collection {collection_id!r} in catalogue {self.root}")
        return jsonio.read_json(folder / "collection.json")

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
            self._note_extent(collection_id, list(bbox) if bbox else None, epoch_s(start), epoch_s(end))
        if collection_id in self._bulk_collections:
            return collection_id
        if collection_id in self._known and (self.root / collection_id / "collection.json").is_file():
            if self._bulk_depth:
                self._bulk_collections.add(collection_id)
            return collection_id
        kind = kind or collection_kind(collection_id)
        _ = self.db  # check the index before catalog.json changes under it
        with self._locks.catalogue():
            fresh_before = self._index.is_fresh()
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
                    self._index.record_catalog_stamp()
            self._catalog = catalog
        self._known.add(collection_id)
        return collection_id

    @staticmethod
    def _new_collection(collection_id: str, kind: str, title: str | None, description: str | None) -> dict[str, Any]:
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
        grow_extent(self._pending_extent.setdefault(collection, [None] * 6), bbox, start, end)

    def save(self) -> None:
        """Merge pending extents and new item links into each collection.json.

        Extents grow by what this process wrote (never by re-reading items);
        item links are what pystac walks. Runs under the catalog lock so several
        writers merge rather than overwrite.
        """
        touched = set(self._pending_extent) | set(self._pending_links)
        if not touched:
            return
        with self._locks.catalogue():
            for coll in sorted(touched):
                path = self.root / coll / "collection.json"
                if not path.is_file():
                    self.ensure_collection(coll)
                col = jsonio.read_json(path)
                ext = self._pending_extent.get(coll)
                if ext is not None:
                    merge_extent(col, ext)
                new_links = self._pending_links.get(coll)
                if new_links:
                    links = col.setdefault("links", [])
                    # Known links as root-relative paths, whatever their form (relative,
                    # absolute, file://: older tools wrote absolute ones).
                    have = {folders.link_relpath(self.root, coll, lk.get("href")) for lk in links if lk.get("rel") == "item"}
                    for rel in new_links:
                        if rel not in have:
                            href = fast_relative_href(f"{coll}/collection.json", rel)  # once per item
                            links.append({"rel": "item", "href": href, "type": JSON_MEDIA_TYPE})
                            have.add(rel)
                jsonio.write_json_atomic(path, col)
        self._pending_extent.clear()
        self._pending_links.clear()

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
        self._index.begin_bulk(commit_every)
        self._bulk_depth = 1
        try:
            yield self
        finally:
            self._bulk_depth = 0
            self._bulk_collections.clear()
            self._index.end_bulk()

    def _relink(self, item: dict[str, Any], rel: str) -> None:
        """Structural links from the item's real place; item links to their targets' files."""
        links = [lk for lk in item.get("links") or [] if lk.get("rel") not in STRUCTURAL_RELS]
        for link in links:
            if link.get("rel") not in _RELINKED:
                continue
            target = link_target_id(link)
            if not target:
                continue
            found = self._index.lookup(target)
            if found is not None:
                link["href"] = fast_relative_href(rel, found.relpath)
        item["links"] = structural_links_cached(rel) + links

    def _written(self, item: dict[str, Any], collection: str, rel: str, mtime_ns: int) -> None:
        """Index a written file and note its extent and collection link (merged by save())."""
        self._index.upsert(self._index.db, item, rel, mtime_ns, collection)
        try:
            _, start, end = item_times(item)
            self._note_extent(collection, item.get("bbox"), start.timestamp(), end.timestamp())
        except MatchupError:
            self._note_extent(collection, item.get("bbox"), None, None)
        # Linked on every write, not only a file's first: a run killed before save()
        # left files unlinked, and this re-run must link them (save() skips known links).
        self._pending_links.setdefault(collection, {})[rel] = None

    def _write_item(self, item: dict[str, Any], collection: str, rel: str) -> dict[str, Any]:
        self._relink(item, rel)
        path = self.root / rel
        jsonio.write_json_atomic(path, item)
        self._written(item, collection, rel, path.stat().st_mtime_ns)
        return item

    def add_item(self, item: Mapping[str, Any], collection: str | None = None) -> dict[str, Any]:
        """Upsert one item dict by id (merging with what is on disk); returns what was written."""
        new, coll, rel = self._prepare_item(item, collection)
        with self._locks.item(coll, str(new["id"])):
            path = self.root / rel
            if path.is_file():
                new = merge_items(jsonio.read_json(path), new)
            return self._write_item(new, coll, rel)

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
        found = self._index.lookup(str(new["id"]), str(coll))
        try:
            rel = found.relpath if found else default_relpath(new)
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

        def write(job: tuple[dict[str, Any], str, str]) -> tuple[dict[str, Any], str, str, int]:
            new, coll, rel = job
            with self._locks.item(coll, str(new["id"])):
                path = self.root / rel
                if path.is_file():
                    new = merge_items(jsonio.read_json(path), new)
                    new["links"] = structural_links_cached(rel) + new["links"]
                jsonio.write_json_atomic(path, new)
                return new, coll, rel, path.stat().st_mtime_ns

        if workers > 1 and len(prepared) > 1:
            from concurrent.futures import ThreadPoolExecutor

            # One contiguous share per thread, not one task per item: a task per item woke a
            # thread per file (12 % more client CPU per item in eomatch-query, measured).
            share = -(-len(prepared) // workers)
            shares = [prepared[i : i + share] for i in range(0, len(prepared), share)]
            with ThreadPoolExecutor(max_workers=len(shares)) as pool:
                results = [r for done in pool.map(lambda jobs: [write(j) for j in jobs], shares) for r in done]
        else:
            results = [write(job) for job in prepared]
        for new, coll, rel, mtime_ns in results:
            self._written(new, coll, rel, mtime_ns)
        return [r[0] for r in results]

    def path_beside(self, item: Mapping[str, Any], suffix: str) -> Path:
        """Where a file of one item goes: ``{id}{suffix}`` in the folder of the item's JSON
        (where it is, or will be written). Its href from the item is ``./{id}{suffix}``.

        For files that belong to one item (quicklooks): they move with the item's
        folder, and ingest makes the relative href a URL under ``--assets-base-url``.
        """
        item_id, coll = str(item.get("id") or ""), str(item.get("collection") or "")
        for what, name in (("item id", item_id), ("collection id", coll), ("file name", f"{item_id}{suffix}")):
            if (reason := unsafe_reason(name)) is not None:
                raise CatalogueError(f"{what} {name!r} is not a safe file name ({reason})")
        found = self._index.lookup(item_id, coll)
        try:
            rel = found.relpath if found else default_relpath(item)
        except MatchupError as exc:
            raise CatalogueError(str(exc)) from None
        return self.root / rel.rsplit("/", 1)[0] / f"{item_id}{suffix}"

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
        chosen = products if products is not None else matchup.kept_products
        if chosen is not None:
            for p in chosen:
                self.add_product(p)
        validate_item(matchup.to_dict())
        matchup.bind(self.add_item(matchup.to_dict()), self)
        return matchup

    def add_event(self, event: MatchupEvent) -> MatchupEvent:
        """Upsert an event and all its matchups; an existing event gains the new matchups."""
        for matchup in event.matchup_set:
            self.add_matchup(matchup)
        validate_item(event.to_dict())
        event.bind(self.add_item(event.to_dict()), self)
        return event

    def update_item(
        self,
        item_id: str,
        fn: Callable[[dict[str, Any]], dict[str, Any] | None],
        collection: str | None = None,
    ) -> dict[str, Any]:
        """Read-modify-write one item under its lock; ``fn`` edits the dict (or returns a new one)."""
        ref = self.require(item_id, collection)
        with self._locks.item(ref.collection, item_id):
            path = self.root / ref.relpath
            item = jsonio.read_json(path)
            result = fn(item)
            if result is not None:
                item = result
            if item.get("id") != item_id:
                raise CatalogueError(f"update of {item_id!r} changed its id to {item.get('id')!r}")
            return self._write_item(item, ref.collection, ref.relpath)

    # ------------------------------------------------------------------ reads

    def get_item(self, item_id: str, collection: str | None = None) -> dict[str, Any]:
        """One item dict by id (CatalogueError if unknown)."""
        return jsonio.read_json(self.root / self.require(item_id, collection).relpath)

    def get_product(self, item_id: str) -> dict[str, Any]:
        return jsonio.read_json(self.root / self.require(item_id, kind="product").relpath)

    def get_matchup(self, item_id: str) -> Matchup:
        return Matchup(jsonio.read_json(self.root / self.require(item_id, kind="matchup").relpath), self)

    def get_event(self, item_id: str) -> MatchupEvent:
        """One event with its ``matchup_set`` filled."""
        event = MatchupEvent(jsonio.read_json(self.root / self.require(item_id, kind="event").relpath), self)
        event.matchup_set = list(self._event_matchups(self.db, event))
        return event

    def _event_matchups(self, conn: sqlite3.Connection, event: MatchupEvent) -> Iterator[Matchup]:
        seen: set[str] = set()
        for mid, rel in event_matchup_rows(conn, event.id, event.matchup_ids):
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
        spellings = sorted({s.casefold() for p in platforms or () for s in platform_spellings(p, self.satellites)})
        start_ts = epoch_s(start_time) if start_time is not None else None
        end_ts = epoch_s(stop_time, end=True) if stop_time is not None else None
        if bbox is not None and len(bbox) != 4:
            raise CatalogueError("bbox must be [west, south, east, north]")
        sql, params = events_sql(collections, spellings, start_ts, end_ts, bbox)
        yield from self._stream_events(sql, params, properties)

    def _stream_events(self, sql: str, params: list[Any], properties: Mapping[str, Any] | None) -> Iterator[MatchupEvent]:
        _ = self.db  # make sure the index is fresh
        reader = self._index.connect()
        try:
            cur = reader.execute(sql, params)
            while rows := cur.fetchmany(256):
                for _, rel in rows:
                    event = MatchupEvent(jsonio.read_json(self.root / rel), self)
                    if properties:
                        ev_cond = {k: v for k, v in properties.items() if k in event.properties}
                        mu_cond = {k: v for k, v in properties.items() if k not in event.properties}
                        if not props_match(event.properties, ev_cond):
                            continue
                        matchups = list(self._event_matchups(reader, event))
                        if mu_cond:
                            matchups = [m for m in matchups if props_match(m.properties, mu_cond)]
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
