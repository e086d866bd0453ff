"""Which names from data may become file names, and which paths stay under their root.

Item ids, collection ids and asset keys come from files and remote APIs; the
catalogue layout turns them into paths (``{collection}/{YYYY}/{MM}/{DD}/{id}.json``).
A name like ``../../outside/PWNED`` would then write or read outside the folder
it belongs to. Every place that makes a path from such a name checks it here
(ingest, query, download, the catalogue writer).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from eomatch.errors import EomatchError

MAX_NAME_BYTES = 255
"""The longest file name most file systems allow (ext4, XFS)."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PLAIN = re.compile(r"[^./\\\x00-\x1f\x7f][^/\\\x00-\x1f\x7f]{0,254}")
"""ASCII names this matches are safe (at most 255 characters, one byte each): one
regular expression instead of every check, as ingest checks several per item."""


class UnsafeNameError(EomatchError):
    """A name or path from data would lead outside the folder it belongs to."""


def unsafe_reason(name: object) -> str | None:
    """Why ``name`` is not a safe file name (a few words), or None if it is.

    Safe: a non-empty string of at most 255 UTF-8 bytes, no ``/`` or ``\\``, no NUL
    or other control character, not starting with ``.`` (so neither ``.``/``..``
    nor hidden files such as ``.eomatch``).
    """
    if not isinstance(name, str):
        return f"not a string ({type(name).__name__})"
    if _PLAIN.fullmatch(name) and name.isascii():
        return None
    if not name:
        return "empty"
    if "/" in name or "\\" in name:
        return "contains a path separator"
    if name.startswith("."):
        return "starts with '.'"
    if _CONTROL.search(name):
        return "contains a control character"
    try:
        too_long = len(name.encode("utf-8")) > MAX_NAME_BYTES
    except UnicodeEncodeError:
        return "not valid Unicode"
    if too_long:
        return f"longer than {MAX_NAME_BYTES} bytes"
    return None


def is_safe_name(name: object) -> bool:
    """Whether ``name`` can be used as one file or folder name (see :func:`unsafe_reason`)."""
    return unsafe_reason(name) is None


def require_safe_name(name: object, what: str = "name") -> str:
    """``name`` itself if safe, else :class:`UnsafeNameError` naming it and the rule."""
    reason = unsafe_reason(name)
    if reason is not None:
        raise UnsafeNameError(f"{what} {name!r} is not a safe file name: {reason}")
    return name  # type: ignore[return-value]


def ensure_under(root: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """``path`` (absolute, normalised) if it lies under ``root``; else :class:`UnsafeNameError`.

    The check resolves both (``..`` and symbolic links), so a path that only looks
    as if it were under ``root`` is refused. ``path`` need not exist yet.
    """
    root_real = Path(os.path.realpath(root))
    target_real = Path(os.path.realpath(path))
    if target_real != root_real and root_real not in target_real.parents:
        raise UnsafeNameError(f"{os.fspath(path)} is outside {root_real}")
    return Path(os.path.abspath(path))


check_under = ensure_under
"""The same check, under the name the ingest side first proposed."""
