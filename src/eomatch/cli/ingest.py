"""``eomatch-ingest``: push a local catalogue into pgSTAC (bulk upsert)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from eomatch.cli import base_parser, run, settings_from_args


def main(argv: Sequence[str] | None = None) -> int:
    return run(_main, argv)


def _main(argv: Sequence[str] | None) -> int:
    p = base_parser("eomatch-ingest", "Push a local matchup catalogue into pgSTAC (upsert; safe to re-run).")
    p.add_argument("--catalogue", help="catalog.json or its folder (default: matchup_catalogue.path)")
    p.add_argument("--db-host", help="database host (default: ingest.db_host, else the local stack)")
    p.add_argument("--db-port", type=int, help="database port (default: ingest.db_port)")
    p.add_argument("--db-name", help="database name (default: ingest.db_name)")
    p.add_argument("--db-user", help="database user (default: ingest.db_user); password from PGPASSWORD")
    p.add_argument("--assets-base-url", help="serve files under the catalogue root from this http(s) base")
    p.add_argument("--since", choices=["last"], help="only files changed since the last successful ingest")
    p.add_argument("--dry-run", action="store_true", help="report what would change; write nothing")
    p.add_argument("--state-dir", help="local stack state folder (when no database is given)")
    p.add_argument(
        "--exit-codes",
        choices=["simple", "monitoring"],
        default="simple",
        help="'monitoring': 0 ingested, 3 nothing to do, 4 another run holds the lock, 2 failed",
    )
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
                "assets_base_url": args.assets_base_url,
            },
            "stack": {"state_dir": args.state_dir},
        },
    )
    from eomatch.ingest import ingest

    summary = ingest(
        settings,
        catalogue=args.catalogue,
        since=args.since,
        dry_run=args.dry_run,
        quiet=args.quiet,
    )
    print(summary.line(), file=sys.stdout)
    if args.exit_codes == "monitoring":
        return summary.exit_code()
    return 0


if __name__ == "__main__":
    sys.exit(main())
