"""``eomatch-tle fetch`` end to end against a local HTTP server (no internet)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from eomatch.cli.tle import main
from eomatch.orbits.tle import PACKAGED_TLE_DIR, read_tle_file

L9 = (PACKAGED_TLE_DIR / "landsat-9-2022.tle").read_text().splitlines()


def _config(tmp_path: Path, url: str) -> Path:
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"celestrak_url: {url}\ntle_cache_dir: {tmp_path / 'cache'}\n")
    return cfg


def test_fetch_into_cache_by_platform_alias(
    httpserver, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    httpserver.expect_request(
        "/gp.php", query_string={"CATNR": "49260", "FORMAT": "TLE"}
    ).respond_with_data("\n".join(L9[:3]) + "\n")
    cfg = _config(tmp_path, httpserver.url_for("/gp.php"))
    assert main(["--config", str(cfg), "fetch", "--platform", "ls9"]) == 0
    sets = read_tle_file(tmp_path / "cache" / "49260.tle")
    assert [s.line2 for s in sets] == [L9[2]]
    assert "1 new element sets" in capsys.readouterr().out


def test_fetch_out_dir_and_norad(httpserver, tmp_path: Path) -> None:
    httpserver.expect_request(
        "/gp.php", query_string={"CATNR": "49260", "FORMAT": "TLE"}
    ).respond_with_data("\n".join(L9[3:6]) + "\n")
    cfg = _config(tmp_path, httpserver.url_for("/gp.php"))
    out = tmp_path / "elsewhere"
    assert main(["--config", str(cfg), "fetch", "--norad", "49260", "--out", str(out)]) == 0
    assert len(read_tle_file(out / "49260.tle")) == 1
    assert not (tmp_path / "cache").exists()


def test_fetch_offline_is_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    cfg = _config(tmp_path, f"http://127.0.0.1:{port}/gp.php")
    code = main(["--config", str(cfg), "fetch", "--norad", "49260", "--timeout", "5"])
    err = capsys.readouterr().err
    assert code != 0
    assert err.startswith("error: cannot reach") and err.count("\n") == 1
    assert "Traceback" not in err


def test_fetch_unknown_platform(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _config(tmp_path, "http://127.0.0.1:9/gp.php")
    assert main(["--config", str(cfg), "fetch", "--platform", "Nope-1"]) != 0
    assert "unknown platform 'Nope-1'" in capsys.readouterr().err
