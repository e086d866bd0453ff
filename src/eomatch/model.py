"""The matchup data model, in one import: ``from eomatch.model import Matchup, ...``.

This module holds no code of its own; it re-exports the public names of the
modules the model is made of, so code and docs written against ``eomatch.model``
keep working:

- :mod:`eomatch.items`: the item views ``Product``, ``MatchupEvent``, ``Matchup``;
- :mod:`eomatch.ids`: deterministic ids, collection ids, item kinds;
- :mod:`eomatch.times`: time parsing (one rule for every command) and formatting;
- :mod:`eomatch.geometry`: antimeridian-safe footprints, overlaps, areas, bboxes;
- :mod:`eomatch.layout`: where item files live and how they link;
- :mod:`eomatch.platforms`: the platform registry lookup.

Modules inside eomatch import from those modules directly (importing this one
pulls in all of them).
"""

from __future__ import annotations

from eomatch.errors import MatchupError
from eomatch.geometry import (
    geodesic_area_km2,
    geojson,
    intersect_footprints,
    normalize_geometry,
    stac_bbox,
)
from eomatch.ids import (
    EVENTS_PREFIX,
    ITEM_TYPES,
    event_id,
    events_collection_id,
    infer_item_type,
    matchup_collection_id,
    matchup_id,
    pair_key,
)
from eomatch.items import ItemView, Matchup, MatchupEvent, Product, with_extension, wrap_item
from eomatch.layout import (
    JSON_MEDIA_TYPE,
    STAC_VERSION,
    default_relpath,
    fast_relative_href,
    has_link,
    item_layout_date,
    item_link,
    item_relpath,
    link_target_id,
    relative_href,
    structural_links,
)
from eomatch.platforms import canonical_platform, find_platform, platform_spellings, platform_token
from eomatch.times import (
    LAST_MICROSECOND,
    date_only,
    format_datetime,
    item_times,
    parse_time_bound,
    round_to_second,
    to_utc,
)

__all__ = [
    "EVENTS_PREFIX", "ITEM_TYPES", "JSON_MEDIA_TYPE", "LAST_MICROSECOND", "STAC_VERSION",
    "ItemView", "Matchup", "MatchupError", "MatchupEvent", "Product",
    "canonical_platform", "date_only", "default_relpath", "event_id", "events_collection_id",
    "fast_relative_href", "find_platform", "format_datetime", "geodesic_area_km2", "geojson",
    "has_link", "infer_item_type", "intersect_footprints", "item_layout_date", "item_link",
    "item_relpath", "item_times", "link_target_id", "matchup_collection_id", "matchup_id",
    "normalize_geometry", "pair_key", "parse_time_bound", "platform_spellings", "platform_token",
    "relative_href", "round_to_second", "stac_bbox", "structural_links",
    "to_utc", "with_extension", "wrap_item",
]  # fmt: skip
