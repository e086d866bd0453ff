"""Product search on provider catalogues: STAC APIs (pystac-client) or local static catalogues.

One :class:`ProviderSpec` per product collection says where its products live
(a STAC API URL or a static catalogue path), the provider's own collection id,
how to read the platform from an item and which assets are data. A search
returns provider items as plain dicts, normalised for the matchup catalogue:
``collection`` is our product collection id, ``properties.platform`` the
registry's canonical name (the provider's spelling is kept in
``eomatch:provider_platform``), data assets carry the ``data`` role, and
relative asset hrefs of static catalogues are made absolute.

Static catalogues are walked once per run by following their links (no pystac
object graph); the walk keeps a compact array index of bbox and time, so each
search reads only the item files that may match.

HTTP requests to STAC APIs follow eomatch's one retry policy
(:func:`eomatch.http.retry_policy`, ``provider_retries`` and ``provider_backoff_s``);
a search that still fails raises :class:`ProviderError` and is not retried again
as a whole. Static catalogues are local files: nothing is retried.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import orjson
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from eomatch.errors import ConfigError, EomatchError, network_reason
from eomatch.hrefs import file_uri_path
from eomatch.http import retry_policy
from eomatch.items import CLOUD_COVER, cloud_cover_pct
from eomatch.model import MatchupError, format_datetime, geojson, item_times, normalize_geometry
from eomatch.settings import ProviderSpec, SatelliteSpec, Settings

log = logging.getLogger(__name__)


class ProviderError(EomatchError):
    """A provider could not be reached or failed to answer a search."""


def is_api_url(url: str) -> bool:
    return urlparse(url).scheme in ("http", "https")


@dataclass
class ProviderStats:
    """What one provider did during a run (for summaries and tests)."""

    searches: int = 0
    items_seen: int = 0
    items_kept: int = 0
    unreadable: list[str] = field(default_factory=list)


class _PlatformReader:
    """Provider platform value -> canonical satellite name (case-insensitive)."""

    def __init__(self, spec: ProviderSpec, satellites: Sequence[SatelliteSpec]) -> None:
        self.prop = spec.platform_property
        self.values = {k.casefold(): v for k, v in spec.platform_values.items()}
        self.names: dict[str, str] = {}
        for sat in satellites:
            for alias in (sat.name, *sat.aliases):
                self.names.setdefault(alias.casefold(), sat.name)
        for value, canonical in list(self.values.items()):
            self.values[value] = self.names.get(canonical.casefold(), canonical)

    def canonical(self, item: Mapping[str, Any]) -> str | None:
        raw = (item.get("properties") or {}).get(self.prop)
        if raw is None:
            return None
        key = str(raw).strip().casefold()
        return self.values.get(key) or self.names.get(key)

    def provider_values(self, canonical: str) -> list[str]:
        """Provider spellings of one platform (for a server-side ``query`` filter)."""
        return [k for k, v in self.values.items() if v == canonical]


class Provider:
    """Search one product collection of one provider; subclasses do the transport."""

    def __init__(self, collection_id: str, spec: ProviderSpec, satellites: Sequence[SatelliteSpec]) -> None:
        self.collection_id = collection_id
        self.spec = spec
        self.platforms = _PlatformReader(spec, satellites)
        self.stats = ProviderStats()

    @property
    def url(self) -> str:
        return self.spec.url

    def _raw_search(self, geometry: BaseGeometry, start: datetime, end: datetime) -> Iterator[dict[str, Any]]:
        raise NotImplementedError

    def search(
        self, geometry: BaseGeometry, start: datetime, end: datetime, platform: str
    ) -> list[dict[str, Any]]:
        """Items of ``platform`` (canonical name) whose footprint meets ``geometry`` in [start, end].

        Raises :class:`ProviderError` naming the provider when the search fails.
        """
        self.stats.searches += 1
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        try:
            for item in self._raw_search(geometry, start, end):
                self.stats.items_seen += 1
                if self.platforms.canonical(item) != platform or item.get("id") in seen:
                    continue
                seen.add(str(item.get("id")))
                out.append(self._normalise(item, platform))
                if len(out) >= self.spec.max_items:
                    log.warning(
                        "%s: search hit max_items=%d for %s; later products are not used",
                        self.url, self.spec.max_items, self.collection_id,
                    )
                    break
        except ProviderError:
            raise
        except Exception as exc:  # requests, pystac-client, OS and JSON errors alike
            raise ProviderError(
                f"provider {self.url} (collection {self.spec.collection}) failed: {network_reason(exc)}"
            ) from None
        self.stats.items_kept += len(out)
        return out

    def _normalise(self, item: dict[str, Any], platform: str) -> dict[str, Any]:
        props = item.setdefault("properties", {})
        raw = props.get(self.platforms.prop)
        if raw is not None and str(raw) != platform:
            props["eomatch:provider_platform"] = raw
        props["platform"] = platform
        _normalise_cloud_cover(props)
        if item.get("collection") and item["collection"] != self.collection_id:
            props["eomatch:provider_collection"] = item["collection"]
        item["collection"] = self.collection_id
        for key, asset in (item.get("assets") or {}).items():
            if key in self.spec.data_assets and isinstance(asset, dict):
                roles = list(asset.get("roles") or [])
                if "data" not in roles:
                    asset["roles"] = [*roles, "data"]
        item["links"] = [
            lk for lk in item.get("links") or [] if lk.get("rel") not in ("self", "root", "parent", "collection")
        ]
        return item

    def close(self) -> None:
        """Release connections (nothing to do for static catalogues)."""


# --------------------------------------------------------------------------- STAC APIs


class ApiProvider(Provider):
    """A STAC API searched with pystac-client: POST /search, paged, with the HTTP retry policy."""

    def __init__(
        self,
        collection_id: str,
        spec: ProviderSpec,
        satellites: Sequence[SatelliteSpec],
        retries: int = 3,
        backoff_s: float = 0.5,
        timeout_s: float = 60.0,
    ) -> None:
        super().__init__(collection_id, spec, satellites)
        from pystac_client import Client
        from pystac_client.stac_api_io import StacApiIO

        self._io = StacApiIO(max_retries=retry_policy(retries, backoff_s), timeout=timeout_s)
        try:
            self.client = Client.open(spec.url, stac_io=self._io)
        except Exception as exc:
            raise ProviderError(f"cannot reach provider {spec.url} for {collection_id}: {network_reason(exc)}") from None

    def _raw_search(self, geometry: BaseGeometry, start: datetime, end: datetime) -> Iterator[dict[str, Any]]:
        search = self.client.search(
            collections=[self.spec.collection],
            intersects=geojson(geometry),
            datetime=[format_datetime(start), format_datetime(end)],
            limit=max(1, min(self.spec.page_size, self.spec.max_items)),
            max_items=None,
        )
        yield from search.items_as_dicts()

    def close(self) -> None:
        session = getattr(self._io, "session", None)
        if session is not None:
            session.close()


# --------------------------------------------------------------------------- static catalogues


def _normalise_cloud_cover(props: dict[str, Any]) -> None:
    """Keep the provider's ``eo:cloud_cover`` as a number (some APIs send ``"12.5"``);
    a value that is no percentage is moved to ``eomatch:provider_cloud_cover`` so that
    the item stays valid and the matchup's ``matchup:max_cloud_cover`` is left unknown."""
    if CLOUD_COVER not in props:
        return
    raw = props[CLOUD_COVER]
    value: Any = raw
    if isinstance(raw, str):
        try:
            value = float(raw)
        except ValueError:
            value = None
    pct = cloud_cover_pct(value)
    if pct is None:
        props.pop(CLOUD_COVER)
        props["eomatch:provider_cloud_cover"] = raw
    else:
        props[CLOUD_COVER] = pct


def _local_path(url: str) -> Path:
    if url.startswith("file://"):
        return Path(file_uri_path(url))
    return Path(url).expanduser()


def _read(path: Path) -> Any:
    return orjson.loads(path.read_bytes())


def _href_path(base_file: Path, href: str) -> Path | None:
    """A link's target as a local path (None for remote hrefs)."""
    if "://" in href:
        if href.startswith("file://"):
            return Path(file_uri_path(href))
        return None
    return Path(os.path.normpath(base_file.parent / href)) if not os.path.isabs(href) else Path(href)


class StaticProvider(Provider):
    """A static STAC catalogue on disk: catalog.json -> child collections -> items.

    The collection's items are indexed once (bbox and time in arrays) by a
    streaming walk of its ``item`` and ``child`` links; searches filter the
    arrays, then read and test only the candidate files.
    """

    def __init__(self, collection_id: str, spec: ProviderSpec, satellites: Sequence[SatelliteSpec]) -> None:
        super().__init__(collection_id, spec, satellites)
        root = _local_path(spec.url)
        if root.is_dir():
            root = root / "catalog.json"
        if not root.is_file():
            raise ConfigError(f"provider {spec.url} for {collection_id}: no STAC catalogue at {root}")
        try:
            self.collection_file = self._find_collection(root)
        except (OSError, orjson.JSONDecodeError) as exc:
            raise ProviderError(f"cannot read provider catalogue {root}: {network_reason(exc)}") from None
        if self.collection_file is None:
            raise ConfigError(
                f"provider {spec.url} for {collection_id}: no collection '{spec.collection}' in {root}"
            )
        self._paths: list[Path] = []
        self._boxes = np.empty((0, 4))
        self._times = np.empty((0, 2))
        self._indexed = False

    def _find_collection(self, root: Path) -> Path | None:
        stack, seen = [root], set()
        while stack:
            path = stack.pop()
            if path in seen or not path.is_file():
                continue
            seen.add(path)
            doc = _read(path)
            if doc.get("type") == "Collection" and doc.get("id") == self.spec.collection:
                return path
            for link in doc.get("links") or []:
                if link.get("rel") == "child":
                    target = _href_path(path, str(link.get("href", "")))
                    if target is not None:
                        stack.append(target)
        return None

    def _index(self) -> None:
        """Walk the collection once; unreadable items are counted and skipped (with a warning)."""
        paths: list[Path] = []
        boxes: list[list[float]] = []
        times: list[tuple[float, float]] = []
        stack, seen = [self.collection_file], set()
        while stack:
            parent = stack.pop()
            if parent in seen:
                continue
            seen.add(parent)
            doc = _read(parent)
            for link in doc.get("links") or []:
                rel = link.get("rel")
                if rel not in ("item", "child"):
                    continue
                target = _href_path(parent, str(link.get("href", "")))
                if target is None:
                    continue
                if rel == "child":
                    stack.append(target)
                    continue
                try:
                    item = _read(target)
                    _, start, end = item_times(item)
                    bbox = item.get("bbox") or list(shape(item["geometry"]).bounds)
                except (OSError, orjson.JSONDecodeError, MatchupError, KeyError, TypeError, ValueError) as exc:
                    self.stats.unreadable.append(f"{target}: {network_reason(exc)}")
                    continue
                half = len(bbox) // 2
                paths.append(target)
                boxes.append([bbox[0], bbox[1], bbox[half], bbox[half + 1]])
                times.append((start.timestamp(), end.timestamp()))
        if self.stats.unreadable:
            log.warning(
                "%s: %d unreadable items skipped (first: %s)",
                self.url, len(self.stats.unreadable), self.stats.unreadable[0],
            )
        self._paths = paths
        self._boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        self._times = np.asarray(times, dtype=np.float64).reshape(-1, 2)
        self._indexed = True

    @property
    def size(self) -> int:
        if not self._indexed:
            self._index()
        return len(self._paths)

    def _raw_search(self, geometry: BaseGeometry, start: datetime, end: datetime) -> Iterator[dict[str, Any]]:
        if not self._indexed:
            self._index()
        geom = normalize_geometry(geometry)
        if geom.is_empty or not self._paths:
            return
        t0, t1 = start.timestamp(), end.timestamp()
        ok = (self._times[:, 1] >= t0) & (self._times[:, 0] <= t1)
        w, s, e, n = geom.bounds
        b = self._boxes
        lat_ok = (b[:, 1] <= n) & (b[:, 3] >= s)
        # Boxes crossing the antimeridian (west > east) always pass the longitude test.
        lon_ok = (b[:, 0] > b[:, 2]) | ((b[:, 0] <= e) & (b[:, 2] >= w))
        for i in np.flatnonzero(ok & lat_ok & lon_ok).tolist():
            path = self._paths[i]
            item = _read(path)
            if not normalize_geometry(item["geometry"]).intersects(geom):
                continue
            for asset in (item.get("assets") or {}).values():
                href = asset.get("href") if isinstance(asset, dict) else None
                if isinstance(href, str) and "://" not in href and not os.path.isabs(href):
                    asset["href"] = os.path.normpath(path.parent / href)
            yield item


# --------------------------------------------------------------------------- registry


def open_provider(collection_id: str, settings: Settings) -> Provider:
    """The provider of one product collection, from the settings' registry.

    Errors name the registry key or the URL: an unknown collection, a missing
    static catalogue, or an API that cannot be reached.
    """
    spec = settings.providers.get(collection_id)
    if spec is None:
        known = ", ".join(sorted(settings.providers)) or "(none)"
        raise ConfigError(f"no provider for collection '{collection_id}' (providers.{collection_id}); known: {known}")
    if is_api_url(spec.url):
        return ApiProvider(
            collection_id,
            spec,
            settings.satellites,
            retries=settings.provider_retries,
            backoff_s=settings.provider_backoff_s,
            timeout_s=settings.provider_timeout_s,
        )
    return StaticProvider(collection_id, spec, settings.satellites)
