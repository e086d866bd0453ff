"""Backups of the local stack's catalogue database: ``pg_dump`` / ``pg_restore``.

A backup is a custom-format archive made with the cluster's own ``pg_dump``
(same major version as the server) as the admin role. It is written to
``FILE.part`` and renamed, so ``FILE`` is either absent or a complete dump. It holds
every item and the roles' grants: it is created mode 0600 before the first byte,
whatever the umask, and replaces an older ``FILE`` whatever that one's mode was.
A restore replaces the catalogue database's contents in one transaction
(``--clean --if-exists --single-transaction``): on any error the old contents
stay. The role grants are re-applied afterwards, as on ``eomatch-stack up``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from eomatch.errors import StackError
from eomatch.settings import Settings
from eomatch.stack.db import Database, DbCredentials, stack_credentials

DUMP_MAGIC = b"PGDMP"
"""First bytes of every pg_dump custom-format archive."""


def _pg_tool(settings: Settings, name: str) -> str:
    path = settings.stack.db.pg_bin_dir / name
    if not path.exists():
        raise StackError(
            f"{name} not found at {path}; install the PostgreSQL client of the cluster's "
            "version or set stack.db.pg_bin_dir"
        )
    return str(path)


def _admin(settings: Settings) -> DbCredentials:
    admin = stack_credentials(settings, "admin")
    if not Database(settings).healthy():
        raise StackError(
            f"db: not reachable at {admin.redacted()}; start the stack first ('eomatch-stack up')"
        )
    return admin


def _run(args: list[str], creds: DbCredentials, what: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(creds.pg_env())
    proc = subprocess.run(args, capture_output=True, text=True, env=env, cwd="/")
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        detail = next((ln for ln in lines if "error" in ln.lower()), lines[-1] if lines else "no output")
        raise StackError(f"{what} failed: {detail.strip()}")


def _size(nbytes: int) -> str:
    return f"{nbytes / 1e6:.1f} MB" if nbytes >= 100_000 else f"{nbytes / 1e3:.1f} kB"


def backup(settings: Settings, file: str | Path) -> str:
    """Dump the stack's catalogue database to ``file`` (custom format); one-line summary."""
    out = Path(file).expanduser().absolute()
    if out.is_dir():
        raise StackError(f"backup target {out} is a folder; give a file name, e.g. {out / 'eomatch.dump'}")
    if not out.parent.is_dir():
        raise StackError(f"backup folder {out.parent} does not exist")
    pg_dump = _pg_tool(settings, "pg_dump")
    admin = _admin(settings)
    part = out.with_name(out.name + ".part")
    t0 = time.monotonic()
    part.unlink(missing_ok=True)  # a killed run's leftover: it may have another mode
    os.close(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))  # pg_dump keeps the mode
    try:
        _run(
            [pg_dump, "--format=custom", "--compress=6", f"--file={part}", f"--dbname={admin.dbname}"],
            admin,
            "pg_dump",
        )
        os.replace(part, out)
    finally:
        part.unlink(missing_ok=True)
    return (
        f"backup of {admin.redacted()} written to {out} "
        f"({_size(out.stat().st_size)}, {time.monotonic() - t0:.1f}s)"
    )


def check_dump(file: str | Path) -> Path:
    """The path of a readable custom-format dump, or a one-line error."""
    path = Path(file).expanduser().absolute()
    if not path.exists():
        raise StackError(f"backup file not found: {path}")
    if not path.is_file():
        raise StackError(f"backup {path} is not a file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(DUMP_MAGIC))
    except OSError as exc:
        raise StackError(f"cannot read backup {path}: {exc.strerror}") from None
    if head != DUMP_MAGIC:
        raise StackError(f"{path} is not a pg_dump custom-format archive (make one with 'eomatch-stack backup')")
    return path


def restore(settings: Settings, file: str | Path) -> str:
    """Replace the catalogue database's contents with the dump ``file``; one-line summary.

    All or nothing: the restore script runs in a single transaction. The APIs
    keep running; their connection pools reconnect by themselves.
    """
    path = check_dump(file)
    pg_restore = _pg_tool(settings, "pg_restore")
    psql = _pg_tool(settings, "psql")
    admin = _admin(settings)
    t0 = time.monotonic()
    _restore_via_psql(pg_restore, psql, path, admin)
    # Login roles and their memberships live in the cluster, not in the dump:
    # re-apply them (and migrate pgSTAC if the dump is older than this version).
    Database(settings).setup_database()
    items, collections = _counts(admin)
    # Standbys replay the restore like any write; wait for them (or rebuild them).
    from eomatch.stack.replica import catch_up

    standbys = catch_up(settings) if settings.stack.db.replicas else []
    return (
        f"restored {path} into {admin.redacted()}: {items} items in {collections} collections "
        f"({time.monotonic() - t0:.1f}s)" + (f"; {', '.join(standbys)}" if standbys else "")
    )


_EMPTY_SEARCH_PATH = b"SELECT pg_catalog.set_config('search_path', '', false);"
_PGSTAC_SEARCH_PATH = b"SELECT pg_catalog.set_config('search_path', 'pgstac, public', false);"


def _restore_via_psql(pg_restore: str, psql: str, path: Path, admin: DbCredentials) -> None:
    """``pg_restore --clean`` as SQL, piped into ``psql`` in one transaction.

    pg_restore empties ``search_path``, but some pgSTAC SQL functions used by
    generated columns call PostGIS without a schema (``collection_geom`` ->
    ``st_makeenvelope``) and fail under an empty path. The script's header
    line is rewritten to ``pgstac, public``; the rest streams through unchanged.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(admin.pg_env(), PGOPTIONS="-c client_min_messages=warning")
    with tempfile.TemporaryFile() as dump_log, tempfile.TemporaryFile() as load_log:
        dump = subprocess.Popen(
            [pg_restore, "--clean", "--if-exists", "--file=-", str(path)],
            stdout=subprocess.PIPE, stderr=dump_log, env=env, cwd="/",
        )
        load = subprocess.Popen(
            [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=load_log, env=env, cwd="/",
        )
        _pipe(dump, load)
        dump_log.seek(0)
        load_log.seek(0)
        dump_err = dump_log.read().decode(errors="replace")
        load_err = load_log.read().decode(errors="replace")
    if load.returncode != 0 or dump.returncode != 0:
        lines = [ln for ln in (load_err or dump_err).splitlines() if ln.strip()]
        detail = next((ln for ln in lines if "error" in ln.lower()), lines[-1] if lines else "no output")
        raise StackError(f"restore of {path} failed (nothing changed): {detail.strip()}")


def _pipe(dump: subprocess.Popen[bytes], load: subprocess.Popen[bytes]) -> None:
    """Stream pg_restore's script into psql, fixing the search_path line of its header.

    The script runs inside BEGIN ... COMMIT, and COMMIT is sent only when
    pg_restore read the whole archive: a truncated dump changes nothing.
    """
    assert dump.stdout is not None and load.stdin is not None
    try:
        load.stdin.write(b"BEGIN;\n")
        for _ in range(200):  # the header: SET lines before the first object
            line = dump.stdout.readline()
            if not line:
                break
            if line.rstrip(b"\n") == _EMPTY_SEARCH_PATH:
                load.stdin.write(_PGSTAC_SEARCH_PATH + b"\n")
                break
            load.stdin.write(line)
        shutil.copyfileobj(dump.stdout, load.stdin, 1024 * 1024)
        if dump.wait() == 0:
            load.stdin.write(b"COMMIT;\n")
        load.stdin.close()
    except BrokenPipeError:
        pass  # psql stopped at an error: reported by the caller
    finally:
        dump.stdout.close()
        try:
            load.stdin.close()
        except BrokenPipeError:
            pass
    if load.wait() != 0:
        dump.kill()
    dump.wait()


def _counts(admin: DbCredentials) -> tuple[int, int]:
    import psycopg

    with psycopg.connect(admin.dsn, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM pgstac.items), (SELECT count(*) FROM pgstac.collections)"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])
