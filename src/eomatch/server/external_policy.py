"""The external href policy: what the external audience may see, only public hrefs.

(Not to be confused with the CQL2 ``filter`` extension: this module decides which
hrefs and strings may leave through ``/external/``, whatever was asked.)

Internal hrefs are ``file://`` URIs, bare filesystem paths (absolute or relative,
as pystac writes them) and anything under a configured internal prefix. Two layers:
stored links are filtered as pgSTAC returns them, before stac-fastapi resolves
bare paths into URLs on the API host (:func:`drop_private_stored_links`); then
every response is filtered as decoded JSON (:func:`scrub`), which covers every
shape: items, item collections, collections, lists of collections, fields-extension
subsets, assets and their ``alternate`` hrefs, ``item_assets``, links anywhere.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from eomatch.hrefs import is_api_relative_href


@dataclass(frozen=True)
class HrefPolicy:
    """Decides whether a string may leave through the external API."""

    public_schemes: tuple[str, ...] = ("http", "https")
    internal_prefixes: tuple[str, ...] = ()
    _schemes: frozenset[str] = field(init=False, repr=False)
    _prefixes_bytes: tuple[bytes, ...] = field(init=False, repr=False)
    _public_href_starts: tuple[bytes, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        schemes = frozenset(s.lower().rstrip(":/") for s in self.public_schemes)
        object.__setattr__(self, "_schemes", schemes)
        object.__setattr__(self, "_prefixes_bytes", tuple(p.encode() for p in self.internal_prefixes if p))
        starts = tuple(b'"href":"' + s.encode() + b"://" for s in sorted(schemes))
        object.__setattr__(self, "_public_href_starts", starts)

    def leaks(self, text: str) -> bool:
        """True if ``text`` mentions something internal anywhere in it."""
        lowered = text.lower()
        if "file://" in lowered or lowered.startswith("file:/"):
            return True
        return any(p and p in text for p in self.internal_prefixes)

    def body_leaks(self, body: bytes, lowered: bytes | None = None) -> bool:
        """True if some string in a serialized JSON body may leak (a cheap superset
        of :meth:`leaks` over every string in it)."""
        if b"file:/" in (body.lower() if lowered is None else lowered):
            return True
        return any(p in body for p in self._prefixes_bytes)

    def body_is_clean(self, body: bytes) -> bool:
        """True if a serialized JSON body needs no filtering: no internal marker
        anywhere and every ``"href"`` is directly followed by a public URL.

        A few C-speed scans (tens of microseconds for a search page), so the
        common clean response skips parsing and re-serializing. Conservative:
        anything unusual (spaces around ':', "href" as a value) takes the full path.
        """
        lowered = body.lower()
        if self.body_leaks(body, lowered):
            return False
        hrefs = lowered.count(b'"href"')
        return hrefs == sum(lowered.count(start) for start in self._public_href_starts)

    def is_public_href(self, href: Any) -> bool:
        if not isinstance(href, str) or "://" not in href:
            return False  # bare path (absolute or relative) or not a string
        scheme = href.split("://", 1)[0].lower()
        return scheme in self._schemes and not self.leaks(href)


def policy_from_settings(public_schemes: Iterable[str], internal_prefixes: Iterable[str]) -> HrefPolicy:
    return HrefPolicy(tuple(public_schemes), tuple(p for p in internal_prefixes if p))


def _keeps(value: Any, policy: HrefPolicy) -> bool:
    """An object with an ``href`` (asset, alternate, link, anything) stays only if the
    href is a public URL; other values always stay (strings are checked separately).

    An ``href`` whose value is itself an object is a key, not a link: an asset may be
    named "href" (``assets: {"href": {...}}``), and its own href is checked one level down.
    """
    if not isinstance(value, dict) or "href" not in value or isinstance(value["href"], dict):
        return True
    return policy.is_public_href(value["href"])


def _scrub_list(values: list[Any], policy: HrefPolicy, strings: bool) -> list[Any]:
    out = []
    for value in values:
        if not _keeps(value, policy) or (strings and isinstance(value, str) and policy.leaks(value)):
            continue
        out.append(scrub(value, policy, strings) if isinstance(value, dict | list) else value)
    return out


def scrub(doc: Any, policy: HrefPolicy, strings: bool = True) -> Any:
    """Return ``doc`` without any object whose ``href`` is not a public URL (assets,
    their ``alternate`` entries, links, collection assets, ``item_assets``, wherever
    they sit) and without any string that leaks.

    ``strings=False`` skips the per-string check when the caller knows no string
    can leak (see :meth:`HrefPolicy.body_leaks`); hrefs are still checked.

    The string check knows ``file:`` URIs and the configured ``internal_prefixes``
    only: a filesystem path outside them in free text (a description, a property)
    cannot be told from prose and passes.
    """
    if isinstance(doc, dict):
        out: dict[str, Any] = {}
        for key, value in doc.items():
            if isinstance(value, dict):
                if _keeps(value, policy):
                    out[key] = scrub(value, policy, strings)
            elif isinstance(value, list):
                out[key] = _scrub_list(value, policy, strings)
            elif isinstance(value, str):
                if not (strings and policy.leaks(value)):
                    out[key] = value
            else:
                out[key] = value
        return out
    if isinstance(doc, list):
        return _scrub_list(doc, policy, strings)
    return doc


def _drop_private_links(doc: dict[str, Any], policy: HrefPolicy) -> None:
    links = doc.get("links")
    if isinstance(links, list):
        doc["links"] = [
            link for link in links
            if _keeps(link, policy) or (isinstance(link, dict) and is_api_relative_href(link.get("href")))
        ]


def drop_private_stored_links(result: Any, policy: HrefPolicy) -> Any:
    """A pgSTAC result with the *stored* links of its items and collections that have
    no public href removed, in place.

    stac-fastapi resolves every stored link against the request URL, so a bare path
    ``/srv/private/LICENSE.txt`` would leave as ``http://host/srv/private/LICENSE.txt``,
    which no response filter can tell from a public URL. Kept: public URLs, links
    relative to the API root to a collection or item (what eomatch-ingest stores for
    ``derived_from``: they resolve to this API's own URLs), and the links pgSTAC adds
    to a result page itself (``next``/``prev``), which stac-fastapi turns into its
    paging links.
    """
    if not isinstance(result, dict):
        return result
    for key in ("features", "collections"):
        docs = result.get(key)
        if isinstance(docs, list):
            for doc in docs:
                if isinstance(doc, dict):
                    _drop_private_links(doc, policy)
    if result.get("type") in ("Feature", "Collection", "Catalog"):
        _drop_private_links(result, policy)
    return result


def filtering_connection_getter(policy: HrefPolicy) -> Callable[..., Any]:
    """A stac-fastapi-pgstac ``get_connection`` whose connections hand every result
    through :func:`drop_private_stored_links` (stac-fastapi-pgstac reads everything
    with ``fetchval``)."""
    from contextlib import asynccontextmanager

    from stac_fastapi.pgstac.db import get_connection

    class FilteringConnection:
        def __init__(self, conn: Any) -> None:
            self._conn = conn

        async def fetchval(self, query: str, *args: Any, **kwargs: Any) -> Any:
            return drop_private_stored_links(await self._conn.fetchval(query, *args, **kwargs), policy)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._conn, name)

    @asynccontextmanager
    async def get(request: Any, readwrite: str = "r") -> AsyncIterator[Any]:
        async with get_connection(request, readwrite) as conn:  # type: ignore[arg-type]
            yield FilteringConnection(conn)

    return get
