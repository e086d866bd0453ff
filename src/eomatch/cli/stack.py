"""``eomatch-stack``: run the whole serving stack on this machine."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

from eomatch.cli import base_parser, run, settings_from_args
from eomatch.errors import StackError


def _with_common(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> argparse._SubParsersAction:
    """Make every parser ``sub`` creates accept the ``common`` flags."""
    plain = sub.add_parser

    def add_parser(name: str, **kwargs: object) -> argparse.ArgumentParser:
        return plain(name, parents=[common], **kwargs)  # type: ignore[arg-type]

    sub.add_parser = add_parser  # type: ignore[method-assign]
    return sub


def _parser() -> argparse.ArgumentParser:
    p = base_parser("eomatch-stack", "Run PostgreSQL+pgSTAC, both STAC APIs, STAC Browser and nginx locally.")
    p.add_argument("--state-dir", help="folder that holds all stack state (stack.state_dir)")
    p.add_argument("--port", type=int, help="proxy port (stack.proxy.port, default 8000)")
    # The same flags after the subcommand too ("eomatch-stack up -q"); SUPPRESS keeps
    # a value given before the subcommand when it is not repeated after it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("--log-format", choices=["text", "json"], default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("--state-dir", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("--port", type=int, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    sub = _with_common(p.add_subparsers(dest="command", required=True), common)
    up = sub.add_parser("up", help="start every service and their supervisor (idempotent) and print the URLs")
    up.add_argument("--demo", action="store_true", help="load the demo matchup catalogue")
    sub.add_parser("down", help="stop the supervisor, then the services this stack started")
    st = sub.add_parser("status", help="which services run (restarts, sockets, users), and the catalogue's health")
    st.add_argument("--json", action="store_true")
    lg = sub.add_parser("logs", help="print a service's log")
    lg.add_argument("service")
    lg.add_argument("-n", "--lines", type=int, default=50)
    lg.add_argument("-f", "--follow", action="store_true")
    keys = sub.add_parser("keys", help="API keys for writes through /api/")
    ksub = _with_common(keys.add_subparsers(dest="keys_command", required=True), common)
    ka = ksub.add_parser("add")
    ka.add_argument("name")
    kr = ksub.add_parser("revoke")
    kr.add_argument("name")
    ksub.add_parser("list")
    users = sub.add_parser("users", help="read logins when stack.proxy.read_auth is basic")
    usub = _with_common(users.add_subparsers(dest="users_command", required=True), common)
    ua = usub.add_parser("add")
    ua.add_argument("name")
    ua.add_argument("--password-stdin", action="store_true", help="read the password from stdin instead of generating one")
    ur = usub.add_parser("revoke")
    ur.add_argument("name")
    usub.add_parser("list")
    bk = sub.add_parser("backup", help="pg_dump the catalogue database (custom format)")
    bk.add_argument("file")
    rs = sub.add_parser("restore", help="restore a backup made by 'backup'")
    rs.add_argument("file")
    sub.add_parser("rotate-logs", help="rotate the proxy and browser access logs")
    rd = sub.add_parser("render-deploy", help="write deploy/ (Compose, nginx, browser config, k8s/ manifests) from the settings")
    rd.add_argument("--out", default="deploy", help="output folder (default: deploy)")
    sub.add_parser("db-setup", help="migrate pgSTAC and create roles from PG* env (the Compose 'migrate' service)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    return run(_main, argv)


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    overrides = {"stack": {"state_dir": args.state_dir, "proxy": {"port": args.port}}}
    settings = settings_from_args(args, overrides)
    if args.command not in ("up", "render-deploy", "db-setup") and args.config is None:
        # A running stack is described by the settings it was started with (ports,
        # replicas, ...): commands that act on it use those, not the defaults.
        started_with = settings.stack.state_dir / "conf" / "settings.yaml"
        if started_with.is_file():
            args.config = str(started_with)
            settings = settings_from_args(args, overrides)
    from eomatch.stack import Stack
    from eomatch.stack.state import StatePaths

    if args.command == "up" and args.demo:
        from eomatch.demo import demo_stack_settings

        settings = demo_stack_settings(settings)  # /assets/ serves the demo's quicklooks
    stack = Stack(settings, quiet=args.quiet)
    paths = StatePaths(settings.stack.state_dir)
    if args.command == "up":
        t0 = time.monotonic()
        urls = stack.up()
        if args.demo:
            from eomatch.demo import load_demo

            summary = load_demo(settings, quiet=args.quiet)
            print(summary)
        print(f"eomatch stack is up ({time.monotonic() - t0:.1f}s), state in {paths.root}")
        print(f"  STAC Browser  {urls.browser}")
        print(f"  internal API  {urls.internal}   (writes: Authorization: Bearer <key>)")
        print(f"  external API  {urls.external}")
        print(f"  health        {urls.health}")
        return 0
    if args.command == "down":
        stopped = stack.down()
        print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
        return 0
    if args.command == "status":
        rows = stack.status()
        report = stack.health()
        if args.json:
            print(json.dumps({"services": rows, "health": report}, indent=2, default=str))
        else:
            for row in rows:
                state = "up" if row["healthy"] else ("running, unhealthy" if row["pid"] else "DOWN")
                extra = f"  as {row['user']}" if row.get("user") else ""
                if row.get("lag_bytes") is not None:  # a db-replica-N
                    extra += f"  lag={row['lag_bytes']} B, {row.get('lag_s') or 0:g} s"
                if row.get("restarts"):
                    extra += f"  restarts={row['restarts']} (last: {_exit_text(row.get('last_exit'))})"
                print(f"  {row['service']:<16} {state:<18} pid={row['pid'] or '-':<8} {row['url']}{extra}")
            cat = report.get("catalogue") or {}
            if cat:
                print(f"  catalogue: {cat['items_total']} items in {len(cat['items_per_collection'])} collections, "
                      f"newest update {cat['newest_updated']}{' (STALE)' if cat['stale'] else ''}")
        down = [r["service"] for r in rows if not r["healthy"]]
        if down:
            print(f"down: {', '.join(down)} — run 'eomatch-stack up' to start them", file=sys.stderr)
            return 3
        return 0
    if args.command == "logs":
        return _logs(stack, paths, args.service, args.lines, args.follow)
    if args.command == "keys":
        from eomatch.stack.keys import add_key, list_keys, revoke_key

        if args.keys_command == "add":
            key = add_key(paths, args.name)
            _reload_proxy(stack)
            print(f"key '{args.name}' created; it is shown only once:")
            print(key)
        elif args.keys_command == "revoke":
            revoke_key(paths, args.name)
            _reload_proxy(stack)
            print(f"key '{args.name}' revoked")
        else:
            for name, created in list_keys(paths):
                print(f"{name}\t{created}")
        return 0
    if args.command == "users":
        from eomatch.stack.users import add_user, list_users, revoke_user

        if args.users_command == "add":
            given = sys.stdin.readline().rstrip("\r\n") if args.password_stdin else None
            password = add_user(paths, args.name, given)
            _reload_proxy(stack)
            print(f"user '{args.name}' added")
            if given is None:
                print("password (shown only once):")
                print(password)
        elif args.users_command == "revoke":
            revoke_user(paths, args.name)
            _reload_proxy(stack)
            print(f"user '{args.name}' revoked")
        else:
            for name in list_users(paths):
                print(name)
        if settings.stack.proxy.read_auth != "basic":
            print("note: stack.proxy.read_auth is 'none': the proxy asks for no login", file=sys.stderr)
        return 0
    if args.command in ("backup", "restore"):
        from eomatch.stack.backup import backup, restore

        fn = backup if args.command == "backup" else restore
        print(fn(settings, args.file))
        return 0
    if args.command == "rotate-logs":
        from eomatch.stack.logfiles import rotate_nginx_logs

        print(rotate_nginx_logs(stack))
        return 0
    if args.command == "render-deploy":
        from pathlib import Path

        from eomatch.stack.render import write_deploy_files

        for path in write_deploy_files(settings, Path(args.out)):
            print(f"wrote {path}")
        return 0
    if args.command == "db-setup":
        return _db_setup(settings)
    raise StackError(f"unknown command {args.command}")


DB_SETUP_SECRETS = ("PGPASSWORD", "EOMATCH_API_PASSWORD", "EOMATCH_INGEST_PASSWORD", "EOMATCH_READ_PASSWORD")


def _db_setup(settings) -> int:  # type: ignore[no-untyped-def]
    """Compose's one-shot migrate service: admin credentials and role passwords from env.

    The stack's services wait for it, so a placeholder secret left from
    ``deploy/.env.example`` (passwords, and API keys when given) stops the start here.
    """
    import os

    from eomatch.stack.db import DbCredentials, role_timeouts, setup_database
    from eomatch.stack.state import placeholder_problem

    env = os.environ
    missing = [k for k in ("PGHOST", "PGUSER", *DB_SETUP_SECRETS) if not env.get(k)]
    if missing:
        raise StackError(f"db-setup needs these environment variables: {', '.join(missing)}")
    for name in DB_SETUP_SECRETS:
        problem = placeholder_problem(name, env[name])
        if problem:
            raise StackError(f"refusing to start: {problem}")
    for pair in filter(None, (p.strip() for p in env.get("EOMATCH_API_KEYS", "").split(","))):
        key_name, _, key = pair.partition(":")
        problem = placeholder_problem(f"the API key '{key_name}' in EOMATCH_API_KEYS", key)
        if problem:
            raise StackError(f"refusing to start: {problem}")
    db = settings.stack.db
    admin = DbCredentials(env["PGHOST"], int(env.get("PGPORT", "5432")), env.get("PGDATABASE", db.name), env["PGUSER"], env["PGPASSWORD"])
    setup_database(
        admin,
        admin.dbname,
        {db.api_user: env["EOMATCH_API_PASSWORD"], db.ingest_user: env["EOMATCH_INGEST_PASSWORD"]},
        {db.read_user: env["EOMATCH_READ_PASSWORD"]},
        timeouts=role_timeouts(settings),
    )
    roles = [db.api_user, db.ingest_user, db.read_user]
    if db.replicas:  # the standbys (db-replica) stream through this role and their slots
        from eomatch.stack.replica import replica_slot, setup_replication

        password = env.get("EOMATCH_REPLICATION_PASSWORD", "")
        problem = placeholder_problem("EOMATCH_REPLICATION_PASSWORD", password)
        if problem:
            raise StackError(f"refusing to start: {problem} (stack.db.replicas is {db.replicas})")
        setup_replication(admin, db.replication_user, password, [replica_slot(i) for i in range(1, db.replicas + 1)])
        roles.append(db.replication_user)
    print(f"pgSTAC ready in {admin.redacted()}; roles {', '.join(roles)}")
    return 0


def _exit_text(last_exit) -> str:  # type: ignore[no-untyped-def]
    """'killed by SIGKILL at <time>' from a supervisor exit record."""
    if not last_exit:
        return "unknown"
    how = (f"killed by {last_exit['signal']}" if last_exit.get("signal")
           else f"exit code {last_exit['code']}" if last_exit.get("code") is not None else "exit status unknown")
    return f"{how} at {last_exit.get('at', '?')}"


def _reload_proxy(stack) -> None:  # type: ignore[no-untyped-def]
    """Apply the keys file now; a proxy that is not running (or stops meanwhile, e.g. a
    restart) reads the file when it starts, so that is no failure."""
    if stack.proxy.pid() is None:
        return
    try:
        stack.proxy.reload()
    except StackError:
        if stack.proxy.pid() is not None and stack.proxy.healthy():
            raise
        print("the proxy is not running; the change applies when it starts", file=sys.stderr)


def _logs(stack, paths, service: str, lines: int, follow: bool) -> int:  # type: ignore[no-untyped-def]
    stack.service(service)  # validates the name
    candidates = sorted(paths.logs.glob(f"{service}*.log"))
    if service == "db":
        candidates = sorted((p for p in (paths.logs / "postgres").glob("*.log") if not p.name.startswith("db-replica-")),
                            key=lambda p: p.stat().st_mtime)
    elif service.startswith("db-replica-"):  # a standby's PostgreSQL logs
        candidates = sorted((paths.logs / "postgres").glob(f"{service}-*.log"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise StackError(f"no log for {service} yet in {paths.logs}")
    from eomatch.stack.process import tail

    for f in candidates:
        print(f"==> {f} <==")
        print(tail(f, lines))
    if follow:
        f = max(candidates, key=lambda p: p.stat().st_mtime)
        with open(f) as fh:
            fh.seek(0, 2)
            try:
                while True:
                    line = fh.readline()
                    if line:
                        print(line, end="", flush=True)
                    else:
                        time.sleep(0.5)
            except KeyboardInterrupt:
                return 0
    return 0
