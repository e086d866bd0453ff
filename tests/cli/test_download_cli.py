"""``eomatch-download`` as a user runs it: exit codes, the failure table, one-line errors."""

from __future__ import annotations

import json
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


def test_a_products_root_that_cannot_hold_files_is_one_error_up_front(capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "d").mkdir()
    for name in ("a.tif", "b.tif"):
        (tmp_path / "d" / name).write_bytes(b"4" * 10)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with RangeServer(tmp_path / "d") as http:
        cat = _catalogue(tmp_path / "cat", {"red": {"href": http.url("a.tif")}, "nir": {"href": http.url("b.tif")}})
        code = main(["--path", str(cat), "--products-root", str(blocker / "products"), "-q"])
        _, err = capsys.readouterr()
        assert code == 2
        assert err.strip() == f"error: products root {blocker / 'products'}: {blocker} is not a folder"
        assert http.bytes_sent == 0  # refused before any transfer
    assert blocker.read_text() == "not a folder"


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


def _config(path: Path, catalogue: Path, **download: object) -> Path:
    """A run config naming the catalogue, with ``download:`` settings."""
    lines = [f"matchup_catalogue:\n  path: {catalogue}\n", "download:\n"]
    lines += [f"  {key}: {json.dumps(value)}\n" for key, value in download.items()]  # JSON scalars are YAML
    path.write_text("".join(lines))
    return path


def test_basic_auth_from_config_and_wrong_password(capsys, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """download.username/password in the config authenticate; a wrong password exits 1 with a 401 row."""
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.tif").write_bytes(b"3" * 2000)
    with RangeServer(tmp_path / "d") as http:
        http.basic = ("carol", "open sesame")
        cat = _catalogue(tmp_path / "cat", {"red": {"href": http.url("a.tif")}})
        wrong = _config(tmp_path / "wrong.yaml", cat, username="carol", password="closed")
        code = main(["--config", str(wrong), "-q"])
        out, err = capsys.readouterr()
        assert code == 1
        assert "1 failed" in out and "Traceback" not in err
        row = err.splitlines()[2]
        assert "p1" in row and "HTTP 401" in row and http.url("a.tif") in row
        assert not (cat / "products" / "P" / "p1" / "a.tif").exists()
        right = _config(tmp_path / "right.yaml", cat, username="carol", password="open sesame")
        code = main(["--config", str(right), "-q"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "downloaded 1 files" in out
    assert (cat / "products" / "P" / "p1" / "a.tif").read_bytes() == b"3" * 2000


def test_netrc_in_home(capsys, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """~/.netrc supplies the credentials; with download.use_netrc false it is ignored (exit 1)."""
    monkeypatch.delenv("NETRC", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".netrc").write_text("machine 127.0.0.1 login dave password n3trc\n")
    (tmp_path / ".netrc").chmod(0o600)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.tif").write_bytes(b"4" * 2000)
    with RangeServer(tmp_path / "d") as http:
        http.basic = ("dave", "n3trc")
        cat = _catalogue(tmp_path / "cat", {"red": {"href": http.url("a.tif")}})
        code = main(["--config", str(_config(tmp_path / "off.yaml", cat, use_netrc=False)), "-q"])
        _, err = capsys.readouterr()
        assert code == 1 and "HTTP 401" in err
        assert not (cat / "products" / "P" / "p1" / "a.tif").exists()
        code = main(["--path", str(cat), "-q"])
    _, err = capsys.readouterr()
    assert code == 0, err
    assert (cat / "products" / "P" / "p1" / "a.tif").read_bytes() == b"4" * 2000


@pytest.mark.parametrize(("flag", "configured"), [(4, 1), (1, 4)])
def test_parallel_flag_sets_how_many_downloads_overlap(capsys, tmp_path, flag: int, configured: int) -> None:  # type: ignore[no-untyped-def]
    """--parallel N (over download.parallel) runs up to N transfers at once, never more.

    The server holds each body until two have been in flight together (or a
    bound passes), so any overlap the client allows is seen; no timing is asserted.
    """
    (tmp_path / "d").mkdir()
    for i in range(4):
        (tmp_path / "d" / f"b{i}.tif").write_bytes(bytes([i]) * 200_000)
    with RangeServer(tmp_path / "d", chunk_bytes=16 * 1024) as http:
        http.hold_until = 2
        http.hold_timeout_s = 0.5 if flag == 1 else 10.0
        cat = _catalogue(tmp_path / "cat", {f"b{i}": {"href": http.url(f"b{i}.tif")} for i in range(4)})
        cfg = _config(tmp_path / "run.yaml", cat, parallel=configured)
        code = main(["--config", str(cfg), "--parallel", str(flag), "-q"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "downloaded 4 files" in out
    for i in range(4):
        assert (cat / "products" / "P" / "p1" / f"b{i}.tif").read_bytes() == bytes([i]) * 200_000
    if flag == 1:
        assert http.max_in_flight == 1
    else:
        assert 1 < http.max_in_flight <= flag


def test_progress_counts_products_with_bytes_and_eta(capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Progress is products finished out of the catalogue's products (with ETA), the
    bytes so far ride along; the log ends at 100%; -q prints only the summary."""
    (tmp_path / "d").mkdir()
    for name in ("a.tif", "b.tif"):
        (tmp_path / "d" / name).write_bytes(b"3" * 5000)
    with RangeServer(tmp_path / "d") as http:
        root = tmp_path / "cat"
        with MatchupCatalogue.create(root) as cat:
            for pid, name in (("p1", "a.tif"), ("p2", "b.tif"), ("p3", None)):
                assets = {"red": {"href": http.url(name)}} if name else {}
                cat.add_product(Product.create(id=pid, collection="P", platform="Landsat-9", geometry=box(0, 0, 1, 1),
                                               start="2022-05-21T10:00:00Z", assets=assets))  # fmt: skip
        code = main(["--path", str(root)])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = [ln for ln in err.splitlines() if ln.startswith("download: ")]
    assert lines and all("/3 products (" in ln and "ETA" in ln for ln in lines), err
    assert lines[-1].startswith("download: 3/3 products (100%)")
    assert "2 files, 9.8 KiB at " in lines[-1]
    assert "downloaded 2 files" in out


def test_unsafe_item_id_is_refused_in_the_table_and_the_rest_downloads(capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.tif").write_bytes(b"3" * 10)
    with RangeServer(tmp_path / "d") as http:
        cat = _catalogue(tmp_path / "cat", {"red": {"href": http.url("a.tif")}})
        bad = json.loads(next(cat.rglob("p1.json")).read_text())
        bad["id"] = "../../../../../outside/PWNED"  # as an older eomatch-query wrote it
        (next(cat.rglob("p1.json")).parent / "PWNED.json").write_text(json.dumps(bad))
        MatchupCatalogue.open(cat).reindex()
        code = main(["--path", str(cat), "--products-root", str(tmp_path / "a" / "b" / "products"), "-q"])
    out, err = capsys.readouterr()
    assert code == 1 and "Traceback" not in err
    assert "downloaded 1 files" in out and "1 failed" in out
    assert "refused: item id '../../../../../outside/PWNED' is not a safe file name" in err
    assert [p.name for p in tmp_path.rglob("a.tif") if "products" in p.parts] == ["a.tif"]
    assert not list(tmp_path.rglob("*outside*"))
