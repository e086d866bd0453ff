"""Shared helpers of the serving-stack tests: STAC documents, writes through ``/api/``
with a named key, bulk loads with pypgstac, and offline STAC schemas.

Everything here talks to the real stack started by the ``running_stack`` fixture.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import uuid
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import httpx

from eomatch.stack.keys import add_key

if TYPE_CHECKING:
    from eomatch.stack.db import DbCredentials

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_key_lock = threading.Lock()
_keys: dict[tuple[str, str], str] = {}


# --- documents -----------------------------------------------------------------


def make_collection(
    collection_id: str,
    title: str | None = None,
    assets: dict[str, Any] | None = None,
    bbox: list[float] | None = None,
    stac_version: str = "1.1.0",
) -> dict[str, Any]:
    """A minimal valid STAC Collection (1.1.0: its schemas ship with pystac)."""
    doc: dict[str, Any] = {
        "type": "Collection",
        "id": collection_id,
        "stac_version": stac_version,
        "description": f"test collection {collection_id}",
        "license": "CC-BY-4.0",
        "extent": {
            "spatial": {"bbox": [bbox or [-180.0, -90.0, 180.0, 90.0]]},
            "temporal": {"interval": [["2022-01-01T00:00:00Z", None]]},
        },
        "links": [],
    }
    if title is not None:
        doc["title"] = title
    if assets is not None:
        doc["assets"] = assets
    return doc


def make_item(
    collection_id: str,
    item_id: str,
    lon_deg: float,
    lat_deg: float,
    size_deg: float = 0.1,
    assets: dict[str, Any] | None = None,
    datetime_utc: str = "2022-06-01T10:00:00Z",
    stac_version: str = "1.1.0",
    properties: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A square Polygon item of ``size_deg`` whose south-west corner is (lon, lat)."""
    w, s, e, n = lon_deg, lat_deg, lon_deg + size_deg, lat_deg + size_deg
    props: dict[str, Any] = {"datetime": datetime_utc}
    props.update(properties or {})
    return {
        "type": "Feature",
        "stac_version": stac_version,
        "id": item_id,
        "collection": collection_id,
        "geometry": {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]},
        "bbox": [w, s, e, n],
        "properties": props,
        "assets": assets if assets is not None else {},
        "links": [],
    }


def unique_id(prefix: str) -> str:
    """Collection/item ids that never collide between tests sharing one stack."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def derive_settings(settings: Any, stack: dict[str, Any]) -> Any:
    """A copy of ``settings`` with ``stack`` merged into its ``stack`` section.

    A second proxy (a new ``proxy.port``) also gets a free internal listener port
    unless one is given, so it never collides with the session stack's.
    """
    from eomatch.settings import Settings
    from eomatch.stack.process import free_port

    proxy = stack.get("proxy")
    if isinstance(proxy, dict) and "port" in proxy and "internal_port" not in proxy:
        stack = {**stack, "proxy": {**proxy, "internal_port": free_port()}}

    if "state_dir" in stack and "socket_dir" not in stack.get("api", {}):
        # A second proxy with a folder of its own still fronts these settings' APIs.
        from eomatch.stack.state import api_socket_dir

        stack = {**stack, "api": {**stack.get("api", {}), "socket_dir": str(api_socket_dir(settings))}}

    def merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
        out = dict(base)
        for key, value in top.items():
            out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        return out

    data = settings.model_dump(mode="json", exclude={"config_file"})
    data["stack"] = merge(data["stack"], stack)
    return Settings.model_validate(data)


# --- writes --------------------------------------------------------------------


def api_key(stack: Any, name: str = "tests") -> str:
    """A write key on ``stack`` (one per stack and name in this process; proxy reloaded).

    The key's name gets a random suffix so a re-used state folder never clashes.
    """
    from eomatch.stack.proxy import Proxy

    cache_key = (str(stack.settings.stack.state_dir), name)
    with _key_lock:
        if cache_key not in _keys:
            _keys[cache_key] = add_key(stack.paths, unique_id(name))
            Proxy(stack.settings).reload()
        return _keys[cache_key]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class Writer:
    """Creates or replaces collections and items through the internal API with a key."""

    def __init__(self, stack: Any, key: str | None = None) -> None:
        self.base = stack.internal
        self.client = httpx.Client(headers=bearer(key or api_key(stack)), timeout=30)

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def collection(self, doc: dict[str, Any]) -> dict[str, Any]:
        r = self.client.post(f"{self.base}/collections", json=doc)
        if r.status_code == 409:
            r = self.client.put(f"{self.base}/collections/{doc['id']}", json=doc)
        _check(r)
        return dict(r.json())

    def item(self, doc: dict[str, Any]) -> dict[str, Any]:
        cid = doc["collection"]
        r = self.client.post(f"{self.base}/collections/{cid}/items", json=doc)
        if r.status_code == 409:
            r = self.client.put(f"{self.base}/collections/{cid}/items/{doc['id']}", json=doc)
        _check(r)
        return dict(r.json())

    def items(self, collection_id: str, docs: list[dict[str, Any]]) -> None:
        """Bulk create (an ItemCollection POST), for more than a handful of items."""
        fc = {"type": "FeatureCollection", "features": docs}
        _check(self.client.post(f"{self.base}/collections/{collection_id}/items", json=fc))


@contextlib.contextmanager
def written_collection(stack: Any, collection: dict[str, Any], items: Iterable[dict[str, Any]] = ()) -> Iterator[None]:
    """``collection`` and ``items`` written through the internal API for the block, then
    the collection deleted with its items (module fixtures of the session stack)."""
    with Writer(stack) as w:
        w.collection(collection)
        for item in items:
            w.item(item)
    try:
        yield
    finally:
        with Writer(stack) as w:
            w.client.delete(f"{stack.internal}/collections/{collection['id']}")


def _check(r: httpx.Response) -> None:
    if r.status_code >= 300:
        raise AssertionError(f"{r.request.method} {r.request.url} -> {r.status_code}: {r.text[:300]}")


def load_with_pypgstac(
    dsn: str, collections: Iterable[dict[str, Any]], items: Iterable[dict[str, Any]]
) -> None:
    """Upsert collections and items straight into pgSTAC (the ingest role's path)."""
    from pypgstac.db import PgstacDB
    from pypgstac.load import Loader, Methods

    with PgstacDB(dsn=dsn) as db:
        loader = Loader(db=db)
        loader.load_collections(iter(list(collections)), insert_mode=Methods.upsert)
        loader.load_items(iter(items), insert_mode=Methods.upsert)


def fresh_pgstac_database(settings: Any, prefix: str) -> DbCredentials:
    """A new pgSTAC database ``<prefix><random>`` in the stack's cluster, with the ingest
    role's credentials (a ``DbCredentials``): for tests that count what they load. Not
    dropped: dropping is slow, and it goes with the stack."""
    from eomatch.stack.db import DbCredentials, setup_database, stack_credentials

    admin = stack_credentials(settings, "admin")
    role = stack_credentials(settings, "ingest")
    name = f"{prefix}{uuid.uuid4().hex[:10]}"
    setup_database(admin, name, {role.user: role.password}, {})
    return DbCredentials(role.host, role.port, name, role.user, role.password)


# --- reading ---------------------------------------------------------------------


def links_of(doc: Any, rels: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Every link dict with one of ``rels`` anywhere in ``doc`` (features included)."""
    wanted = set(rels)
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key == "links" and isinstance(value, list):
                for link in value:
                    if isinstance(link, dict) and link.get("rel") in wanted:
                        yield link
            else:
                yield from links_of(value, wanted)
    elif isinstance(doc, list):
        for value in doc:
            yield from links_of(value, wanted)


# --- offline STAC schemas --------------------------------------------------------


OFFICIAL_SCHEMA_HOSTS = ("schemas.stacspec.org", "geojson.org")


def offline_schemas() -> dict[str, dict[str, Any]]:
    """URL -> JSON schema for what validators fetch: the official STAC 1.1.0 and
    GeoJSON schemas, from the copies pystac ships. Nothing of eomatch's: the stack
    serves its matchup schema itself, at a URL its responses name."""
    from pystac.validation.local_validator import get_local_schema_cache

    return {url: doc for url, doc in get_local_schema_cache().items() if urlparse(url).hostname in OFFICIAL_SCHEMA_HOSTS}


@contextlib.contextmanager
def serve_schemas_offline(missing: list[str]) -> Iterator[None]:
    """Answer every non-loopback ``requests`` call from :func:`offline_schemas`.

    The internet is unreachable here; validators that fetch STAC schemas get local
    copies, and anything else off-machine answers 404 and is recorded in ``missing``
    so a test can fail on it rather than on a timeout.
    """
    import requests
    from requests.adapters import HTTPAdapter

    schemas = offline_schemas()
    original = HTTPAdapter.send

    def send(self: HTTPAdapter, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        url = request.url or ""
        if urlparse(url).hostname in LOOPBACK_HOSTS:
            return original(self, request, *args, **kwargs)
        resp = requests.Response()
        resp.url = url
        resp.request = request
        doc = schemas.get(url.split("#", 1)[0])
        if doc is None:
            missing.append(url)
            resp.status_code = 404
            resp._content = b'{"code":"NotFound","description":"offline"}'
        else:
            resp.status_code = 200
            resp._content = json.dumps(doc).encode()
        resp.headers["Content-Type"] = "application/json"
        resp.encoding = "utf-8"
        return resp

    HTTPAdapter.send = send  # type: ignore[method-assign]
    try:
        yield
    finally:
        HTTPAdapter.send = original  # type: ignore[method-assign]


@contextlib.contextmanager
def root_logging_restored() -> Iterator[None]:
    """Let a test install service logging (configure_logging replaces the root
    handlers) and put pytest's handlers and level back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
            h.close()
        for h in handlers:
            root.addHandler(h)
        root.setLevel(level)
