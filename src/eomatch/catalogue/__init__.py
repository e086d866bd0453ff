"""The local matchup catalogue: ``from eomatch.catalogue import MatchupCatalogue``.

:class:`MatchupCatalogue` (:mod:`eomatch.catalogue.core`) is the one object
other modules use; it offers what they need (collection folders, collection
locks, id lookups, ids by kind) as public methods. Its parts: locks
(:mod:`~eomatch.catalogue.locks`), the SQLite id index
(:mod:`~eomatch.catalogue.index`), the folder layout
(:mod:`~eomatch.catalogue.folders`), merge rules (:mod:`~eomatch.catalogue.merge`)
and filters (:mod:`~eomatch.catalogue.filters`).
"""

from __future__ import annotations

from eomatch.catalogue.core import MatchupCatalogue, dumps_item, open_catalogue
from eomatch.catalogue.index import INDEX_FILE, INDEX_VERSION, ItemRef
from eomatch.catalogue.locks import INDEX_DIR, LOCK_STRIPES
from eomatch.catalogue.merge import merge_items
from eomatch.errors import CatalogueError
from eomatch.layout import fast_relative_href

__all__ = [
    "INDEX_DIR", "INDEX_FILE", "INDEX_VERSION", "LOCK_STRIPES", "CatalogueError", "ItemRef",
    "MatchupCatalogue", "dumps_item", "fast_relative_href", "merge_items", "open_catalogue",
]  # fmt: skip
