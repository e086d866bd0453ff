"""eomatch-stack backup / restore on a separate database (restore replaces everything)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from catalogue_factory import build_catalogue
from conftest import private_database

from eomatch.errors import StackError
from eomatch.ingest import ingest
from eomatch.settings import Settings
from eomatch.stack.api import ApiService
from eomatch.stack.backup import backup, restore
from eomatch.stack.db import stack_credentials

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def db_stack() -> Iterator[tuple[Settings, ApiService]]:
    """Only what a backup needs: the database and the internal API (to compare through)."""
    with private_database("eomatch-backup-") as settings:
        api = ApiService(settings, "internal")
        try:
            api.start()
            yield settings, api
        finally:
            api.stop()


def _item_count(settings: Settings) -> int:
    with psycopg.connect(stack_credentials(settings, "admin").dsn) as conn:
        row = conn.execute("SELECT count(*) FROM pgstac.items").fetchone()
    assert row is not None
    return int(row[0])


def test_backup_restore_round_trip(db_stack: tuple[Settings, ApiService], tmp_path: Path) -> None:
    settings, api_service = db_stack
    api = api_service.client()
    cat = build_catalogue(tmp_path / "cat", n_events=3)
    ingest(settings, catalogue=cat.root, quiet=True)
    n_items = _item_count(settings)
    assert n_items == 12  # 3 events x (event + matchup + 2 products)
    product_id = next(iter(cat.iter_items("S2_MSI_L1C")))["id"]
    url = f"/collections/S2_MSI_L1C/items/{product_id}"
    before = api.get(url)
    assert before.status_code == 200

    dump = tmp_path / "eomatch.dump"
    proc = subprocess.run(
        [str(BIN / "eomatch-stack"), "--config", str(settings.stack.state_dir / "conf" / "settings.yaml"), "backup", str(dump)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert str(dump) in proc.stdout
    assert dump.read_bytes()[:5] == b"PGDMP"
    assert not dump.with_name(dump.name + ".part").exists()

    with psycopg.connect(stack_credentials(settings, "admin").dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM pgstac.items")
    assert _item_count(settings) == 0
    assert api.get(url).status_code == 404

    summary = restore(settings, dump)
    assert f"{n_items} items" in summary
    assert _item_count(settings) == n_items
    after = api.get(url)
    assert after.status_code == 200
    assert after.content == before.content
    # The roles still work after the restore: the ingest role can write, the read role read.
    with psycopg.connect(stack_credentials(settings, "ingest").dsn) as conn:
        conn.execute("SELECT pgstac.get_version()")
    with psycopg.connect(stack_credentials(settings, "read").dsn) as conn:
        row = conn.execute("SELECT count(*) FROM pgstac.items").fetchone()
        assert row is not None and row[0] == n_items


def test_restore_errors_are_one_line(db_stack: tuple[Settings, ApiService], tmp_path: Path) -> None:
    settings, _ = db_stack
    with pytest.raises(StackError, match="backup file not found"):
        restore(settings, tmp_path / "missing.dump")
    text = tmp_path / "notes.txt"
    text.write_text("not a dump\n")
    with pytest.raises(StackError, match="not a pg_dump custom-format archive"):
        restore(settings, text)
    with pytest.raises(StackError, match="is a folder"):
        backup(settings, tmp_path)
    # The CLI prints the same message on one line, with no traceback.
    proc = subprocess.run(
        [str(BIN / "eomatch-stack"), "--config", str(settings.stack.state_dir / "conf" / "settings.yaml"), "restore", str(text)],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode != 0
    assert proc.stderr.strip().count("\n") == 0 and "not a pg_dump" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_truncated_dump_changes_nothing(db_stack: tuple[Settings, ApiService], tmp_path: Path) -> None:
    settings, _ = db_stack
    cat = build_catalogue(tmp_path / "cat2", n_events=1)
    ingest(settings, catalogue=cat.root, quiet=True)
    dump = tmp_path / "full.dump"
    backup(settings, dump)
    count = _item_count(settings)
    broken = tmp_path / "broken.dump"
    data = dump.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(StackError, match="nothing changed"):
        restore(settings, broken)
    assert _item_count(settings) == count


def test_backup_file_is_private(db_stack: tuple[Settings, ApiService], tmp_path: Path) -> None:
    """A dump holds the whole catalogue: mode 0600 whatever the umask, also when it
    replaces an older, world-readable backup of the same name."""
    settings, _ = db_stack
    dump = tmp_path / "private.dump"
    dump.write_bytes(b"an older backup")
    dump.chmod(0o644)
    old_umask = os.umask(0o022)
    try:
        backup(settings, dump)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(dump.stat().st_mode) == 0o600
    assert dump.read_bytes()[:5] == b"PGDMP"
    assert not dump.with_name(dump.name + ".part").exists()
