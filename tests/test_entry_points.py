"""Library entry points take what they work with from the caller: a Progress, and for
matchup datasets the function that fetches a missing product (issue 13)."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from helpers_http import build_scene

from eomatch.catalogue import MatchupCatalogue
from eomatch.dataset import BuildMUDT, return_matchup_dataset
from eomatch.download import download
from eomatch.errors import DatasetError, DownloadError
from eomatch.find import find
from eomatch.migrate_hrefs import migrate_hrefs
from eomatch.progress import Progress
from eomatch.settings import load_settings, pgpassword


def _progress() -> Progress:
    return Progress("caller's", stream=io.StringIO(), quiet=True)


def test_find_counts_days_on_the_callers_progress(tmp_path: Path) -> None:
    settings = load_settings(
        overrides={
            "platforms": ["S2A", "LS9"], "start_time": "2022-05-21T14:00:00Z", "end_time": "2022-05-21T20:00:00Z",
            "min_lat": 30.0, "max_lat": 45.0, "min_lon": -125.0, "max_lon": -70.0,
            "matchup_catalogue": {"path": str(tmp_path / "cat")}, "stack": {"state_dir": str(tmp_path / "state")},
        },
        environ={},
    )  # fmt: skip
    progress = _progress()
    summary = find(settings, events_only=True, progress=progress)
    assert summary.events_written > 0
    assert progress.total == pytest.approx(0.25)  # six hours, one pair, in days
    assert progress.done == pytest.approx(0.25, abs=0.01)


def test_download_counts_products_on_the_callers_progress(tmp_path: Path) -> None:
    scene = build_scene(tmp_path / "cat", tmp_path / "data")  # products already local: nothing to fetch
    progress = _progress()
    summary = download(load_settings(environ={}), path=scene.root, progress=progress)
    assert summary.products == len(scene.product_files) == 2
    assert progress.total == 2 and progress.done == 2


def test_migrate_hrefs_counts_files_on_the_callers_progress(tmp_path: Path) -> None:
    scene = build_scene(tmp_path / "cat", tmp_path / "data")
    with MatchupCatalogue.open(scene.root) as cat:
        files = cat.count()
    progress = _progress()
    summary = migrate_hrefs(
        load_settings(environ={}), "file:///elsewhere", "https://x.org/d", catalogue=scene.root, db=False, progress=progress
    )
    assert summary.files_scanned == files == progress.total == progress.done


def test_matchup_dataset_fetches_missing_products_with_the_fetch_it_is_given(tmp_path: Path) -> None:
    scene = build_scene(tmp_path / "cat", tmp_path / "data")
    cat = MatchupCatalogue.open(scene.root)
    matchup = cat.get_matchup(scene.matchup_ids[0])
    s2_id = next(p for p in scene.product_files if p.startswith("S2A"))
    kept = tmp_path / "kept.tif"
    shutil.move(scene.product_files[s2_id], kept)
    calls: list[tuple[object, str]] = []

    def refuse(catalogue: MatchupCatalogue, product_id: str) -> None:
        calls.append((catalogue, product_id))
        raise DownloadError("provider said no")

    with pytest.raises(DatasetError, match=f"product {s2_id}: download failed: provider said no"):
        return_matchup_dataset(matchup, fetch=refuse)
    assert calls == [(cat, s2_id)]

    def restore(catalogue: MatchupCatalogue, product_id: str) -> None:
        calls.append((catalogue, product_id))
        shutil.copy(kept, scene.product_files[product_id])

    tree = BuildMUDT(cat, fetch=restore).for_matchup(matchup.id)
    assert calls[-1] == (cat, s2_id)
    assert tree["Sentinel-2A"].attrs["product_id"] == s2_id
    cat.close()


def test_pgpassword_is_read_where_settings_are() -> None:
    assert pgpassword({"PGPASSWORD": "s3cret"}) == "s3cret"
    assert pgpassword({}) is None
