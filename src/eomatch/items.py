"""Product, MatchupEvent and Matchup: typed views over STAC item dicts.

The items are plain JSON dicts (what lands on disk); the classes are thin views
over them, so ``to_dict()`` is free and nothing walks a pystac object graph.
Ids are deterministic (:mod:`eomatch.ids`), so re-running a search produces the
same ids and never duplicates items. A view may belong to a catalogue (the one
it was read from or written to): a matchup reads its products through it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shapely.geometry import Polygon, shape
from shapely.geometry.base import BaseGeometry

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
    event_id,
    infer_item_type,
    matchup_collection_id,
    matchup_id,
    pair_key,
    product_label,
)
from eomatch.layout import STAC_VERSION, has_link, item_link, link_target_id
from eomatch.platforms import canonical_platform, platform_token
from eomatch.schema import SCHEMA_URL
from eomatch.times import format_datetime, item_times, to_utc

if TYPE_CHECKING:
    import pystac

    from eomatch.catalogue import MatchupCatalogue
    from eomatch.settings import SatelliteSpec


EO_EXTENSION_URL = "https://stac-extensions.github.io/eo/v1.1.0/schema.json"
"""The official ``eo`` extension, which defines a product's ``eo:cloud_cover``."""
CLOUD_COVER = "eo:cloud_cover"
MAX_CLOUD_COVER = "matchup:max_cloud_cover"


def with_extension(exts: Iterable[str] | None, *more: str) -> list[str]:
    """``stac_extensions`` with the matchup schema (and ``more``) added, each once."""
    out = list(exts or [])
    for url in (SCHEMA_URL, *more):
        if url not in out:
            out.append(url)
    return out


def cloud_cover_pct(value: Any) -> float | None:
    """A cloud cover in percent (0-100) as float, None when absent or not such a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    pct = float(value)
    return pct if 0.0 <= pct <= 100.0 else None


def format_time_diff(abs_time_diff_s: float) -> str:
    """``42 s``, ``21 min`` or ``3.5 h``: the unit a reader compares at a glance."""
    if abs_time_diff_s < 60:
        return f"{abs_time_diff_s:.0f} s"
    if abs_time_diff_s < 5400:
        return f"{abs_time_diff_s / 60:.0f} min"
    return f"{abs_time_diff_s / 3600:.1f} h"


def matchup_title(
    side_a: tuple[str, str], side_b: tuple[str, str], abs_time_diff_s: float, overlap_fraction: float
) -> str:
    """``Landsat-9 LC09_L1TP_042034 × Sentinel-2A T11SLB · Δt 21 min · 71 % overlap``;
    each side is (platform or collection, product id)."""
    (name_a, id_a), (name_b, id_b) = side_a, side_b
    return (
        f"{name_a} {product_label(id_a)} × {name_b} {product_label(id_b)}"
        f" · Δt {format_time_diff(abs_time_diff_s)} · {overlap_fraction * 100:.0f} % overlap"
    )


def event_title(name_a: str, name_b: str, start: datetime, time_diff_s: float | None) -> str:
    """``Landsat-9 × Sentinel-2A crossover · 2022-05-21 18:32 UTC · Δt 21 min``."""
    title = f"{name_a} × {name_b} crossover · {start:%Y-%m-%d %H:%M} UTC"
    if time_diff_s is not None:
        title += f" · Δt {format_time_diff(abs(time_diff_s))}"
    return title


# --------------------------------------------------------------------------- classes


class ItemView:
    """Typed accessors over one STAC item dict (the dict is the state)."""

    item_type: str = ""

    def __init__(self, item: dict[str, Any], catalogue: MatchupCatalogue | None = None) -> None:
        if not isinstance(item, dict) or item.get("type") != "Feature" or not item.get("id"):
            raise MatchupError("not a STAC item: expected a dict with type 'Feature' and an id")
        item.setdefault("properties", {})
        item.setdefault("links", [])
        item.setdefault("assets", {})
        self._item = item
        self._catalogue = catalogue
        self._geometry: BaseGeometry | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} in {self.collection_id}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ItemView) and other.id == self.id and other.collection_id == self.collection_id

    def __hash__(self) -> int:
        return hash((self.id, self.collection_id))

    @property
    def id(self) -> str:
        return str(self._item["id"])

    @property
    def collection_id(self) -> str:
        return str(self._item.get("collection") or "")

    @property
    def properties(self) -> dict[str, Any]:
        return self._item["properties"]

    @property
    def assets(self) -> dict[str, Any]:
        return self._item["assets"]

    @property
    def links(self) -> list[dict[str, Any]]:
        return self._item["links"]

    @property
    def datetime(self) -> datetime:
        return item_times(self._item)[0]

    @property
    def start(self) -> datetime:
        return item_times(self._item)[1]

    @property
    def end(self) -> datetime:
        return item_times(self._item)[2]

    @property
    def geometry(self) -> BaseGeometry:
        """The item geometry as shapely (cached)."""
        if self._geometry is None:
            raw = self._item.get("geometry")
            self._geometry = shape(raw) if raw else Polygon()
        return self._geometry

    @property
    def bbox(self) -> list[float] | None:
        return self._item.get("bbox")

    @property
    def platforms(self) -> list[str]:
        return list(self.properties.get("matchup:platforms") or [])

    @property
    def collections(self) -> list[str]:
        return list(self.properties.get("matchup:collections") or [])

    @property
    def catalogue(self) -> MatchupCatalogue | None:
        return self._catalogue

    def bind(self, item: dict[str, Any], catalogue: MatchupCatalogue) -> None:
        """Show ``item`` (what ``catalogue`` wrote for this view) and belong to that catalogue."""
        self._item = item
        self._catalogue = catalogue

    def to_dict(self) -> dict[str, Any]:
        """The item dict itself (not a copy): cheap, and never walks other items."""
        return self._item

    def to_pystac(self) -> pystac.Item:
        """A pystac Item of a copy of the dict, for code at the edges that wants pystac."""
        import pystac

        return pystac.Item.from_dict(copy.deepcopy(self._item), preserve_dict=False)

    def validate(self) -> None:
        """Check the item against the matchup schema (raises SchemaValidationError)."""
        from eomatch.schema import validate_item

        validate_item(self._item)


class Product(ItemView):
    """One EO product (e.g. a Sentinel-2 L1C granule or a Landsat C2L1 scene)."""

    item_type = "product"

    @classmethod
    def create(
        cls,
        *,
        id: str,
        collection: str,
        platform: str,
        geometry: BaseGeometry | Mapping[str, Any],
        start: datetime | str,
        end: datetime | str | None = None,
        instrument: str | None = None,
        assets: Mapping[str, Any] | None = None,
        properties: Mapping[str, Any] | None = None,
        cloud_cover: float | None = None,
    ) -> Product:
        """Build a product item from its essentials (platform: canonical name;
        ``cloud_cover`` in percent, as the provider's ``eo:cloud_cover``)."""
        geom = normalize_geometry(geometry)
        if geom.is_empty:
            raise MatchupError(f"product {id!r} has an empty footprint")
        start_dt = to_utc(start)
        end_dt = to_utc(end) if end is not None else start_dt
        if end_dt < start_dt:
            raise MatchupError(f"product {id!r} ends before it starts")
        props: dict[str, Any] = dict(properties or {})
        props.update(
            {
                "datetime": format_datetime(start_dt + (end_dt - start_dt) / 2),
                "start_datetime": format_datetime(start_dt),
                "end_datetime": format_datetime(end_dt),
                "platform": platform,
                "matchup:type": "product",
            }
        )
        if instrument:
            props["instruments"] = [instrument]
        if cloud_cover is not None:
            if cloud_cover_pct(cloud_cover) is None:
                raise MatchupError(f"product {id!r}: cloud cover {cloud_cover!r} is not a percentage (0-100)")
            props[CLOUD_COVER] = float(cloud_cover)
        item = {
            "type": "Feature",
            "stac_version": STAC_VERSION,
            "stac_extensions": with_extension([], EO_EXTENSION_URL) if CLOUD_COVER in props else [SCHEMA_URL],
            "id": id,
            "collection": collection,
            "geometry": geojson(geom),
            "bbox": stac_bbox(geom),
            "properties": props,
            "links": [],
            "assets": dict(assets or {}),
        }
        return cls(item)

    @classmethod
    def from_item(cls, item: dict[str, Any], catalogue: MatchupCatalogue | None = None) -> Product:
        """Wrap a provider's item dict, tagging it as a product of the matchup schema."""
        view = cls(item, catalogue)
        view.properties.setdefault("matchup:type", "product")
        # eo:cloud_cover is the eo extension's field: listing it lets validators check it
        more = (EO_EXTENSION_URL,) if CLOUD_COVER in view.properties else ()
        item["stac_extensions"] = with_extension(item.get("stac_extensions"), *more)
        item.setdefault("stac_version", STAC_VERSION)
        if not item.get("collection"):
            raise MatchupError(f"product {view.id!r} has no collection")
        return view

    @property
    def platform(self) -> str:
        return str(self.properties.get("platform") or "")

    @property
    def instrument(self) -> str | None:
        inst = self.properties.get("instruments")
        return str(inst[0]) if inst else None

    @property
    def cloud_cover(self) -> float | None:
        """The provider's ``eo:cloud_cover`` (percent), None when it gives none."""
        return cloud_cover_pct(self.properties.get(CLOUD_COVER))

    @property
    def acquisition_time(self) -> datetime:
        """The product's ``datetime`` (else the middle of start/end)."""
        return self.datetime


def _as_product(value: Product | Mapping[str, Any]) -> Product:
    if isinstance(value, Product):
        return value
    if isinstance(value, dict):
        return Product.from_item(value)
    raise MatchupError(f"expected a product item dict, got {type(value).__name__}")


class MatchupEvent(ItemView):
    """One crossover opportunity of two satellites: a time window over a region."""

    item_type = "event"

    def __init__(self, item: dict[str, Any], catalogue: MatchupCatalogue | None = None) -> None:
        super().__init__(item, catalogue)
        self.matchup_set: list[Matchup] = []

    @classmethod
    def create(
        cls,
        *,
        platform_a: str,
        collection_a: str,
        platform_b: str,
        collection_b: str,
        start: datetime | str,
        end: datetime | str,
        region: BaseGeometry | Mapping[str, Any],
        min_distance_km: float | None = None,
        time_diff_s: float | None = None,
        solar_elevation_deg: float | None = None,
        properties: Mapping[str, Any] | None = None,
        satellites: Sequence[SatelliteSpec] | None = None,
    ) -> MatchupEvent:
        """Build an event; platforms are stored by canonical name, in canonical pair order."""
        start_dt, end_dt = to_utc(start), to_utc(end)
        if end_dt < start_dt:
            raise MatchupError("event end is before its start")
        geom = normalize_geometry(region)
        if geom.is_empty:
            raise MatchupError("event region is empty")
        sides = []
        for platform, collection in ((platform_a, collection_a), (platform_b, collection_b)):
            name = canonical_platform(platform, satellites)
            token = platform_token(name, satellites)
            sides.append((f"{collection}-{token}", name, collection, token))
        sides.sort()
        (_, name_a, coll_a, tok_a), (_, name_b, coll_b, tok_b) = sides
        key = pair_key(coll_a, tok_a, coll_b, tok_b)
        props: dict[str, Any] = dict(properties or {})
        props.update(
            {
                "datetime": format_datetime(start_dt + (end_dt - start_dt) / 2),
                "start_datetime": format_datetime(start_dt),
                "end_datetime": format_datetime(end_dt),
                "matchup:type": "event",
                "matchup:platforms": [name_a, name_b],
                "matchup:collections": [coll_a, coll_b],
            }
        )
        if min_distance_km is not None:
            props["matchup:min_distance_km"] = float(min_distance_km)
        if time_diff_s is not None:
            props["matchup:time_diff_s"] = float(time_diff_s)
        if solar_elevation_deg is not None:
            props["matchup:solar_elevation_deg"] = float(solar_elevation_deg)
        props.setdefault("title", event_title(name_a, name_b, start_dt, time_diff_s))
        item = {
            "type": "Feature",
            "stac_version": STAC_VERSION,
            "stac_extensions": [SCHEMA_URL],
            "id": event_id(key, start_dt),
            "collection": f"{EVENTS_PREFIX}-{key}",
            "geometry": geojson(geom),
            "bbox": stac_bbox(geom),
            "properties": props,
            "links": [],
            "assets": {},
        }
        return cls(item)

    @property
    def pair_key(self) -> str:
        coll = self.collection_id
        prefix = f"{EVENTS_PREFIX}-"
        return coll[len(prefix) :] if coll.startswith(prefix) else coll

    @property
    def min_distance_km(self) -> float | None:
        return self.properties.get("matchup:min_distance_km")

    @property
    def time_diff_s(self) -> float | None:
        return self.properties.get("matchup:time_diff_s")

    @property
    def solar_elevation_deg(self) -> float | None:
        return self.properties.get("matchup:solar_elevation_deg")

    @property
    def matchup_ids(self) -> list[str]:
        """Ids of the matchups this event links to (``related``, role ``matchup``)."""
        out = []
        for link in self.links:
            if link.get("rel") == "related" and link.get("matchup:role") == "matchup":
                target = link_target_id(link)
                if target and target not in out:
                    out.append(target)
        return out

    def add_matchup(self, matchup: Matchup) -> Matchup:
        """Attach ``matchup`` (no duplicates) and link event and matchup both ways."""
        if all(m.id != matchup.id for m in self.matchup_set):
            self.matchup_set.append(matchup)
        if not has_link(self._item, "related", matchup.id, "matchup"):
            self.links.append(item_link("related", self._item, matchup.to_dict(), **{"matchup:role": "matchup"}))
        _link_to_event(matchup, self)
        return matchup


def _link_to_event(matchup: Matchup, event: MatchupEvent) -> None:
    """The matchup's half of the event <-> matchup links (event id and ``related`` link)."""
    matchup.properties["matchup:event_id"] = event.id
    if not has_link(matchup.to_dict(), "related", event.id, "event"):
        matchup.links.append(item_link("related", matchup.to_dict(), event.to_dict(), **{"matchup:role": "event"}))


class Matchup(ItemView):
    """One pair of products that see the same ground at nearly the same time."""

    item_type = "matchup"

    def __init__(
        self,
        item: dict[str, Any],
        catalogue: MatchupCatalogue | None = None,
        products: tuple[dict[str, Any], dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(item, catalogue)
        self._products = products

    @classmethod
    def create(
        cls,
        event: MatchupEvent | None,
        product_a: Product | dict[str, Any],
        product_b: Product | dict[str, Any],
        *,
        properties: Mapping[str, Any] | None = None,
        satellites: Sequence[SatelliteSpec] | None = None,
    ) -> Matchup:
        """Build the matchup of two products; with an event, also attach it there.

        Products are put in canonical order (by ``{collection}-{token}``, then id),
        so ``time_diff_s`` = time(b) - time(a) means the same whatever order they came in.
        """
        pa, pb = _as_product(product_a), _as_product(product_b)
        if pa.id == pb.id and pa.collection_id == pb.collection_id:
            raise MatchupError(f"a matchup needs two different products, got {pa.id!r} twice")

        def sort_key(p: Product) -> tuple[str, str]:
            name = canonical_platform(p.platform, satellites) if p.platform else p.collection_id
            return (f"{p.collection_id}-{platform_token(name, satellites)}", p.id)

        pa, pb = sorted((pa, pb), key=sort_key)
        name_a = canonical_platform(pa.platform, satellites) if pa.platform else ""
        name_b = canonical_platform(pb.platform, satellites) if pb.platform else ""
        if event is not None:
            collection = event.pair_key
        else:
            collection = matchup_collection_id(
                pa.collection_id,
                platform_token(name_a or pa.collection_id, satellites),
                pb.collection_id,
                platform_token(name_b or pb.collection_id, satellites),
            )
        geom_a, geom_b = normalize_geometry(pa.geometry), normalize_geometry(pb.geometry)
        overlap = intersect_footprints(geom_a, geom_b)
        if overlap.is_empty:
            raise MatchupError(f"footprints of {pa.id!r} and {pb.id!r} do not overlap")
        overlap_km2 = geodesic_area_km2(overlap)
        smaller_km2 = min(geodesic_area_km2(geom_a), geodesic_area_km2(geom_b))
        fraction = min(1.0, overlap_km2 / smaller_km2) if smaller_km2 > 0 else 0.0
        t_a, t_b = pa.acquisition_time, pb.acquisition_time
        diff_s = (t_b - t_a).total_seconds()
        centre = t_a + (t_b - t_a) / 2
        props: dict[str, Any] = dict(properties or {})
        props.update(
            {
                "datetime": format_datetime(centre),
                "start_datetime": format_datetime(min(pa.start, pb.start)),
                "end_datetime": format_datetime(max(pa.end, pb.end)),
                "matchup:type": "matchup",
                "matchup:time_diff_s": diff_s,
                "matchup:abs_time_diff_s": abs(diff_s),
                "matchup:overlap_km2": overlap_km2,
                "matchup:overlap_fraction": fraction,
                "matchup:platforms": [name_a, name_b],
                "matchup:collections": [pa.collection_id, pb.collection_id],
                "matchup:products": [pa.id, pb.id],
            }
        )
        props.setdefault(
            "title",
            matchup_title((name_a or pa.collection_id, pa.id), (name_b or pb.collection_id, pb.id), abs(diff_s), fraction),
        )
        covers = (pa.cloud_cover, pb.cloud_cover)
        if None not in covers:  # the larger of two known covers; unknown when either is
            props[MAX_CLOUD_COVER] = max(c for c in covers if c is not None)
        item: dict[str, Any] = {
            "type": "Feature",
            "stac_version": STAC_VERSION,
            "stac_extensions": [SCHEMA_URL],
            "id": matchup_id(pa.id, pb.id),
            "collection": collection,
            "geometry": geojson(overlap),
            "bbox": stac_bbox(overlap),
            "properties": props,
            "links": [],
            "assets": {},
        }
        item["links"] = [
            item_link("derived_from", item, pa.to_dict()),
            item_link("derived_from", item, pb.to_dict()),
        ]
        matchup = cls(item, products=(pa.to_dict(), pb.to_dict()))
        if event is not None:
            event.add_matchup(matchup)
        return matchup

    @property
    def event_id(self) -> str | None:
        value = self.properties.get("matchup:event_id")
        if value:
            return str(value)
        for link in self.links:
            if link.get("rel") == "related" and link.get("matchup:role") == "event":
                return link_target_id(link)
        return None

    @property
    def product_ids(self) -> list[str]:
        ids = self.properties.get("matchup:products")
        if ids:
            return [str(i) for i in ids]
        return [t for t in (link_target_id(lk) for lk in self.links if lk.get("rel") == "derived_from") if t]

    @property
    def time_diff_s(self) -> float | None:
        return self.properties.get("matchup:time_diff_s")

    @property
    def abs_time_diff_s(self) -> float | None:
        value = self.properties.get("matchup:abs_time_diff_s", self.properties.get("matchup:time_diff_abs"))
        if value is None and self.time_diff_s is not None:
            value = abs(self.time_diff_s)
        return value

    @property
    def overlap_km2(self) -> float | None:
        return self.properties.get("matchup:overlap_km2")

    @property
    def overlap_fraction(self) -> float | None:
        return self.properties.get("matchup:overlap_fraction")

    @property
    def max_cloud_cover(self) -> float | None:
        """The larger ``eo:cloud_cover`` of the two products; None when either has none."""
        return self.properties.get(MAX_CLOUD_COVER)

    @property
    def kept_products(self) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The two product dicts given to :meth:`create` (or read by :meth:`products`), else None."""
        return self._products

    def products(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The two product item dicts (a, b): kept from create(), else read via the catalogue."""
        if self._products is not None:
            return self._products
        if self._catalogue is None:
            raise MatchupError(f"matchup {self.id!r} has no catalogue to read its products from")
        ids = self.product_ids
        if len(ids) != 2:
            raise MatchupError(f"matchup {self.id!r} does not name two products")
        found = (self._catalogue.get_product(ids[0]), self._catalogue.get_product(ids[1]))
        self._products = found
        return found

    def return_matchup_dataset(self, **kwargs: Any) -> Any:
        """Read both products into one dataset (implemented in :mod:`eomatch.matchup_dataset`)."""
        from eomatch.matchup_dataset import return_matchup_dataset

        return return_matchup_dataset(self, **kwargs)


def wrap_item(item: dict[str, Any], catalogue: MatchupCatalogue | None = None) -> ItemView:
    """The right view class for any item dict."""
    kind = infer_item_type(item)
    if kind == "event":
        return MatchupEvent(item, catalogue)
    if kind == "matchup":
        return Matchup(item, catalogue)
    return Product(item, catalogue)
