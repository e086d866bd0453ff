"""The db service: a private PostgreSQL cluster with PostGIS and pgSTAC.

The cluster lives in the state folder. When the stack is started by root the
server runs as the ``postgres`` user (PostgreSQL refuses root), so the data
folder is owned by that user. Four roles: the admin (superuser, migrations
only), the internal API's role and the ingest role (both in ``pgstac_ingest``;
``eomatch-ingest`` uses the latter), and a read-only role (``pgstac_read``) for the
external API. The two API roles get ``statement_timeout`` and
``idle_in_transaction_session_timeout`` (``stack.db.*timeout_s``), so a runaway query
cannot hold the database; bulk loads and migrations get none by default.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from eomatch.errors import StackError
from eomatch.pgstac import DbCredentials, ensure_marker_index, stack_credentials
from eomatch.settings import Settings
from eomatch.stack.process import check_port_free, is_running, tail, wait_until
from eomatch.stack.state import StatePaths, load_secrets

# DbCredentials and stack_credentials live in eomatch.pgstac, with every other way to
# reach the database; re-exported for the stack's modules and older imports.
__all__ = ["PGSTAC_SETTINGS", "QUERYABLES", "Database", "DbCredentials", "Queryable", "RoleTimeouts", "migrate",
           "role_timeouts", "set_pgstac_settings", "set_queryables", "set_role_timeouts", "setup_database",
           "stack_credentials", "wait_postmaster_exit"]  # fmt: skip

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoleTimeouts:
    """Per-role session defaults (``ALTER ROLE ... SET``); 0 = none (the server's 0)."""

    statement_s: float = 0.0
    idle_in_transaction_s: float = 0.0
    parallel_workers: int | None = None
    """``max_parallel_workers_per_gather``; None = the server's default."""


def role_timeouts(settings: Settings) -> dict[str, RoleTimeouts]:
    """The session defaults (timeouts, parallel workers) of every role of the stack, by
    role name (local stack and Compose)."""
    db = settings.stack.db
    api = RoleTimeouts(db.statement_timeout_s, db.idle_in_transaction_timeout_s, db.api_parallel_workers)
    return {
        db.api_user: api,
        db.read_user: api,
        db.ingest_user: RoleTimeouts(db.ingest_statement_timeout_s, 0.0),
        db.admin_user: RoleTimeouts(),
    }


@dataclass(frozen=True)
class Queryable:
    """One row of ``pgstac.queryables`` for every collection: what ``/queryables`` lists
    (``definition``: JSON Schema type and description) and how pgSTAC reads and indexes it."""

    name: str
    definition: dict[str, object]
    wrapper: str | None = None
    """pgSTAC's cast (``to_float``, ``to_text``, ``to_text_array``); None for items' own columns."""
    index: str | None = None
    """``BTREE`` (or ``GIN`` for arrays): pgSTAC indexes every partition on it."""


def _number(description: str, **limits: float) -> dict[str, object]:
    return {"type": "number", "description": description, **limits}


# What researchers filter and sort matchups by is indexed (time difference, overlap,
# cloud cover, platforms); the rest is listed so that filter forms offer it. datetime,
# start_datetime and end_datetime are columns of pgSTAC's items, indexed by pgSTAC.
QUERYABLES: tuple[Queryable, ...] = (
    Queryable("start_datetime", {"type": "string", "format": "date-time",
              "description": "Start of the acquisition (products), the crossover window (events) or the pair (matchups)"}),
    Queryable("end_datetime", {"type": "string", "format": "date-time",
              "description": "End of the acquisition, the crossover window or the pair"}),
    Queryable("matchup:type", {"type": "string", "enum": ["product", "event", "matchup"],
              "description": "What the item is: a product, a crossover event or a matchup of two products"},
              "to_text", "BTREE"),
    Queryable("matchup:time_diff_s", _number("Seconds from product a to product b (signed)"), "to_float", "BTREE"),
    Queryable("matchup:abs_time_diff_s", _number("Seconds between the two acquisitions", minimum=0),
              "to_float", "BTREE"),
    Queryable("matchup:overlap_km2", _number("Area both footprints cover, km²", minimum=0), "to_float", "BTREE"),
    Queryable("matchup:overlap_fraction",
              _number("Share of the smaller footprint the other covers (0-1)", minimum=0, maximum=1),
              "to_float", "BTREE"),
    Queryable("matchup:max_cloud_cover",
              _number("The larger eo:cloud_cover of the two products, percent", minimum=0, maximum=100),
              "to_float", "BTREE"),
    Queryable("eo:cloud_cover", _number("Cloud cover of a product, percent (from its provider)",
              minimum=0, maximum=100), "to_float", "BTREE"),
    Queryable("matchup:platforms", {"type": "array", "items": {"type": "string"},
              "description": "The two platforms of an event or matchup (e.g. Landsat-9, Sentinel-2A)"},
              "to_text_array", "GIN"),
    Queryable("matchup:sites", {"type": "array", "items": {"type": "string"},
              "description": "Calibration sites the event or matchup passes over (e.g. Libya-4)"},
              "to_text_array", "GIN"),
    Queryable("platform", {"type": "string", "description": "Platform of a product (e.g. Sentinel-2A)"},
              "to_text", "BTREE"),
    Queryable("matchup:collections", {"type": "array", "items": {"type": "string"},
              "description": "The product collections of the pair"}, "to_text_array"),
    Queryable("matchup:event_id", {"type": "string", "description": "Id of the event a matchup was found in"},
              "to_text"),
    Queryable("matchup:min_distance_km", _number("Closest approach of the ground tracks, km", minimum=0),
              "to_float"),
    Queryable("matchup:solar_elevation_deg", _number("Sun elevation at the crossover, degrees",
              minimum=-90, maximum=90), "to_float"),
)  # fmt: skip

PGSTAC_SETTINGS: dict[str, str] = {
    # numberMatched: exact counts when pgSTAC's planner expects them to be cheap, its
    # estimate beyond (docs/operations.md: benchmarks/context_cost.py measured it)
    "context": "auto",
    "context_estimated_count": "100000",
    "context_estimated_cost": "100000",
    "context_stats_ttl": "1 day",
}


POSTMASTER_EXIT_S = 10.0
"""After ``pg_ctl stop -w``: how long the postmaster may take to exit."""


def wait_postmaster_exit(pid: int) -> None:
    """``pg_ctl stop -w`` returns once the pid file is gone, which the postmaster removes
    just before it exits: wait for the process too, so that "stopped" is true (a loaded
    machine showed the process for a moment after ``down``)."""
    wait_until(lambda: not is_running(pid), POSTMASTER_EXIT_S, 0.02)


class Database:
    """start / stop / health of the private cluster; idempotent."""

    name = "db"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cfg = settings.stack.db
        self.paths = StatePaths(settings.stack.state_dir)
        self._as_root = os.geteuid() == 0

    # --- helpers -------------------------------------------------------------
    def _bin(self, name: str) -> str:
        path = self.cfg.pg_bin_dir / name
        if not path.exists():
            raise StackError(
                f"db: {path} not found; install PostgreSQL 15 and PostGIS "
                "(as root: apt-get install postgresql-15 postgresql-15-postgis-3), "
                "or run 'make demo' which installs them"
            )
        return str(path)

    def _run_as_server_user(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        if self._as_root:
            args = ["runuser", "-u", self.cfg.run_as, "--", *args]
        proc = subprocess.run(args, capture_output=True, text=True, cwd="/")
        if check and proc.returncode != 0:
            msg = (proc.stderr or proc.stdout).strip().splitlines()
            raise StackError(f"db: {Path(args[-1]).name if not msg else msg[-1]}")
        return proc

    def _chown(self, path: Path) -> None:
        if self._as_root:
            pw = pwd.getpwnam(self.cfg.run_as)
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def _check_traversable(self) -> None:
        """postgres must reach its data folder: every parent needs o+x when we are root."""
        if not self._as_root:
            return
        try:
            pwd.getpwnam(self.cfg.run_as)
        except KeyError:
            raise StackError(
                f"db: system user '{self.cfg.run_as}' does not exist; install postgresql-15 "
                "(it creates the user) or set stack.db.run_as"
            ) from None
        for parent in self.paths.db_dir.resolve().parents:
            if parent.exists() and not (parent.stat().st_mode & 0o001):
                raise StackError(
                    f"db: the '{self.cfg.run_as}' user cannot enter {parent} (needed to reach "
                    f"{self.paths.db_dir}); choose a state folder outside it (stack.state_dir / "
                    "EOMATCH_STACK__STATE_DIR)"
                )

    def server_pid(self) -> int | None:
        pidfile = self.paths.pgdata / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if is_running(pid) else None

    def pid(self) -> int | None:
        return self.server_pid()

    @property
    def initialized(self) -> bool:
        return (self.paths.pgdata / "PG_VERSION").exists()

    # --- lifecycle -----------------------------------------------------------
    def init_cluster(self) -> None:
        secrets = load_secrets(self.paths, create=True)
        self._check_traversable()
        self.paths.db_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.paths.db_dir, 0o755)
        for d in (self.paths.pgdata, self.paths.pg_socket_dir, self.paths.logs / "postgres"):
            d.mkdir(parents=True, exist_ok=True)
            self._chown(d)
        os.chmod(self.paths.pgdata, 0o700)
        pwfile = self.paths.db_dir / ".pwfile"
        pwfile.write_text(secrets["admin_password"] + "\n")
        os.chmod(pwfile, 0o600)
        self._chown(pwfile)
        try:
            self._run_as_server_user(
                [
                    self._bin("initdb"),
                    "-D", str(self.paths.pgdata),
                    "-U", self.cfg.admin_user,
                    f"--pwfile={pwfile}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ]
            )
        finally:
            pwfile.unlink(missing_ok=True)
        conf = self.paths.pgdata / "postgresql.auto.conf"
        with open(conf, "a") as fh:
            fh.write(self._server_conf())

    def _server_conf(self) -> str:
        st = self.settings.stack
        return (
            "\n# written by eomatch-stack\n"
            "logging_collector = on\n"
            f"log_directory = '{self.paths.logs / 'postgres'}'\n"
            "log_filename = 'postgres-%a.log'\n"
            "log_truncate_on_rotation = on\n"
            "log_rotation_age = '1d'\n"
            f"log_rotation_size = '{max(1, st.log_max_bytes // 1024)}kB'\n"
            "log_line_prefix = '%m [%p] %q%u@%d '\n"
            "max_connections = 200\n"
            "shared_buffers = '256MB'\n"
            "work_mem = '32MB'\n"
            "maintenance_work_mem = '256MB'\n"
            "synchronous_commit = off\n"
        )

    def start(self) -> None:
        if self.server_pid() is not None:
            return
        check_port_free(self.cfg.host, self.cfg.port, "db", "stack.db.port")
        if not self.initialized:
            log.info("db: creating cluster in %s", self.paths.pgdata)
            self.init_cluster()
        self._check_traversable()
        startup_log = self.paths.logs / "postgres" / "startup.log"
        proc = self._run_as_server_user(
            [
                self._bin("pg_ctl"), "-D", str(self.paths.pgdata), "-l", str(startup_log),
                "-o", f"-p {self.cfg.port} -c listen_addresses={self.cfg.host} "
                f"-c unix_socket_directories={self.paths.pg_socket_dir}"
                # --log-format json: PostgreSQL's own JSON lines (postgres-<day>.json)
                + (" -c log_destination=jsonlog" if self.settings.stack.log_format == "json" else ""),
                "-w", "-t", "60", "start",
            ],
            check=False,
        )
        if proc.returncode != 0:
            detail = tail(startup_log, 3).splitlines() or [(proc.stderr or proc.stdout).strip()]
            raise StackError(f"db: PostgreSQL did not start: {detail[-1]}")
        if not wait_until(lambda: self.healthy(maintenance=True), 30):
            raise StackError(f"db: PostgreSQL started but does not accept connections on port {self.cfg.port}")
        self.setup_database()

    def stop(self) -> None:
        pid = self.server_pid()
        if pid is None:
            return
        self._run_as_server_user(
            [self._bin("pg_ctl"), "-D", str(self.paths.pgdata), "-m", "fast", "-w", "stop"],
            check=False,
        )
        wait_postmaster_exit(pid)

    def healthy(self, maintenance: bool = False) -> bool:
        """Accepts connections (to the catalogue database, or to ``postgres`` while starting)."""
        import psycopg

        try:
            creds = stack_credentials(self.settings, "admin")
            if maintenance:
                creds = DbCredentials(creds.host, creds.port, "postgres", creds.user, creds.password)
            with psycopg.connect(creds.dsn, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except (psycopg.Error, StackError, OSError):
            return False

    def status(self) -> dict[str, object]:
        pid = self.server_pid()
        return {"service": self.name, "pid": pid, "healthy": bool(pid) and self.healthy(),
                "url": f"postgresql://{self.cfg.host}:{self.cfg.port}/{self.cfg.name}"}

    # --- schema and roles ----------------------------------------------------
    def setup_database(self) -> None:
        """Create the database, run ``pypgstac migrate``, create the app roles with
        their timeouts."""
        secrets = load_secrets(self.paths, create=True)  # adds roles newer than the folder
        admin = stack_credentials(self.settings, "admin")
        setup_database(
            admin,
            self.cfg.name,
            {self.cfg.ingest_user: secrets["ingest_password"], self.cfg.api_user: secrets["api_password"]},
            {self.cfg.read_user: secrets["read_password"]},
            timeouts=role_timeouts(self.settings),
        )

    def reset(self) -> None:
        """Remove the cluster (tests and ``down --purge``)."""
        self.stop()
        shutil.rmtree(self.paths.db_dir, ignore_errors=True)


def migrate(admin: DbCredentials) -> str:
    """``pypgstac migrate`` (needs a superuser: it creates postgis, btree_gist, unaccent)."""
    from pypgstac.db import PgstacDB
    from pypgstac.migrate import Migrate

    try:
        with PgstacDB(dsn=admin.dsn) as db:
            return str(Migrate(db).run_migration())
    except Exception as exc:  # pypgstac wraps many psycopg errors
        raise StackError(f"db: pgSTAC migration failed: {str(exc).splitlines()[0]}") from None


def setup_database(
    admin: DbCredentials,
    dbname: str,
    ingest_roles: dict[str, str],
    read_roles: dict[str, str],
    timeouts: Mapping[str, RoleTimeouts] | None = None,
) -> None:
    """Idempotent: database, pgSTAC migration, login roles in ``pgstac_ingest``/``pgstac_read``,
    and each role of ``timeouts`` set to exactly those timeouts (others untouched).

    Shared by the local stack and the Compose ``migrate`` service.
    """
    import psycopg
    from psycopg import sql

    maint = DbCredentials(admin.host, admin.port, "postgres", admin.user, admin.password)
    try:
        with psycopg.connect(maint.dsn, autocommit=True, connect_timeout=10) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    except psycopg.OperationalError as exc:
        raise StackError(f"db: cannot connect as {admin.user} to {admin.host}:{admin.port}: {str(exc).strip().splitlines()[-1]}") from None
    target = DbCredentials(admin.host, admin.port, dbname, admin.user, admin.password)
    migrate(target)
    with psycopg.connect(target.dsn, autocommit=True) as conn:
        for roles, member_of in ((ingest_roles, "pgstac_ingest"), (read_roles, "pgstac_read")):
            for user, password in roles.items():
                found = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).fetchone()
                if not found:
                    conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(user)))
                conn.execute(
                    sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(sql.Identifier(user), sql.Literal(password))
                )
                conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(member_of), sql.Identifier(user)))
                conn.execute(sql.SQL("ALTER ROLE {} SET search_path = pgstac, public").format(sql.Identifier(user)))
                conn.execute(
                    sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(dbname), sql.Identifier(user))
                )
        for user in read_roles:
            # pgSTAC's search() records every search in pgstac.searches unless
            # pgstac.readonly is on; a hot standby refuses that write, so the read role
            # (the external API's) never makes it, on the primary as on a standby.
            conn.execute(sql.SQL("ALTER ROLE {} SET pgstac.readonly = 'true'").format(sql.Identifier(user)))
        for user, limits in (timeouts or {}).items():
            set_role_timeouts(conn, user, limits)
        set_queryables(conn)
        set_pgstac_settings(conn)
        ensure_marker_index(conn)  # ingest's check of the markers reads this, not the table


def set_queryables(conn, queryables: tuple[Queryable, ...] = QUERYABLES) -> int:  # type: ignore[no-untyped-def]
    """Register ``queryables`` for every collection; rows already as wanted are left alone
    (pgSTAC re-indexes every partition when a row changes). Returns the rows written."""
    import json

    written = 0
    for q in queryables:
        definition = json.dumps(q.definition, sort_keys=True)
        same = conn.execute(
            "SELECT 1 FROM pgstac.queryables WHERE name = %s AND collection_ids IS NULL AND definition = %s::jsonb"
            " AND property_wrapper IS NOT DISTINCT FROM %s AND property_index_type IS NOT DISTINCT FROM %s"
            " AND (SELECT count(*) FROM pgstac.queryables WHERE name = %s) = 1",
            (q.name, definition, q.wrapper, q.index, q.name),
        ).fetchone()
        if same:
            continue
        conn.execute(
            "SELECT pgstac.upsert_queryable(%s, %s::jsonb, %s, %s)", (q.name, definition, q.wrapper, q.index)
        )
        written += 1
    return written


def set_pgstac_settings(conn, values: Mapping[str, str] = PGSTAC_SETTINGS) -> None:  # type: ignore[no-untyped-def]
    """pgSTAC's own settings (``pgstac.pgstac_settings``), e.g. how ``numberMatched`` is counted."""
    for name, value in values.items():
        conn.execute(
            "INSERT INTO pgstac.pgstac_settings (name, value) VALUES (%s, %s)"
            " ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value WHERE pgstac_settings.value <> EXCLUDED.value",
            (name, value),
        )


def set_role_timeouts(conn, user: str, limits: RoleTimeouts) -> None:  # type: ignore[no-untyped-def]
    """``ALTER ROLE user SET`` the two timeouts (``RESET`` for 0) and the parallel workers
    per query (``RESET`` for None); new sessions get them."""
    from psycopg import sql

    for name, seconds in (
        ("statement_timeout", limits.statement_s),
        ("idle_in_transaction_session_timeout", limits.idle_in_transaction_s),
    ):
        if seconds > 0:
            ms = max(1, round(seconds * 1000))
            conn.execute(sql.SQL("ALTER ROLE {} SET {} = {}").format(
                sql.Identifier(user), sql.Identifier(name), sql.Literal(f"{ms}ms")))
        else:
            conn.execute(sql.SQL("ALTER ROLE {} RESET {}").format(sql.Identifier(user), sql.Identifier(name)))
    if limits.parallel_workers is None:
        conn.execute(sql.SQL("ALTER ROLE {} RESET max_parallel_workers_per_gather").format(sql.Identifier(user)))
    else:
        conn.execute(sql.SQL("ALTER ROLE {} SET max_parallel_workers_per_gather = {}").format(
            sql.Identifier(user), sql.Literal(limits.parallel_workers)))
