"""The ``eomatch-find`` pipeline: orbits -> events -> products -> matchups -> local catalogue.

1. For every platform pair, :func:`eomatch.orbits.find_crossovers` gives the
   crossover events (where and when both satellites see the same ground).
2. For each event, one product search per platform on its provider: the event
   region (clipped to the site box), that platform's time window widened by
   ``search_margin_s``.
3. Every product of one platform is paired with every product of the other
   whose footprint overlaps it by at least ``min_overlap_km2`` and
   ``min_overlap_fraction`` (an STRtree keeps this from being quadratic); each
   pair is a :class:`~eomatch.model.Matchup`.
4. Events, matchups and products are upserted into the local catalogue. Ids are
   deterministic, so a second run with the same config adds nothing. Matchups and
   events get a ``thumbnail`` quicklook (:mod:`eomatch.quicklook`) unless
   ``find.quicklooks`` is off.

A provider failing for one event (after retries) is recorded in the summary and
the run goes on; ``FindSummary.failures`` then makes the command exit non-zero.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import shapely
import shapely.errors
from shapely.geometry import Point, box
from shapely.geometry.base import BaseGeometry
from shapely.strtree import STRtree

from eomatch.errors import ConfigError
from eomatch.model import (
    Matchup,
    MatchupError,
    MatchupEvent,
    Product,
    format_datetime,
    normalize_geometry,
    to_utc,
)
from eomatch.orbits import (
    Crossover,
    CrossoverParams,
    find_crossovers,
    find_satellite,
    load_tles_for,
    search_constellation,
)
from eomatch.orbits.propagate import EARTH_RADIUS_KM
from eomatch.orbits.site_passes import SitePair, SitePairIndex, site_pairs
from eomatch.progress import Progress
from eomatch.providers import Provider, ProviderError, open_provider
from eomatch.quicklook import ASSET_KEY, QuicklookWriter, thumbnail_asset
from eomatch.settings import SatelliteSpec, Settings
from eomatch.sites import Site

log = logging.getLogger(__name__)

QUICKLOOK_WORKERS = 1
"""Processes drawing quicklooks beside the run (one keeps the run itself a core on a
two-core machine; benchmarks/quicklook_cost.py measures the cost)."""


@dataclass(frozen=True)
class Side:
    """One half of a pair: a satellite and the product collection searched for it."""

    satellite: SatelliteSpec
    collection: str

    @property
    def name(self) -> str:
        return self.satellite.name

    @property
    def key(self) -> str:
        """``{collection}-{token}``: the canonical sort key of a pair's halves."""
        return f"{self.collection}-{self.satellite.token}"


@dataclass
class FindSummary:
    """What one ``eomatch-find`` run did; ``line()`` is the one-line summary."""

    catalogue: str = ""
    events: int = 0
    events_written: int = 0
    searches: int = 0
    products: int = 0
    matchups: int = 0
    new_items: int = 0
    events_only: bool = False
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)
    _logged_reasons: set[str] = field(default_factory=set, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return not self.failures

    def first_of_its_kind(self, reason: str) -> bool:
        """True the first time a failure reason comes up (that one is logged; the rest
        are counted and summed up by :meth:`failure_digest`)."""
        if reason in self._logged_reasons:
            return False
        self._logged_reasons.add(reason)
        return True

    def line(self) -> str:
        if self.events_only:
            what = f"{self.events} events ({self.new_items} new)"
        else:
            what = (
                f"{self.events} events ({self.events_written} written), {self.searches} searches, "
                f"{self.products} products, {self.matchups} matchups, {self.new_items} new items"
            )
        failed = f"; {len(self.failures)} events FAILED" if self.failures else ""
        return f"find: {what} in {self.catalogue} ({self.seconds:.1f}s){failed}"

    def failure_digest(self, examples: int = 3) -> list[str]:
        """One line per distinct reason: how many events, which ones (a few), why.

        A provider that goes down fails every later event the same way; a line
        per event would bury the cause.
        """
        by_reason: dict[str, list[str]] = {}
        for failure in self.failures:
            event_id, _, reason = failure.partition(": ")
            by_reason.setdefault(reason or failure, []).append(event_id.removeprefix("event "))
        lines = []
        for reason, ids in by_reason.items():
            shown = ", ".join(ids[:examples]) + (f" and {len(ids) - examples} more" if len(ids) > examples else "")
            lines.append(f"{len(ids)} event{'s' if len(ids) != 1 else ''} ({shown}): {reason}")
        return lines


# --------------------------------------------------------------------------- configuration


def _sides_of(sat: SatelliteSpec, settings: Settings) -> list[Side]:
    wanted = [c for c in sat.collections if not settings.find.collections or c in settings.find.collections]
    if not wanted:
        where = " within 'collections'" if settings.find.collections else ""
        raise ConfigError(f"platform {sat.name} has no product collection{where} (satellites[].collections)")
    return [Side(sat, c) for c in wanted]


def resolve_pairs(settings: Settings) -> list[tuple[SatelliteSpec, SatelliteSpec]]:
    """Satellite pairs to search, names canonicalised through the registry.

    ``pairs`` if given, else every pair of ``platforms`` (at least two).
    """
    sats = settings.satellites
    if settings.find.pairs:
        out: list[tuple[SatelliteSpec, SatelliteSpec]] = []
        for entry in settings.find.pairs:
            if len(entry) != 2:
                raise ConfigError(f"pairs: each entry needs two platforms, got {entry!r}")
            a, b = (find_satellite(name, sats) for name in entry)
            if a.name == b.name:
                raise ConfigError(f"pairs: {entry!r} names {a.name} twice")
            if all({a.name, b.name} != {x.name, y.name} for x, y in out):
                out.append((a, b))
        return out
    names: list[SatelliteSpec] = []
    for name in settings.find.platforms:
        sat = find_satellite(name, sats)
        if all(s.name != sat.name for s in names):
            names.append(sat)
    if len(names) < 2:
        raise ConfigError(
            f"platforms: need at least two platforms to search (got {', '.join(settings.find.platforms) or 'none'})"
        )
    return list(itertools.combinations(names, 2))


def _check_window(settings: Settings) -> tuple[datetime, datetime]:
    if settings.find.start_time is None or settings.find.end_time is None:
        missing = "start_time" if settings.find.start_time is None else "end_time"
        raise ConfigError(f"{missing} is not set (the search period needs start_time and end_time)")
    start, end = to_utc(settings.find.start_time), to_utc(settings.find.end_time)
    if end <= start:
        raise ConfigError(f"end_time {format_datetime(end)} is not after start_time {format_datetime(start)}")
    return start, end


def _site_box(settings: Settings) -> BaseGeometry | None:
    """The site bbox (``min_lat``...``max_lon``) as lon/lat geometry, None when unbounded."""
    if all(v is None for v in (settings.find.min_lat, settings.find.max_lat, settings.find.min_lon, settings.find.max_lon)):
        return None
    s = -90.0 if settings.find.min_lat is None else settings.find.min_lat
    n = 90.0 if settings.find.max_lat is None else settings.find.max_lat
    w = -180.0 if settings.find.min_lon is None else settings.find.min_lon
    e = 180.0 if settings.find.max_lon is None else settings.find.max_lon
    if w <= e:
        return box(w, s, e, n)
    return box(w, s, 180.0, n).union(box(-180.0, s, e, n))


def find_events(settings: Settings, progress: Progress | None = None) -> Iterator[Crossover]:
    """Crossover events of every platform pair in the period (orbit step only, no provider).

    ``progress`` counts days of orbit searched, the window once per pair.
    """
    for xo, _ in find_site_events(settings, progress):
        yield xo


def find_site_events(
    settings: Settings, progress: Progress | None = None
) -> Iterator[tuple[Crossover, list[SitePair]]]:
    """:func:`find_events` with each event's site pairs; with ``find.sites`` only events
    that have one (without sites every event, with an empty list)."""
    pairs = resolve_pairs(settings)
    start, end = _check_window(settings)
    names = sorted({s.name for pair in pairs for s in pair})
    tles = load_tles_for(settings, names)
    if progress is not None and progress.total is None:
        progress.total = (end - start).total_seconds() / 86400.0 * len(pairs)
    if not settings.find.sites:  # one walk of the period, each satellite propagated once
        params = CrossoverParams.from_settings(settings)
        names_ab = [(a.name, b.name) for a, b in pairs]
        workers = settings.find.orbit_workers
        for xo in search_constellation(tles, names_ab, start, end, params, progress, workers):
            yield xo, []
        return
    for sat_a, sat_b in pairs:
        index = site_index(settings, tles, sat_a.name, sat_b.name, start, end)
        xos = find_crossovers(_orbit_settings(settings), sat_a.name, sat_b.name, start, end, tles=tles, progress=progress)
        for xo in xos:
            on_site = index.within(xo.platform_a, xo.start_a, xo.end_a, xo.start_b, xo.end_b) if index else []
            if index is None or on_site:
                yield xo, on_site


def _full_regions(settings: Settings) -> Settings:
    """The catalogue's events keep their full regions: the product search and the
    event item's geometry use them, and a compact region (up to 128 km off for long
    events) could miss an edge product. Compact regions are for the tables."""
    if settings.find.full_regions:
        return settings
    return settings.model_copy(update={"find": settings.find.model_copy(update={"full_regions": True})})


def _orbit_settings(settings: Settings) -> Settings:
    """The crossover search's settings with sites: daylight is checked at the site at each
    pass (not at the event centre), and the distance threshold grows by the largest site's
    diameter, so that every site pair (each nadir within half the threshold of the site's
    area) lies in a crossover event."""
    if not settings.find.sites:
        return settings
    reach_km = max(Site.from_spec(s).reach_km for s in settings.find.sites)
    find = settings.find.model_copy(update={
        "exclude_night_events": False,
        "space_diff_threshold": settings.find.space_diff_threshold + 2.0 * reach_km,
    })  # fmt: skip
    return settings.model_copy(update={"find": find})


def site_index(
    settings: Settings, tles: dict[str, Any], platform_a: str, platform_b: str, start: datetime, end: datetime
) -> SitePairIndex | None:
    """Site pairs of two platforms in the period (``eomatch.orbits.site_passes``); None without sites."""
    if not settings.find.sites:
        return None
    found = site_pairs(
        tles[platform_a], tles[platform_b], [Site.from_spec(s) for s in settings.find.sites], start, end,
        space_diff_threshold_km=settings.find.space_diff_threshold,
        time_diff_threshold_s=settings.find.time_diff_threshold,
        use_swath=settings.find.use_swath,
        min_solar_elevation_deg=settings.find.min_solar_elevation_deg,
    )  # fmt: skip
    return SitePairIndex(found)


def _event_site_area(event: MatchupEvent, settings: Settings) -> BaseGeometry | None:
    """The union of the sites an event passes over (None for an event without sites)."""
    names = set(event.properties.get("matchup:sites") or [])
    if not names:
        return None
    return shapely.union_all([Site.from_spec(s).geometry for s in settings.find.sites if s.name in names])


def _sites_under(matchup: Matchup, event: MatchupEvent, settings: Settings) -> list[str] | None:
    """Names of the event's sites the matchup's footprint covers part of (None: no sites)."""
    names = set(event.properties.get("matchup:sites") or [])
    if not names:
        return None
    geom = normalize_geometry(matchup.geometry)
    return sorted(s.name for s in settings.find.sites if s.name in names and geom.intersects(Site.from_spec(s).geometry))


# --------------------------------------------------------------------------- events and matchups


def _event_region(xo: Crossover, settings: Settings) -> BaseGeometry:
    region = xo.region
    if not region.is_empty:
        region = normalize_geometry(shapely.make_valid(region))
    if region.is_empty:
        # The strips never met (e.g. swath mode): mark the closest approach instead.
        radius_deg = max(settings.find.space_diff_threshold, 1.0) / EARTH_RADIUS_KM * 57.29577951308232
        region = normalize_geometry(Point(xo.centre_lon_deg, xo.centre_lat_deg).buffer(radius_deg))
    return region


def make_event(
    xo: Crossover, side_a: Side, side_b: Side, settings: Settings, sites: Sequence[SitePair] = ()
) -> MatchupEvent:
    """The MatchupEvent of a crossover, for the collections of ``side_a``/``side_b``
    (``sites``: its site pairs, named in ``matchup:sites``)."""
    time_diff = xo.time_diff_s
    windows = [[xo.start_a, xo.end_a], [xo.start_b, xo.end_b]]
    if side_a.name != xo.platform_a:
        side_a, side_b = side_b, side_a
    if side_a.key > side_b.key:  # the event stores the pair in canonical order
        time_diff = -time_diff
        windows.reverse()
    props: dict[str, Any] = {
        "matchup:region_area_km2": float(xo.region_area_km2),
        "matchup:time_windows": [[format_datetime(t0), format_datetime(t1)] for t0, t1 in windows],
        "matchup:crosses_antimeridian": bool(xo.crosses_antimeridian),
    }
    if sites:
        props["matchup:sites"] = sorted({p.site for p in sites})
    return MatchupEvent.create(
        platform_a=side_a.name,
        collection_a=side_a.collection,
        platform_b=side_b.name,
        collection_b=side_b.collection,
        start=min(xo.start_a, xo.start_b),
        end=max(xo.end_a, xo.end_b),
        region=_event_region(xo, settings),
        min_distance_km=xo.min_distance_km,
        time_diff_s=time_diff,
        solar_elevation_deg=xo.solar_elevation_deg,
        properties=props,
        satellites=settings.satellites,
    )


def pair_products(
    event: MatchupEvent,
    products_a: Sequence[dict[str, Any]],
    products_b: Sequence[dict[str, Any]],
    settings: Settings,
) -> list[Matchup]:
    """Matchups of every overlapping (a, b) pair that passes the overlap and time thresholds."""
    if not products_a or not products_b:
        return []
    geoms_b = [normalize_geometry(p["geometry"]) for p in products_b]
    tree = STRtree(geoms_b)
    out: list[Matchup] = []
    for pa in products_a:
        geom_a = normalize_geometry(pa["geometry"])
        for j in tree.query(geom_a, predicate="intersects").tolist():
            try:
                matchup = Matchup.create(None, pa, products_b[j], satellites=settings.satellites)
            except MatchupError:
                continue  # touching footprints: no area in common
            props = matchup.properties
            if props["matchup:overlap_km2"] <= 0.0 or props["matchup:overlap_km2"] < settings.find.min_overlap_km2:
                continue
            if props["matchup:overlap_fraction"] < settings.find.min_overlap_fraction:
                continue
            if props["matchup:abs_time_diff_s"] > settings.find.time_diff_threshold:
                continue
            if too_cloudy(matchup, settings.find.max_cloud_cover):
                continue
            on_sites = _sites_under(matchup, event, settings)
            if on_sites is not None:
                if not on_sites:
                    continue  # over the event, but not over any of its sites
                matchup.properties["matchup:sites"] = on_sites
            out.append(matchup)
    out.sort(key=lambda m: m.id)
    # Built without the event so that rejected pairs never touch it; attach the kept ones now.
    for m in out:
        event.add_matchup(m)
    return out


def too_cloudy(matchup: Matchup, max_cloud_cover: float | None) -> bool:
    """Whether a product's known cloud cover exceeds ``max_cloud_cover`` (percent).

    One known cover above the limit is enough (the matchup's maximum is at least
    that); products without ``eo:cloud_cover`` never reject a matchup.
    """
    if max_cloud_cover is None:
        return False
    return any(
        cover is not None and cover > max_cloud_cover
        for cover in (Product(p).cloud_cover for p in matchup.products())
    )


def _search_window(start: datetime, end: datetime, margin_s: float) -> tuple[datetime, datetime]:
    margin = timedelta(seconds=margin_s)
    return start - margin, end + margin


def _side_window(event: MatchupEvent, side: Side) -> tuple[datetime, datetime]:
    platforms = event.platforms
    windows = event.properties.get("matchup:time_windows") or []
    if side.name in platforms and len(windows) == 2:
        t0, t1 = windows[platforms.index(side.name)]
        return to_utc(t0), to_utc(t1)
    return event.start, event.end


# --------------------------------------------------------------------------- the run


class _Writer:
    """Writes events and what was found in them, counting new items."""

    def __init__(self, catalogue: Any, summary: FindSummary, quicklooks: QuicklookWriter | None = None) -> None:
        self.cat = catalogue
        self.summary = summary
        self.quicklooks = quicklooks
        self._titled: set[str] = set()

    def ensure_collections(self, event: MatchupEvent) -> None:
        """The event's pair and product collections, titled by platform (once per pair)."""
        key = event.pair_key
        if key in self._titled:
            return
        a, b = event.platforms
        self.cat.ensure_collection(key, kind="matchup", title=f"Matchups {a} × {b}")
        self.cat.ensure_collection(event.collection_id, kind="event", title=f"Matchup events {a} × {b}")
        for coll in event.collections:
            self.cat.ensure_collection(coll, kind="product", title=coll)
        self._titled.add(key)

    def add(self, item: dict[str, Any]) -> None:
        """Upsert one item, counting it if it is new."""
        if not self.cat.has_item(str(item["id"]), str(item["collection"])):
            self.summary.new_items += 1
        self.cat.add_item(item)

    def write(self, event: MatchupEvent) -> None:
        from eomatch.schema import validate_item

        self.ensure_collections(event)
        products: dict[str, dict[str, Any]] = {}
        for m in event.matchup_set:
            for p in m.products():
                products.setdefault(f"{p['collection']}/{p['id']}", p)
        for p in products.values():
            self.add(Product.from_item(p).to_dict())
        for m in event.matchup_set:
            validate_item(m.to_dict())
            item = m.to_dict()
            self.add(item if self.quicklooks is None else self.with_quicklook(item, m.products()))
        validate_item(event.to_dict())
        self.add_event(event)
        self.summary.events_written += 1

    def add_event(self, event: MatchupEvent) -> None:
        """Upsert an event, with its quicklook: the region and its matchups' footprints
        (products in the event's platform order: a matchup keeps the same canonical order)."""
        if self.quicklooks is None:
            self.add(event.to_dict())
            return
        sides: tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]] = ({}, {})
        for m in event.matchup_set:
            for side, p in zip(sides, m.products(), strict=True):
                side.setdefault(str(p["id"]), p)
        self.add(self.with_quicklook(event.to_dict(), [list(s.values()) for s in sides]))

    def with_quicklook(self, item: dict[str, Any], products: Sequence[Any]) -> dict[str, Any]:
        """The item with a ``thumbnail`` asset; its PNG is drawn beside the item's file by
        the quicklook workers (all written before :func:`find` returns; a re-run redraws
        any a killed run left out). The item dict given is not changed."""
        path = self.cat.path_beside(item, ".png")
        if self.quicklooks is not None:
            self.quicklooks.submit(path, item, products)
        return {**item, "assets": {**(item.get("assets") or {}), ASSET_KEY: thumbnail_asset(f"./{path.name}")}}


def find(
    settings: Settings,
    events_only: bool = False,
    quiet: bool = False,
    catalogue: str | Path | None = None,
    progress: Progress | None = None,
) -> FindSummary:
    """Run the whole pipeline into the local catalogue (``matchup_catalogue.path``).

    ``events_only`` stops after the orbit step and writes only the events.
    ``progress`` counts days of orbit searched, the window once per pair (its total
    is set when it has none); without one a status line is drawn unless ``quiet``.
    Configuration errors raise :class:`ConfigError` before anything is written;
    a provider failing for one event is recorded in ``summary.failures``.
    """
    from eomatch.catalogue import MatchupCatalogue

    t0 = time.monotonic()
    pairs = resolve_pairs(settings)
    start, end = _check_window(settings)
    cat_path = catalogue or settings.matchup_catalogue.path
    if cat_path is None:
        raise ConfigError("matchup_catalogue.path is not set (where the local catalogue goes)")
    combos: dict[tuple[str, str], list[tuple[Side, Side]]] = {}
    for sat_a, sat_b in pairs:
        combos[(sat_a.name, sat_b.name)] = [
            (a, b) for a in _sides_of(sat_a, settings) for b in _sides_of(sat_b, settings)
        ]
    names = sorted({s.name for pair in pairs for s in pair})
    tles = load_tles_for(settings, names)
    providers: dict[str, Provider] = {}
    summary = FindSummary(catalogue=str(cat_path), events_only=events_only)
    site = _site_box(settings)
    try:
        if not events_only:
            for sides in combos.values():
                for side in (s for pair in sides for s in pair):
                    if side.collection not in providers:
                        providers[side.collection] = open_provider(side.collection, settings)
        cat = MatchupCatalogue.create(cat_path, title=settings.matchup_catalogue.title)
        summary.catalogue = str(cat.root)
        bulk = getattr(cat, "bulk", None)
        with contextlib.ExitStack() as stack:
            quicklooks = None
            if settings.find.quicklooks:
                quicklooks = stack.enter_context(QuicklookWriter(workers=QUICKLOOK_WORKERS))
                quicklooks.start()  # the worker loads while the orbits are searched
            writer = _Writer(cat, summary, quicklooks)
            if callable(bulk):
                stack.enter_context(bulk())
            # Progress in days of orbit searched (the window once per pair): events
            # are irregular, the days are what the run has left to do.
            window_days = (end - start).total_seconds() / 86400.0
            if progress is None:
                progress = stack.enter_context(Progress(
                    "find", total=window_days * len(pairs), unit="days", decimals=1, quiet=quiet,
                    note=lambda: f"{summary.events} events, {summary.matchups} matchups",
                ))  # fmt: skip
            elif progress.total is None:
                progress.total = window_days * len(pairs)
            for sat_a, sat_b in pairs:
                index = site_index(settings, tles, sat_a.name, sat_b.name, start, end)
                crossovers = find_crossovers(
                    _full_regions(_orbit_settings(settings)), sat_a.name, sat_b.name, start, end,
                    tles=tles, progress=progress,
                )
                for xo in crossovers:
                    on_site = index.within(xo.platform_a, xo.start_a, xo.end_a, xo.start_b, xo.end_b) if index else []
                    if index is not None and not on_site:
                        continue  # with sites, only events with a site pass of both
                    summary.events += 1
                    for side_a, side_b in combos[(sat_a.name, sat_b.name)]:
                        event = make_event(xo, side_a, side_b, settings, on_site)
                        if events_only:
                            writer.ensure_collections(event)
                            writer.add_event(event)
                            summary.events_written += 1
                            continue
                        _process_event(event, (side_a, side_b), providers, site, settings, writer, summary)
                    # Redrawn per event: provider searches take seconds each, far
                    # longer than the orbit step between two day marks.
                    progress.update(0)
        cat.save()
        cat.close()
    finally:
        for provider in providers.values():
            provider.close()
    summary.seconds = time.monotonic() - t0
    return summary


def _process_event(
    event: MatchupEvent,
    sides: tuple[Side, Side],
    providers: dict[str, Provider],
    site: BaseGeometry | None,
    settings: Settings,
    writer: _Writer,
    summary: FindSummary,
) -> None:
    region = normalize_geometry(event.geometry)
    over_sites = _event_site_area(event, settings)
    if over_sites is not None:
        region = normalize_geometry(over_sites)  # with sites, products over them
    if site is not None:
        region = normalize_geometry(region.intersection(site))
    found: dict[str, list[dict[str, Any]]] = {}
    if not region.is_empty:
        for side in sides:
            provider = providers[side.collection]
            t0, t1 = _search_window(*_side_window(event, side), settings.find.search_margin_s)
            summary.searches += 1
            try:
                # HTTP requests are retried below (eomatch.http's policy); a failed search is not
                found[side.name] = provider.search(region, t0, t1, side.name)
            except ProviderError as exc:
                if summary.first_of_its_kind(str(exc)):
                    # the first failure of each kind is logged; the rest are counted
                    # and summed up at the end (failure_digest)
                    log.warning("event %s: %s (events failing the same way are summed up at the end)", event.id, exc)
                summary.failures.append(f"event {event.id}: {exc}")
                return
    a_name, b_name = event.platforms
    matchups = pair_products(event, found.get(a_name, []), found.get(b_name, []), settings)
    summary.matchups += len(matchups)
    summary.products += len({pid for m in matchups for pid in m.product_ids})
    if matchups or settings.find.keep_empty_events:
        writer.write(event)
