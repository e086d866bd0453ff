"""``eomatch-migrate-hrefs``: move asset hrefs to a new prefix in pgSTAC and the files."""

from __future__ import annotations

import os
from collections.abc import Sequence

from eomatch.cli import base_parser, run, settings_from_args


def main(argv: Sequence[str] | None = None) -> int:
    return run(_main, argv)


def _main(argv: Sequence[str] | None) -> int:
    p = base_parser(
        "eomatch-migrate-hrefs",
        "Rewrite asset hrefs under one prefix to another (pgSTAC in one transaction, and the "
        "local catalogue files), e.g. when the data share moves. Safe to re-run.",
    )
    p.add_argument("--from", dest="from_prefix", required=True, help="old prefix, e.g. file:///npl-data")
    p.add_argument("--to", dest="to_prefix", required=True, help="new prefix, e.g. https://data.example.org/npl-data")
    p.add_argument("--catalogue", help="local catalogue to rewrite too (default: matchup_catalogue.path)")
    p.add_argument("--no-db", action="store_true", help="rewrite the files only")
    p.add_argument("--db-host")
    p.add_argument("--db-port", type=int)
    p.add_argument("--db-name")
    p.add_argument("--db-user", help="a role in pgstac_ingest (password: PGPASSWORD)")
    p.add_argument("--state-dir", help="local stack state folder (when no database is given)")
    p.add_argument("--dry-run", action="store_true", help="count what would change; write nothing")
    args = p.parse_args(argv)
    settings = settings_from_args(
        args,
        {
            "ingest": {
                "db_host": args.db_host,
                "db_port": args.db_port,
                "db_name": args.db_name,
                "db_user": args.db_user,
                "db_password": os.environ.get("PGPASSWORD"),
            },
            "stack": {"state_dir": args.state_dir},
        },
    )
    from eomatch.migrate_hrefs import migrate_hrefs

    summary = migrate_hrefs(
        settings,
        args.from_prefix,
        args.to_prefix,
        catalogue=args.catalogue,
        dry_run=args.dry_run,
        db=not args.no_db,
        quiet=args.quiet,
    )
    print(summary.line())
    return 0
