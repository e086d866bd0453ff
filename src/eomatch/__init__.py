"""eomatch: satellite matchups as a STAC catalogue, served through pgSTAC."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Matchup", "MatchupCatalogue", "MatchupEvent", "__version__"]

if TYPE_CHECKING:
    from eomatch.catalogue import MatchupCatalogue
    from eomatch.model import Matchup, MatchupEvent


def __getattr__(name: str) -> Any:
    """Import lazily so that ``eomatch.settings`` does not pull in pystac."""
    if name == "MatchupCatalogue":
        from eomatch.catalogue import MatchupCatalogue

        return MatchupCatalogue
    if name in ("Matchup", "MatchupEvent"):
        from eomatch import model

        return getattr(model, name)
    raise AttributeError(name)
