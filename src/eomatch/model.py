"""Product, MatchupEvent and Matchup items: STAC item dicts with typed accessors.

The items are plain JSON dicts (what lands on disk); the classes are thin views
over them, so ``to_dict()`` is free and nothing walks a pystac object graph.
Ids are deterministic (see :func:`event_id` and :func:`matchup_id`), so
re-running a search produces the same ids and never duplicates items.
"""

from __future__ import annotations

import copy
import hashlib
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

import shapely
from shapely.geometry import MultiPolygon, Polygon, box, mapping, shape
from shapely.geometry.base import BaseGeometry

from eomatch.errors import EomatchError
from eomatch.schema import SCHEMA_URL

if TYPE_CHECKING:
    import pystac

    from eomatch.catalogue import MatchupCatalogue
    from eomatch.settings import SatelliteSpec

STAC_VERSION = "1.1.0"
"""STAC version eomatch writes: the current spec (pystac, STAC Browser 4 and pgSTAC all read it)."""
EVENTS_PREFIX = "matchup-events"
JSON_MEDIA_TYPE = "application/json"
ITEM_TYPES = ("product", "event", "matchup")


class MatchupError(EomatchError):
    """A matchup, event or product cannot be built from the inputs given."""


# --------------------------------------------------------------------------- ids


def _default_satellites() -> list[SatelliteSpec]:
    from eomatch.settings import _default_satellites as defaults

    return defaults()


def platform_token(platform: str, satellites: Sequence[SatelliteSpec] | None = None) -> str:
    """How ``platform`` is spelled inside collection ids (Sentinel-2A -> S2A).

    Names and aliases match case-insensitively; an unknown platform is its own token.
    """
    wanted = platform.strip().lower()
    for sat in satellites if satellites is not None else _default_satellites():
        if wanted == sat.name.lower() or wanted in (a.lower() for a in sat.aliases):
            return sat.token
    return platform


def canonical_platform(platform: str, satellites: Sequence[SatelliteSpec] | None = None) -> str:
    """The registry's canonical name for ``platform`` (aliases resolved), else ``platform``."""
    wanted = platform.strip().lower()
    for sat in satellites if satellites is not None else _default_satellites():
        if wanted == sat.name.lower() or wanted in (a.lower() for a in sat.aliases):
            return sat.name
    return platform


def platform_spellings(platform: str, satellites: Sequence[SatelliteSpec] | None = None) -> list[str]:
    """Every name ``platform`` goes by in the registry (canonical first), else itself:
    catalogues written by other tools may use any of them."""
    wanted = platform.strip().lower()
    for sat in satellites if satellites is not None else _default_satellites():
        if wanted == sat.name.lower() or wanted in (a.lower() for a in sat.aliases):
            return [sat.name, *sat.aliases]
    return [platform]


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


# --------------------------------------------------------------------------- time


def to_utc(value: datetime | str) -> datetime:
    """A timezone-aware UTC datetime (naive input is taken as UTC)."""
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise MatchupError(f"not an ISO 8601 datetime: {value!r}") from None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


LAST_MICROSECOND = time(23, 59, 59, 999_999)
"""Where a date-only end of a period lands: STAC datetime intervals include both
ends, so the last representable instant of the day keeps all of it and nothing of
the next (pgSTAC and Python both count in microseconds)."""


def date_only(value: object) -> date | None:
    """The date when ``value`` is a date without a time (``2022-12-31``, ``20221231``,
    or a ``date`` such as YAML's unquoted ``2022-12-31``), else None."""
    if isinstance(value, datetime):
        return None
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            return None
    return None


def parse_time_bound(value: datetime | date | str, end: bool = False) -> datetime:
    """One bound of a period, in UTC, for every command (find, query) and config value.

    A date alone means the whole of that UTC day: as a start its first instant
    (00:00:00Z), as an ``end`` its last microsecond (23:59:59.999999Z), so
    ``--end-time 2022-12-31`` keeps everything that happened on 31 December.
    Anything with a time is taken as given (naive = UTC). Raises :class:`MatchupError`.
    """
    day = date_only(value)
    if day is not None:
        return datetime.combine(day, LAST_MICROSECOND if end else time(0), tzinfo=UTC)
    if not isinstance(value, datetime | str):
        raise MatchupError(f"not an ISO 8601 date or datetime: {value!r}")
    return to_utc(value)


def round_to_second(value: datetime) -> datetime:
    value = to_utc(value)
    return (value + timedelta(microseconds=500_000)).replace(microsecond=0)


def format_datetime(value: datetime | str) -> str:
    """RFC 3339 in UTC with a ``Z``, as pystac writes it."""
    value = to_utc(value)
    if value.microsecond:
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def item_times(item: Mapping[str, Any]) -> tuple[datetime, datetime, datetime]:
    """(datetime, start, end) of an item; missing ones fall back on the others."""
    props = item.get("properties") or {}
    raw_dt = props.get("datetime")
    raw_start = props.get("start_datetime")
    raw_end = props.get("end_datetime")
    if raw_dt is None and raw_start is None and raw_end is None:
        raise MatchupError(f"item {item.get('id')!r} has no datetime, start_datetime or end_datetime")
    start = to_utc(raw_start or raw_dt or raw_end)
    end = to_utc(raw_end or raw_dt or raw_start)
    if raw_dt is not None:
        centre = to_utc(raw_dt)
    else:
        centre = start + (end - start) / 2
    return centre, start, end


# --------------------------------------------------------------------------- geometry

_WORLD = box(-180.0, -90.0, 180.0, 90.0)
_EAST_OF_180 = box(180.0, -90.0, 540.0, 90.0)
_GEOD = None


def _geod() -> Any:
    global _GEOD
    if _GEOD is None:
        from pyproj import Geod

        _GEOD = Geod(ellps="WGS84")
    return _GEOD


def _polygons(geom: BaseGeometry) -> list[Polygon]:
    if geom.is_empty:
        return []
    if isinstance(geom, Polygon):
        return [geom]
    if isinstance(geom, MultiPolygon):
        return list(geom.geoms)
    if hasattr(geom, "geoms"):
        return [p for g in geom.geoms for p in _polygons(g)]
    return []


def _split_part(poly: Polygon) -> list[Polygon]:
    """Cut one polygon that wraps across ±180° into pieces inside [-180, 180]."""
    minx, _, maxx, _ = poly.bounds
    if maxx - minx > 180.0 and _has_jump(poly):
        # Written with a jump at the antimeridian (179 -> -179): unwrap to 0..360.
        # (A wide region that never jumps, e.g. around a pole, is left as it is.)
        poly = shapely.transform(poly, lambda xy: _shift_negative(xy))
        minx, _, maxx, _ = poly.bounds
    if minx >= -180.0 and maxx <= 180.0:
        return [poly]
    if minx < -180.0:
        poly = _translate(poly, 360.0)
    west = poly.intersection(_WORLD)
    east = _translate(poly.intersection(_EAST_OF_180), -360.0)
    return _polygons(west) + _polygons(east)


def _has_jump(poly: Polygon) -> bool:
    """Consecutive vertices more than 180 degrees of longitude apart."""
    import numpy as np

    for ring in (poly.exterior, *poly.interiors):
        x = np.asarray(ring.coords)[:, 0]
        if x.size > 1 and bool(np.any(np.abs(np.diff(x)) > 180.0)):
            return True
    return False


def _shift_negative(xy: Any) -> Any:
    xy = xy.copy()
    xy[:, 0] = xy[:, 0] % 360.0
    return xy


def _translate(geom: BaseGeometry, dx: float) -> BaseGeometry:
    from shapely import affinity

    return affinity.translate(geom, xoff=dx)


def normalize_geometry(geom: BaseGeometry | Mapping[str, Any]) -> BaseGeometry:
    """A valid (Multi)Polygon inside [-180, 180], split at the antimeridian.

    Footprints that cross ±180° arrive either already split (a MultiPolygon, the
    STAC convention), with longitudes past 180, or with a jump from 179 to -179;
    all three become the split MultiPolygon so intersections in lon/lat are right.
    """
    if isinstance(geom, Mapping):
        try:
            geom = shape(geom)
        except Exception as exc:  # shapely raises several types on bad GeoJSON
            raise MatchupError(f"invalid GeoJSON geometry: {exc}") from None
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
    parts: list[Polygon] = []
    for poly in _polygons(geom):
        parts.extend(p for p in _split_part(poly) if not p.is_empty and p.area > 0)
    if not parts:
        return Polygon()
    if len(parts) == 1:
        return parts[0]
    polys = _polygons(shapely.unary_union(parts))
    return polys[0] if len(polys) == 1 else MultiPolygon(polys)


def geodesic_area_km2(geom: BaseGeometry) -> float:
    """Area on the WGS84 ellipsoid in km² (pyproj.Geod), whatever the winding."""
    total = 0.0
    for poly in _polygons(geom):
        area, _ = _geod().geometry_area_perimeter(poly)
        total += abs(area)
    return total / 1e6


def intersect_footprints(geom_a: BaseGeometry, geom_b: BaseGeometry) -> BaseGeometry:
    """The polygonal part of the intersection of two normalized footprints."""
    inter = normalize_geometry(geom_a).intersection(normalize_geometry(geom_b))
    polys = [p for p in _polygons(inter) if p.area > 0]
    if not polys:
        return Polygon()
    return polys[0] if len(polys) == 1 else MultiPolygon(polys)


def geojson(geom: BaseGeometry) -> dict[str, Any]:
    """GeoJSON of a (Multi)Polygon with counter-clockwise outer rings (RFC 7946)."""
    from shapely.geometry.polygon import orient

    polys = [orient(p, sign=1.0) for p in _polygons(geom)]
    if len(polys) == 1:
        return dict(mapping(polys[0]))
    return dict(mapping(MultiPolygon(polys)))


def _bbox(geom: BaseGeometry) -> list[float]:
    """STAC bbox; a geometry split at the antimeridian gets west > east (STAC's
    convention) rather than a box around the whole globe."""
    minx, miny, maxx, maxy = (float(v) for v in geom.bounds)
    polys = _polygons(geom)
    if len(polys) > 1 and maxx >= 180.0 - 1e-9 and minx <= -180.0 + 1e-9:
        # Move the western-hemisphere parts east by 360° and see if the box shrinks.
        shifted = [(b[0] + 360.0, b[2] + 360.0) if b[2] <= 0.0 else (b[0], b[2]) for b in (p.bounds for p in polys)]
        west, east = min(w for w, _ in shifted), max(e for _, e in shifted)
        if east - west < maxx - minx and east > 180.0:
            return [west, miny, east - 360.0, maxy]
    return [minx, miny, maxx, maxy]


# --------------------------------------------------------------------------- layout / links


def item_relpath(collection_id: str, item_id: str, when: datetime | str) -> str:
    """``{collection}/{YYYY}/{MM}/{DD}/{id}.json``, relative to the catalogue root."""
    day = to_utc(when)
    return f"{collection_id}/{day:%Y}/{day:%m}/{day:%d}/{item_id}.json"


def relative_href(from_relpath: str, to_relpath: str) -> str:
    """Href of ``to`` as seen from the file ``from`` (both root-relative, POSIX)."""
    rel = posixpath.relpath(to_relpath, posixpath.dirname(from_relpath) or ".")
    return rel if rel.startswith(".") else f"./{rel}"


def item_layout_date(item: Mapping[str, Any]) -> datetime:
    """The date that places an item in the layout: datetime, else start_datetime."""
    props = item.get("properties") or {}
    raw = props.get("datetime") or props.get("start_datetime") or props.get("end_datetime")
    if raw is None:
        raise MatchupError(f"item {item.get('id')!r} has no datetime to place it on disk")
    return to_utc(raw)


def default_relpath(item: Mapping[str, Any]) -> str:
    return item_relpath(str(item["collection"]), str(item["id"]), item_layout_date(item))


def structural_links(relpath: str) -> list[dict[str, Any]]:
    """root/parent/collection links as pystac writes them for a self-contained catalogue."""
    collection_dir = relpath.split("/", 1)[0]
    return [
        {"rel": "root", "href": relative_href(relpath, "catalog.json"), "type": JSON_MEDIA_TYPE},
        {"rel": "parent", "href": relative_href(relpath, f"{collection_dir}/collection.json"), "type": JSON_MEDIA_TYPE},
        {"rel": "collection", "href": relative_href(relpath, f"{collection_dir}/collection.json"), "type": JSON_MEDIA_TYPE},
    ]


def link_target_id(link: Mapping[str, Any]) -> str | None:
    """Id of the item a link points at: the file name of its href without ``.json``."""
    href = link.get("href")
    if not isinstance(href, str) or not href.endswith(".json"):
        return None
    name = href.rstrip("/").rsplit("/", 1)[-1]
    return name[: -len(".json")] or None


def _item_link(rel: str, source: Mapping[str, Any], target: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    href = relative_href(default_relpath(source), default_relpath(target))
    return {"rel": rel, "href": href, "type": JSON_MEDIA_TYPE, **extra}


def _has_link(item: Mapping[str, Any], rel: str, target_id: str, role: str | None = None) -> bool:
    for link in item.get("links") or []:
        if link.get("rel") != rel or link_target_id(link) != target_id:
            continue
        if role is None or link.get("matchup:role") == role:
            return True
    return False


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


def _with_extension(exts: Iterable[str] | None) -> list[str]:
    out = list(exts or [])
    if SCHEMA_URL not in out:
        out.append(SCHEMA_URL)
    return out


# --------------------------------------------------------------------------- classes


class _ItemView:
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
        return isinstance(other, _ItemView) and other.id == self.id and other.collection_id == self.collection_id

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


class Product(_ItemView):
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
    ) -> Product:
        """Build a product item from its essentials (platform: canonical name)."""
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
        item = {
            "type": "Feature",
            "stac_version": STAC_VERSION,
            "stac_extensions": [SCHEMA_URL],
            "id": id,
            "collection": collection,
            "geometry": geojson(geom),
            "bbox": _bbox(geom),
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
        item["stac_extensions"] = _with_extension(item.get("stac_extensions"))
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
    def acquisition_time(self) -> datetime:
        """The product's ``datetime`` (else the middle of start/end)."""
        return self.datetime


def _as_product(value: Product | Mapping[str, Any]) -> Product:
    if isinstance(value, Product):
        return value
    if isinstance(value, dict):
        return Product.from_item(value)
    raise MatchupError(f"expected a product item dict, got {type(value).__name__}")


class MatchupEvent(_ItemView):
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
        item = {
            "type": "Feature",
            "stac_version": STAC_VERSION,
            "stac_extensions": [SCHEMA_URL],
            "id": event_id(key, start_dt),
            "collection": f"{EVENTS_PREFIX}-{key}",
            "geometry": geojson(geom),
            "bbox": _bbox(geom),
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
        if not _has_link(self._item, "related", matchup.id, "matchup"):
            self.links.append(_item_link("related", self._item, matchup.to_dict(), **{"matchup:role": "matchup"}))
        matchup._attach_event(self)
        return matchup


class Matchup(_ItemView):
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
        item: dict[str, Any] = {
            "type": "Feature",
            "stac_version": STAC_VERSION,
            "stac_extensions": [SCHEMA_URL],
            "id": matchup_id(pa.id, pb.id),
            "collection": collection,
            "geometry": geojson(overlap),
            "bbox": _bbox(overlap),
            "properties": props,
            "links": [],
            "assets": {},
        }
        item["links"] = [
            _item_link("derived_from", item, pa.to_dict()),
            _item_link("derived_from", item, pb.to_dict()),
        ]
        matchup = cls(item, products=(pa.to_dict(), pb.to_dict()))
        if event is not None:
            event.add_matchup(matchup)
        return matchup

    def _attach_event(self, event: MatchupEvent) -> None:
        self.properties["matchup:event_id"] = event.id
        if not _has_link(self._item, "related", event.id, "event"):
            self.links.append(_item_link("related", self._item, event.to_dict(), **{"matchup:role": "event"}))

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
        """Read both products into one dataset (implemented in :mod:`eomatch.dataset`)."""
        from eomatch.dataset import return_matchup_dataset

        return return_matchup_dataset(self, **kwargs)


def wrap_item(item: dict[str, Any], catalogue: MatchupCatalogue | None = None) -> _ItemView:
    """The right view class for any item dict."""
    kind = infer_item_type(item)
    if kind == "event":
        return MatchupEvent(item, catalogue)
    if kind == "matchup":
        return Matchup(item, catalogue)
    return Product(item, catalogue)
