"""Hrefs in each place an item lives: catalogue files, the internal API, the external API.

An item travels catalogue → pgSTAC → API → catalogue, and its hrefs are rewritten
on each leg. The rules of the three legs live here, side by side, so they cannot
drift apart:

- **catalogue → database** (``eomatch-ingest``): links between items
  (:data:`ITEM_LINK_RELS`) that point at a file of the layout become relative to
  the API root (:func:`api_item_href`: ``collections/{c}/items/{i}``), which
  stac-fastapi resolves against whichever API serves the item; other relative
  hrefs (assets, links to files) become ``file://`` URIs or URLs under
  ``assets_base_url`` (:class:`AssetHrefs`); the links of a place
  (:data:`PLACE_RELS`: self, root, parent...) are dropped.
- **API → catalogue** (``eomatch-query``): links between items that point at an
  API item URL (:func:`api_item_target`) become layout-relative paths
  (:func:`links_from_api`); the links of a place are dropped.
- **internal → external API** (:mod:`eomatch.server.external_policy`): only public
  URLs and links relative to the API root (:func:`is_api_relative_href`, exactly
  what :func:`api_item_href` writes) leave.

The same relations are rewritten on both legs (``via`` and ``source`` too), so an
item that goes through the database and back keeps its links.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urljoin, urlparse

from eomatch.layout import fast_relative_href
from eomatch.safe_names import is_safe_name

ITEM_LINK_RELS = frozenset(
    {"derived_from", "related", "via", "source", "predecessor-version", "successor-version"}
)
"""Relations that link one item to another: rewritten between layout paths and API URLs."""

PLACE_RELS = frozenset(
    {"self", "root", "parent", "collection", "item", "items", "child", "next", "prev", "previous"}
)
"""Relations that say where a document sits (its folder, its API, its page): each place
writes its own, so they are dropped when an item moves from one place to another."""

FILE_SCHEME = "file://"

_API_ITEM = re.compile(r"/collections/([^/?#]+)/items/([^/?#]+)/?$")
# What api_item_href writes (and a collection link like it): a path relative to the
# API root, which stac-fastapi resolves into that API's own URL. No '.' or '..'
# segment, so it cannot climb out of the API root.
_API_RELATIVE = re.compile(
    r"^(?:\./)?collections/(?!\.\.?(?:/|$))[^/?#]+(?:/items/(?!\.\.?(?:/|$))[^/?#]+|/items)?/?(?:[?#].*)?$"
)


_PLAIN_PATH = re.compile(r"[A-Za-z0-9_.\-~/]*")
_PLAIN_SEGMENT = re.compile(r"[A-Za-z0-9_.\-~]*")


def quote_path(path: str) -> str:
    """``urllib.parse.quote(path)``; paths of plain characters (the usual case) skip it,
    as it would leave them as they are (a few calls per item add up at 10,000 items/s)."""
    return path if _PLAIN_PATH.fullmatch(path) else quote(path)


def quote_segment(name: str) -> str:
    """``quote(name, safe='')`` (a ``/`` is quoted too), with the same shortcut."""
    return name if _PLAIN_SEGMENT.fullmatch(name) else quote(name, safe="")


# --------------------------------------------------------------------------- file:// URIs


def file_uri(path: str | os.PathLike[str]) -> str:
    """``file://`` URI of an absolute local path (characters outside URLs quoted)."""
    return FILE_SCHEME + quote_path(os.fspath(path))


def is_file_uri(href: object) -> bool:
    return isinstance(href, str) and href.startswith(FILE_SCHEME)


def file_uri_path(uri: str) -> str:
    """The local path of a ``file://`` URI (unquoted); ``uri`` itself when it is a plain path."""
    if not uri.startswith(FILE_SCHEME):
        return uri
    return unquote(urlparse(uri).path)


def local_path(href: object) -> Path | None:
    """The local file an href names: a ``file://`` URI or an absolute path; else None."""
    if not isinstance(href, str) or not href:
        return None
    if href.startswith(FILE_SCHEME):
        return Path(file_uri_path(href))
    if "://" not in href and os.path.isabs(href):
        return Path(href)
    return None


# --------------------------------------------------------------------------- API hrefs


def api_item_href(collection: str, item_id: str) -> str:
    """Relative to an API's root, so the link resolves on any API that serves it."""
    return f"collections/{quote_segment(collection)}/items/{quote_segment(item_id)}"


def api_item_target(href: str) -> tuple[str, str] | None:
    """(collection, id) of an API item URL ``.../collections/{c}/items/{i}`` (absolute or
    relative to the API root); None for any other href."""
    path = href.split("?", 1)[0].split("#", 1)[0]
    m = _API_ITEM.search(path if path.startswith("/") else "/" + path)
    if not m:
        return None
    return unquote(m.group(1)), unquote(m.group(2))


def is_api_relative_href(href: Any) -> bool:
    """``collections/<id>`` or ``collections/<id>/items/<id>``, relative to the API root."""
    return isinstance(href, str) and bool(_API_RELATIVE.match(href))


# --------------------------------------------------------------------------- layout paths


@functools.lru_cache(maxsize=4096)
def _folder_parts(item_dir: str, folder: str) -> tuple[str, ...]:
    """The parts of ``item_dir``/``folder`` normalised: the links of an item (and of the
    items beside it) mostly name a few folders, and ingest resolves every link."""
    return tuple(os.path.normpath(os.path.join(item_dir, folder)).split(os.sep))


def layout_item_target(item_dir: str | os.PathLike[str], href: str) -> tuple[str, str] | None:
    """(collection, id) of the item file a relative href names, from the catalogue layout:
    ``../../S2/2022/05/21/x.json`` seen from an item folder -> (``S2``, ``x``)."""
    if not href.endswith(".json"):
        return None
    head, _, name = href.rpartition("/")
    folder = head if head or not href.startswith("/") else "/"
    parts = [*_folder_parts(os.fspath(item_dir), folder), name]
    if len(parts) < 5:
        return None
    item_id = parts[-1][: -len(".json")]
    # {collection}/{YYYY}/{MM}/{DD}/{id}.json
    if parts[-2].isdigit() and parts[-3].isdigit() and parts[-4].isdigit():
        return parts[-5], item_id
    return parts[-2], item_id


class AssetHrefs:
    """Makes relative and local hrefs meaningful outside the catalogue folder.

    A relative href becomes absolute (against the item's folder); local paths become
    ``file://`` URIs, or URLs under ``assets_base_url`` when they lie inside the
    catalogue (what the proxy serves). String work only, no system calls: it runs
    for every asset of every item ingested.
    """

    def __init__(self, root: Path, assets_base_url: str | None) -> None:
        self.root = root.resolve()
        self._root_prefix = os.fspath(self.root).rstrip(os.sep) + os.sep
        self.base = assets_base_url.rstrip("/") + "/" if assets_base_url else None

    def asset_href(self, href: str, item_dir: str | os.PathLike[str]) -> str:
        if "://" in href:
            if href.startswith(FILE_SCHEME) and self.base:
                return self._under_base(os.path.normpath(file_uri_path(href)), href)
            return href
        path = href if os.path.isabs(href) else os.path.join(item_dir, href)
        path = os.path.normpath(path)
        if self.base:
            return self._under_base(path, file_uri(path))
        return file_uri(path)

    def _under_base(self, path: str, fallback: str) -> str:
        if self.base is None or not path.startswith(self._root_prefix):
            return fallback  # outside the catalogue: not served by the proxy
        rel = path[len(self._root_prefix) :]
        return self.base + quote_path(rel.replace(os.sep, "/"))


# --------------------------------------------------------------------------- the two legs


def links_to_api(links: Iterable[dict[str, Any]], item_dir: str, assets: AssetHrefs) -> list[dict[str, Any]]:
    """Catalogue -> database: item links to API-root-relative hrefs, other relative hrefs
    absolute (:class:`AssetHrefs`), the links of a place dropped. Links left as they
    are are the same objects (it runs for every item ingested)."""
    out: list[dict[str, Any]] = []
    for link in links:
        rel = link.get("rel")
        if rel in PLACE_RELS:
            continue
        href = link.get("href", "")
        if rel in ITEM_LINK_RELS and "://" not in href and href.endswith(".json"):
            target = layout_item_target(item_dir, href)
            if target is not None:
                out.append({**link, "href": api_item_href(*target)})
                continue
        elif "://" not in href and href:
            out.append({**link, "href": assets.asset_href(href, item_dir)})
            continue
        out.append(link)
    return out


LinkRef = tuple[tuple[str, str], str, str]
"""(target (collection, id), absolute API href, the layout path the link guessed for it)."""


def links_from_api(
    links: Iterable[dict[str, Any]], api_url: str, src_relpath: str
) -> tuple[list[dict[str, Any]], list[LinkRef]]:
    """API -> catalogue: item links to layout-relative paths, the links of a place dropped.

    A target's folder is not known before it is fetched: the link points at the
    source's date folder (where events, matchups and products of one crossover
    usually are), and each is returned as a :data:`LinkRef` so the caller can fix
    the guess once the target is on disk. A target whose id or collection id is not
    a safe file name never becomes a file: its link keeps the absolute API URL.
    """
    src_folder = src_relpath.rsplit("/", 1)[0]
    date_part = src_folder.split("/", 1)[1] if "/" in src_folder else ""
    out: list[dict[str, Any]] = []
    refs: list[LinkRef] = []
    for link in links:
        rel = link.get("rel")
        if rel in PLACE_RELS:
            continue
        href = link.get("href")
        if rel in ITEM_LINK_RELS and isinstance(href, str):
            absolute = urljoin(api_url, href)
            target = api_item_target(absolute)
            if target is not None and not (is_safe_name(target[0]) and is_safe_name(target[1])):
                out.append({**link, "href": absolute})
                continue
            if target is not None:
                guess = f"{target[0]}/{date_part}/{target[1]}.json" if date_part else f"{target[0]}/{target[1]}.json"
                out.append({**link, "href": fast_relative_href(src_relpath, guess)})
                refs.append((target, absolute, guess))
                continue
        out.append(link)
    return out, refs
