"""How new content merges with what is already on disk: items, and collection extents.

Re-runs and concurrent writers must keep what others added, so an item upsert
merges key by key and a collection's extent only ever grows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from eomatch.catalogue.filters import epoch_s
from eomatch.layout import STRUCTURAL_RELS, link_target_id
from eomatch.times import format_datetime

Extent = list[float | None]
"""``[minx, miny, maxx, maxy, t0, t1]`` (degrees, epoch seconds); None = not known yet."""


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
        if link.get("rel") in STRUCTURAL_RELS:
            continue
        key = _link_key(link)
        if key in seen:
            continue
        seen.add(key)
        links.append(dict(link))
    out["links"] = links
    return out


def grow_extent(extent: Extent, bbox: Sequence[float] | None, start: float | None, end: float | None) -> None:
    """Grow a pending extent by one item's bbox and [start, end] (epoch s), in place."""
    if bbox and len(bbox) in (4, 6):
        half = len(bbox) // 2
        vals = [bbox[0], bbox[1], bbox[half], bbox[half + 1]]
        if vals[0] > vals[2]:  # across the antimeridian: the extent spans all longitudes
            vals[0], vals[2] = -180.0, 180.0
        for i, fn in ((0, min), (1, min), (2, max), (3, max)):
            extent[i] = vals[i] if extent[i] is None else fn(extent[i], vals[i])  # type: ignore[type-var]
    for i, value, fn in ((4, start, min), (5, end, max)):
        if value is not None:
            extent[i] = value if extent[i] is None else fn(extent[i], value)  # type: ignore[type-var]


def merge_extent(col: dict[str, Any], ext: Sequence[float | None]) -> None:
    """Grow a collection's extent by ``[minx, miny, maxx, maxy, t0, t1]`` (epoch s).

    A temporal interval of [null, null] marks a collection with no items yet:
    its placeholder world bbox is then replaced rather than grown.
    """
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
        lows = [v for v in (epoch_s(old_lo), ext[4]) if v is not None]
        highs = [v for v in (epoch_s(old_hi), ext[5]) if v is not None]
        interval = [
            format_datetime(datetime.fromtimestamp(min(lows), tz=UTC)) if lows else None,
            format_datetime(datetime.fromtimestamp(max(highs), tz=UTC)) if highs else None,
        ]
        intervals = [interval] + intervals[1:]
    spatial["bbox"] = bboxes or [[-180.0, -90.0, 180.0, 90.0]]
    temporal["interval"] = intervals or [[None, None]]
