"""Download the products of a catalogue to local files (``eomatch-download``).

:func:`download` opens the catalogue a path names (or ``matchup_catalogue.path``)
and hands it to :func:`eomatch.transfer.download_products`, which does the
transfers and registers each finished file on its product item as a ``data``
asset with an absolute ``file://`` href (see :mod:`eomatch.transfer` for the
resume, verification and authentication rules). The names of
:mod:`eomatch.transfer` that callers used from here are re-exported.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from eomatch.catalogue import MatchupCatalogue
from eomatch.errors import ConfigError
from eomatch.progress import Progress
from eomatch.settings import Settings
from eomatch.transfer import (
    REMOTE_SCHEMES,
    DownloadFailure,
    DownloadSummary,
    DownloadTask,
    data_assets,
    download_products,
    fetch_file,
    multihash_sha256,
    parse_multihash,
    product_fetcher,
)

__all__ = [
    "REMOTE_SCHEMES", "DownloadFailure", "DownloadSummary", "DownloadTask", "data_assets",
    "download", "download_products", "fetch_file", "multihash_sha256", "parse_multihash",
    "product_fetcher",
]  # fmt: skip


def download(
    settings: Settings,
    path: str | Path | None = None,
    products_root: str | Path | None = None,
    product_ids: Iterable[str] | None = None,
    asset_keys: Iterable[str] | None = None,
    parallel: int | None = None,
    quiet: bool = False,
    progress: Progress | None = None,
) -> DownloadSummary:
    """Download every product's remote data assets and register the local copies.

    ``path``: the catalogue (default ``matchup_catalogue.path``); ``products_root``
    default ``download.products_root``, else ``<catalogue>/products``. Failures are
    collected in the summary (``failures``), not raised, so one bad file does not
    stop the others. ``progress``: see :func:`eomatch.transfer.download_products`.
    """
    cat_path = path or settings.matchup_catalogue.path
    if cat_path is None:
        raise ConfigError("no catalogue given: pass --path or set matchup_catalogue.path in the config")
    cat = MatchupCatalogue.open(cat_path)
    try:
        return download_products(
            cat, settings, products_root=products_root, product_ids=product_ids,
            asset_keys=asset_keys, parallel=parallel, quiet=quiet, progress=progress,
        )  # fmt: skip
    finally:
        cat.close()
