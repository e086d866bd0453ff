"""``eomatch-ingest``: push a local catalogue into pgSTAC (bulk upsert)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from eomatch.cli import add_db_flags, base_parser, db_overrides, run, settings_from_args


def main(argv: Sequence[str] | None = None) -> int:
    return run(_main, argv)


def _main(argv: Sequence[str] | None) -> int:
    p = base_parser(
        "eomatch-ingest",
        "Make pgSTAC hold a local matchup catalogue: checked items, upsert, what the database "
        "lost sent again; safe to re-run.",
    )
    p.add_argument("--catalogue", help="catalog.json or its folder (default: matchup_catalogue.path)")
    add_db_flags(p)  # default: ingest.db_* in the config, else the local stack
    p.add_argument("--assets-base-url", help="serve files under the catalogue root from this http(s) base")
    p.add_argument("--since", choices=["last"], help="only files changed since the last successful ingest")
    p.add_argument("--dry-run", action="store_true", help="report what would change; write nothing")
    p.add_argument(
        "--exit-codes",
        choices=["simple", "monitoring"],
        default="simple",
        help="'monitoring': 0 ingested (or another run holds the lock: see the message), 3 nothing to do, 2 failed",
    )
    args = p.parse_args(argv)
    overrides = db_overrides(args)
    overrides["ingest"]["assets_base_url"] = args.assets_base_url
    settings = settings_from_args(args, overrides)
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
