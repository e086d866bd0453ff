"""The catalogue's folders on disk: which folders are collections, and walking item files.

Collections are the catalog's ``child`` links, plus any folder holding a
``collection.json`` (catalogues written by other tools may not link them all).
Walks stream with ``os.scandir`` and never build a list of the catalogue.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any


def child_dirs_from_catalog(root: Path, catalog: Mapping[str, Any]) -> dict[str, Path]:
    """Collection folder name -> folder, from catalog.json's ``child`` links."""
    out: dict[str, Path] = {}
    for link in catalog.get("links") or []:
        if link.get("rel") != "child" or not isinstance(link.get("href"), str):
            continue
        href = link["href"]
        if href.startswith("file://"):
            href = href[len("file://") :]
        target = Path(href) if os.path.isabs(href) else (root / href)
        folder = target.parent
        if not folder.is_dir() or not str(folder.resolve()).startswith(str(root)):
            folder = root / target.parent.name
        out[folder.name] = folder
    return out


def collection_dirs(root: Path, catalog: Mapping[str, Any]) -> dict[str, Path]:
    """Collection id -> folder of every collection (catalog links, then folders with a collection.json)."""
    dirs = child_dirs_from_catalog(root, catalog)
    with os.scandir(root) as entries:
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_dir() or entry.name in dirs:
                continue
            if os.path.isfile(os.path.join(entry.path, "collection.json")):
                dirs[entry.name] = Path(entry.path)
    return {k: v for k, v in dirs.items() if v.is_dir()}


def walk_items(
    root: Path,
    catalog: Mapping[str, Any],
    collection: str | None = None,
    changed_since_ns: int | None = None,
) -> Iterator[tuple[str, Path, int]]:
    """(collection folder, item file, mtime ns) of every item file, in a stable order.

    ``changed_since_ns`` keeps files modified after it.
    """
    dirs = collection_dirs(root, catalog)
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


def link_relpath(root: Path, collection: str, href: Any) -> str | None:
    """An item link of ``{collection}/collection.json`` as a path relative to the root
    (relative, absolute and ``file://`` hrefs alike: older tools wrote absolute ones)."""
    if not isinstance(href, str) or not href:
        return None
    if href.startswith("file://"):
        href = href[len("file://") :]
    if "://" in href:
        return None
    path = href if os.path.isabs(href) else os.path.join(str(root), collection, href)
    try:
        return Path(os.path.normpath(path)).relative_to(root).as_posix()
    except ValueError:
        return None
