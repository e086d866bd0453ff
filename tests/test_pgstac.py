"""eomatch.pgstac: where the database is, and one-line failures when it cannot be reached."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from eomatch.errors import ConfigError, IngestError
from eomatch.pgstac import DbCredentials, connect, resolve_credentials
from eomatch.settings import load_settings


def _settings(tmp_path: Path, **ingest: object):  # type: ignore[no-untyped-def]
    return load_settings(overrides={"ingest": ingest, "stack": {"state_dir": str(tmp_path / "state")}}, environ={})


def test_flags_win_over_the_config_and_a_password_is_required(tmp_path: Path) -> None:
    settings = _settings(tmp_path, db_host="db.example", db_user="cfg", db_password="pw", db_name="stac")
    creds = resolve_credentials(settings, db_user="flag", db_port=6543)
    assert creds == DbCredentials("db.example", 6543, "stac", "flag", "pw")
    assert creds.redacted() == "postgresql://flag@db.example:6543/stac" and "pw" not in creds.redacted()
    assert creds.with_database("postgres").dbname == "postgres"
    with pytest.raises(ConfigError, match="no database password"):
        resolve_credentials(_settings(tmp_path, db_host="db.example"))


def test_no_database_and_no_local_stack_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no database given") as err:
        resolve_credentials(_settings(tmp_path))
    assert "\n" not in str(err.value)


def test_connect_to_nothing_names_the_target_in_one_line() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(IngestError) as err:
        connect(DbCredentials("127.0.0.1", port, "db", "me", "secret"))
    text = str(err.value)
    assert f"postgresql://me@127.0.0.1:{port}/db" in text and "connection refused" in text
    assert "secret" not in text and "\n" not in text
