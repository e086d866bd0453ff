"""``eomatch-find --max-cloud-cover`` (issue 12 item 1)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_find import run_settings
from test_find_cli import write_config
from test_find_cloud_cover import _matchups

from eomatch.cli.find import main
from eomatch.find import find
from eomatch.simulate import simulate_archive

START = "2022-05-21T14:00:00Z"
END = "2022-05-21T20:00:00Z"


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulate_archive(tmp_path_factory.mktemp("sim"), ["S2A", "L9"], START, END, bbox=(-125, 30, -70, 45))


def test_cli_flag_sets_the_limit(tmp_path: Path, archive: Path) -> None:
    find(run_settings(tmp_path / "all", archive), quiet=True)
    everything = _matchups(tmp_path / "all")
    want = {mid for mid, (_, cover) in everything.items() if cover <= 10}
    assert want and want != set(everything)
    cfg = write_config(tmp_path, archive)
    assert main(["--config", str(cfg), "--max-cloud-cover", "10", "-q"]) in (0, 1)
    assert set(_matchups(tmp_path / "cat")) == want
