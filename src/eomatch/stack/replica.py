"""The db-replica-N services: PostgreSQL hot standbys streaming from the primary.

With ``stack.db.replicas: N`` the stack keeps N standbys, made with ``pg_basebackup``
from the primary through the replication role (``stack.db.replication_user``), each
holding its own physical replication slot (``eomatch_replica_N``, so the primary keeps
the WAL a stopped standby still needs). Standby N lives in ``db/replica-N`` and listens
on ``stack.db.port + N``. The external API reads from them with the read-only role and
falls back to the primary when none answers (libpq/asyncpg multi-host,
``target_session_attrs=prefer-standby``); the internal API and every writer use the
primary only.

Like the primary, standbys are not supervised: the external API's fallback covers a
dead one, ``/health`` names it down, and ``eomatch-stack up`` restarts it, or rebuilds
it from the primary when it cannot start or no longer streams.

``up`` starts the standbys, and waits until each answers a query, before the supervisor
starts anything that reads from them. A standby that runs but does not answer yet (it
replays WAL to a consistent state first, and "the database system is not yet accepting
connections" meanwhile; slow under load) is waited for up to ``stack.health_timeout_s``
and then reported in one line (name, port, last error), never rebuilt for being slow:
a rebuild copies the whole primary again.
"""

from __future__ import annotations

import logging
import math
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from eomatch.errors import StackError
from eomatch.pgstac import DbCredentials, stack_credentials
from eomatch.settings import Settings
from eomatch.stack.db import Database, wait_postmaster_exit
from eomatch.stack.process import check_port_free, tail, wait_until
from eomatch.stack.state import load_secrets

log = logging.getLogger(__name__)

REREAD_IDLE_S = 5
"""With standbys: an external API's pooled connection idle this long closes; the next
one goes to a standby again if one answers (prefer-standby)."""

REREAD_QUERIES = 500
"""With standbys: queries after which a pooled connection is renewed (busy pools too)."""

COMPOSE_PG_PORT = 5432

STREAMING_WITHIN_S = 10.0
"""``up`` on a running standby that answers queries: how long it may take to (re)connect
to the primary before it counts as broken and is rebuilt."""

READY_POLL_S = 0.25
"""How often ``up`` asks a starting standby whether it answers yet."""

ORPHANS_LEAVE_S = 3.0
"""After a standby's postmaster was killed: time its backends take to notice and exit."""

SLOT_PREFIX = "eomatch_replica_"
"""Replication slots of the standbys: ``eomatch_replica_<n>``."""


class StandbyNotReady(StackError):
    """A standby that runs but did not answer a query within the start timeout: slow
    (recovery, load), not broken, so it is reported rather than rebuilt."""


def replica_name(index: int) -> str:
    """``db-replica-1``, ``db-replica-2``, ...: service, pid and log names."""
    return f"db-replica-{index}"


def replica_port(settings: Settings, index: int) -> int:
    """Standby ``index`` (1-based) listens on the primary's port + ``index``."""
    return settings.stack.db.port + index


def replica_address(settings: Settings, index: int) -> tuple[str, int]:
    """(host, port) of standby ``index``: ``stack.db.replica_hosts`` (Compose), else local."""
    db = settings.stack.db
    if db.replica_hosts:
        if index > len(db.replica_hosts):
            raise StackError(f"stack.db.replica_hosts names {len(db.replica_hosts)} standbys, "
                             f"stack.db.replicas is {db.replicas}")
        host, _, port = db.replica_hosts[index - 1].rpartition(":")
        if not host or not port.isdigit():
            raise StackError(f"stack.db.replica_hosts: '{db.replica_hosts[index - 1]}' is not host:port")
        return host, int(port)
    return db.host, replica_port(settings, index)


def replica_slot(index: int) -> str:
    return f"{SLOT_PREFIX}{index}"


def replica_credentials(settings: Settings, index: int, role: str = "read") -> DbCredentials:
    """A stack role's credentials on standby ``index`` (roles replicate with the data)."""
    c = stack_credentials(settings, role)
    return DbCredentials(c.host, replica_port(settings, index), c.dbname, c.user, c.password)


def external_read_hosts(settings: Settings) -> tuple[str, str]:
    """(``PGHOST``, ``PGPORT``) lists for the external API: every standby, then the
    primary, for ``target_session_attrs=prefer-standby``."""
    db = settings.stack.db
    ports = [replica_port(settings, i) for i in range(1, db.replicas + 1)] + [db.port]
    return ",".join([db.host] * len(ports)), ",".join(str(p) for p in ports)


def compose_replica_services(settings: Settings) -> list[str]:
    """Compose's standbys: ``db-replica``, ``db-replica-2``, ... (``stack.db.replicas``)."""
    return ["db-replica" if i == 1 else f"db-replica-{i}" for i in range(1, settings.stack.db.replicas + 1)]


def render_pg_hba(settings: Settings) -> str:
    """Compose's primary with standbys: the image's own rules plus replication for the
    replication role (password checked, like every network login)."""
    return (
        "# Rendered by `eomatch-stack render-deploy` (stack.db.replicas); do not edit by hand.\n"
        "local   all          all                            trust\n"
        "host    all          all          127.0.0.1/32      trust\n"
        "host    all          all          ::1/128           trust\n"
        "local   replication  all                            trust\n"
        "host    all          all          all               scram-sha-256\n"
        f"host    replication  {settings.stack.db.replication_user}  all  scram-sha-256\n"
    )


def compose_db_settings(settings: Settings) -> dict[str, Any]:
    """The standby part of Compose's ``settings.yaml`` (``{}`` without standbys)."""
    db = settings.stack.db
    if not db.replicas:
        return {}
    return {"replicas": db.replicas, "replication_user": db.replication_user,
            "replica_hosts": [f"{name}:{COMPOSE_PG_PORT}" for name in compose_replica_services(settings)]}


def setup_replication(admin: DbCredentials, user: str, password: str, slots: list[str]) -> None:
    """Idempotent: the replication role (``REPLICATION LOGIN``, nothing else) with this
    password, and a physical slot per standby. Local stack and Compose's ``db-setup``."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin.dsn, autocommit=True, connect_timeout=10) as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).fetchone():
            conn.execute(sql.SQL("CREATE ROLE {} WITH REPLICATION LOGIN").format(sql.Identifier(user)))
        conn.execute(sql.SQL("ALTER ROLE {} WITH REPLICATION LOGIN PASSWORD {}").format(
            sql.Identifier(user), sql.Literal(password)))
        for slot in slots:
            conn.execute(
                "SELECT pg_create_physical_replication_slot(%s, true) "
                "WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = %s)",
                (slot, slot),
            )


class Replica(Database):
    """One hot standby: start (building it from the primary when needed) / stop / health."""

    def __init__(self, settings: Settings, index: int) -> None:
        super().__init__(settings)
        self.index = index
        self.name = replica_name(index)
        self.port = replica_port(settings, index)
        self.slot = replica_slot(index)

    @property
    def data_dir(self) -> Path:
        return self.paths.db_dir / f"replica-{self.index}"

    @property
    def socket_dir(self) -> Path:
        return self.paths.db_dir / f"run-replica-{self.index}"

    @property
    def startup_log(self) -> Path:
        return self.paths.logs / "postgres" / f"{self.name}-startup.log"

    def server_pid(self) -> int | None:
        from eomatch.stack.process import is_running

        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if is_running(pid) else None

    @property
    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists() and (self.data_dir / "standby.signal").exists()

    # --- building --------------------------------------------------------------
    def ensure_replication_role(self) -> str:
        """The replication role (password from the secrets file) and this standby's slot."""
        secrets = load_secrets(self.paths, create=True)
        setup_replication(stack_credentials(self.settings, "admin"), self.cfg.replication_user,
                          secrets["replication_password"], [self.slot])
        return secrets["replication_password"]

    def build(self) -> None:
        """``pg_basebackup`` of the primary into a new folder, renamed into place when whole."""
        password = self.ensure_replication_role()
        part = self.paths.db_dir / f"replica-{self.index}.part"
        shutil.rmtree(part, ignore_errors=True)
        for d in (part, self.socket_dir, self.paths.logs / "postgres"):
            d.mkdir(parents=True, exist_ok=True)
            self._chown(d)
        part.chmod(0o700)
        conninfo = (f"host={self.cfg.host} port={self.cfg.port} user={self.cfg.replication_user} "
                    f"application_name={self.name}")
        # The password in the environment, not in the arguments (ps shows those to all).
        args = [self._bin("pg_basebackup"), "-d", conninfo, "-D", str(part), "-S", self.slot,
                "-X", "stream", "-c", "fast", "--no-sync"]
        if self._as_root:
            args = ["runuser", "-u", self.cfg.run_as, "--", *args]
        proc = subprocess.run(args, capture_output=True, text=True, cwd="/",
                              env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "PGPASSWORD": password})
        if proc.returncode != 0:
            msg = (proc.stderr or proc.stdout).strip().splitlines()
            raise StackError(f"{self.name}: pg_basebackup from the primary failed: {msg[-1] if msg else proc.returncode}")
        conf = part / "postgresql.auto.conf"
        with open(conf, "a") as fh:  # 0600 in a 0700 folder of postgres: the password may be here
            fh.write(
                f"\n# {self.name}, written by eomatch-stack\n"
                f"primary_conninfo = '{conninfo} password={password}'\n"
                f"primary_slot_name = '{self.slot}'\n"
                "hot_standby = on\n"
                "hot_standby_feedback = on\n"
                f"log_filename = '{self.name}-%a.log'\n"
            )
        (part / "standby.signal").touch()
        for f in (conf, part / "standby.signal"):
            f.chmod(0o600)
            self._chown(f)
        shutil.rmtree(self.data_dir, ignore_errors=True)
        part.rename(self.data_dir)

    # --- lifecycle ---------------------------------------------------------------
    @property
    def start_timeout_s(self) -> float:
        """How long a standby may take to answer queries (``stack.health_timeout_s``,
        the start deadline of every service)."""
        return self.settings.stack.health_timeout_s

    def start(self) -> None:
        """Start the standby and return once it answers queries; build it first when
        missing, rebuild it when it does not start or does not stream (a crash that left
        it broken, a slot gone). :class:`StandbyNotReady` when it runs but does not
        answer within :attr:`start_timeout_s`."""
        if self.server_pid() is not None:
            try:
                # Still recovering (a restart, a crash, a loaded machine): wait, do not rebuild.
                self.wait_ready(self.start_timeout_s)
            except StandbyNotReady:
                raise
            except StackError:
                pass  # its server ended meanwhile: started below like any stopped standby
            else:
                if wait_until(self.streaming, STREAMING_WITHIN_S, 0.5):
                    return
                # Runs but receives nothing (its slot gone, the primary re-created): start over.
                log.warning("%s: runs but does not stream from the primary; rebuilding it", self.name)
                self.stop()
                self.build()
                self._start_server()
                return
        check_port_free(self.cfg.host, self.port, self.name, "stack.db.port (standbys use port + N)")
        if not self.initialized:
            log.info("%s: building from the primary", self.name)
            self.build()
        error = self._start_or_error()
        if error is not None and "another postmaster" in str(error):
            # Killed outright: its backends leave within seconds of noticing; then it
            # recovers from its own WAL like any crashed server.
            time.sleep(ORPHANS_LEAVE_S)
            error = self._start_or_error()
        if error is None:
            return
        log.warning("%s: %s; rebuilding it from the primary", self.name, error)
        self.stop()
        self.build()
        self._start_server()

    def _start_or_error(self) -> StackError | None:
        """Start the server; None when it runs, else the error a rebuild may cure. A
        standby that does not answer in time is raised: rebuilding would not help it."""
        try:
            self._start_server()
        except StandbyNotReady:
            raise
        except StackError as exc:
            return exc
        return None

    def _start_server(self) -> None:
        started = time.monotonic()
        proc = self._run_as_server_user(
            [
                self._bin("pg_ctl"), "-D", str(self.data_dir), "-l", str(self.startup_log),
                "-o", f"-p {self.port} -c listen_addresses={self.cfg.host} "
                f"-c unix_socket_directories={self.socket_dir}"
                + (" -c log_destination=jsonlog" if self.settings.stack.log_format == "json" else ""),
                "-w", "-t", str(max(1, math.ceil(self.start_timeout_s))), "start",
            ],
            check=False,
        )
        if proc.returncode != 0 and self.server_pid() is None:
            detail = tail(self.startup_log, 3).splitlines() or [(proc.stderr or proc.stdout).strip()]
            raise StackError(f"{self.name}: PostgreSQL did not start: {detail[-1] if detail else proc.returncode}")
        # pg_ctl's wait ends at "accepting connections", or at its timeout with the
        # server still recovering: either way, ready means a query answers.
        self.wait_ready(max(0.0, self.start_timeout_s - (time.monotonic() - started)))
        if not wait_until(lambda: self.healthy() and self.streaming(), max(STREAMING_WITHIN_S, self.start_timeout_s)):
            raise StackError(f"{self.name}: started but is not a streaming standby on port {self.port}: "
                             f"{self.state().get('error') or 'no WAL receiver'}")

    def ready_error(self) -> str | None:
        """None when the standby answers a query as the external API's role does (a
        hot standby accepts connections, ``pg_isready`` says, before it can answer:
        "the database system is not yet accepting connections" until consistent);
        else the last line of why not."""
        import psycopg

        try:
            creds = replica_credentials(self.settings, self.index, "read")
            with psycopg.connect(creds.dsn, connect_timeout=2) as conn:
                conn.execute("SELECT pg_is_in_recovery()").fetchone()
            return None
        except psycopg.Error as exc:
            # "...failed: FATAL:  the database system is not yet accepting connections"
            # says more than the DETAIL or hint lines after it
            lines = str(exc).strip().splitlines() or [type(exc).__name__]
            fatal = [ln.split("FATAL:", 1)[1] for ln in lines if "FATAL:" in ln]
            return " ".join((fatal[-1] if fatal else lines[0].rsplit("failed: ", 1)[-1]).split())[:200]
        except StackError as exc:
            return str(exc)

    def wait_ready(self, timeout_s: float) -> None:
        """Return once the standby answers a query; :class:`StandbyNotReady` naming it,
        its port and the last error when it does not within ``timeout_s``, StackError
        when its server exits meanwhile."""
        deadline = time.monotonic() + timeout_s
        while True:
            error = self.ready_error()
            if error is None:
                return
            if self.server_pid() is None:
                detail = tail(self.startup_log, 3).splitlines()
                raise StackError(f"{self.name}: PostgreSQL exited while starting on port {self.port}: "
                                 f"{detail[-1] if detail else error}")
            if time.monotonic() >= deadline:
                raise StandbyNotReady(
                    f"{self.name}: not answering queries on {self.cfg.host}:{self.port} within "
                    f"{self.start_timeout_s:.0f}s (stack.health_timeout_s): {error}")
            time.sleep(READY_POLL_S)

    def streaming(self) -> bool:
        """Its WAL receiver streams from the primary (seen by the admin: the status of
        ``pg_stat_wal_receiver`` is hidden from other roles)."""
        import psycopg

        try:
            admin = replica_credentials(self.settings, self.index, "admin")
            with psycopg.connect(admin.dsn, connect_timeout=2) as conn:
                row = conn.execute("SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'").fetchone()
            return bool(row and row[0])
        except (psycopg.Error, StackError):
            return False

    def stop(self) -> None:
        pid = self.server_pid()
        if pid is None:
            return
        self._run_as_server_user(
            [self._bin("pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"], check=False)
        wait_postmaster_exit(pid)

    def remove(self) -> None:
        """Stop, drop the slot on the primary (it would keep WAL forever), delete the folder."""
        self.stop()
        drop_slot(self.settings, self.slot)
        shutil.rmtree(self.data_dir, ignore_errors=True)
        shutil.rmtree(self.socket_dir, ignore_errors=True)

    def healthy(self, maintenance: bool = False) -> bool:
        """Answers the read role, in recovery, and its WAL receiver is streaming."""
        return bool(self.state().get("ok"))

    def state(self) -> dict[str, Any]:
        return replica_state(self.settings, self.index)

    def status(self) -> dict[str, object]:
        pid = self.server_pid()
        state = self.state() if pid else {"ok": False}
        return {"service": self.name, "pid": pid, "healthy": bool(pid) and bool(state.get("ok")),
                "url": f"postgresql://{self.cfg.host}:{self.port}/{self.cfg.name}",
                "lag_bytes": state.get("lag_bytes"), "lag_s": state.get("lag_s")}


def drop_slot(settings: Settings, slot: str) -> None:
    """Drop a standby's slot on the primary (nothing when the primary is down or it is gone)."""
    import psycopg

    try:
        with psycopg.connect(stack_credentials(settings, "admin").dsn, autocommit=True, connect_timeout=5) as conn:
            conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                         "WHERE slot_name = %s AND NOT active", (slot,))
    except (psycopg.Error, StackError) as exc:
        log.warning("cannot drop replication slot %s: %s", slot, str(exc).strip().splitlines()[-1:])


def catch_up(settings: Settings, timeout_s: float = 60.0) -> list[str]:
    """Wait until every running standby has replayed the primary's WAL as of now (after
    a restore: the standbys then serve the restored catalogue); a standby that does not
    within ``timeout_s`` is rebuilt from the primary. Returns one phrase per standby."""
    import psycopg

    done = []
    with psycopg.connect(stack_credentials(settings, "admin").dsn, autocommit=True, connect_timeout=5) as conn:
        (target,) = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()  # type: ignore[misc]
    for index in range(1, settings.stack.db.replicas + 1):
        replica = Replica(settings, index)
        if replica.server_pid() is None:
            done.append(f"{replica.name} not running ('eomatch-stack up' rebuilds it from the restored primary)")
            continue
        if wait_until(lambda r=replica: _replayed(r, target), timeout_s, 0.2):
            done.append(f"{replica.name} in step")
            continue
        log.warning("%s: did not replay the restore within %.0fs; rebuilding it", replica.name, timeout_s)
        replica.stop()
        replica.build()
        replica.start()
        done.append(f"{replica.name} rebuilt")
    return done


def _replayed(replica: Replica, lsn: str) -> bool:
    """The standby has replayed the WAL up to ``lsn``."""
    import psycopg

    try:
        admin = replica_credentials(replica.settings, replica.index, "admin")
        with psycopg.connect(admin.dsn, connect_timeout=2) as conn:
            (ok,) = conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)).fetchone()  # type: ignore[misc]
        return bool(ok)
    except psycopg.Error:
        return False


def leftover_replicas(settings: Settings) -> list[Replica]:
    """Standbys on disk beyond ``stack.db.replicas`` (the setting was lowered): to remove."""
    db_dir = Database(settings).paths.db_dir
    found = set()
    for path in db_dir.glob("replica-*"):
        m = re.fullmatch(r"replica-(\d+)(\.part)?", path.name)
        if m and int(m.group(1)) > settings.stack.db.replicas:
            found.add(int(m.group(1)))
    return [Replica(settings, i) for i in sorted(found)]


def replica_state(settings: Settings, index: int, dsn: str | None = None, timeout_s: float = 2.0) -> dict[str, Any]:
    """State of standby ``index``: ``ok`` (answers, in recovery, streaming), replication
    lag in WAL bytes (primary's current WAL position minus what the standby replayed)
    and in seconds (0 when it replayed everything, else since the last replayed commit).

    ``dsn`` is a role's connection to the primary (default: the read role); the same
    role reaches the standby (roles replicate) and the WAL functions need no privilege.
    """
    import psycopg
    from psycopg.conninfo import make_conninfo

    name = replica_name(index)
    try:
        primary = dsn or stack_credentials(settings, "read").dsn
    except StackError as exc:
        return {"service": name, "ok": False, "error": str(exc)}
    try:
        host, port = replica_address(settings, index)
    except StackError as exc:
        return {"service": name, "ok": False, "error": str(exc)}
    standby = make_conninfo(primary, host=host, port=str(port))
    t0 = time.monotonic()
    try:
        with psycopg.connect(standby, connect_timeout=timeout_s) as conn:
            in_recovery, streaming, replayed_lsn, replay_age_s = conn.execute(
                # a WAL receiver runs (its pid is all other roles see of it)
                "SELECT pg_is_in_recovery(), EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE pid IS NOT NULL),"
                " pg_last_wal_replay_lsn()::text,"
                " extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8"
            ).fetchone()  # type: ignore[misc]
    except psycopg.Error as exc:
        return {"service": name, "ok": False, "error": (str(exc).strip().splitlines() or [type(exc).__name__])[-1][:200]}
    state: dict[str, Any] = {"service": name, "ok": bool(in_recovery and streaming), "address": f"{host}:{port}"}
    if not in_recovery:
        state["error"] = "not in recovery (promoted?): not a standby of the primary"
        return state
    if not streaming:
        state["error"] = "not streaming from the primary (no WAL receiver)"
    try:
        with psycopg.connect(primary, connect_timeout=timeout_s) as conn:
            (lag,) = conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)::float8",
                                  (replayed_lsn,)).fetchone()  # type: ignore[misc]
    except psycopg.Error:
        lag = None  # primary down: the standby still answers
    state["lag_bytes"] = max(0, int(lag)) if lag is not None else None
    state["lag_s"] = 0.0 if lag is not None and lag <= 0 else (round(max(0.0, replay_age_s), 3) if replay_age_s is not None else None)
    state["checked_in_ms"] = round((time.monotonic() - t0) * 1000, 1)
    return state


__all__ = ["REREAD_IDLE_S", "REREAD_QUERIES", "Replica", "StandbyNotReady", "catch_up", "compose_db_settings",
           "compose_replica_services", "render_pg_hba", "drop_slot", "external_read_hosts", "leftover_replicas", "replica_address",
           "replica_credentials", "replica_name", "replica_port", "replica_slot", "replica_state", "setup_replication"]
