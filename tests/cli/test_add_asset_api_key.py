"""eomatch-add-asset --push --api-url: the write key from a file or the environment,
so it never shows in ``ps``; ``--api-key KEY`` still works, with a warning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers_add_asset import add_asset_target
from test_add_asset import result_file

from eomatch.cli.add_asset import main


@pytest.fixture
def cat(tmp_path: Path) -> dict[str, Any]:
    return add_asset_target(tmp_path / "cat")


def _args(cat: dict[str, Any], file: Path, *extra: str) -> list[str]:
    return ["--catalogue", str(cat["root"]), "--collection-id", cat["coll"], "--item-id", cat["mid"],
            "--file", str(file), "--push", *extra]  # fmt: skip


def _key_file(folder: Path, key: str) -> Path:
    path = folder / "api.key"
    path.write_text(key + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def no_key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("EOMATCH_API_KEY", "EOMATCH_API_KEY_FILE", "EOMATCH_CONFIG"):
        monkeypatch.delenv(name, raising=False)


def _api_assets(running_stack: Any, cat: dict[str, Any]) -> dict[str, Any]:
    url = f"{running_stack.internal}/collections/{cat['coll']}/items/{cat['mid']}"
    return httpx.get(url, timeout=30).json()["assets"]


@pytest.mark.usefixtures("no_key_env")
def test_missing_or_empty_key_file_is_one_line_and_writes_nothing(cat, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    before = cat["path"].read_bytes()
    result = result_file(tmp_path, "r_20260510.nc")
    for key_file, needle in ((tmp_path / "nope.key", "not found"), (_key_file(tmp_path, "  "), "alone, on one line")):
        code = main(_args(cat, result, "--api-url", "http://127.0.0.1:1/api", "--api-key-file", str(key_file)))
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and err[0].startswith("error: API key file") and needle in err[0], err
    assert cat["path"].read_bytes() == before


@pytest.mark.stack
@pytest.mark.usefixtures("no_key_env")
def test_key_from_a_file_pushes_and_never_needs_the_command_line(running_stack, cat, tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from helpers import api_key

    from eomatch.ingest import ingest

    ingest(running_stack.settings, catalogue=cat["root"], quiet=True)
    key_file = _key_file(tmp_path, api_key(running_stack, "key-file"))
    may = result_file(tmp_path, "r_20260510.nc")
    assert main(_args(cat, may, "--api-url", running_stack.internal, "--api-key-file", str(key_file))) == 0
    captured = capsys.readouterr()
    assert "pushed to " + running_stack.internal in captured.out and captured.err == ""
    assert "comparison:2026-05-10" in _api_assets(running_stack, cat)

    monkeypatch.setenv("EOMATCH_API_KEY_FILE", str(key_file))  # the same through the environment
    june = result_file(tmp_path, "r_20260601.nc")
    assert main(_args(cat, june, "--api-url", running_stack.internal)) == 0
    assert capsys.readouterr().err == ""
    assert "comparison:2026-06-01" in _api_assets(running_stack, cat)

    (tmp_path / "wrong").mkdir()
    wrong = _key_file(tmp_path / "wrong", "not-a-key")
    before = cat["path"].read_bytes()
    assert main(_args(cat, june, "--api-url", running_stack.internal, "--api-key-file", str(wrong))) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "refused the key" in err[0] and "401" in err[0], err
    assert cat["path"].read_bytes() == before


@pytest.mark.stack
@pytest.mark.usefixtures("no_key_env")
def test_api_key_flag_still_works_with_one_warning(running_stack, cat, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from helpers import api_key

    from eomatch.ingest import ingest

    ingest(running_stack.settings, catalogue=cat["root"], quiet=True)
    may = result_file(tmp_path, "r_20260510.nc")
    assert main(_args(cat, may, "--api-url", running_stack.internal, "--api-key", api_key(running_stack, "flag"))) == 0
    captured = capsys.readouterr()
    assert "pushed to " + running_stack.internal in captured.out
    (warning,) = captured.err.strip().splitlines()
    assert warning.startswith("warning: --api-key is visible") and "--api-key-file" in warning
    assert "comparison:2026-05-10" in _api_assets(running_stack, cat)
