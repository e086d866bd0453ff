"""Names from data that become file names, and paths that must stay under a root."""

from __future__ import annotations

from pathlib import Path

import pytest

from eomatch.safe_names import (
    UnsafeNameError,
    check_under,
    ensure_under,
    is_safe_name,
    require_safe_name,
    unsafe_reason,
)


@pytest.mark.parametrize("name", ["S2A_MSIL1C_20220101", "item-1.json", "ü", "a" * 255, "é" * 127, "a..b", "a b"])
def test_safe_names_pass(name: str) -> None:
    assert is_safe_name(name)
    assert require_safe_name(name, "item id") == name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "empty"),
        (".", "starts with '.'"),
        ("..", "starts with '.'"),
        ("../x", "path separator"),
        ("../../../../outside/PWNED", "path separator"),
        ("a/b", "path separator"),
        ("a\\b", "path separator"),
        (".hidden", "starts with '.'"),
        ("a\x00b", "control character"),
        ("a\nb", "control character"),
        ("\x7f", "control character"),
        ("a" * 256, "longer than 255 bytes"),
        ("é" * 128, "longer than 255 bytes"),
        ("\ud800", "not valid Unicode"),
        (None, "not a string"),
        (7, "not a string"),
    ],
)
def test_unsafe_names_refused_with_the_reason(name: object, reason: str) -> None:
    assert not is_safe_name(name)
    assert reason in (unsafe_reason(name) or "")
    with pytest.raises(UnsafeNameError, match="not a safe file name"):
        require_safe_name(name, "item id")


def test_ensure_under(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    assert ensure_under(root, root / "a" / "b.json") == root / "a" / "b.json"
    assert check_under is ensure_under
    with pytest.raises(UnsafeNameError, match="outside"):
        ensure_under(root, root / ".." / "x.json")
    (root / "link").symlink_to(tmp_path)
    with pytest.raises(UnsafeNameError, match="outside"):
        ensure_under(root, root / "link" / "x.json")
