"""Pull items from a STAC API into a local matchup catalogue (``eomatch-query``).

The search is paged with pystac-client (its ``StacApiIO`` follows ``next`` links,
GET or POST; :mod:`eomatch.http` gives it the retry policy), one page ahead in a
background thread (:class:`eomatch.prefetch.Prefetcher`), so the network and the
disk work at the same time; each page is written to disk as it arrives, never
holding the whole result. With ``query.parallel`` > 1 the search is split into
datetime windows (:func:`search_windows`: ``4 × parallel`` equal slices of the span
the matches cover, found with two one-item sorted searches) that ``parallel`` workers
page at the same time (:class:`eomatch.prefetch.Fanout`, one HTTP session each),
while this thread alone writes; STAC datetime intervals include both ends and a
range item matches every window it overlaps, so items are de-duplicated by
(collection, id) as they are written: the set written is the serial search's. The closure the toolchain needs is
pulled too: matchups bring their event (``related``, role ``event``) and their
two products (``derived_from``); events bring their matchups and those
matchups' products. Collections come along, so the output opens with
:meth:`MatchupCatalogue.open` and ``get_events()`` / ``event.matchup_set`` /
``matchup.products()`` work offline.

Item links (every relation of :data:`eomatch.hrefs.ITEM_LINK_RELS`, as ingest
writes them) arrive as API URLs and are rewritten to the local layout
(``{collection}/{YYYY}/{MM}/{DD}/{id}.json``) by :func:`eomatch.hrefs.links_from_api`;
their targets are fetched too. Re-running into the same output
upserts by id (no duplicates); ``since="last"`` asks only for items whose
``updated`` is newer than the previous sync of that output and API.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlparse

import orjson
from pystac_client.exceptions import APIError
from pystac_client.stac_api_io import StacApiIO

from eomatch import jsonio
from eomatch.errors import CatalogueError, ConfigError, QueryError, network_reason
from eomatch.hrefs import ITEM_LINK_RELS, api_item_target, links_from_api
from eomatch.http import RETRY_STATUSES, mount_retries, retry_policy, timed_out
from eomatch.model import (
    EVENTS_PREFIX,
    MatchupError,
    default_relpath,
    format_datetime,
    infer_item_type,
    item_times,
    parse_time_bound,
    to_utc,
)
from eomatch.prefetch import Fanout, Prefetcher
from eomatch.progress import Progress
from eomatch.safe_names import ensure_under, is_safe_name, unsafe_reason
from eomatch.settings import QuerySettings, Settings

log = logging.getLogger(__name__)

__all__ = ["QuerySummary", "api_item_target", "collection_search", "last_sync", "parse_bbox", "platform_filter",
           "query", "search_windows", "site_bbox"]  # fmt: skip

STATE_FILE = "query-state.json"
_COLLECTION_FIELDS_SKIPPED = {"links", "id", "type", "stac_version"}
_PREFETCH_PAGES = 2
"""Pages fetched ahead of the one being written."""
_WINDOWS_PER_WORKER = 4
"""Search windows per parallel worker: more windows than workers, so one dense
stretch of time is shared out instead of being paged by one worker while the rest wait."""


@dataclass
class QuerySummary:
    """What one run did; ``line()`` is the summary the command prints."""

    api_url: str
    output: str
    searched: int = 0
    closure: int = 0
    written: int = 0
    collections: int = 0
    relinked: int = 0
    refused: int = 0
    """Items not written because their id or collection id is not a safe file name."""
    seconds: float = 0.0
    since: str | None = None
    filters: str = ""
    """The search as sent (``datetime=..., platforms ...``), so the line says what was asked."""

    def line(self) -> str:
        rate = (self.searched + self.closure) / self.seconds if self.seconds > 0 else 0.0
        since = f" updated since {self.since}" if self.since else ""
        where = f" ({self.filters})" if self.filters else ""
        refused = f"; {self.refused} items REFUSED (id not a safe file name)" if self.refused else ""
        return (
            f"queried {self.api_url}{where}{since}: {self.searched} items matched, {self.closure} linked items added; "
            f"{self.written} written to {self.output} ({self.collections} collections) "
            f"in {self.seconds:.1f}s ({rate:,.0f} items/s){refused}"
        )


# --------------------------------------------------------------------------- inputs


def _csv(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v).strip() for v in value if str(v).strip()]


def _parse_time(value: datetime | str | None, name: str, end: bool = False) -> datetime | None:
    """A bound of the search period; a date alone is its whole day (see
    :func:`eomatch.model.parse_time_bound`, the one rule of every command)."""
    if value is None or value == "":
        return None
    try:
        return parse_time_bound(value, end=end)
    except MatchupError:
        raise ConfigError(f"{name}: not an ISO 8601 date or datetime: {value!r}") from None


def _cql2_list(values: Sequence[str]) -> str:
    """``('a', 'b')``: CQL2 text string literals (quotes doubled)."""
    return "(" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + ")"


def platform_filter(platforms: Sequence[str], settings: Settings) -> str | None:
    """CQL2 text keeping what ``eomatch-find`` with these ``platforms`` writes:
    products of one of them, events and matchups whose two platforms are both among
    them. Names and aliases resolve through the registry (unknown: ConfigError)."""
    from eomatch.model import platform_spellings
    from eomatch.orbits import find_satellite

    if not platforms:
        return None
    spellings: list[str] = []
    for name in platforms:
        sat = find_satellite(name, settings.satellites)
        for spelling in platform_spellings(sat.name, settings.satellites):
            if spelling not in spellings:
                spellings.append(spelling)
    values = _cql2_list(spellings)
    return f'(platform IN {values} OR A_CONTAINED_BY("matchup:platforms", {values}))'


def _collection_kind(collection_id: str, doc: dict[str, Any]) -> str:
    kind = doc.get("matchup:type")
    if kind in ("product", "event", "matchup"):
        return str(kind)
    if collection_id.startswith(f"{EVENTS_PREFIX}-"):
        return "event"
    return "matchup" if "-vs-" in collection_id else "product"


def _between(collection_id: str, products: Sequence[str]) -> bool:
    """Whether a matchup or events collection id (``{c}-{token}-vs-{c}-{token}``, maybe
    behind ``matchup-events-``) pairs two of ``products``."""
    key = collection_id.removeprefix(f"{EVENTS_PREFIX}-")
    halves = key.split("-vs-")
    return len(halves) == 2 and all(any(h.startswith(f"{p}-") for p in products) for h in halves)


def _api_collection_ids(api: _Api) -> Iterator[str]:
    """Every collection id the API lists (``/collections``, following ``next`` links);
    an API without the list gives none (the search filter alone is then exact, only slower)."""
    try:
        for doc in _follow(api.io, urljoin(api.url, "collections"), {}):
            for coll in doc.get("collections") or []:
                if isinstance(coll, dict) and isinstance(coll.get("id"), str):
                    yield coll["id"]
    except QueryError as exc:
        log.debug("no collection list at %s: %s", api.url, exc)


def collection_search(
    collection_docs: dict[str, dict[str, Any]], api_collections: Iterable[str] = ()
) -> tuple[list[str], str | None]:
    """How to search the wanted collections: (``collections`` parameter, CQL2 filter).

    Matchup and events collections are searched as they are. A product collection
    (``S2_MSI_L1C``) also keeps, as in ``eomatch-find``'s ``collections``, the events
    and matchups whose two product collections are both among those given: the
    filter says exactly that, and the ``collections`` parameter names the API's
    pair collections between them (from ``api_collections``) so that pgSTAC searches
    those collections only, not the whole catalogue.
    """
    wanted = list(collection_docs)
    products = [c for c, doc in collection_docs.items() if _collection_kind(c, doc) == "product"]
    if not products:
        return wanted, None
    pairs = [c for c in api_collections if c not in collection_docs and _between(c, products)]
    if not pairs:
        # Every collection searched is one asked for, so the filter would keep every item it
        # sees: leave it out (pgSTAC evaluates a CQL2 filter on each row of each page).
        return wanted, None
    return wanted + pairs, (
        f'(collection IN {_cql2_list(wanted)} OR A_CONTAINED_BY("matchup:collections", {_cql2_list(products)}))'
    )


def site_bbox(settings: Settings) -> list[float] | None:
    """The config's site box (``min_lat``...``max_lon``, as ``eomatch-find`` reads it)
    as [west, south, east, north]; None when unbounded. ``min_lon > max_lon`` crosses ±180°."""
    values = (settings.find.min_lon, settings.find.min_lat, settings.find.max_lon, settings.find.max_lat)
    if all(v is None for v in values):
        return None
    west, south, east, north = values
    return [
        -180.0 if west is None else west,
        -90.0 if south is None else south,
        180.0 if east is None else east,
        90.0 if north is None else north,
    ]


def parse_bbox(bbox: Sequence[float | str] | str | None) -> list[float] | None:
    """[west, south, east, north] in degrees (west > east crosses the antimeridian)."""
    if bbox is None:
        return None
    parts = bbox.replace(",", " ").split() if isinstance(bbox, str) else list(bbox)
    if len(parts) != 4:
        raise ConfigError(f"bbox needs 4 numbers (west south east north), got {len(parts)}")
    try:
        west, south, east, north = (float(v) for v in parts)
    except (TypeError, ValueError):
        raise ConfigError(f"bbox values must be numbers, got {' '.join(str(p) for p in parts)}") from None
    if not (-180.0 <= west <= 180.0 and -180.0 <= east <= 180.0):
        raise ConfigError(f"bbox longitudes must be within [-180, 180], got west={west} east={east}")
    if not (-90.0 <= south <= 90.0 and -90.0 <= north <= 90.0):
        raise ConfigError(f"bbox latitudes must be within [-90, 90], got south={south} north={north}")
    if south > north:
        raise ConfigError(f"bbox south ({south}) is north of north ({north})")
    return [west, south, east, north]


def _check_api_url(api_url: str) -> str:
    parsed = urlparse(api_url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(f"--api-url must be an http(s) URL, got {api_url!r}")
    return api_url.rstrip("/") + "/"


# --------------------------------------------------------------------------- HTTP


class ApiIO(StacApiIO):
    """pystac-client's ``StacApiIO`` with eomatch's retry policy and one-line errors.

    Every failure is a :class:`QueryError` naming the URL: the status and the
    server's message, a timeout, or why the host could not be reached. With
    ``search=True`` every answer must be a FeatureCollection (``get_pages`` would
    otherwise take anything else for the end of the results).
    """

    def __init__(self, cfg: QuerySettings, *, reached: bool, search: bool = False) -> None:
        super().__init__(
            headers={"Accept": "application/geo+json, application/json"},
            timeout=(min(10.0, cfg.timeout_s), cfg.timeout_s),
            max_retries=retry_policy(cfg.retries, cfg.backoff_s, connect=reached),
        )
        self.cfg = cfg
        self.attempts = max(1, cfg.retries + 1)
        self.search = search

    def reached(self) -> None:
        """The server answered: from now on connection errors are retried too."""
        mount_retries(self.session, retry_policy(self.cfg.retries, self.cfg.backoff_s))

    def close(self) -> None:
        self.session.close()

    def request(
        self,
        href: str,
        method: str | None = None,
        headers: dict[str, str] | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> str:
        try:
            return super().request(href, method=method, headers=headers, parameters=parameters)
        except APIError as exc:
            raise self._error(exc, _shown_url(href, method, parameters)) from None

    def _error(self, exc: APIError, url: str) -> QueryError:
        status = getattr(exc, "status_code", None)
        if status is not None:
            tries = f" after {self.attempts} attempts" if status in RETRY_STATUSES and self.attempts > 1 else ""
            return QueryError(f"{url} -> HTTP {status}{tries}: {_server_message(str(exc))}")
        if timed_out(exc):
            return QueryError(f"{url}: timed out after {self.attempts} attempts")
        return QueryError(f"cannot reach {url}: {network_reason(exc)}")

    def read_json(self, source: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        text = self.read_text(source, *args, **kwargs)
        url = str(source.href if hasattr(source, "href") else source)
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError:
            start = " ".join(text.split())[:40]
            raise QueryError(f"{url} did not answer JSON (it starts {start!r}): not a STAC API?") from None
        if self.search and not (isinstance(doc, dict) and isinstance(doc.get("features"), list)):
            raise QueryError(f"{url}: the search answered something that is not a FeatureCollection")
        if isinstance(doc, dict) and isinstance(doc.get("links"), list):
            # A relative next link is relative to this page (pystac-client follows hrefs as given).
            for link in doc["links"]:
                if isinstance(link, dict) and link.get("rel") == "next" and isinstance(link.get("href"), str):
                    link["href"] = urljoin(url, link["href"])
        return doc  # type: ignore[no-any-return]


def _shown_url(href: str, method: str | None, parameters: dict[str, Any] | None) -> str:
    """The URL a GET was sent to (with its query), for error lines."""
    if (method or "GET").upper() != "GET" or not parameters:
        return href
    import requests

    return str(requests.Request("GET", href, params=parameters).prepare().url)


def _server_message(text: str) -> str:
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        return (text.strip().splitlines() or ["(no message)"])[0][:200]
    if isinstance(doc, dict):
        msg = doc.get("description") or doc.get("detail") or doc.get("message") or doc.get("code")
        if msg:
            return str(msg).strip().splitlines()[0][:300]
    return str(doc)[:200]


class _Api:
    """One STAC API: its URL, its landing page, and two IOs (pystac-client sessions):
    ``io`` for this thread, ``pager`` for the thread that fetches pages ahead."""

    def __init__(self, api_url: str, cfg: QuerySettings) -> None:
        self.url = api_url
        self.cfg = cfg
        self.io = ApiIO(cfg, reached=False)
        self.pager: ApiIO | None = None
        self._local = threading.local()
        self._thread_pagers: list[ApiIO] = []
        self._thread_pagers_lock = threading.Lock()

    def close(self) -> None:
        self.io.close()
        if self.pager is not None:
            self.pager.close()
        with self._thread_pagers_lock:
            for io in self._thread_pagers:
                io.close()
            self._thread_pagers.clear()

    def thread_pager(self) -> ApiIO:
        """This thread's search session: parallel workers each page with their own
        (a ``requests`` session is not meant to be shared between threads)."""
        io: ApiIO | None = getattr(self._local, "pager", None)
        if io is None:
            io = ApiIO(self.cfg, reached=True, search=True)
            self._local.pager = io
            with self._thread_pagers_lock:
                self._thread_pagers.append(io)
        return io

    def get(self, url: str) -> dict[str, Any]:
        return self.io.read_json(url)

    def landing(self) -> dict[str, Any]:
        """The landing page, checked; once it answered, connection errors are retried."""
        doc = self.get(self.url)
        if not isinstance(doc, dict) or not isinstance(doc.get("links"), list) or (
            "stac_version" not in doc and "conformsTo" not in doc
        ):
            raise QueryError(f"{self.url} is not a STAC API (its landing page has no stac_version/links)")
        self.io.reached()
        self.pager = ApiIO(self.cfg, reached=True, search=True)
        return doc

    def pages(self, url: str, params: dict[str, Any], counts: dict[str, int] | None = None) -> Iterator[list[dict[str, Any]]]:
        assert self.pager is not None, "landing() first"
        return _pages(self.pager, url, params, counts)


def _search_url(landing: dict[str, Any], api_url: str) -> str:
    for link in landing.get("links") or []:
        if link.get("rel") == "search" and link.get("method", "GET").upper() == "GET" and link.get("href"):
            return urljoin(api_url, str(link["href"]))
    conforms = " ".join(landing.get("conformsTo") or [])
    if "item-search" not in conforms:
        raise QueryError(f"{api_url} has no item search (no 'search' link): not a STAC API with /search")
    return urljoin(api_url, "search")


def _number_matched(doc: dict[str, Any]) -> int | None:
    """The API's count of all matches, when it gives one (``numberMatched`` or the
    older context extension); pgSTAC leaves it out unless its context setting is on."""
    n = doc.get("numberMatched")
    if n is None and isinstance(doc.get("context"), dict):
        n = doc["context"].get("matched")
    return n if isinstance(n, int) and not isinstance(n, bool) and n >= 0 else None


def _follow(io: StacApiIO, url: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """pystac-client's page iteration (``StacApiIO.get_pages``: GET, then each ``next``
    link, GET or POST, with its body), stopped with an error when a ``next`` link
    repeats one already followed (a server bug that would otherwise loop forever)."""
    followed: set[str] = set()
    for page in io.get_pages(url, "GET", params):
        yield page
        nxt = next((lk for lk in page.get("links") or [] if lk.get("rel") == "next" and lk.get("href")), None)
        if nxt is None:
            return
        key = f"{str(nxt.get('method') or 'GET').upper()} {nxt['href']} {orjson.dumps(nxt.get('body')).decode()}"
        if key in followed:
            raise QueryError(f"{urljoin(url, str(nxt['href']))}: the API's next link repeats itself")
        followed.add(key)


def _pages(
    io: StacApiIO, url: str, params: dict[str, Any], counts: dict[str, int] | None = None
) -> Iterator[list[dict[str, Any]]]:
    """Feature lists page by page, following ``next`` links (GET or POST).

    ``counts["matched"]`` is set from the first page when the API says how many match;
    ``counts["more"]`` is 1 while the page just yielded has a ``next`` link.
    """
    for n, doc in enumerate(_follow(io, url, params)):
        if counts is not None:
            if n == 0 and (matched := _number_matched(doc)) is not None:
                counts["matched"] = matched
            counts["more"] = int(any(isinstance(lk, dict) and lk.get("rel") == "next" for lk in doc.get("links") or []))
        yield doc["features"]


def _probe_time(io: StacApiIO, url: str, params: dict[str, Any], last: bool) -> datetime | None:
    """The start of the earliest match (or the end of the latest, ``last``): one
    one-item search sorted by datetime. None when nothing matches or the API cannot
    sort (the search is then not split; its own first page reports any error)."""
    probe = {**params, "limit": 1, "sortby": "-datetime" if last else "datetime"}
    try:
        doc = next(iter(io.get_pages(url, "GET", probe)), None)
    except QueryError as exc:
        log.debug("no sorted search at %s, not splitting it: %s", url, exc)
        return None
    features = (doc or {}).get("features") or []
    if not features or not isinstance(features[0], dict):
        return None
    try:
        _, start, end = item_times(features[0])
    except MatchupError:
        return None
    return end if last else start


def search_windows(
    first: datetime, last: datetime, start: datetime | None, end: datetime | None, count: int
) -> list[str] | None:
    """``count`` STAC ``datetime`` intervals of equal length that together cover the search.

    ``first``/``last`` are where the matches lie (the earliest start, the latest end);
    ``start``/``end`` the search's own bounds (None: open). The outer windows keep those
    bounds (``..`` when open), so every match lies in some window whatever the probes
    saw. Neighbours share their boundary instant (STAC intervals include both ends): an
    item there, and a range item overlapping several windows, comes from each; the
    caller keeps one. None when the span is too short to split.
    """
    lo = max(first, start) if start else first
    hi = min(last, end) if end else last
    if count < 2 or hi - lo < timedelta(microseconds=count):
        return None
    step = (hi - lo) / count
    inner = [format_datetime(lo + step * i) for i in range(1, count)]
    edges = [format_datetime(start) if start else "..", *inner, format_datetime(end) if end else ".."]
    return [f"{a}/{b}" for a, b in zip(edges, edges[1:], strict=False)]


def _window_sources(
    remote: _Api, url: str, params: dict[str, Any], windows: Sequence[str], counts: list[dict[str, int]]
) -> list[Any]:
    """One page source per window, paged by whichever worker takes it up (its own session)."""

    def source(window: str, window_counts: dict[str, int]) -> Any:
        return lambda: _pages(remote.thread_pager(), url, {**params, "datetime": window}, window_counts)

    sources = []
    for window in windows:
        counts.append({})
        sources.append(source(window, counts[-1]))
    return sources


@dataclass
class _ForwardRef:
    """A link written before its target was on disk: checked once everything is."""

    source: tuple[str, str]
    target: tuple[str, str]
    guessed_relpath: str
    api_href: str
    source_relpath: str


# --------------------------------------------------------------------------- state


def _state_path(root: Path) -> Path:
    return root / ".eomatch" / STATE_FILE


def last_sync(output: str | Path, api_url: str) -> str | None:
    """When ``output`` was last synced from ``api_url`` (RFC 3339), or None."""
    from eomatch.catalogue import MatchupCatalogue

    path = _state_path(MatchupCatalogue.root_of(output))
    if not path.is_file():
        return None
    state = jsonio.read_json(path)
    entry = (state.get("apis") or {}).get(_check_api_url(api_url)) if isinstance(state, dict) else None
    return entry.get("last_sync") if isinstance(entry, dict) else None


def _record_sync(root: Path, api_url: str, started: datetime, summary: QuerySummary) -> None:
    path = _state_path(root)
    state: dict[str, Any] = {}
    if path.is_file():
        try:
            loaded = jsonio.read_json(path)
            state = loaded if isinstance(loaded, dict) else {}
        except CatalogueError:
            state = {}
    state.setdefault("apis", {})[api_url] = {
        "last_sync": format_datetime(started.replace(microsecond=0)),
        "items": summary.searched + summary.closure,
    }
    jsonio.write_json_atomic(path, state)


# --------------------------------------------------------------------------- query


def query(
    settings: Settings,
    api_url: str,
    output: str | Path,
    start_time: datetime | str | None = None,
    end_time: datetime | str | None = None,
    bbox: Sequence[float | str] | str | None = None,
    collections: str | Sequence[str] | None = None,
    filter: str | None = None,
    ids: str | Sequence[str] | None = None,
    since: str | None = None,
    quiet: bool = False,
    platforms: str | Sequence[str] | None = None,
    progress: Progress | None = None,
) -> QuerySummary:
    """Pull the items matching the search (and what they link to) into ``output``.

    The search takes the filters of ``eomatch-find``: an argument left at None
    falls back on the settings' ``find:`` section (``start_time``, ``end_time``,
    ``min_lat``...``max_lon`` as the bbox, ``platforms``, ``collections``), so a run config
    limits a query exactly as the same values given here do. A date alone is a whole day.

    ``progress`` counts items written (searched and related); its total, when unset,
    becomes the API's ``numberMatched``. The caller's progress is left open (the caller
    closes it); without one, a ``Progress`` (silent with ``quiet``) is made and closed here.

    Inputs and the API's landing page are checked, and the first page fetched,
    before anything is written; every file write is atomic, so a failure leaves
    the previous output as it was (plus whole items already fetched). Items whose
    id or collection id is not a safe file name are refused (``summary.refused``).
    """
    from eomatch.catalogue import MatchupCatalogue

    api = _check_api_url(api_url)
    t_start = _parse_time(settings.find.start_time if start_time is None else start_time, "start time")
    t_end = _parse_time(settings.find.end_time if end_time is None else end_time, "end time", end=True)
    if t_start and t_end and t_end < t_start:
        raise ConfigError(f"end time {format_datetime(t_end)} is before start time {format_datetime(t_start)}")
    box = parse_bbox(bbox) if bbox is not None else site_bbox(settings)
    wanted_collections = _csv(settings.find.collections if collections is None else collections)
    for cid in wanted_collections:
        if not is_safe_name(cid):
            raise ConfigError(f"collections: {cid!r} is not a collection id ({unsafe_reason(cid)})")
    wanted_platforms = _csv(settings.find.platforms if platforms is None else platforms)
    platforms_cql = platform_filter(wanted_platforms, settings)
    wanted_ids = _csv(ids)
    if since not in (None, "last"):
        raise ConfigError(f"--since takes 'last', not {since!r}")
    out_path = Path(output).expanduser()
    if out_path.exists() and not out_path.is_dir():
        raise ConfigError(f"--output {out_path} exists and is not a folder")
    if out_path.is_dir() and any(out_path.iterdir()) and not (out_path / "catalog.json").is_file():
        raise ConfigError(f"--output {out_path} is a non-empty folder without a catalog.json")
    cfg = settings.query
    started = datetime.now(UTC)
    t0 = time.monotonic()

    since_iso: str | None = None
    if since == "last":
        previous = last_sync(out_path, api) if (out_path / "catalog.json").is_file() else None
        if previous:
            since_iso = format_datetime(to_utc(previous) - timedelta(seconds=cfg.since_overlap_s))

    remote = _Api(api, cfg)
    try:
        landing = remote.landing()
        search = _search_url(landing, api)
        collection_docs = {c: _get_collection(remote, c) for c in wanted_collections}
        params: dict[str, Any] = {"limit": cfg.page_size}
        asked: list[str] = []
        if t_start or t_end:
            params["datetime"] = f"{format_datetime(t_start) if t_start else '..'}/{format_datetime(t_end) if t_end else '..'}"
            asked.append(f"datetime {params['datetime']}")
        if box:
            params["bbox"] = ",".join(repr(v) for v in box)
            asked.append(f"bbox {params['bbox']}")
        filters = [f"({filter.strip()})"] if filter and filter.strip() else []
        if wanted_collections:
            needs_pairs = any(_collection_kind(c, d) == "product" for c, d in collection_docs.items())
            by_param, by_filter = collection_search(
                collection_docs, _api_collection_ids(remote) if needs_pairs else ()
            )
            if by_param:
                params["collections"] = ",".join(by_param)
            if by_filter:
                filters.append(by_filter)
            asked.append(f"collections {','.join(wanted_collections)}")
        if platforms_cql:
            filters.append(platforms_cql)
            asked.append(f"platforms {','.join(wanted_platforms)}")
        if wanted_ids:
            params["ids"] = ",".join(wanted_ids)
        if since_iso:
            # pgSTAC compares `updated` as text here (TIMESTAMP() on it fails); RFC 3339 UTC
            # strings with a Z order like the instants they name.
            filters.append(f"updated >= '{since_iso}'")
        if filters:
            params["filter"] = " AND ".join(filters)
            params["filter-lang"] = "cql2-text"

        counts: dict[str, int] = {}
        window_counts: list[dict[str, int]] = []
        serial = remote.pages(search, params, counts)
        first = next(serial, None)  # a bad filter or datetime fails here, before any write
        # More than one page: split into windows (the first page's items come again from
        # their window and are kept once). One page, --ids or parallel 1: page on as one search.
        windows = None
        if counts.get("more") and not wanted_ids:
            windows = _split(remote, search, params, t_start, t_end, cfg.parallel, counts.get("matched"))
        if windows is None:
            pages = iter(Prefetcher(serial, depth=_PREFETCH_PAGES, name="query-pages"))
        else:
            serial.close()
            log.debug("searching %s in %d windows, %d at a time", search, len(windows), cfg.parallel)
            sources = _window_sources(remote, search, params, windows, window_counts)
            pages = iter(Fanout(sources, workers=cfg.parallel, depth=_PREFETCH_PAGES * cfg.parallel, name="query-window"))

        cat = MatchupCatalogue.create(out_path)
        summary = QuerySummary(api_url=api, output=str(cat.root), since=since_iso, filters="; ".join(asked))
        writer = _Writer(cat, remote, summary, since_iso is not None)
        for cid, doc in collection_docs.items():
            writer.collection(cid, doc)
        # A total (so % and ETA) when the API counts its matches; the related items
        # fetched afterwards may take the count past it, which the line tolerates.
        own_progress = progress is None
        if progress is None:
            progress = Progress("query", total=counts.get("matched"), quiet=quiet)
        elif progress.total is None:
            progress.total = counts.get("matched")
        # Windows: a total once every window has said how many it matches (their sum
        # counts a range item once per window it overlaps; the line tolerates more or less).
        want_total = windows is not None and progress.total is None
        try:
            with cat.bulk():
                if first is not None:
                    writer.page(first, progress, searched=True)
                    for page in pages:
                        writer.page(page, progress, searched=True)
                        if want_total and len(window_counts) == sum(1 for c in window_counts if "matched" in c):
                            progress.total = sum(c["matched"] for c in window_counts)
                            want_total = False
                writer.closure(progress, cfg.ids_per_request, search, cfg.parallel)
                writer.fix_forward_refs()
        except QueryError as exc:
            # What was written is whole (atomic files); link it so the folder stays a
            # consistent catalogue, and say that a re-run completes it.
            cat.save()
            raise QueryError(
                f"{exc} (stopped after {len(writer.seen)} items; what was written to {cat.root} is kept "
                "and linked, and running the same command again completes it)"
            ) from None
        except BaseException:
            cat.save()
            raise
        else:
            cat.save()
            if wanted_ids:
                found = {item_id for _, item_id in writer.seen} | writer.refused_ids
                missing = [i for i in wanted_ids if i not in found]
                if missing:
                    log.warning(
                        "%d of the %d requested ids are not at %s: %s",
                        len(missing), len(wanted_ids), api, ", ".join(missing[:5]) + (" …" if len(missing) > 5 else ""),
                    )  # fmt: skip
        finally:
            pages.close()  # type: ignore[attr-defined]  # stops the fetching threads on an error
            if own_progress:
                progress.close()
            cat.close()
        _record_sync(cat.root, api, started, summary)
    finally:
        remote.close()
    summary.seconds = time.monotonic() - t0
    return summary


def _split(
    remote: _Api,
    search: str,
    params: dict[str, Any],
    start: datetime | None,
    end: datetime | None,
    parallel: int,
    matched: int | None = None,
) -> list[str] | None:
    """The search's windows (see :func:`search_windows`), or None for one paged search:
    ``parallel`` is 1, nothing matches, the API cannot sort, or the span is an instant.

    ``4 × parallel`` windows, but no more than the pages the API says it matches
    (``matched``): every request costs the server a fixed part (tens of ms for
    pgSTAC, measured by ``benchmarks/query_throughput.py``), so windows smaller than a
    page would cost more than paging them in one search saves."""
    count = parallel * _WINDOWS_PER_WORKER
    if matched is not None:
        count = min(count, -(-matched // max(1, int(params.get("limit") or 1))))
    if parallel < 2 or count < 2:
        return None
    io = remote.thread_pager()
    first = _probe_time(io, search, params, last=False)
    last = _probe_time(io, search, params, last=True) if first is not None else None
    if first is None or last is None:
        return None
    return search_windows(first, last, start, end, count)


def _get_collection(remote: _Api, collection_id: str) -> dict[str, Any]:
    api = remote.url
    try:
        doc = remote.get(urljoin(api, f"collections/{collection_id}"))
    except QueryError as exc:
        if "HTTP 404" in str(exc):
            raise QueryError(f"collection {collection_id!r} does not exist at {api}") from None
        raise
    if not isinstance(doc, dict) or doc.get("type") != "Collection":
        raise QueryError(f"{api}collections/{collection_id} is not a STAC Collection")
    return doc


class _Writer:
    """Writes pages into the catalogue and remembers what links still need."""

    def __init__(self, cat: Any, remote: _Api, summary: QuerySummary, skip_local: bool) -> None:
        self.cat = cat
        self.remote = remote
        self.api = remote.url
        self.summary = summary
        self.skip_local = skip_local
        self.seen: set[tuple[str, str]] = set()
        self.wanted: dict[tuple[str, str], None] = {}
        self.forward: list[_ForwardRef] = []
        self.collections_done: set[str] = set()
        self.refused_ids: set[str] = set()
        self.workers = 4

    # -- collections

    def collection(self, collection_id: str, doc: dict[str, Any] | None = None) -> None:
        if collection_id in self.collections_done:
            return
        if doc is None:
            try:
                doc = _get_collection(self.remote, collection_id)
            except QueryError as exc:
                log.warning("collection %s not fetched: %s", collection_id, exc)
                doc = {}
        kind = doc.get("matchup:type") if doc.get("matchup:type") in ("product", "event", "matchup") else None
        self.cat.ensure_collection(
            collection_id, kind=kind, title=doc.get("title"), description=doc.get("description")
        )
        if doc:
            path = ensure_under(self.cat.root, self.cat.root / collection_id / "collection.json")
            with self.cat.lock_collection(collection_id):
                local = jsonio.read_json(path)
                for key, value in doc.items():
                    if key not in _COLLECTION_FIELDS_SKIPPED and key != "extent":
                        local[key] = value
                jsonio.write_json_atomic(path, local)
            extent = doc.get("extent") or {}
            bbox = ((extent.get("spatial") or {}).get("bbox") or [None])[0]
            interval = ((extent.get("temporal") or {}).get("interval") or [[None, None]])[0]
            if bbox or any(interval or []):
                self.cat.ensure_collection(collection_id, bbox=bbox, interval=tuple(interval or (None, None)))
        self.collections_done.add(collection_id)
        self.summary.collections += 1

    # -- items

    def page(self, features: list[dict[str, Any]], progress: Progress, searched: bool) -> None:
        """Write one page: items converted here, files written in parallel by the catalogue."""
        batch: list[dict[str, Any]] = []
        fresh = 0
        pending_refs: list[tuple[tuple[str, str], list[tuple[tuple[str, str], str, str]], str]] = []
        for item in features:
            if not isinstance(item, dict) or item.get("type") != "Feature" or not item.get("id"):
                continue
            coll = str(item.get("collection") or "")
            if not coll:
                raise QueryError(f"item {item.get('id')!r} from {self.api} has no collection")
            key = (coll, str(item["id"]))
            if key in self.seen or key[1] in self.refused_ids:
                continue  # one window's boundary item, or a range item, met again in the next
            fresh += 1
            if searched:
                self.summary.searched += 1
            else:
                self.summary.closure += 1
            unsafe = next(((what, name) for what, name in (("collection id", coll), ("id", key[1]))
                           if not is_safe_name(name)), None)  # fmt: skip
            if unsafe is not None:
                # Its file would land outside --output (ids become paths): refuse it, go on.
                what, name = unsafe
                log.warning("refused item %r of collection %r from %s: its %s is not a safe file name (%s)",
                            key[1], coll, self.api, what, unsafe_reason(name))  # fmt: skip
                self.refused_ids.add(key[1])
                self.summary.refused += 1
                continue
            self.seen.add(key)
            self.wanted.pop(key, None)
            self.collection(coll)
            try:
                src_rel = default_relpath(item)
            except MatchupError as exc:
                raise QueryError(f"{self.api}: {exc}") from None
            item["links"], refs = links_from_api(item.get("links") or [], self.api, src_rel)
            props = item.setdefault("properties", {})
            if "matchup:type" not in props:
                props["matchup:type"] = infer_item_type(item, coll)
            batch.append(item)
            pending_refs.append((key, refs, src_rel))
        self.cat.add_items(batch, workers=self.workers)
        in_batch = {key for key, _, _ in pending_refs}
        for source, refs, src_rel in pending_refs:
            for target, api_href, guess in refs:
                if target in in_batch:  # written alongside: its place is checked at the end
                    self.forward.append(_ForwardRef(source, target, guess, api_href, src_rel))
                    continue
                if target in self.seen:
                    continue  # on disk already: the catalogue's relink pointed the link at it
                if self.skip_local and self.cat.has_item(target[1], target[0]):
                    continue
                self.wanted[target] = None
                self.forward.append(_ForwardRef(source, target, guess, api_href, src_rel))
        progress.update(fresh)

    def closure(self, progress: Progress, per_request: int, search: str, parallel: int = 1) -> None:
        """Fetch linked items not seen yet, round after round (events -> matchups -> products);
        with ``parallel`` > 1 that many requests of a round at a time."""
        while self.wanted:
            batch = list(self.wanted)
            self.wanted.clear()
            by_collection: dict[str, list[str]] = {}
            for coll, item_id in batch:
                if (coll, item_id) not in self.seen:
                    by_collection.setdefault(coll, []).append(item_id)

            requests = [
                {"collections": coll, "ids": ",".join(chunk), "limit": len(chunk)}
                for coll, item_ids in sorted(by_collection.items())
                for chunk in (item_ids[i : i + per_request] for i in range(0, len(item_ids), per_request))
            ]

            def round_pages(requests: list[dict[str, Any]] = requests) -> Iterator[list[dict[str, Any]]]:
                for params in requests:
                    yield from self.remote.pages(search, params)

            def one(params: dict[str, Any]) -> Any:
                return lambda: _pages(self.remote.thread_pager(), search, params)

            # fetch ahead while this round is written
            fetched: Iterable[list[dict[str, Any]]] = (
                Fanout([one(p) for p in requests], workers=parallel, depth=_PREFETCH_PAGES * parallel, name="query-closure")
                if parallel > 1 and len(requests) > 1
                else Prefetcher(round_pages(), depth=_PREFETCH_PAGES, name="query-closure")
            )
            for page in fetched:
                self.page(page, progress, searched=False)

    def fix_forward_refs(self) -> None:
        """Rewrite the few items whose link guessed its target's folder wrong."""
        to_fix: dict[tuple[str, str], list[_ForwardRef]] = {}
        for ref in self.forward:
            found = self.cat.lookup(ref.target[1], ref.target[0])
            if found is None or found.relpath != ref.guessed_relpath:
                to_fix.setdefault(ref.source, []).append(ref)
                continue
            src = self.cat.lookup(ref.source[1], ref.source[0])
            if src is not None and src.relpath != ref.source_relpath:
                to_fix.setdefault(ref.source, []).append(ref)
        for (coll, item_id), refs in to_fix.items():
            dangling = {r.target[1]: r.api_href for r in refs if not self.cat.has_item(r.target[1], r.target[0])}

            def edit(item: dict[str, Any], dangling: dict[str, str] = dangling) -> None:
                for link in item.get("links") or []:
                    href = link.get("href", "")
                    if link.get("rel") in ITEM_LINK_RELS and href.endswith(".json"):
                        target = href.rsplit("/", 1)[-1][: -len(".json")]
                        if target in dangling:
                            link["href"] = dangling[target]  # not on the server: keep its URL

            self.cat.update_item(item_id, edit, collection=coll)
            self.summary.relinked += 1
        self.summary.written = len(self.seen)
