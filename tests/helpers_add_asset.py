"""The catalogue the eomatch-add-asset command tests edit (tests/cli/test_add_asset_*.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from test_add_asset import build_catalogue

from eomatch.catalogue import MatchupCatalogue


def add_asset_target(root: Path) -> dict[str, Any]:
    """A catalogue at ``root`` with one matchup: its ``root``, collection ``coll``, item
    ``mid`` and the item file's ``path`` (what the tests check stays untouched or changes)."""
    root, coll, mid = build_catalogue(root)
    cat = MatchupCatalogue.open(root)
    path = cat.path_of(mid, coll)
    cat.close()
    return {"root": root, "coll": coll, "mid": mid, "path": path}
