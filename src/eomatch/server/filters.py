"""What the external audience may see: only assets and links with public hrefs.

Internal hrefs are ``file://`` URIs, bare filesystem paths (absolute or relative,
as pystac writes them) and anything under a configured internal prefix. The
filter works on decoded JSON so it covers every response shape: items, item
collections, collections (their ``assets``), lists of collections, fields-
extension subsets, and whatever else carries ``assets`` or ``links``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


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


def _filter_assets(assets: dict[str, Any], policy: HrefPolicy, strings: bool) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for key, asset in assets.items():
        if isinstance(asset, dict) and "href" in asset:
            if policy.is_public_href(asset["href"]):
                kept[key] = scrub(asset, policy, strings)
        else:  # item_assets definitions and other href-less entries
            kept[key] = scrub(asset, policy, strings)
    return kept


def _filter_links(links: list[Any], policy: HrefPolicy, strings: bool) -> list[Any]:
    out = []
    for link in links:
        if isinstance(link, dict) and "href" in link:
            if policy.is_public_href(link["href"]):
                out.append(scrub(link, policy, strings))
        else:
            out.append(scrub(link, policy, strings))
    return out


def scrub(doc: Any, policy: HrefPolicy, strings: bool = True) -> Any:
    """Return ``doc`` without internal assets, links, or any string that leaks.

    ``strings=False`` skips the per-string check when the caller knows no string
    can leak (see :meth:`HrefPolicy.body_leaks`); assets and links are still filtered.
    """
    if isinstance(doc, dict):
        out: dict[str, Any] = {}
        for key, value in doc.items():
            if key == "assets" and isinstance(value, dict):
                out[key] = _filter_assets(value, policy, strings)
            elif key == "links" and isinstance(value, list):
                out[key] = _filter_links(value, policy, strings)
            elif isinstance(value, str):
                if not (strings and policy.leaks(value)):
                    out[key] = value
            else:
                out[key] = scrub(value, policy, strings)
        return out
    if isinstance(doc, list):
        if not strings:
            return [scrub(v, policy, strings) for v in doc]
        return [scrub(v, policy) for v in doc if not (isinstance(v, str) and policy.leaks(v))]
    return doc
