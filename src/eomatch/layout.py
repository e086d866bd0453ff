"""Where items live on disk and how their files link to each other.

The layout is the one pystac writes for a SELF_CONTAINED catalogue::

    catalog.json
    {collection}/collection.json
    {collection}/{YYYY}/{MM}/{DD}/{item-id}.json

Links between items are relative hrefs computed from these root-relative paths,
so a catalogue folder can be moved or copied as it is.
"""

from __future__ import annotations

import functools
import posixpath
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from eomatch.errors import MatchupError
from eomatch.times import to_utc

STAC_VERSION = "1.1.0"
"""STAC version eomatch writes: the current spec (pystac, STAC Browser 4 and pgSTAC all read it)."""
JSON_MEDIA_TYPE = "application/json"
STRUCTURAL_RELS = ("root", "parent", "collection", "self")
"""Links that follow from where a file is; rewritten whenever an item is written."""


def item_relpath(collection_id: str, item_id: str, when: datetime | str) -> str:
    """``{collection}/{YYYY}/{MM}/{DD}/{id}.json``, relative to the catalogue root."""
    day = to_utc(when)
    # Not f"{day:%Y}": strftime costs ~20 µs a call, ten times this, and runs for every item
    # written (str(year) is what %Y gives here, unpadded below 1000).
    return f"{collection_id}/{day.year}/{day.month:02d}/{day.day:02d}/{item_id}.json"


def relative_href(from_relpath: str, to_relpath: str) -> str:
    """Href of ``to`` as seen from the file ``from`` (both root-relative, POSIX)."""
    rel = posixpath.relpath(to_relpath, posixpath.dirname(from_relpath) or ".")
    return rel if rel.startswith(".") else f"./{rel}"


def fast_relative_href(from_relpath: str, to_relpath: str) -> str:
    """:func:`relative_href` for normalised root-relative paths, without
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


def item_layout_date(item: Mapping[str, Any]) -> datetime:
    """The date that places an item in the layout: datetime, else start_datetime."""
    props = item.get("properties") or {}
    raw = props.get("datetime") or props.get("start_datetime") or props.get("end_datetime")
    if raw is None:
        raise MatchupError(f"item {item.get('id')!r} has no datetime to place it on disk")
    return to_utc(raw)


def default_relpath(item: Mapping[str, Any]) -> str:
    """Where an item goes in the layout when it is not in the catalogue yet."""
    return item_relpath(str(item["collection"]), str(item["id"]), item_layout_date(item))


def structural_links(relpath: str) -> list[dict[str, Any]]:
    """root/parent/collection links as pystac writes them for a self-contained catalogue."""
    collection_dir = relpath.split("/", 1)[0]
    return [
        {"rel": "root", "href": relative_href(relpath, "catalog.json"), "type": JSON_MEDIA_TYPE},
        {"rel": "parent", "href": relative_href(relpath, f"{collection_dir}/collection.json"), "type": JSON_MEDIA_TYPE},
        {"rel": "collection", "href": relative_href(relpath, f"{collection_dir}/collection.json"), "type": JSON_MEDIA_TYPE},
    ]


def structural_links_cached(relpath: str) -> list[dict[str, Any]]:
    """:func:`structural_links`, computed once per folder (relpath is slow on hot paths)."""
    return [dict(lk) for lk in _structural_links_of_dir(relpath.rsplit("/", 1)[0] if "/" in relpath else "")]


@functools.lru_cache(maxsize=4096)
def _structural_links_of_dir(folder: str) -> tuple[dict[str, Any], ...]:
    return tuple(structural_links(f"{folder}/x.json" if folder else "x.json"))


def link_target_id(link: Mapping[str, Any]) -> str | None:
    """Id of the item a link points at: the file name of its href without ``.json``."""
    href = link.get("href")
    if not isinstance(href, str) or not href.endswith(".json"):
        return None
    name = href.rstrip("/").rsplit("/", 1)[-1]
    return name[: -len(".json")] or None


def item_link(rel: str, source: Mapping[str, Any], target: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    """A link from ``source`` to ``target``, both at their default places in the layout."""
    href = relative_href(default_relpath(source), default_relpath(target))
    return {"rel": rel, "href": href, "type": JSON_MEDIA_TYPE, **extra}


def has_link(item: Mapping[str, Any], rel: str, target_id: str, role: str | None = None) -> bool:
    """Whether ``item`` already links to ``target_id`` with this rel (and ``matchup:role``)."""
    for link in item.get("links") or []:
        if link.get("rel") != rel or link_target_id(link) != target_id:
            continue
        if role is None or link.get("matchup:role") == role:
            return True
    return False
