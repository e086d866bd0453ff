"""One typed settings model for every command and service.

Sources, lowest priority first: defaults, a YAML config file (``--config`` or
``EOMATCH_CONFIG``), ``EOMATCH_*`` environment variables (nested keys with ``__``,
e.g. ``EOMATCH_STACK__PROXY_PORT=8080``), then CLI flags passed as keyword overrides.
Settings are loaded once at each entry point and passed down; nothing else reads
the environment.
"""

from __future__ import annotations

import contextvars
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.sources.utils import parse_env_vars

from eomatch.errors import ConfigError


def default_state_dir() -> Path:
    """Where the local stack keeps its state.

    Root gets a system location because PostgreSQL (run as ``postgres``) cannot
    traverse ``/root``; other users get their XDG state folder.
    """
    if os.geteuid() == 0:
        return Path("/var/lib/eomatch")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "eomatch"


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/eomatch`` (else ``~/.cache/eomatch``): STAC Browser builds kept
    between stacks when ``stack.browser.cache_dir`` is unset (read here, with the rest
    of the environment)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "eomatch"


def default_pg_bin_dir() -> Path:
    """The newest installed PostgreSQL that has PostGIS (15 on Debian 12)."""
    base = Path("/usr/lib/postgresql")
    found = sorted(
        (p for p in base.glob("*/bin") if (p / "postgres").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    with_postgis = [p for p in found if any(Path("/usr/share/postgresql", p.parent.name, "extension").glob("postgis.control"))]
    chosen = (with_postgis or found or [base / "15" / "bin"])[-1]
    return chosen


class _Section(BaseModel):
    """A block of the config: an unknown key is an error (a typo must not be ignored)."""

    model_config = ConfigDict(extra="forbid")


class DatabaseSettings(_Section):
    """The private PostgreSQL cluster of the local stack."""

    host: str = "127.0.0.1"
    port: int = 55432
    name: str = "eomatch"
    admin_user: str = "eomatch_admin"
    ingest_user: str = "eomatch_ingest"
    read_user: str = "eomatch_read"
    pg_bin_dir: Path = Field(default_factory=default_pg_bin_dir)
    run_as: str = "postgres"
    """System user the server runs as when the stack is started by root."""
    api_user: str = "eomatch_api"
    """Role of the internal API (in ``pgstac_ingest``, like ``ingest_user``, but with
    the API timeouts below; ``ingest_user`` is for bulk loads)."""
    statement_timeout_s: float = Field(60.0, ge=0)
    """``statement_timeout`` of the API roles (``api_user``, ``read_user``); 0 = none."""
    idle_in_transaction_timeout_s: float = Field(60.0, ge=0)
    """``idle_in_transaction_session_timeout`` of the API roles; 0 = none."""
    ingest_statement_timeout_s: float = Field(0.0, ge=0)
    """``statement_timeout`` of ``ingest_user`` (bulk loads of a million items must not
    be cancelled); 0 = none. The admin role never has one (migrations, restores)."""
    api_parallel_workers: int = Field(0, ge=0, le=64)
    """``max_parallel_workers_per_gather`` of the API roles. 0 (default): a search never
    launches parallel workers. At 1M items PostgreSQL plans a search's count in parallel
    and starting the workers costs more than the sub-millisecond scans they share
    (docs/operations.md, "Search at scale"); the APIs' many concurrent requests already
    use the cores. ``ingest_user`` and the admin keep the server's default."""
    replicas: int = Field(0, ge=0, le=9)
    """Hot standbys streaming from the primary (``db-replica-1`` ... on ``port + 1`` ...);
    the external API reads from them, falling back to the primary. 0 = none."""
    replication_user: str = "eomatch_replication"
    """Role the standbys stream with (``REPLICATION``, no other right)."""
    replica_hosts: list[str] = Field(default_factory=list)
    """Where the standbys answer, ``host:port`` each (Compose: ``db-replica:5432``);
    empty: the local stack's ``host`` at ``port + 1`` ... ``port + replicas``."""


class ApiSettings(_Section):
    """The two stac-fastapi-pgstac apps."""

    internal_port: int = 8101
    external_port: int = 8102
    internal_root_path: str = "/api"
    external_root_path: str = "/external"
    internal_replicas: int = 1
    external_replicas: int = 2
    """External app processes: two answer the read cache's misses twice as fast, which
    is what keeps /external/'s p95 under 150 ms at 32 readers (docs/operations.md)."""
    workers: int = 1
    title: str = "eomatch matchup catalogue"
    description: str = "Satellite matchups (MatchupEvents, Matchups and their products) as STAC."
    public_schemes: list[str] = Field(default_factory=lambda: ["http", "https"])
    """Asset href schemes the external API may show; everything else is internal."""
    internal_path_prefixes: list[str] = Field(default_factory=lambda: ["/npl-data"])
    """Filesystem prefixes that must never appear in an external response."""
    db_pool_max: int = 10
    health_urls: dict[str, str] = Field(default_factory=dict)
    """Component probe URLs for /health; empty = derive the local stack's ports."""
    run_as: str = "eomatch"
    """System user the local APIs run as when the stack is started by root (created
    with ``useradd --system`` when missing); otherwise they run as the caller."""
    socket_dir: Path | None = None
    """Folder of the local APIs' unix sockets (what the proxy connects to); default
    ``<state_dir>/run/api``."""


class ProxySettings(_Section):
    """nginx in front of everything."""

    host: str = "127.0.0.1"
    port: int = 8000
    browser_port: int = 8103
    external_rate_per_s: int = 50
    external_burst: int = 100
    # /api/ too (reads and writes), per client address: a generous budget for scripts,
    # but one client can no longer flood the internal API
    internal_rate_per_s: int = 200
    internal_burst: int = 400
    external_cache_s: int = Field(60, ge=0, le=3600)
    """nginx keeps successful (200) GET answers of ``/external/`` this long and serves
    them to every reader (rate limits and the read login still apply); a changed or
    deleted item shows there at most this late, a new one at once (404s are never
    kept); a request with a write key bypasses and refreshes the copy. 0 = no cache.
    ``/api/`` is never cached. 60 s: measured by benchmarks/external_load.py (docs/operations.md)."""
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_port: int = 8443
    nginx_bin: Path = Path("/usr/sbin/nginx")
    internal_host: str = "127.0.0.1"
    internal_port: int = Field(8100, ge=1, le=65535)
    """The internal listener (always on): ``/api/`` with its metrics, ``/health``.
    Bind it where only trusted networks reach (loopback, the VPN address)."""
    internal_on_public: bool = True
    """The public listener (``port``, ``tls_port``) serves ``/api/`` too; false leaves
    it ``/external/``, the browser, ``/schemas/``, ``/assets/`` and ``/health``."""
    assets_root: Path | None = None
    """Folder whose regular files the proxy serves read-only at ``/assets/`` (the
    catalogue or shared drive ``--assets-base-url`` points into); unset = none."""
    read_auth: Literal["none", "basic"] = "none"
    """``basic``: nginx asks for a login (users file of ``eomatch-stack users``) on every
    read; a request with a valid write key skips it. ``/health`` and ``/_proxy/ping`` stay open."""


class BrowserSettings(_Section):
    """STAC Browser build and runtime config."""

    version: str = "4.0.1"
    title: str = "eomatch matchups"
    cache_dir: Path | None = None
    """Where builds are cached, keyed by version; default ``<repo>/.cache`` or state dir."""


class StackSettings(_Section):
    """The local stack: one folder holds all of its state."""

    state_dir: Path = Field(default_factory=default_state_dir)
    db: DatabaseSettings = Field(default_factory=DatabaseSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    proxy: ProxySettings = Field(default_factory=ProxySettings)
    browser: BrowserSettings = Field(default_factory=BrowserSettings)
    health_timeout_s: float = 60.0
    stale_after_s: float = 7 * 24 * 3600.0
    freshness_cache_s: float = 30.0
    """How long GET /health reuses the catalogue counts (they read every item; the
    component checks, including a database ping, run on every request)."""
    log_format: Literal["text", "json"] = "text"
    log_max_bytes: int = 10 * 1024 * 1024
    log_backups: int = 5
    public_url: str | None = None
    """``scheme://host[:port]`` users reach the public listener at: API links and the
    served schema URL use it, whatever Host a client sends. Unset = the proxy's own
    ``http://proxy.host:proxy.port`` (``https://proxy.host:tls_port`` over TLS)."""

    @model_validator(mode="before")
    @classmethod
    def _public_url_moved(cls, data: Any) -> Any:
        """``stack.proxy.public_url`` (eomatch < 0.2) is now ``stack.public_url``."""
        proxy = data.get("proxy") if isinstance(data, dict) else None
        if isinstance(proxy, dict) and "public_url" in proxy:
            proxy = dict(proxy)
            moved = proxy.pop("public_url")
            data = {**data, "proxy": proxy}
            if data.get("public_url") is None:
                data["public_url"] = moved
        return data

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from urllib.parse import urlsplit

        url = value.strip().rstrip("/")
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a URL: {exc}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query or parts.fragment:
            raise ValueError(f"{value!r} must be http(s)://host[:port] with no path (e.g. https://matchups.example.org)")
        return url
    restart_backoff_s: float = Field(0.5, gt=0)
    """The supervisor restarts a crashed API, browser or proxy after this long, doubling
    for each crash in a row (a service up for a minute starts again from this)."""
    restart_backoff_max_s: float = Field(30.0, gt=0)


class ServerSettings(_Section):
    """Limits both API apps enforce on each request before stac-fastapi parses it:
    one anonymous request must not hold the process, its memory or the database."""

    max_filter_depth: int = Field(20, ge=1, le=200)
    """Deepest CQL2 nesting accepted (parentheses, NOT, JSON objects); cql2 validation
    costs ~12 ms and ~10 MB per NOT level, so a deep filter is refused unparsed."""
    max_filter_chars: int = Field(20_000, ge=100)
    """Longest CQL2 filter (text, or cql2-json as serialized)."""
    max_page_size: int = Field(1000, ge=1, le=10_000)
    """Largest ``limit``: a bigger one is served as this (as the STAC API spec says)."""
    max_geometry_vertices: int = Field(10_000, ge=4)
    """Most positions in an ``intersects`` geometry."""
    max_query_bytes: int = Field(16 * 1024, ge=1024)
    """Longest query string (URL part after ``?``); the proxy's request line limit is
    this plus 4 KiB, so the app answers one just over it."""
    max_search_body_bytes: int = Field(1024 * 1024, ge=1024)
    """Largest ``POST .../search`` body (the proxy allows 1 MiB too)."""
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    """Largest body of any other request (item writes through ``/api/``; the proxy
    allows 16 MiB)."""
    statement_timeout_s: float = Field(30.0, ge=0)
    """Longest database statement of a read (searches, item and collection reads);
    0 = the role's own ``statement_timeout``. Writes are not limited here."""


class IngestSettings(_Section):
    """Target database of ``eomatch-ingest`` (the design's ``ingest.*`` keys).

    When none of ``db_host``/``db_user`` is set the local stack's ingest role is used.
    The password comes from ``PGPASSWORD`` (read at the entry point).
    """

    db_host: str | None = None
    db_port: int | None = None
    db_name: str | None = None
    db_user: str | None = None
    db_password: str | None = None
    batch_size: int = 2000
    assets_base_url: str | None = None
    partition_trunc: Literal["year", "month"] = "year"
    """pgSTAC partitions of the collections ingest creates (per year or month of ``datetime``)."""


class CatalogueSettings(_Section):
    """The local matchup catalogue (``matchup_catalogue.path``)."""

    path: Path | None = None
    title: str = "eomatch matchup catalogue"


class SatelliteSpec(_Section):
    """One satellite of the registry: one canonical name used everywhere."""

    name: str
    norad_id: int
    aliases: list[str] = Field(default_factory=list)
    swath_km: float
    instrument: str
    collections: list[str] = Field(default_factory=list)
    collection_token: str | None = None
    """How the satellite is spelled inside matchup collection ids (default: name)."""

    @property
    def token(self) -> str:
        return self.collection_token or self.name


class ProviderSpec(_Section):
    """Where products of one product collection are searched."""

    url: str
    """STAC API URL, or a path to a local static catalogue."""
    collection: str
    """The provider's own collection id."""
    platform_property: str = "platform"
    platform_values: dict[str, str] = Field(default_factory=dict)
    """Provider platform value -> canonical satellite name (case-insensitive)."""
    data_assets: list[str] = Field(default_factory=list)
    max_items: int = 500
    """Most products kept from one search (a warning says when a search hits it)."""
    page_size: int = Field(100, ge=1)
    """Items per page asked of a STAC API (pages are followed up to ``max_items``)."""


class DownloadSettings(_Section):
    """``eomatch-download``: where products go and how to authenticate."""

    products_root: Path | None = None
    parallel: int = Field(4, ge=1)
    chunk_bytes: int = 1024 * 1024
    bearer_token: str | None = None
    username: str | None = None
    password: str | None = None
    use_netrc: bool = True
    netrc_file: Path | None = None
    """The netrc file ``use_netrc`` reads; None: ``$NETRC``, else ``~/.netrc``."""
    s3_anonymous: bool = True
    s3_requester_pays: bool = False
    s3_endpoint_url: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    """S3 credentials (else the AWS default chain when ``s3_anonymous`` is false)."""
    retries: int = 3
    timeout_s: float = 60.0
    data_asset_keys: list[str] = Field(default_factory=list)
    """Asset keys to download; empty = every asset with role ``data`` (or no role) and a remote href."""


class QuerySettings(_Section):
    """``eomatch-query``: paging and retries against a STAC API."""

    page_size: int = Field(1000, ge=1)
    timeout_s: float = 60.0
    retries: int = 4
    backoff_s: float = 0.5
    ids_per_request: int = 100
    since_overlap_s: float = 300.0
    """``--since last`` re-fetches this much before the previous sync (clock skew)."""
    parallel: int = Field(4, ge=1)
    """Search windows (disjoint datetime slices of the search) fetched at the same time
    (``--parallel``); 1 = one paged search, as before. The items written are the same."""


class SiteSpec(_Section):
    """One calibration site of ``find.sites``: a disc (``lon``, ``lat``, ``radius_km``) or a
    GeoJSON ``geometry``; a bare name in the config is resolved from the packaged table
    (``eomatch/data/sites.yaml``, see :mod:`eomatch.sites`) into this form."""

    name: str = Field(min_length=1)
    lon: float | None = Field(None, ge=-180, le=180)
    lat: float | None = Field(None, ge=-90, le=90)
    radius_km: float | None = Field(None, ge=0)
    geometry: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _disc_or_area(self) -> SiteSpec:
        if self.geometry is not None:
            from shapely.geometry import shape

            try:
                area = shape(self.geometry)
            except Exception as exc:  # shapely raises several kinds for bad GeoJSON
                raise ValueError(f"site '{self.name}': geometry is not valid GeoJSON ({exc})") from None
            if area.is_empty or area.area <= 0:
                raise ValueError(f"site '{self.name}': geometry must be a polygon with an area")
            if self.lon is None or self.lat is None:
                c = area.centroid
                self.lon, self.lat = float(c.x), float(c.y)
            return self
        missing = [k for k in ("lon", "lat", "radius_km") if getattr(self, k) is None]
        if missing:
            raise ValueError(
                f"site '{self.name}' needs lon, lat and radius_km (or geometry); missing {', '.join(missing)}"
            )
        return self


def _site_entries(value: Any) -> Any:
    """``sites``: names (a list, or ``"Libya-4,Gobabeb"`` from a flag or variable) resolved from
    the packaged table; mappings are left to :class:`SiteSpec`."""
    from eomatch.sites import packaged_site

    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list):
        return value
    return [packaged_site(v) if isinstance(v, str) else v for v in value]


class FindSettings(_Section):
    """``eomatch-find``'s search (the design's run.yaml keys, under ``find:``); ``eomatch-query``
    and ``eomatch-simulate`` read the same filters."""

    platforms: list[str] = Field(default_factory=list)
    collections: list[str] = Field(default_factory=list)
    start_time: datetime | None = None
    end_time: datetime | None = None
    min_lat: float | None = Field(None, ge=-90, le=90)
    max_lat: float | None = Field(None, ge=-90, le=90)
    min_lon: float | None = Field(None, ge=-180, le=180)
    max_lon: float | None = Field(None, ge=-180, le=180)
    space_diff_threshold: float = Field(100.0, gt=0)
    """km between ground tracks (nadir or swath edges)."""
    time_diff_threshold: float = Field(1800.0, gt=0)
    """s between overpasses."""
    use_swath: bool = False
    exclude_night_events: bool = False
    min_solar_elevation_deg: float = 0.0
    exclude_antimeridian_events: bool = False
    min_overlap_km2: float = Field(0.0, ge=0)
    min_overlap_fraction: float = Field(0.0, ge=0, le=1)
    max_cloud_cover: float | None = Field(None, ge=0, le=100)
    """Percent: a matchup whose product's ``eo:cloud_cover`` exceeds it is not written
    (products without cloud cover are kept); None = no limit."""
    pairs: list[list[str]] = Field(default_factory=list)
    """Platform pairs to search (each two names); empty = every pair of ``platforms``."""
    search_margin_s: float = 120.0
    """Product searches widen each platform's event window by this much on both sides."""
    keep_empty_events: bool = False
    """Also write events in which no matchup was found (``--events-only`` always writes them)."""
    full_regions: bool = False
    """Keep every vertex of event regions (``--full-regions``); by default each is compacted
    to at most 64 coordinates, within 1 km or the least doubling of it that allows that (:func:`eomatch.orbits.region.compact_region`)."""
    orbit_workers: int = Field(2, ge=1)
    """Processes sharing the platform pairs of the crossover search (1 = in the command's own
    process); the events and their order do not depend on it. 2 helps when the cores are
    free (2022, six satellites: 55 s of wall for 106 s of CPU with 2), not on a busy machine."""
    quicklooks: bool = True
    """Draw a ``thumbnail`` PNG (``{id}.png`` beside ``{id}.json``) for every matchup and
    event written (:mod:`eomatch.quicklook`); false (``--no-quicklooks``) for bulk runs."""
    sites: list[SiteSpec] = Field(default_factory=list)
    """Calibration sites: with any, only events in which both satellites pass over a site in
    daylight are kept (``eomatch.orbits.site_passes``); names come from the packaged table."""

    @field_validator("sites", mode="before")
    @classmethod
    def _resolve_sites(cls, value: Any) -> Any:
        return _site_entries(value)

    @field_validator("sites", mode="after")
    @classmethod
    def _unique_site_names(cls, value: list[SiteSpec]) -> list[SiteSpec]:
        seen: set[str] = set()
        for site in value:
            if site.name.casefold() in seen:
                raise ValueError(f"site '{site.name}' is given twice (events and matchups name their sites)")
            seen.add(site.name.casefold())
        return value

    @field_validator("platforms", "collections", mode="before")
    @classmethod
    def _split_csv(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("start_time", "end_time", mode="before")
    @classmethod
    def _whole_days(cls, value: Any, info: Any) -> Any:
        """A date alone (``end_time: 2022-12-31``, a flag or ``EOMATCH_END_TIME``) is
        the whole UTC day: an end keeps everything up to its last microsecond."""
        from eomatch.times import date_only, parse_time_bound

        if date_only(value) is not None:
            return parse_time_bound(value, end=info.field_name == "end_time")
        return value

    @field_validator("start_time", "end_time", mode="after")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        """Naive times are UTC; all of them aware, so any two compare."""
        from eomatch.times import to_utc

        return None if value is None else to_utc(value)

    @model_validator(mode="after")
    def _check_times(self) -> FindSettings:
        if self.start_time and self.end_time and self.end_time <= self.start_time:
            raise ValueError("end_time must be after start_time")
        if self.min_lat is not None and self.max_lat is not None and self.min_lat > self.max_lat:
            raise ValueError(f"min_lat ({self.min_lat}) is north of max_lat ({self.max_lat})")
        return self


def default_satellites() -> list[SatelliteSpec]:
    """The packaged platform registry (what ``satellites:`` holds when the config does not set it)."""
    return [
        SatelliteSpec(name="Sentinel-2A", collection_token="S2A", norad_id=40697, aliases=["S2A", "SENTINEL-2A", "SENTINEL2A", "sentinel-2a"], swath_km=290, instrument="MSI", collections=["S2_MSI_L1C"]),
        SatelliteSpec(name="Sentinel-2B", collection_token="S2B", norad_id=42063, aliases=["S2B", "SENTINEL-2B", "SENTINEL2B", "sentinel-2b"], swath_km=290, instrument="MSI", collections=["S2_MSI_L1C"]),
        SatelliteSpec(name="Landsat-8", norad_id=39084, aliases=["LS8", "L8", "LANDSAT_8", "LANDSAT-8", "landsat-8"], swath_km=185, instrument="OLI", collections=["LANDSAT_C2L1"]),
        SatelliteSpec(name="Landsat-9", norad_id=49260, aliases=["LS9", "L9", "LANDSAT_9", "LANDSAT-9", "landsat-9"], swath_km=185, instrument="OLI-2", collections=["LANDSAT_C2L1"]),
        SatelliteSpec(name="Sentinel-3A", collection_token="S3A", norad_id=41335, aliases=["S3A", "SENTINEL-3A", "sentinel-3a"], swath_km=1270, instrument="OLCI", collections=["S3_OLCI_L1B"]),
        SatelliteSpec(name="Sentinel-3B", collection_token="S3B", norad_id=43437, aliases=["S3B", "SENTINEL-3B", "sentinel-3b"], swath_km=1270, instrument="OLCI", collections=["S3_OLCI_L1B"]),
    ]


def default_providers() -> dict[str, ProviderSpec]:
    """The packaged providers (what ``providers:`` entries are merged over)."""
    return {
        "S2_MSI_L1C": ProviderSpec(
            url="https://earth-search.aws.element84.com/v1",
            collection="sentinel-2-l1c",
            platform_values={"sentinel-2a": "Sentinel-2A", "sentinel-2b": "Sentinel-2B"},
            data_assets=["blue", "green", "red", "nir"],
        ),
        "LANDSAT_C2L1": ProviderSpec(
            url="https://landsatlook.usgs.gov/stac-server",
            collection="landsat-c2l1",
            platform_values={"landsat_8": "Landsat-8", "landsat_9": "Landsat-9"},
            data_assets=["blue", "green", "red", "nir08"],
        ),
        "S3_OLCI_L1B": ProviderSpec(
            url="https://stac.dataspace.copernicus.eu/v1",
            collection="sentinel-3-olci-1-efr-ntc",
            platform_values={"sentinel-3a": "Sentinel-3A", "sentinel-3b": "Sentinel-3B"},
            data_assets=["product"],
        ),
    }


_default_satellites = default_satellites  # the old names, for existing callers
_default_providers = default_providers


class Settings(BaseSettings):
    """Everything eomatch reads; one instance per process, passed down."""

    model_config = SettingsConfigDict(
        env_prefix="EOMATCH_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    # --- eomatch-find's registries and orbit data (shared with eomatch-tle, -simulate, -query) ---
    tle_paths: list[Path] = Field(default_factory=list)
    tle_max_age_days: float = 3.0
    tle_cache_dir: Path | None = None
    celestrak_url: str = "https://celestrak.org/NORAD/elements/gp.php"
    satellites: list[SatelliteSpec] = Field(default_factory=default_satellites)
    providers: dict[str, ProviderSpec] = Field(default_factory=default_providers)
    provider_retries: int = 3
    """Retries of one provider request (HTTP 429/5xx, connection errors) before the event fails."""
    provider_backoff_s: float = 0.5
    provider_timeout_s: float = 60.0

    # --- writes through the internal API (eomatch-add-asset --push --api-url) ---
    api_key: SecretStr | None = Field(None, exclude=True)
    """Write key (``EOMATCH_API_KEY``); never in dumps (the stack's settings file) or reprs."""
    api_key_file: Path | None = None
    """File holding the write key (``EOMATCH_API_KEY_FILE``, ``--api-key-file``); wins over ``api_key``."""

    # --- sections ---
    find: FindSettings = Field(default_factory=FindSettings)
    matchup_catalogue: CatalogueSettings = Field(default_factory=CatalogueSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    download: DownloadSettings = Field(default_factory=DownloadSettings)
    query: QuerySettings = Field(default_factory=QuerySettings)
    stack: StackSettings = Field(default_factory=StackSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)

    config_file: Path | None = Field(default=None, exclude=True)
    deprecations: list[str] = Field(default_factory=list, exclude=True)
    """One line per deprecated key :func:`load_settings` moved (the commands log them
    once their log format is set up)."""

    @field_validator("providers", mode="before")
    @classmethod
    def _over_default_providers(cls, value: Any) -> Any:
        """A ``providers:`` block changes the default table rather than replacing it:
        ``S2_MSI_L1C: {url: /mirror}`` keeps the rest of that entry, new keys add
        collections, and ``KEY: null`` removes one."""
        if not isinstance(value, dict):
            return value
        merged: dict[str, Any] = {k: v.model_dump() for k, v in default_providers().items()}
        for given, entry in value.items():
            # EOMATCH_PROVIDERS__LANDSAT_C2L1__URL arrives lower-cased: find its entry.
            same = [k for k in merged if k.lower() == str(given).lower()]
            key = given if given in merged or not same else same[0]
            if entry is None:
                merged.pop(key, None)
                continue
            if isinstance(entry, BaseModel):
                entry = entry.model_dump()
            base = merged.get(key)
            merged[key] = _deep_merge(base, entry) if isinstance(base, dict) and isinstance(entry, dict) else entry
        return merged

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config_data = _CONFIG_DATA.get()
        environ = _ENVIRON.get()
        if environ is not None:
            env_settings = _MappingEnvSource(settings_cls, environ)
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if config_data is not None:
            sources.append(InitSettingsSource(settings_cls, init_kwargs=config_data))
        return tuple(sources)

    @model_validator(mode="before")
    @classmethod
    def _flat_find_keys(cls, data: Any) -> Any:
        """``Settings(start_time=...)`` built in Python (earlier versions had the find keys at
        the top level): moved under ``find``; :func:`load_settings` warns about each source."""
        if isinstance(data, dict) and FIND_KEYS.intersection(data):
            data, _ = move_flat_find_keys(data, "the settings", "find")
        return data


def _flat_find_reader(key: str) -> property:
    """``settings.start_time`` read as ``settings.find.start_time``: Python callers of
    earlier versions keep reading the find keys where they were (read-only)."""

    def read(self: Settings) -> Any:
        return getattr(self.find, key)

    read.__doc__ = f"Deprecated: ``settings.find.{key}``."
    return property(read)


for _key in FindSettings.model_fields:
    setattr(Settings, _key, _flat_find_reader(_key))


class _MappingEnvSource(EnvSettingsSource):
    """``EOMATCH_*`` variables from a given mapping instead of the process environment."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = dict(environ)
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


# What load_settings hands to settings_customise_sources (a classmethod); context
# variables keep concurrent loads (threads, async tasks) apart.
_CONFIG_DATA: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("eomatch_config_data", default=None)

FIND_KEYS: frozenset[str] = frozenset(FindSettings.model_fields)
"""Keys of the ``find:`` section, which earlier versions read at the top level."""


def move_flat_find_keys(data: dict[str, Any], where: str, nested: str) -> tuple[dict[str, Any], list[str]]:
    """``data`` with its top-level find keys moved under ``find``, and one deprecation
    note per key moved. A key given both ways is a :class:`ConfigError` naming it
    (``where``: the source, e.g. ``run.yaml``; ``nested``: how the source spells the section)."""
    flat = [k for k in data if k in FIND_KEYS]
    if not flat:
        return data, []
    section = data.get("find")
    if isinstance(section, BaseModel):
        section = section.model_dump(exclude_unset=True)
    if section is not None and not isinstance(section, dict):
        return data, []  # 'find: 3' is refused by validation, naming 'find'
    section = dict(section or {})
    out = {k: v for k, v in data.items() if k not in FIND_KEYS}
    notes = []
    for key in flat:
        if key in section:
            raise ConfigError(f"'{key}' is given both at the top level and under '{nested}' of {where}; keep only the one under '{nested}'")
        section[key] = data[key]
        notes.append(f"'{key}' at the top level of {where} is deprecated; put it under '{nested}'")
    out["find"] = section
    return out, notes


def _move_flat_find_env(environ: Mapping[str, str]) -> tuple[dict[str, str] | None, list[str]]:
    """``EOMATCH_START_TIME`` (earlier versions) as ``EOMATCH_FIND__START_TIME``, with a
    note each; None when no such variable is set (the environment is read as it is)."""
    renamed: dict[str, str] = {}
    notes: list[str] = []
    upper = {k.upper() for k in environ}
    for name in environ:
        key = name.upper().removeprefix("EOMATCH_").lower() if name.upper().startswith("EOMATCH_") else None
        if key not in FIND_KEYS:
            continue
        new = f"EOMATCH_FIND__{key.upper()}"
        if new in upper:
            raise ConfigError(f"{name.upper()} and {new} are both set; keep only {new}")
        renamed[name] = new
        notes.append(f"{name.upper()} is deprecated; use {new}")
    if not renamed:
        return None, []
    return {renamed.get(k, k): v for k, v in environ.items()}, notes
_ENVIRON: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar("eomatch_environ", default=None)


def _drop_none(overrides: dict[str, Any]) -> dict[str, Any]:
    """CLI flags that were not given arrive as None; they must not mask lower sources."""
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        if isinstance(value, dict):
            nested = _drop_none(value)
            if nested:
                out[key] = nested
        elif value is not None:
            out[key] = value
    return out


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def api_key_variable(environ: Mapping[str, str] | None = None) -> str | None:
    """``EOMATCH_API_KEY``, for Python callers whose settings were loaded without the
    environment (``environ={}``): they find the write key where the commands do."""
    return (os.environ if environ is None else environ).get("EOMATCH_API_KEY") or None


def default_netrc_file(environ: Mapping[str, str] | None = None) -> Path:
    """``$NETRC`` (as curl and requests read it), else ``~/.netrc``."""
    value = (os.environ if environ is None else environ).get("NETRC")
    return Path(value).expanduser() if value else Path.home() / ".netrc"


@dataclass(frozen=True)
class ServiceEnvironment:
    """What an API process finds in its environment besides its settings file
    (``EOMATCH_CONFIG``, read by :func:`load_settings`): the log file the stack names
    for it, and the database role Compose gives it with libpq's variables."""

    log_file: Path | None
    """``EOMATCH_LOG_FILE``."""
    pg: dict[str, str]
    """``PGHOST``, ``PGPORT``, ``PGDATABASE``, ``PGUSER``, ``PGPASSWORD``: those set."""


def service_environment(environ: Mapping[str, str] | None = None) -> ServiceEnvironment:
    """Read :class:`ServiceEnvironment` (the APIs' entry points call this once)."""
    env = os.environ if environ is None else environ
    log_file = env.get("EOMATCH_LOG_FILE")
    pg = {k: env[k] for k in ("PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD") if env.get(k)}
    return ServiceEnvironment(Path(log_file) if log_file else None, pg)


def pgpassword(environ: Mapping[str, str] | None = None) -> str | None:
    """``PGPASSWORD``, libpq's variable: the ``ingest.db_password`` the entry points pass on
    (read here, like every other variable, so nothing else reads the environment)."""
    return (os.environ if environ is None else environ).get("PGPASSWORD")


def load_settings(
    config: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
    warn: bool = True,
) -> Settings:
    """Read settings once: YAML file, then ``EOMATCH_*`` env, then ``overrides``.

    ``environ`` replaces the process environment (``EOMATCH_CONFIG`` and every
    ``EOMATCH_*`` variable) when given, e.g. ``{}`` for the defaults only.

    ``overrides`` is a nested dict of CLI flags (``None`` values are ignored).
    Nested sections given as overrides are merged into the lower sources rather
    than replacing them. Errors become a one-line :class:`ConfigError`.

    Find keys at the top level (earlier versions) of any source are moved under ``find``,
    each with a deprecation warning (logged unless ``warn`` is false; always in
    ``settings.deprecations``); a key given both ways in one source is an error.
    """
    env = os.environ if environ is None else environ
    if config is None and env.get("EOMATCH_CONFIG"):
        config = env["EOMATCH_CONFIG"]
    path = Path(config).expanduser() if config is not None else None
    if path is not None and not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    if path is not None:
        try:
            top = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read config {path}: {' '.join(str(exc).split())}") from None
        if top is not None and not isinstance(top, dict):
            raise ConfigError(f"config {path} must be a mapping of keys (e.g. 'platforms: [...]'), not a {type(top).__name__}")
    notes: list[str] = []
    if path is not None and top:
        top, moved = move_flat_find_keys(top, path.name, "find:")
        notes += moved
    env_moved, moved = _move_flat_find_env(env)
    notes += moved
    clean, moved = move_flat_find_keys(_drop_none(overrides or {}), "the overrides", "find")
    notes += moved
    path_token = _CONFIG_DATA.set(top if path is not None else None)
    env_token = _ENVIRON.set(environ if env_moved is None else env_moved)
    try:
        base = Settings()  # type: ignore[call-arg]
        if clean:
            merged = _deep_merge(base.model_dump(exclude={"config_file", "deprecations"}), clean)
            settings = Settings.model_validate(merged)
            if "api_key" not in clean:  # excluded from dumps, so carried over by hand
                settings.api_key = base.api_key
        else:
            settings = base
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, path)) from None
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read config {path}: {' '.join(str(exc).split())}") from None
    finally:
        _CONFIG_DATA.reset(path_token)
        _ENVIRON.reset(env_token)
    settings.config_file = path
    settings.deprecations = notes
    if warn:
        for note in notes:
            logging.getLogger(__name__).warning(note)
    return settings


def _one_line(exc: ValidationError, path: Path | None) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "(root)"
    where = f" in {path}" if path else ""
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"invalid setting '{loc}'{where}: {err['msg']}{more}"
