"""Fast JSON files written atomically: temp file in the same folder, fsync, rename."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import orjson

from eomatch.errors import CatalogueError


def dumps(obj: Any, indent: bool = True) -> bytes:
    option = orjson.OPT_INDENT_2 if indent else 0
    return orjson.dumps(obj, option=option | orjson.OPT_NON_STR_KEYS)


def read_json(path: str | Path) -> Any:
    """Read JSON; a syntax error names the file and line."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise CatalogueError(f"file not found: {p}") from None
    except OSError as exc:
        raise CatalogueError(f"cannot read {p}: {exc.strerror}") from None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CatalogueError(f"malformed JSON in {p} line {exc.lineno}: {exc.msg}") from None


def write_bytes_atomic(path: str | Path, data: bytes, mode: int = 0o644, fsync: bool = False) -> None:
    """Write so that readers see the old file or the new one, never half of one.

    The rename is atomic against crashes of this process; ``fsync=True`` also
    survives power loss, at a cost that matters for bulk writes.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_json_atomic(path: str | Path, obj: Any, indent: bool = True, fsync: bool = False) -> None:
    write_bytes_atomic(path, dumps(obj, indent=indent) + b"\n", fsync=fsync)
