"""``eomatch-migrate-hrefs``: move asset hrefs to a new prefix in pgSTAC and the files."""

from __future__ import annotations

from collections.abc import Sequence

from eomatch.cli import add_db_flags, base_parser, db_overrides, run, settings_from_args


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
    add_db_flags(p)
    p.add_argument("--dry-run", action="store_true", help="count what would change; write nothing")
    args = p.parse_args(argv)
    settings = settings_from_args(args, db_overrides(args))
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
