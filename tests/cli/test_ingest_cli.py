"""``eomatch-ingest`` as users and schedulers run it: real processes against the real stack.

Config file and flags, the local stack by default, one-line failures, a
``kill -9`` mid-run, and two runs started at the same moment.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from catalogue_factory import build_catalogue
from helpers import fresh_pgstac_database

from eomatch.stack.db import DbCredentials, stack_credentials

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import _synth  # noqa: E402

pytestmark = pytest.mark.stack


# --------------------------------------------------------------------------- helpers


def cli_env(**extra: str) -> dict[str, str]:
    """The environment without any EOMATCH_*/PG* setting of the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EOMATCH_", "PG"))}
    env.update(extra)
    return env


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eomatch.cli.ingest", *args],
        capture_output=True, text=True, env=env or cli_env(), timeout=timeout, cwd=REPO,
    )  # fmt: skip


def cli_popen(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "eomatch.cli.ingest", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
    )  # fmt: skip


def db_flags(creds: DbCredentials) -> list[str]:
    return ["--db-host", creds.host, "--db-port", str(creds.port), "--db-name", creds.dbname, "--db-user", creds.user]


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode not in (0, 1), (proc.returncode, proc.stderr)  # 1 would be a Python crash
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def counts(creds: DbCredentials) -> dict[str, int]:
    with psycopg.connect(creds.dsn) as conn:
        rows = conn.execute("SELECT collection, count(*) FROM pgstac.items GROUP BY collection").fetchall()
    return {c: int(n) for c, n in rows}


def stored(creds: DbCredentials, item_id: str) -> tuple[Any, ...]:
    with psycopg.connect(creds.dsn) as conn:
        row = conn.execute(
            "SELECT collection, datetime, end_datetime, ST_AsText(geometry), content FROM pgstac.items WHERE id = %s",
            (item_id,),
        ).fetchone()
    assert row is not None, item_id
    return tuple(row)


@pytest.fixture(scope="module")
def new_db(running_stack: Any) -> Callable[[], DbCredentials]:
    """Factory of fresh pgSTAC databases in the stack's cluster (ingest-role credentials)."""
    return lambda: fresh_pgstac_database(running_stack.settings, "ingest_cli_")


@pytest.fixture(scope="module")
def shared_db(new_db: Any) -> DbCredentials:
    """One database for the tests whose failing runs load nothing."""
    return new_db()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def big_catalogue(tmp_path_factory: pytest.TempPathFactory) -> _synth.SynthCatalogue:
    """A few thousand realistic items: long enough a run to kill it or race it."""
    synth = _synth.generate(tmp_path_factory.mktemp("big") / "cat", 3000, seed=7)
    assert synth.items == 3000
    return synth


# --------------------------------------------------------------------------- config, flags, defaults


def test_assets_base_url_flag_publishes_catalogue_files(new_db: Any, tmp_path: Path) -> None:
    """``--assets-base-url``: relative asset files become URLs under the base; a
    run without it gives file:// URIs (the flag, not a default, makes the difference)."""
    base = "https://files.example.org/matchups"
    hrefs = {}
    for flag in ((), ("--assets-base-url", base)):
        creds, root = new_db(), tmp_path / f"cat{len(flag)}"
        build_catalogue(root, n_events=1)
        proc = cli("--catalogue", str(root), *db_flags(creds), "-q", *flag, env=cli_env(PGPASSWORD=creds.password))
        assert proc.returncode == 0, proc.stderr
        with psycopg.connect(creds.dsn) as conn:
            (content,) = conn.execute("SELECT content FROM pgstac.items WHERE collection = 'S2_MSI_L1C' LIMIT 1").fetchone()
        hrefs[bool(flag)] = content["assets"]["local"]["href"]
    assert hrefs[False].startswith(f"file://{tmp_path}/cat0/S2_MSI_L1C/")
    assert hrefs[True].startswith(f"{base}/S2_MSI_L1C/") and hrefs[True].endswith(".tif")


def test_config_file_gives_database_and_catalogue(shared_db: DbCredentials, tmp_path: Path) -> None:
    creds = shared_db
    root = tmp_path / "cat"
    build_catalogue(root, n_events=2)
    config = tmp_path / "run.yaml"
    config.write_text(
        f"matchup_catalogue:\n  path: {root}\n"
        f"ingest:\n  db_host: {creds.host}\n  db_port: {creds.port}\n  db_name: {creds.dbname}\n"
        f"  db_user: {creds.user}\n"
    )
    no_password = cli("--config", str(config))
    assert_one_line_error(no_password, "PGPASSWORD")

    proc = cli("--config", str(config), env=cli_env(PGPASSWORD=creds.password))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.strip().splitlines()
    assert len(out) == 1 and "8 new, 0 updated, 0 unchanged" in out[0] and creds.dbname in out[0]
    assert sum(counts(creds).values()) == 8
    # progress (rate and ETA) went to stderr
    assert "items/s" in proc.stderr and "ETA" in proc.stderr

    # a flag wins over the config file (this database has no pgSTAC); -q silences progress
    flagged = cli("--config", str(config), "--db-name", "postgres", "-q", env=cli_env(PGPASSWORD=creds.password))
    assert_one_line_error(flagged, "pgSTAC is not installed", f"{creds.user}@{creds.host}:{creds.port}/postgres")
    quiet = cli("--config", str(config), "-q", env=cli_env(PGPASSWORD=creds.password))
    assert quiet.returncode == 0 and quiet.stderr == "" and "nothing to do (8 unchanged)" in quiet.stdout


def test_no_database_flags_means_the_local_stack(running_stack: Any, tmp_path: Path) -> None:
    root = tmp_path / "cat"
    start = datetime(2018, 1, 1, tzinfo=UTC) + timedelta(minutes=int(uuid.uuid4().int % 2_000_000))
    cat = build_catalogue(root, n_events=1, start=start)
    item_id = next(iter(cat.iter_items(collection="S2_MSI_L1C")))["id"]
    # --state-dir alone selects the stack (its database port is read from the running server)
    proc = cli("--catalogue", str(root), "--state-dir", str(running_stack.settings.stack.state_dir), "-q")
    assert proc.returncode == 0, proc.stderr
    assert "eomatch_ingest@" in proc.stdout and f":{running_stack.settings.stack.db.port}/" in proc.stdout
    r = httpx.get(f"{running_stack.internal}/collections/S2_MSI_L1C/items/{item_id}", timeout=30)
    assert r.status_code == 200 and r.json()["id"] == item_id

    missing = cli("--catalogue", str(root), "--state-dir", str(tmp_path / "no-stack"))
    assert_one_line_error(missing, "no database given", "eomatch-stack up")


# --------------------------------------------------------------------------- failures


def test_failures_are_one_line(running_stack: Any, shared_db: DbCredentials, tmp_path: Path) -> None:
    from conftest import free_port

    creds = shared_db
    root = tmp_path / "cat"
    build_catalogue(root, n_events=1)
    pw = cli_env(PGPASSWORD=creds.password)

    closed = cli("--catalogue", str(root), "--db-host", "127.0.0.1", "--db-port", str(free_port()),
                 "--db-user", "x", "--db-name", "x", env=pw)  # fmt: skip
    assert_one_line_error(closed, "cannot connect", "connection refused")

    wrong = cli("--catalogue", str(root), *db_flags(creds), env=cli_env(PGPASSWORD="not-the-password"))
    assert_one_line_error(wrong, "password authentication failed", creds.user)

    admin = stack_credentials(running_stack.settings, "admin")
    no_pgstac = cli("--catalogue", str(root), "--db-host", admin.host, "--db-port", str(admin.port),
                    "--db-name", "postgres", "--db-user", admin.user, env=cli_env(PGPASSWORD=admin.password))  # fmt: skip
    assert_one_line_error(no_pgstac, "pgSTAC is not installed", "/postgres")

    bad = next(p for p in sorted((root / "S2_MSI_L1C").rglob("*.json")) if p.name != "collection.json")
    good_text = bad.read_text()
    bad.write_text(good_text.replace('"properties"', '"properties" ::', 1))
    line_no = good_text[: good_text.index('"properties"')].count("\n") + 1
    malformed = cli("--catalogue", str(root), *db_flags(creds), env=pw)
    assert_one_line_error(malformed, "malformed JSON", str(bad), f"line {line_no}")
    bad.write_text(good_text)

    monitored = cli("--catalogue", str(root), *db_flags(creds), "--exit-codes", "monitoring",
                    env=cli_env(PGPASSWORD="nope"))  # fmt: skip
    assert monitored.returncode == 2

    orphan = bad.parent / "ORPHAN_1.json"
    doc = bad.read_text().replace('"collection": "S2_MSI_L1C"', '"collection": "NOT_A_COLLECTION"')
    orphan.write_text(doc.replace(f'"id": "{bad.stem}"', '"id": "ORPHAN_1"'))
    missing = cli("--catalogue", str(root), *db_flags(creds), env=pw)
    assert_one_line_error(missing, "NOT_A_COLLECTION", "neither in the catalogue nor in the database")


# --------------------------------------------------------------------------- crash and concurrency


@pytest.fixture(scope="module")
def raced(big_catalogue: _synth.SynthCatalogue, new_db: Any) -> tuple[DbCredentials, list[tuple[int, str, str]]]:
    """Two monitored runs of the big catalogue into one fresh database, started together."""
    creds = new_db()
    env = cli_env(PGPASSWORD=creds.password)
    args = ("--catalogue", str(big_catalogue.root), *db_flags(creds), "-q", "--exit-codes", "monitoring")
    procs = [cli_popen(*args, env=env) for _ in range(2)]
    results = [(p.wait(timeout=120), p.stdout.read(), p.stderr.read()) for p in procs]  # type: ignore[union-attr]
    return creds, results


def test_two_runs_at_once_one_works_one_reports_the_lock(
    big_catalogue: _synth.SynthCatalogue, raced: tuple[DbCredentials, list[tuple[int, str, str]]]
) -> None:
    creds, results = raced
    # the second run exits 0 too, saying another run holds the lock
    assert [code for code, _, _ in results] == [0, 0], results
    worker = next(r for r in results if "another run holds the lock" not in r[1])
    locked = next(r for r in results if "another run holds the lock" in r[1])
    assert f"{big_catalogue.items} new" in worker[1]
    assert "another run holds the lock" in locked[1] and locked[2] == ""
    assert counts(creds) == big_catalogue.per_collection

    # scheduled re-run: nothing to do -> 3; in simple mode the same run exits 0
    env = cli_env(PGPASSWORD=creds.password)
    base = ("--catalogue", str(big_catalogue.root), *db_flags(creds), "-q")
    again = cli(*base, "--exit-codes", "monitoring", env=env)
    assert again.returncode == 3 and "nothing to do" in again.stdout
    simple = cli(*base, env=env)
    assert simple.returncode == 0 and "nothing to do" in simple.stdout


def test_kill_9_mid_run_then_rerun_completes(
    big_catalogue: _synth.SynthCatalogue, new_db: Any, raced: tuple[DbCredentials, list[tuple[int, str, str]]]
) -> None:
    crashed, (clean, _) = new_db(), raced  # the raced runs made a clean, uninterrupted ingest
    root = str(big_catalogue.root)
    env = cli_env(PGPASSWORD=crashed.password, EOMATCH_INGEST__BATCH_SIZE="100")
    proc = cli_popen("--catalogue", root, *db_flags(crashed), env=env)
    assert proc.stderr is not None
    started = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        if line.startswith("ingest:") and "items/s" in line and "ETA" in line:
            started = True
            break
    assert started, "no progress line before the run ended"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    partial = counts(crashed)
    assert 0 < sum(partial.values()) < big_catalogue.items, partial  # really interrupted mid-run
    for coll, n in partial.items():
        assert n <= big_catalogue.per_collection[coll]

    rerun = cli("--catalogue", root, *db_flags(crashed), "-q", env=env)
    assert rerun.returncode == 0, rerun.stderr
    m = re.search(r"(\d+) new, (\d+) updated, (\d+) unchanged", rerun.stdout)
    assert m is not None, rerun.stdout
    new, updated, unchanged = (int(g) for g in m.groups())
    # what never reached the database is new; what reached it is updated or (if recorded) unchanged
    assert new == big_catalogue.items - sum(partial.values())
    assert new + updated + unchanged == big_catalogue.items

    assert counts(crashed) == counts(clean) == big_catalogue.per_collection
    for _, item_id in big_catalogue.sample:
        assert stored(crashed, item_id) == stored(clean, item_id)


def test_dry_run_and_since_last_flags(new_db: Any, tmp_path: Path) -> None:
    """--dry-run writes nothing; --since last after a run looks at nothing unchanged."""
    creds, root = new_db(), tmp_path / "cat"
    build_catalogue(root, n_events=1)
    env = cli_env(PGPASSWORD=creds.password)
    base = ("--catalogue", str(root), *db_flags(creds), "-q")
    dry = cli(*base, "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith("would ingest") and "4 new" in dry.stdout
    assert counts(creds) == {}
    real = cli(*base, "--since", "last", env=env)  # no previous run: everything
    assert real.returncode == 0 and "4 new" in real.stdout and sum(counts(creds).values()) == 4
    again = cli(*base, "--since", "last", "--exit-codes", "monitoring", env=env)
    assert again.returncode == 3 and "nothing to do" in again.stdout and "0 files scanned" in again.stdout


def test_refused_files_are_one_warning_line_each_and_the_run_goes_on(new_db: Any, tmp_path: Path) -> None:
    """A path-traversal id and a file with no "type" are named on stderr, one line each;
    the summary counts them; every other item goes in; the exit code says 'ingested'."""
    import json

    creds, root = new_db(), tmp_path / "cat"
    build_catalogue(root, n_events=1)
    s2 = next(p for p in sorted((root / "S2_MSI_L1C").rglob("*.json")) if p.name != "collection.json")
    doc = json.loads(s2.read_text())
    pwned = s2.with_name("PWNED.json")
    pwned.write_text(json.dumps({**doc, "id": "../../../../outside/PWNED"}))
    typeless = s2.with_name("TYPELESS.json")
    typeless.write_text(json.dumps({**{k: v for k, v in doc.items() if k != "type"}, "id": "TYPELESS"}))
    proc = cli("--catalogue", str(root), *db_flags(creds), "-q", "--exit-codes", "monitoring",
               env=cli_env(PGPASSWORD=creds.password))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert sorted(proc.stderr.strip().splitlines()) == sorted([
        f"warning: refused {pwned}: item id '../../../../outside/PWNED' is not a safe file name: "
        "contains a path separator",
        f'warning: refused {typeless}: no "type" member: not a STAC Item ("type": "Feature")',
    ])  # fmt: skip
    assert "4 new, 0 updated, 0 unchanged; 2 refused; 4 collections" in proc.stdout
    assert sum(counts(creds).values()) == 4
    assert not (tmp_path / "outside").exists()
