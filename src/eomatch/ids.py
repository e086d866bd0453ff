"""Deterministic ids and collection ids, and what kind an item is.

Ids are derived from what an item is (the sensor pair and start of an event, the
two products of a matchup), so re-running a search produces the same ids and
never duplicates items.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from eomatch.times import round_to_second

EVENTS_PREFIX = "matchup-events"
ITEM_TYPES = ("product", "event", "matchup")


def pair_key(collection_a: str, token_a: str, collection_b: str, token_b: str) -> str:
    """``{collection}-{token}-vs-{collection}-{token}``, the two halves sorted.

    Sorting makes A-vs-B and B-vs-A the same key, so each sensor pair has one
    matchup collection and one events collection whatever order it was asked in.
    """
    first, second = sorted((f"{collection_a}-{token_a}", f"{collection_b}-{token_b}"))
    return f"{first}-vs-{second}"


def matchup_collection_id(collection_a: str, token_a: str, collection_b: str, token_b: str) -> str:
    """Id of the collection holding the matchups of one sensor pair."""
    return pair_key(collection_a, token_a, collection_b, token_b)


def events_collection_id(collection_a: str, token_a: str, collection_b: str, token_b: str) -> str:
    """Id of the collection holding the events of one sensor pair."""
    return f"{EVENTS_PREFIX}-{pair_key(collection_a, token_a, collection_b, token_b)}"


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def event_id(key: str, start: datetime) -> str:
    """``event-<YYYYMMDDTHHMMSS>-<sha1(pair key|start)[:8]>``.

    The start is rounded to the nearest second, so float jitter in orbit
    propagation does not produce a new id; the hash keeps sensor pairs apart.
    """
    start_s = round_to_second(start)
    stamp = start_s.strftime("%Y%m%dT%H%M%S")
    return f"event-{stamp}-{_sha1(f'{key}|{stamp}')[:8]}"


def matchup_id(product_id_a: str, product_id_b: str) -> str:
    """``matchup-<sha1("id1|id2")[:16]>`` over the two product ids sorted."""
    first, second = sorted((product_id_a, product_id_b))
    return f"matchup-{_sha1(f'{first}|{second}')[:16]}"


def collection_kind(collection_id: str) -> str:
    """The item kind a collection id names by eomatch's conventions (events prefix, ``-vs-``)."""
    if collection_id.startswith(f"{EVENTS_PREFIX}-"):
        return "event"
    if "-vs-" in collection_id:
        return "matchup"
    return "product"


def infer_item_type(item: Mapping[str, Any], collection_id: str | None = None) -> str:
    """``product``, ``event`` or ``matchup`` for any item, ours or a legacy tool's."""
    props = item.get("properties") or {}
    declared = props.get("matchup:type")
    if declared in ITEM_TYPES:
        return str(declared)
    coll = str(item.get("collection") or collection_id or "")
    links = item.get("links") or []
    if coll.startswith(f"{EVENTS_PREFIX}-"):
        return "event"
    if any(lk.get("rel") == "related" and lk.get("matchup:role") == "matchup" for lk in links):
        return "event"
    if any(lk.get("rel") == "derived_from" for lk in links) or "matchup:products" in props:
        return "matchup"
    if "-vs-" in coll:
        return "matchup"
    return "product"


# --------------------------------------------------------------------------- titles

_LANDSAT_ID = re.compile(r"^(L[COTEM]\d{2}_[A-Z0-9]{4}_\d{6})_\d{8}")
_S2_TILE = re.compile(r"_(T\d{2}[A-Z]{3})(?:_|$)")
_S2_ID = re.compile(r"^S2[A-D]_MSI")


def product_label(product_id: str) -> str:
    """A short name of a product for titles: Landsat ``LC09_L1TP_042034`` (sensor,
    level, path/row), Sentinel-2 its MGRS tile ``T11SLB``; other ids as they are.

    Readers scan a list of matchups by scene and tile, not by the full provider id.
    """
    landsat = _LANDSAT_ID.match(product_id)
    if landsat:
        return landsat.group(1)
    if _S2_ID.match(product_id):
        tile = _S2_TILE.search(product_id)
        if tile:
            return tile.group(1)
    return product_id
