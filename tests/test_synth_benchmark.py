"""benchmarks/_synth.py: the realistic shape is valid, unique, streamed and stable in N;
the simple shape keeps its exact counts (other benchmarks and tests count on them)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import _synth  # noqa: E402

from eomatch.validate import item_validator  # noqa: E402

PRODUCT_COLLECTIONS = {"S2_MSI_L1C", "LANDSAT_C2L1", "S3_OLCI_L1B"}


@pytest.fixture(scope="module")
def realistic(tmp_path_factory: pytest.TempPathFactory) -> _synth.SynthCatalogue:
    # small chunks: the item links of several chunks are streamed into one collection.json
    return _synth.generate(tmp_path_factory.mktemp("real") / "cat", 1500, seed=5, workers=2,
                           shape="realistic", chunk_groups=4)  # fmt: skip


def _items(root: Path) -> list[dict]:
    return [json.loads(p.read_bytes()) for p in root.glob("*/*/*/*/*.json")]


def test_realistic_catalogue_opens_whole_and_every_item_is_valid(realistic: _synth.SynthCatalogue) -> None:
    """verify() counts the files through MatchupCatalogue: a reused id would have
    overwritten a file and made the count short."""
    assert 1200 <= realistic.items <= 1800, realistic.items
    _synth.verify(realistic)
    items = _items(realistic.root)
    assert len(items) == realistic.items
    validator = item_validator()
    problems = [(it["id"], validator.problem(it)) for it in items if validator.problem(it)]
    assert not problems, problems[:3]
    for cid, count in realistic.per_collection.items():
        doc = json.loads((realistic.root / cid / "collection.json").read_bytes())
        hrefs = [lk["href"] for lk in doc["links"] if lk["rel"] == "item"]
        assert len(hrefs) == len(set(hrefs)) == count, cid
        assert all((realistic.root / cid / h).is_file() for h in hrefs[:50])


def test_realistic_shape_has_the_constellation_and_the_proportions(realistic: _synth.SynthCatalogue) -> None:
    items = _items(realistic.root)
    kinds = {k: [it for it in items if it["properties"]["matchup:type"] == k] for k in ("event", "matchup", "product")}
    assert all(kinds.values()), {k: len(v) for k, v in kinds.items()}
    # events are a small share; each has several matchups and products
    assert len(kinds["matchup"]) > 3 * len(kinds["event"]) and len(kinds["product"]) > 3 * len(kinds["event"])
    assert set(realistic.collections) >= PRODUCT_COLLECTIONS
    platforms = {it["properties"]["platform"] for it in kinds["product"]}
    assert platforms == {"Sentinel-2A", "Sentinel-2B", "Landsat-8", "Landsat-9", "Sentinel-3A", "Sentinel-3B"}
    for m in kinds["matchup"]:
        p = m["properties"]
        # only cross-collection pairs (the crossover search's 12), within the threshold
        assert p["matchup:collections"][0] != p["matchup:collections"][1]
        assert 0 <= p["matchup:abs_time_diff_s"] <= _synth.THRESHOLD_S
        assert 0 < p["matchup:overlap_fraction"] <= 1
        assert {"matchup:max_cloud_cover", "matchup:platforms", "matchup:event_id", "title"} <= set(p)
    pairs = {tuple(m["properties"]["matchup:platforms"]) for m in kinds["matchup"]}
    assert len(pairs) >= 8, pairs  # most of the 12 pairs show up in ~40 events
    years = {it["properties"]["datetime"][:4] for it in kinds["event"]}
    assert len(years) >= 4 and years <= {str(y) for y in range(2019, 2025)}, years
    assert not any("Landsat-9" in e["properties"]["matchup:platforms"] and e["properties"]["datetime"] < "2021-11"
                   for e in kinds["event"])  # fmt: skip
    covers = sorted(it["properties"]["eo:cloud_cover"] for it in kinds["product"])
    assert covers[len(covers) // 5] < 5 and covers[-1] > 60, "many clear products and a long tail"
    assert len(_synth._cross_pairs(_synth.default_satellites())) == 12


def test_a_smaller_catalogue_is_the_first_groups_of_a_larger_one(tmp_path: Path) -> None:
    small = _synth.generate(tmp_path / "s", 300, seed=9, workers=1, shape="realistic")
    large = _synth.generate(tmp_path / "l", 900, seed=9, workers=1, shape="realistic")
    small_ids = {(it["collection"], it["id"]) for it in _items(small.root)}
    large_ids = {(it["collection"], it["id"]) for it in _items(large.root)}
    assert small_ids < large_ids


def test_simple_shape_keeps_exact_counts(tmp_path: Path) -> None:
    synth = _synth.generate(tmp_path / "cat", 600, seed=7, workers=2, chunk_groups=7)
    assert synth.items == 600 and synth.shape == "simple"
    assert sum(1 for c, k in synth.collections.items() if k == "matchup" for _ in range(synth.per_collection[c])) == 200
    _synth.verify(synth)


def test_cli_prints_progress_and_a_summary_and_refuses_bad_input(tmp_path: Path) -> None:
    import subprocess

    script = Path(_synth.__file__)
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "c"), "--items", "200"],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("wrote ") and " events, " in proc.stdout and "items/s" in proc.stdout
    assert "synth: " in proc.stderr
    again = subprocess.run([sys.executable, str(script), str(tmp_path / "c"), "--items", "200", "-q"],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert again.returncode == 2 and "already holds a catalogue" in again.stderr.strip().splitlines()[-1]
    assert "Traceback" not in again.stderr
