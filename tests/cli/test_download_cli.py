"""``eomatch-download`` as a user runs it: exit codes, the failure table, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers_http import RangeServer
from shapely.geometry import box

from eomatch.catalogue import MatchupCatalogue
from eomatch.cli.download import main
from eomatch.model import Product


def _catalogue(root: Path, assets: dict) -> Path:  # type: ignore[type-arg]
    with MatchupCatalogue.create(root) as cat:
        cat.add_product(Product.create(id="p1", collection="P", platform="Landsat-9", geometry=box(0, 0, 1, 1),
                                       start="2022-05-21T10:00:00Z", assets=assets))  # fmt: skip
    return root


def test_path_downloads_and_exits_zero(capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.tif").write_bytes(b"1" * 1000)
    with RangeServer(tmp_path / "d") as http:
        cat = _catalogue(tmp_path / "cat", {"red": {"href": http.url("a.tif")}})
        code = main(["--path", str(cat), "-q"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "downloaded 1 files" in out
    assert (cat / "products" / "P" / "p1" / "a.tif").read_bytes() == b"1" * 1000


def test_config_uses_catalogue_and_products_root(capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.tif").write_bytes(b"2" * 10)
    with RangeServer(tmp_path / "d") as http:
        cat = _catalogue(tmp_path / "cat", {"red": {"href": http.url("a.tif")}})
        cfg = tmp_path / "run.yaml"
        cfg.write_text(f"matchup_catalogue:\n  path: {cat}\ndownload:\n  products_root: {tmp_path / 'nfs'}\n")
        code = main(["--config", str(cfg), "-q"])
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "nfs" / "P" / "p1" / "a.tif").read_bytes() == b"2" * 10


def test_failures_print_a_table_and_exit_nonzero(capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "d").mkdir()
    with RangeServer(tmp_path / "d") as http:
        cat = _catalogue(tmp_path / "cat", {"red": {"href": http.url("missing.tif")}, "b": {"href": "ftp://x/y.tif"}})
        code = main(["--path", str(cat), "-q"])
    out, err = capsys.readouterr()
    assert code == 1
    assert "1 failed" in out
    assert "Traceback" not in err
    lines = err.splitlines()
    assert lines[0] == "1 downloads failed:"
    assert lines[1].split()[:3] == ["product", "asset", "reason"]
    assert "p1" in lines[2] and "HTTP 404" in lines[2] and http.url("missing.tif") in lines[2]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        ([], "no catalogue given"),
        (["--path", "/nonexistent/catalogue"], "no catalog.json"),
        (["--config", "/nonexistent.yaml"], "config file not found"),
    ],
)
def test_bad_inputs_are_one_line(capsys, argv, needle) -> None:  # type: ignore[no-untyped-def]
    code = main(argv)
    _, err = capsys.readouterr()
    assert code != 0
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err
