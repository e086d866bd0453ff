"""What the external audience may see: only assets and links with public hrefs.

Internal hrefs are ``file://`` URIs, bare filesystem paths (absolute or relative,
as pystac writes them) and anything under a configured internal prefix. The
filter works on decoded JSON so it covers every response shape: items, item
collections, collections (their ``assets``), lists of collections, fields-
extension subsets, and whatever else carries ``assets`` or ``links``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class HrefPolicy:
    """Decides whether a string may leave through the external API."""

    public_schemes: tuple[str, ...] = ("http", "https")
    internal_prefixes: tuple[str, ...] = ()
    _schemes: frozenset[str] = field(init=False, repr=False)
    _leak_re: re.Pattern[str] = field(init=False, repr=False)
    _leak_bytes_re: re.Pattern[bytes] = field(init=False, repr=False)
    _odd_href_re: re.Pattern[bytes] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        schemes = frozenset(s.lower().rstrip(":/") for s in self.public_schemes)
        object.__setattr__(self, "_schemes", schemes)
        # One regex per check (C speed) instead of lower() + substring scans per string.
        leak = "|".join([r"(?i:\bfile:/)", *(re.escape(p) for p in self.internal_prefixes if p)])
        object.__setattr__(self, "_leak_re", re.compile(leak))
        object.__setattr__(self, "_leak_bytes_re", re.compile(leak.encode()))
        public = "|".join(re.escape(s) for s in sorted(schemes)) or "(?!)"
        # an "href" whose value is not a quoted public-scheme URL
        odd = rf'"href"\s*:\s*(?!"(?i:{public})://)'
        object.__setattr__(self, "_odd_href_re", re.compile(odd.encode()))

    def leaks(self, text: str) -> bool:
        """True if ``text`` mentions something internal anywhere in it."""
        return self._leak_re.search(text) is not None

    def body_is_clean(self, body: bytes) -> bool:
        """True if a serialized JSON body needs no filtering: no internal marker
        anywhere and every ``"href"`` is a public URL. Cheap (two regex scans), so
        the common clean response skips parsing and re-serializing. Sound for
        bodies written by a JSON serializer (keys are never escaped)."""
        return self._leak_bytes_re.search(body) is None and self._odd_href_re.search(body) is None

    def is_public_href(self, href: Any) -> bool:
        if not isinstance(href, str) or "://" not in href:
            return False  # bare path (absolute or relative) or not a string
        scheme = href.split("://", 1)[0].lower()
        return scheme in self._schemes and not self.leaks(href)


def policy_from_settings(public_schemes: Iterable[str], internal_prefixes: Iterable[str]) -> HrefPolicy:
    return HrefPolicy(tuple(public_schemes), tuple(p for p in internal_prefixes if p))


def _filter_assets(assets: dict[str, Any], policy: HrefPolicy) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for key, asset in assets.items():
        if isinstance(asset, dict) and "href" in asset:
            if policy.is_public_href(asset["href"]):
                kept[key] = scrub(asset, policy)
        else:  # item_assets definitions and other href-less entries
            kept[key] = scrub(asset, policy)
    return kept


def _filter_links(links: list[Any], policy: HrefPolicy) -> list[Any]:
    out = []
    for link in links:
        if isinstance(link, dict) and "href" in link:
            if policy.is_public_href(link["href"]):
                out.append(scrub(link, policy))
        else:
            out.append(scrub(link, policy))
    return out


def scrub(doc: Any, policy: HrefPolicy) -> Any:
    """Return ``doc`` without internal assets, links, or any string that leaks."""
    if isinstance(doc, dict):
        out: dict[str, Any] = {}
        for key, value in doc.items():
            if key == "assets" and isinstance(value, dict):
                out[key] = _filter_assets(value, policy)
            elif key == "links" and isinstance(value, list):
                out[key] = _filter_links(value, policy)
            elif isinstance(value, str):
                if not policy.leaks(value):
                    out[key] = value
            else:
                out[key] = scrub(value, policy)
        return out
    if isinstance(doc, list):
        return [scrub(v, policy) for v in doc if not (isinstance(v, str) and policy.leaks(v))]
    return doc
