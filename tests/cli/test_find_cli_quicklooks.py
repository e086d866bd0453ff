"""``eomatch-find --no-quicklooks`` and ``find.quicklooks`` as users set them."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_find_cli import archive, write_config  # noqa: F401  (the module's archive fixture)

from eomatch.cli.find import main


def _pngs(root: Path) -> list[Path]:
    return sorted(root.rglob("*.png"))


def test_quicklooks_by_default_and_off_by_flag_or_config(tmp_path: Path, archive: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    on = tmp_path / "on"
    on.mkdir()
    assert main(["--config", str(write_config(on, archive)), "-q"]) == 0
    assert _pngs(on / "cat"), "no quicklooks written by default"

    by_flag = tmp_path / "flag"
    by_flag.mkdir()
    assert main(["--config", str(write_config(by_flag, archive)), "-q", "--no-quicklooks"]) == 0
    assert not _pngs(by_flag / "cat")

    by_config = tmp_path / "config"
    by_config.mkdir()
    assert main(["--config", str(write_config(by_config, archive, quicklooks=False)), "-q"]) == 0
    assert not _pngs(by_config / "cat")
    # the same items either way, only without the thumbnails
    names = sorted(p.name for p in (on / "cat").rglob("*.json") if p.parent.name != ".eomatch")
    assert names == sorted(p.name for p in (by_flag / "cat").rglob("*.json") if p.parent.name != ".eomatch")
    capsys.readouterr()
