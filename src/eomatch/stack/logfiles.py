"""Size-based rotation of the local stack's nginx logs (``eomatch-stack rotate-logs``).

Who rotates what:

- PostgreSQL rotates its own log daily (``logging_collector``, one file per
  weekday, truncated when the week comes round). Its size-based rotation reuses
  the same file name and so appends, which bounds nothing within a day: an
  over-size day file is copied and truncated here (the collector appends).
- The two APIs log through a ``RotatingFileHandler`` (``EOMATCH_LOG_FILE``).
- nginx cannot rotate: this module renames an over-size access/error log to
  ``.1`` (shifting older ones, keeping ``stack.log_backups``) and sends the
  master ``USR1``, on which nginx reopens its log files by name.
- The small stdout/stderr capture files of the spawned APIs are copied and
  truncated in place (the process keeps its append-mode descriptor).

Run it from cron (see ``deploy/README.md``); it is cheap when nothing is over size.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from eomatch.stack.process import wait_until

if TYPE_CHECKING:
    from eomatch.stack import Stack
    from eomatch.stack.nginx import NginxInstance


def shift_backups(path: Path, backups: int) -> None:
    """``f.(n-1)`` -> ``f.n`` ... ``f.1`` -> ``f.2``; the oldest beyond ``backups`` goes."""
    oldest = path.with_name(f"{path.name}.{backups}")
    oldest.unlink(missing_ok=True)
    for i in range(backups - 1, 0, -1):
        src = path.with_name(f"{path.name}.{i}")
        if src.exists():
            os.replace(src, path.with_name(f"{path.name}.{i + 1}"))


def _over(path: Path, max_bytes: int) -> bool:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return False
    return size > 0 and size >= max_bytes


def rotate_by_rename(path: Path, backups: int) -> None:
    """For writers that reopen by name (nginx after ``USR1``)."""
    if backups <= 0:
        path.unlink(missing_ok=True)
        return
    shift_backups(path, backups)
    os.replace(path, path.with_name(f"{path.name}.1"))


def rotate_by_copy(path: Path, backups: int) -> None:
    """For writers that keep an ``O_APPEND`` descriptor and never reopen."""
    if backups > 0:
        shift_backups(path, backups)
        shutil.copy2(path, path.with_name(f"{path.name}.1"))
    with open(path, "r+b") as fh:
        fh.truncate(0)


def _nginx_logs(instance: NginxInstance) -> list[Path]:
    logs = instance.paths.logs
    return [logs / f"{instance.name}-access.log", logs / f"{instance.name}-error.log"]


def rotate_nginx_logs(stack: Stack, max_bytes: int | None = None) -> str:
    """Rotate every over-size log nginx writes (and the API stdout captures and
    PostgreSQL's day file); one line.

    ``max_bytes`` defaults to ``stack.log_max_bytes``; 0 rotates every non-empty log.
    """
    st = stack.settings.stack
    limit = st.log_max_bytes if max_bytes is None else max_bytes
    rotated: list[str] = []
    for instance in (stack.proxy, stack.browser):
        files = [p for p in _nginx_logs(instance) if _over(p, limit)]
        if not files:
            continue
        for path in files:
            rotate_by_rename(path, st.log_backups)
            rotated.append(path.name)
        pid = instance.pid()
        if pid is not None:
            instance.reopen_logs()
            # The master recreates the files on reopen; wait so the next line lands there.
            wait_until(lambda files=files: all(p.exists() for p in files), 5, 0.05)  # type: ignore[misc]
    for api in stack.apis:
        if _over(api.log_file, limit):
            rotate_by_copy(api.log_file, st.log_backups)
            rotated.append(api.log_file.name)
    pg_logs = stack.paths.logs / "postgres"
    if pg_logs.is_dir():
        for path in sorted(pg_logs.glob("postgres-*.log")):
            if _over(path, limit):
                rotate_by_copy(path, 1)
                rotated.append(f"postgres/{path.name}")
    if not rotated:
        return f"no log over {limit} bytes in {stack.paths.logs}; nothing rotated"
    return f"rotated {len(rotated)} logs in {stack.paths.logs}: {', '.join(rotated)}"
