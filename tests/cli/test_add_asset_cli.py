"""eomatch-add-asset: output, --list, and one-line errors that leave the item file untouched."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers_add_asset import add_asset_target
from test_add_asset import result_file

from eomatch.cli.add_asset import main
from eomatch.stack.process import free_port


@pytest.fixture
def cat(tmp_path: Path) -> dict[str, Any]:
    return {**add_asset_target(tmp_path / "cat"), "file": result_file(tmp_path, "r_20260510.nc")}


def _args(cat: dict[str, Any], *extra: str, file: Path | str | None = None) -> list[str]:
    return [
        "--catalogue", str(cat["root"]), "--collection-id", cat["coll"], "--item-id", cat["mid"],
        "--file", str(file or cat["file"]), *extra,
    ]  # fmt: skip


def _fails(argv: list[str], capsys: pytest.CaptureFixture[str], code: int = 2) -> str:
    rc = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    if "--api-key" in argv:  # the flag works, with its one warning line (the key shows in ps)
        assert err[0].startswith("warning: --api-key is visible"), err
        err = err[1:]
    assert rc == code, err
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_add_replace_and_list(cat: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_args(cat)) == 0
    assert capsys.readouterr().out.strip().startswith("added comparison:2026-05-10 on ")
    assert main(_args(cat)) == 0
    assert "replaced comparison:2026-05-10" in capsys.readouterr().out
    older = result_file(tmp_path, "r_20260115.nc", b"0123456789")
    assert main(_args(cat, file=older)) == 0
    assert "comparison:latest stays at the newer 2026-05-10" in capsys.readouterr().out
    base = ["--catalogue", str(cat["root"]), "--collection-id", cat["coll"], "--item-id", cat["mid"]]
    assert main(["--list", *base]) == 0
    rows = capsys.readouterr().out.strip().splitlines()[1:]
    assert len(rows) == 2
    assert "2026-01-15" in rows[0] and " 10 " in rows[0] and not rows[0].startswith("*")
    assert rows[1].startswith("*") and "2026-05-10" in rows[1] and f"file://{cat['file']}" in rows[1]


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"--collection-id": "NO_SUCH_COLLECTION"}, "unknown collection"),
        ({"--item-id": "matchup-0000000000000000"}, "unknown item id"),
        ({"--file": "/nonexistent/r_20260510.nc"}, "result file not found"),
        ({"--date": "10/05/2026"}, "not a date"),
        ({"--key-prefix": "bad:prefix"}, "invalid key prefix"),
        ({"--api-key": "k"}, "without push"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    cat: dict[str, Any], capsys: pytest.CaptureFixture[str], change: dict[str, str], needle: str
) -> None:
    argv = _args(cat)
    for flag, value in change.items():
        if flag in argv:
            argv[argv.index(flag) + 1] = value
        else:
            argv += [flag, value]
    before = cat["path"].read_bytes()
    assert needle in _fails(argv, capsys)
    assert cat["path"].read_bytes() == before


def test_unreadable_catalogue(cat: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no catalog.json" in _fails(_args({**cat, "root": empty}), capsys)
    before = cat["path"].read_bytes()
    (cat["root"] / "catalog.json").write_text('{"type": "Catalog",')
    assert "malformed JSON" in _fails(_args(cat), capsys)
    assert cat["path"].read_bytes() == before


def test_corrupt_item_file_is_reported_and_left_alone(cat: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    cat["path"].write_text('{"type": "Feature", "id": ')
    assert "malformed JSON" in _fails(_args(cat), capsys)
    assert cat["path"].read_text() == '{"type": "Feature", "id": '


def test_push_to_a_database_that_is_down(
    cat: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGPASSWORD", "secret")
    before = cat["path"].read_bytes()
    argv = _args(cat, "--push", "--db-host", "127.0.0.1", "--db-port", str(free_port()), "--db-user", "someone")
    assert "connection refused" in _fails(argv, capsys)
    assert cat["path"].read_bytes() == before


def test_push_to_an_api_that_is_down(
    cat: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EOMATCH_API_KEY", "whatever")
    before = cat["path"].read_bytes()
    argv = _args(cat, "--push", "--api-url", f"http://127.0.0.1:{free_port()}/api")
    assert "cannot reach" in _fails(argv, capsys)
    assert cat["path"].read_bytes() == before


def test_api_url_without_a_key(cat: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EOMATCH_API_KEY", raising=False)
    before = cat["path"].read_bytes()
    assert "needs an API key" in _fails(_args(cat, "--push", "--api-url", "http://127.0.0.1:1/api"), capsys)
    assert cat["path"].read_bytes() == before


def test_push_failing_after_the_local_write_says_so(
    cat: dict[str, Any], capsys: pytest.CaptureFixture[str], httpserver: Any
) -> None:
    """An API that accepts the key but rejects the item: written locally, exit 3, retry hint."""
    coll, mid = cat["coll"], cat["mid"]
    httpserver.expect_request("/api/collections", method="POST").respond_with_json({"detail": "invalid"}, status=400)
    httpserver.expect_request(f"/api/collections/{coll}", method="PUT").respond_with_json({"id": coll})
    httpserver.expect_request(f"/api/collections/{coll}/items/{mid}", method="PUT").respond_with_json(
        {"code": "InternalError", "description": "disk full"}, status=500
    )
    line = _fails(_args(cat, "--push", "--api-url", httpserver.url_for("/api"), "--api-key", "k"), capsys, code=3)
    assert "registered comparison:2026-05-10" in line and "locally" in line
    assert "push to" in line and "disk full" in line and "retry with --push" in line
    item = json.loads(cat["path"].read_text())
    assert "comparison:2026-05-10" in item["assets"] and "comparison:latest" in item["assets"]


# --------------------------------------------------------------------------- the real stack


@pytest.mark.stack
def test_wrong_key_and_wrong_password_are_refused(
    running_stack: Any, cat: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = cat["path"].read_bytes()
    line = _fails(_args(cat, "--push", "--api-url", running_stack.internal, "--api-key", "not-a-key"), capsys)
    assert "refused the key" in line and "401" in line
    creds = running_stack.credentials("ingest")
    monkeypatch.setenv("PGPASSWORD", "wrong-password")
    argv = _args(
        cat, "--push", "--db-host", creds.host, "--db-port", str(creds.port),
        "--db-name", creds.dbname, "--db-user", creds.user,
    )  # fmt: skip
    assert "password authentication failed" in _fails(argv, capsys)
    assert cat["path"].read_bytes() == before


@pytest.mark.stack
def test_push_with_key_from_env_and_with_db_flags(
    running_stack: Any, cat: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    import httpx
    from helpers import api_key

    from eomatch.ingest import ingest

    ingest(running_stack.settings, catalogue=cat["root"], quiet=True)
    monkeypatch.setenv("EOMATCH_API_KEY", api_key(running_stack))
    assert main(_args(cat, "--push", "--api-url", running_stack.internal)) == 0
    assert "pushed to " + running_stack.internal in capsys.readouterr().out
    creds = running_stack.credentials("ingest")
    monkeypatch.setenv("PGPASSWORD", creds.password)
    newer = result_file(tmp_path, "r_20260601.nc")
    argv = _args(
        cat, "--push", "--db-host", creds.host, "--db-port", str(creds.port),
        "--db-name", creds.dbname, "--db-user", creds.user, file=newer,
    )  # fmt: skip
    assert main(argv) == 0
    assert "pushed to postgresql://" in capsys.readouterr().out
    doc = httpx.get(f"{running_stack.internal}/collections/{cat['coll']}/items/{cat['mid']}", timeout=30).json()
    assert doc["assets"]["comparison:latest"]["href"] == f"file://{newer}"
    assert "comparison:2026-05-10" in doc["assets"]


def test_media_type_flag_sets_the_asset_type(cat: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    """--media-type overrides the type guessed from the file extension."""
    assert main(_args(cat, "--media-type", "application/vnd.example+json")) == 0
    assert capsys.readouterr().out.strip().startswith("added comparison:2026-05-10 on ")
    item = json.loads(cat["path"].read_text())
    assert item["assets"]["comparison:2026-05-10"]["type"] == "application/vnd.example+json"
    assert item["assets"]["comparison:latest"]["type"] == "application/vnd.example+json"
    assert main(_args(cat)) == 0  # the same date again, no flag: back to the guess for .nc
    item = json.loads(cat["path"].read_text())
    assert item["assets"]["comparison:2026-05-10"]["type"] == "application/x-netcdf"
