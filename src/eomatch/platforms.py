"""The platform registry lookup: one rule for every place a platform is named.

A platform is found by its canonical name or any alias, whatever the case and
surrounding spaces (``S2A``, ``sentinel-2a``, ``LANDSAT_9``). Find, the item
views, catalogue filters and the TLE loader all ask :func:`find_platform`, so
they can never disagree about what a name means.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from eomatch.settings import SatelliteSpec


def default_satellites() -> list[SatelliteSpec]:
    """The packaged registry (``settings.satellites`` when the config does not set it)."""
    from eomatch.settings import default_satellites as packaged

    return packaged()


def find_platform(platform: str, satellites: Sequence[SatelliteSpec] | None = None) -> SatelliteSpec | None:
    """The registry entry named ``platform`` (name or alias, any case), else None.

    ``satellites`` defaults to the packaged registry.
    """
    wanted = platform.strip().casefold()
    for sat in satellites if satellites is not None else default_satellites():
        if wanted == sat.name.casefold() or wanted in (a.casefold() for a in sat.aliases):
            return sat
    return None


def platform_token(platform: str, satellites: Sequence[SatelliteSpec] | None = None) -> str:
    """How ``platform`` is spelled inside collection ids (Sentinel-2A -> S2A).

    Names and aliases match case-insensitively; an unknown platform is its own token.
    """
    sat = find_platform(platform, satellites)
    return sat.token if sat is not None else platform


def canonical_platform(platform: str, satellites: Sequence[SatelliteSpec] | None = None) -> str:
    """The registry's canonical name for ``platform`` (aliases resolved), else ``platform``."""
    sat = find_platform(platform, satellites)
    return sat.name if sat is not None else platform


def platform_spellings(platform: str, satellites: Sequence[SatelliteSpec] | None = None) -> list[str]:
    """Every name ``platform`` goes by in the registry (canonical first), else itself:
    catalogues written by other tools may use any of them."""
    sat = find_platform(platform, satellites)
    return [sat.name, *sat.aliases] if sat is not None else [platform]
