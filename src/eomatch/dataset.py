"""Matchup datasets: one matchup's two products as one ``xarray.DataTree`` (``BuildMUDT``).

:func:`return_matchup_dataset` (also ``Matchup.return_matchup_dataset()``) is
:mod:`eomatch.matchup_dataset`'s, re-exported here; :class:`BuildMUDT` builds
them in batches over a catalogue: per matchup, per event, or for every matchup
``MatchupCatalogue.get_events`` selects.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eomatch.catalogue import MatchupCatalogue
from eomatch.errors import DatasetError
from eomatch.items import Matchup, MatchupEvent
from eomatch.matchup_dataset import (
    DATA_VAR,
    ProductFetcher,
    acquisition_times,
    default_fetcher,
    local_data_path,
    return_matchup_dataset,
)

if TYPE_CHECKING:
    import xarray as xr

    from eomatch.settings import Settings

__all__ = [
    "DATA_VAR", "BuildMUDT", "ProductFetcher", "acquisition_times", "default_fetcher",
    "local_data_path", "return_matchup_dataset",
]  # fmt: skip


class BuildMUDT:
    """Build matchup datasets in batches: per matchup, per event, or over a catalogue.

    >>> builder = BuildMUDT("./my_catalogue", reproject=True)
    >>> for matchup, tree in builder.iter_datasets(platforms=["Landsat-9"]):
    ...     tree.to_netcdf(f"{matchup.id}.nc")
    """

    def __init__(
        self,
        catalogue: MatchupCatalogue | str | os.PathLike[str],
        reproject: bool = False,
        resolution: float | tuple[float, float] | None = None,
        download_missing: bool = True,
        settings: Settings | None = None,
        fetch: ProductFetcher | None = None,
    ) -> None:
        """``settings`` (default :func:`~eomatch.settings.load_settings`, read only when a
        product must be downloaded) or ``fetch`` say how missing products are fetched."""
        self.catalogue = catalogue if isinstance(catalogue, MatchupCatalogue) else MatchupCatalogue.open(catalogue)
        self.options: dict[str, Any] = {
            "reproject": reproject,
            "resolution": resolution,
            "download_missing": download_missing,
            "settings": settings,
            "fetch": fetch,
        }

    def for_matchup(self, matchup: Matchup | str) -> xr.DataTree:
        """The dataset of one matchup (object or id)."""
        if isinstance(matchup, str):
            matchup = self.catalogue.get_matchup(matchup)
        return return_matchup_dataset(matchup, **self.options)

    def for_event(self, event: MatchupEvent | str) -> Iterator[tuple[Matchup, xr.DataTree]]:
        """(matchup, dataset) for each matchup of one event."""
        if isinstance(event, str):
            event = self.catalogue.get_event(event)
        for matchup in event.matchup_set:
            yield matchup, return_matchup_dataset(matchup, **self.options)

    def iter_datasets(
        self, skip_errors: bool = False, **event_filters: Any
    ) -> Iterator[tuple[Matchup, xr.DataTree]]:
        """(matchup, dataset) over the events ``get_events(**event_filters)`` selects.

        ``skip_errors``: a matchup whose dataset cannot be built is skipped (and
        listed in :attr:`errors`) instead of stopping the batch.
        """
        self.errors: list[str] = []
        for event in self.catalogue.get_events(**event_filters):
            for matchup in event.matchup_set:
                try:
                    yield matchup, return_matchup_dataset(matchup, **self.options)
                except DatasetError as exc:
                    if not skip_errors:
                        raise
                    self.errors.append(str(exc))

    def write_netcdf(self, out_dir: str | os.PathLike[str], **event_filters: Any) -> list[Path]:
        """One ``{matchup id}.nc`` per matchup in ``out_dir`` (written to a temp name, then renamed)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for matchup, tree in self.iter_datasets(**event_filters):
            final = out / f"{matchup.id}.nc"
            tmp = out / f".{matchup.id}.nc.tmp"
            tree.to_netcdf(tmp)
            os.replace(tmp, final)
            written.append(final)
        return written
