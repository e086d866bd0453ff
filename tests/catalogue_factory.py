"""Small but complete matchup catalogues for tests: products, events, matchups, assets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pystac
from shapely.geometry import Polygon, box

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


LEGACY_T0 = datetime(2022, 5, 21, 8, 30, tzinfo=UTC)
LEGACY_PAIR = "LANDSAT_C2L1-Landsat-9-vs-S2_MSI_L1C-S2A"


def build_legacy_catalogue(root: Path) -> tuple[str, str]:
    """A catalogue as the original pystac-based tool wrote it: absolute hrefs, no index,
    no matchup:type, legacy property names."""
    cat = pystac.Catalog(id="matchup-catalogue", description="legacy")
    ext = pystac.Extent(pystac.SpatialExtent([[-180, -90, 180, 90]]), pystac.TemporalExtent([[None, None]]))
    cols = {}
    for cid in ("S2_MSI_L1C", "LANDSAT_C2L1", LEGACY_PAIR, f"matchup-events-{LEGACY_PAIR}"):
        cols[cid] = pystac.Collection(id=cid, description=cid, extent=ext)
        cat.add_child(cols[cid])
    geom = box(10, 10, 12, 12)
    prods = []
    for pid, cid, plat in (("L9_OLD", "LANDSAT_C2L1", "LANDSAT-9"), ("S2_OLD", "S2_MSI_L1C", "S2A")):
        it = pystac.Item(pid, geom.__geo_interface__, list(geom.bounds), LEGACY_T0, {"platform": plat}, collection=cid)
        cols[cid].add_item(it)
        prods.append(it)
    mu = pystac.Item(f"{LEGACY_PAIR}_20220521T083000", geom.__geo_interface__, list(geom.bounds), LEGACY_T0,
                     {"end_datetime": "2022-05-21T08:40:00Z", "matchup:platforms": ["LANDSAT-9", "S2A"],
                      "matchup:collections": ["LANDSAT_C2L1", "S2_MSI_L1C"], "matchup:time_diff_abs": 60.0},
                     collection=LEGACY_PAIR)  # fmt: skip
    for p in prods:
        mu.add_link(pystac.Link("derived_from", p, media_type="application/json"))
    ev = pystac.Item("legacy-event-1", geom.__geo_interface__, list(geom.bounds), LEGACY_T0,
                     {"end_datetime": "2022-05-21T08:45:00Z", "matchup:platforms": ["Landsat-9", "Sentinel-2A"]},
                     collection=f"matchup-events-{LEGACY_PAIR}")  # fmt: skip
    ev.add_link(pystac.Link("related", mu, media_type="application/json", extra_fields={"matchup:role": "matchup"}))
    mu.add_link(pystac.Link("related", ev, media_type="application/json", extra_fields={"matchup:role": "event"}))
    cols[LEGACY_PAIR].add_item(mu)
    cols[f"matchup-events-{LEGACY_PAIR}"].add_item(ev)
    strategy = pystac.layout.TemplateLayoutStrategy(item_template="${year}/${month}/${day}/${id}.json")
    cat.normalize_hrefs(str(root / "catalog.json"), strategy=strategy)
    cat.save(catalog_type=pystac.CatalogType.ABSOLUTE_PUBLISHED)
    return ev.id, mu.id


def s2a_l9_matchup(
    day: str, region: Polygon, footprint_a: Polygon, footprint_b: Polygon, id_a: str = "S2A_X", id_b: str = "LC09_X",
    assets: dict[str, Any] | None = None,
) -> tuple[MatchupEvent, Product, Product, Matchup]:
    """A Sentinel-2A x Landsat-9 event on ``day`` (08:30-09:10 UTC) over ``region``, a
    product of each (08:31 and 08:50, with ``assets``) and their matchup, by the model."""
    event = MatchupEvent.create(
        platform_a="Sentinel-2A", collection_a="S2_MSI_L1C",
        platform_b="Landsat-9", collection_b="LANDSAT_C2L1",
        start=f"{day}T08:30:00Z", end=f"{day}T09:10:00Z",
        region=region, min_distance_km=10.0, solar_elevation_deg=45.0,
    )  # fmt: skip
    pa = Product.create(id=id_a, collection="S2_MSI_L1C", platform="Sentinel-2A",
                        geometry=footprint_a, start=f"{day}T08:31:00Z", assets=assets)  # fmt: skip
    pb = Product.create(id=id_b, collection="LANDSAT_C2L1", platform="Landsat-9",
                        geometry=footprint_b, start=f"{day}T08:50:00Z", assets=assets)  # fmt: skip
    return event, pa, pb, Matchup.create(event, pa.to_dict(), pb.to_dict())


def sample_items() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(event, matchup, product) dicts as the model writes them: one small valid set."""
    event, pa, _, mu = s2a_l9_matchup("2022-05-21", box(34, 44, 37, 48), box(34, 45, 36, 47), box(35, 45.5, 36.5, 47.5))
    return event.to_dict(), mu.to_dict(), pa.to_dict()
