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

    def __post_init__(self) -> None:
        object.__setattr__(self, "_schemes", frozenset(s.lower().rstrip(":/") for s in self.public_schemes))

    def leaks(self, text: str) -> bool:
        """True if ``text`` mentions something internal anywhere in it."""
        lowered = text.lower()
        if "file://" in lowered or lowered.startswith("file:/"):
            return True
        return any(p and p in text for p in self.internal_prefixes)

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
