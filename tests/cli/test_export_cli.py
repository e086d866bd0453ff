"""``eomatch-export`` as a user runs it: the summary line, progress and ``-q``, one-line errors."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from catalogue_factory import build_catalogue

from eomatch.cli.export import main


@pytest.fixture
def cat(tmp_path: Path) -> Path:
    root = tmp_path / "cat"
    build_catalogue(root, n_events=4).close()
    return root


def test_writes_the_file_and_says_what_it_holds(cat: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "matchups.csv"
    code = main(["--catalogue", str(cat), "--format", "csv", "--output", str(out)])
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4
    assert stdout.strip().splitlines() == [stdout.strip()]  # one summary line
    assert stdout.startswith(f"{out} holds 4 matchups, one row each (CSV, WKT geometry in EPSG:4326; ")
    # progress with a total from the index, on stderr
    assert "export: 4/4 matchups (100%)" in stderr and "ETA" in stderr


def test_quiet_prints_only_the_summary(cat: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("pyarrow")
    out = tmp_path / "m.parquet"
    assert main(["--catalogue", str(cat), "--output", str(out), "-q"]) == 0  # format from the suffix
    stdout, stderr = capsys.readouterr()
    assert stderr == ""
    assert "holds 4 matchups" in stdout and "GeoParquet" in stdout
    assert out.stat().st_size > 0


def test_catalogue_from_the_config(cat: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(f"matchup_catalogue:\n  path: {cat}\n")
    out = tmp_path / "m.geojson"
    assert main(["--config", str(config), "--output", str(out), "-q"]) == 0
    assert "holds 4 matchups" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--output", "{tmp}/m.txt"], "error: cannot tell the format of"),
        (["--output", "{tmp}/missing/m.csv"], "error: output folder {tmp}/missing does not exist"),
        (["--output", "{tmp}/m.csv", "--collection", "nope"], "error: unknown collection 'nope'"),
    ],
)
def test_bad_input_is_one_line(
    cat: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    argv = ["--catalogue", str(cat)] + [a.format(tmp=tmp_path) for a in args]
    assert main(argv) == 2
    _, stderr = capsys.readouterr()
    assert stderr.startswith(message.format(tmp=tmp_path))
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
    assert not any(p.name.startswith(".m.") for p in tmp_path.iterdir())


def test_no_catalogue_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("EOMATCH_CONFIG", raising=False)
    monkeypatch.delenv("EOMATCH_MATCHUP_CATALOGUE__PATH", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["--output", str(tmp_path / "m.csv")]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: no catalogue given: pass --catalogue or set matchup_catalogue.path in the config"
    )
    assert main(["--catalogue", str(tmp_path / "nowhere"), "--output", str(tmp_path / "m.csv")]) == 2
    assert capsys.readouterr().err.startswith(f"error: no catalog.json at {tmp_path / 'nowhere'}")
