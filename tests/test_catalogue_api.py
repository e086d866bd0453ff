"""The catalogue's public methods for what other modules need (issue 13): where items
are, items by kind, collection folders, the collection lock, a second handle."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from shapely.geometry import box

from eomatch.catalogue import CatalogueError, ItemRef, MatchupCatalogue
from eomatch.items import Matchup, MatchupEvent, Product
from eomatch.orbits.tle import find_satellite
from eomatch.platforms import canonical_platform, find_platform
from eomatch.settings import SatelliteSpec

T0 = datetime(2022, 5, 21, 8, 30, tzinfo=UTC)


def _catalogue(root: Path) -> tuple[MatchupCatalogue, MatchupEvent]:
    cat = MatchupCatalogue.create(root)
    event = MatchupEvent.create(
        platform_a="Sentinel-2A", collection_a="S2_MSI_L1C", platform_b="Landsat-9",
        collection_b="LANDSAT_C2L1", start=T0, end=T0 + timedelta(minutes=40), region=box(30, 40, 40, 50),
    )  # fmt: skip
    s2 = Product.create(id="S2A_A", collection="S2_MSI_L1C", platform="Sentinel-2A", geometry=box(34, 45, 36, 47), start=T0)
    l9 = Product.create(id="LC09_A", collection="LANDSAT_C2L1", platform="Landsat-9", geometry=box(35, 46, 37, 48),
                        start=T0 + timedelta(minutes=20))  # fmt: skip
    Matchup.create(event, s2.to_dict(), l9.to_dict())
    cat.add_event(event)
    cat.save()
    return cat, event


def test_lookup_require_and_ids_by_kind(tmp_path: Path) -> None:
    cat, event = _catalogue(tmp_path / "cat")
    ref = cat.lookup(event.id)
    assert isinstance(ref, ItemRef) and ref.kind == "event" and ref.id == event.id
    assert ref.collection == event.collection_id
    assert (cat.root / ref.relpath).is_file() and ref[2] == ref.relpath
    assert cat.lookup("nope") is None
    assert cat.require("S2A_A", kind="product").collection == "S2_MSI_L1C"
    with pytest.raises(CatalogueError, match="unknown item id 'nope'"):
        cat.require("nope")
    with pytest.raises(CatalogueError, match="is a event, not a product"):
        cat.require(event.id, kind="product")

    products = list(cat.iter_ids(kind="product"))
    assert [(r.collection, r.id) for r in products] == [("LANDSAT_C2L1", "LC09_A"), ("S2_MSI_L1C", "S2A_A")]
    assert {r.kind for r in cat.iter_ids()} == {"product", "event", "matchup"}
    assert len(list(cat.iter_ids())) == cat.count() == 4
    # streamed on its own connection: writing while iterating is safe
    for r in cat.iter_ids(kind="product"):
        cat.update_item(r.id, lambda item: item["properties"].update({"seen": True}))
    assert all(cat.get_product(i)["properties"]["seen"] for i in ("S2A_A", "LC09_A"))
    cat.close()


def test_collection_folders_and_root_of(tmp_path: Path) -> None:
    cat, event = _catalogue(tmp_path / "cat")
    dirs = cat.collection_dirs()
    assert set(dirs) == {"S2_MSI_L1C", "LANDSAT_C2L1", event.collection_id, event.pair_key}
    assert all((d / "collection.json").is_file() for d in dirs.values())
    assert MatchupCatalogue.root_of(tmp_path / "cat" / "catalog.json") == cat.root
    assert MatchupCatalogue.root_of(tmp_path / "cat") == cat.root
    cat.close()


def test_lock_collection_is_the_lock_save_merges_under(tmp_path: Path) -> None:
    """A writer holding lock_collection keeps save() waiting, so neither overwrites the other."""
    cat, event = _catalogue(tmp_path / "cat")
    other = cat.reopen()
    assert other is not cat and other.root == cat.root
    other.ensure_collection("S2_MSI_L1C", bbox=[0.0, 0.0, 1.0, 1.0])
    saved = threading.Event()
    thread = threading.Thread(target=lambda: (other.save(), saved.set()))
    with cat.lock_collection("S2_MSI_L1C"):
        thread.start()
        time.sleep(0.3)
        assert not saved.is_set()
    thread.join(timeout=10)
    assert saved.is_set()
    other.close()
    cat.close()


def test_one_platform_lookup_for_items_and_tles() -> None:
    """Item views and the TLE loader resolve names by the same rule (casefold, not lower)."""
    registry = [SatelliteSpec(name="STRASSE-1", aliases=["Straße-1"], norad_id=1, swath_km=100, instrument="X")]
    assert find_platform(" strasse-1 ", registry) is registry[0]
    assert find_platform("STRASSE-1", [SatelliteSpec(name="Sat", aliases=["Straße-1"], norad_id=2, swath_km=1, instrument="X")])
    assert canonical_platform("straße-1", registry) == find_satellite("straße-1", registry).name == "STRASSE-1"
    assert find_platform("nope", registry) is None
