"""Item views (eomatch.items): what the catalogue and the dataset reader rely on."""

from __future__ import annotations

import sys
import types
from datetime import UTC, datetime, timedelta

from shapely.geometry import box

from eomatch.items import Matchup, MatchupEvent, Product

T0 = datetime(2022, 5, 21, 8, 30, tzinfo=UTC)


def _s2() -> dict:
    return Product.create(id="S2A_A", collection="S2_MSI_L1C", platform="Sentinel-2A", instrument="MSI",
                          geometry=box(34, 45, 36, 47), start=T0).to_dict()  # fmt: skip


def _l9() -> dict:
    return Product.create(id="LC09_A", collection="LANDSAT_C2L1", platform="Landsat-9", instrument="OLI-2",
                          geometry=box(35, 46, 37, 48), start=T0 + timedelta(minutes=20)).to_dict()  # fmt: skip


def test_return_matchup_dataset_delegates_to_the_dataset_module(monkeypatch) -> None:
    """Moved from test_model.py with the code: the reader is eomatch.matchup_dataset
    (below the catalogue), which eomatch.dataset re-exports."""
    calls = []
    stub = types.ModuleType("eomatch.matchup_dataset")

    def fake(matchup, **kw):
        calls.append((matchup, kw))
        return "dataset"

    stub.return_matchup_dataset = fake  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "eomatch.matchup_dataset", stub)
    m = Matchup.create(None, _s2(), _l9())
    assert m.return_matchup_dataset(bands=["red"]) == "dataset"
    assert calls == [(m, {"bands": ["red"]})]


def test_created_matchup_keeps_its_products_and_binds_to_what_was_written() -> None:
    """add_matchup writes ``kept_products`` and rebinds the view through ``bind``, not privates."""
    event = MatchupEvent.create(
        platform_a="Sentinel-2A", collection_a="S2_MSI_L1C", platform_b="Landsat-9",
        collection_b="LANDSAT_C2L1", start=T0, end=T0 + timedelta(minutes=40), region=box(30, 40, 40, 50),
    )  # fmt: skip
    m = Matchup.create(event, _s2(), _l9())
    kept = m.kept_products
    assert kept is not None and {p["id"] for p in kept} == {"S2A_A", "LC09_A"}
    assert m.products() is kept
    assert m.event_id == event.id and m.id in event.matchup_ids

    written = {**m.to_dict(), "properties": {**m.properties, "note": "as written"}}
    owner = object()
    m.bind(written, owner)  # type: ignore[arg-type]
    assert m.to_dict() is written and m.catalogue is owner
    assert m.properties["note"] == "as written"
    assert Matchup(dict(written)).kept_products is None
