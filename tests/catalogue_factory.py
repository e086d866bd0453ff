"""Small but complete matchup catalogues for tests: products, events, matchups, assets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from shapely.geometry import box

from eomatch.catalogue import MatchupCatalogue
from eomatch.model import Matchup, MatchupEvent, Product


def build_catalogue(
    root: Path,
    n_events: int = 2,
    internal_prefix: str = "/npl-data",
    start: datetime = datetime(2022, 5, 21, 10, 0, tzinfo=UTC),
) -> MatchupCatalogue:
    """``n_events`` events, each with one S2A x L9 matchup of two products.

    Products carry a relative asset (becomes ``file://`` on ingest), an absolute
    path under ``internal_prefix``, and a public ``https://`` asset.
    """
    cat = MatchupCatalogue.create(root, title="test catalogue")
    for i in range(n_events):
        t = start + timedelta(days=i)
        lon = -3.0 + i
        s2 = Product.create(
            id=f"S2A_MSIL1C_{t:%Y%m%dT%H%M%S}_T30U{i:02d}",
            collection="S2_MSI_L1C",
            platform="Sentinel-2A",
            geometry=box(lon, 50.0, lon + 1.0, 51.0),
            start=t,
            instrument="MSI",
            assets={
                "local": {"href": f"./data/s2_{i}.tif", "type": "image/tiff", "roles": ["data"]},
                "nfs": {"href": f"{internal_prefix}/products/s2_{i}.tif", "roles": ["data"]},
                "thumbnail": {"href": f"https://example.com/s2_{i}.png", "type": "image/png", "roles": ["thumbnail"]},
            },
        )
        l9 = Product.create(
            id=f"LC09_L1TP_{t:%Y%m%d}_{i:03d}",
            collection="LANDSAT_C2L1",
            platform="Landsat-9",
            geometry=box(lon + 0.5, 50.5, lon + 1.5, 51.5),
            start=t + timedelta(minutes=12),
            instrument="OLI-2",
            assets={
                "red": {"href": f"https://example.com/l9_{i}_B4.TIF", "type": "image/tiff", "roles": ["data"]},
                "nfs": {"href": f"file://{internal_prefix}/products/l9_{i}.tif", "roles": ["data"]},
            },
        )
        event = MatchupEvent.create(
            platform_a="Sentinel-2A", collection_a="S2_MSI_L1C",
            platform_b="Landsat-9", collection_b="LANDSAT_C2L1",
            start=t - timedelta(minutes=5), end=t + timedelta(minutes=20),
            region=box(lon - 0.5, 49.5, lon + 2.0, 52.0),
            min_distance_km=12.0, time_diff_s=720.0,
        )
        Matchup.create(event, s2.to_dict(), l9.to_dict())
        cat.add_event(event)
    cat.save()
    return cat
