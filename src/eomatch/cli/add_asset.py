"""``eomatch-add-asset``: register an analysis result as a versioned item asset."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from eomatch.cli import add_db_flags, base_parser, db_overrides, run, settings_from_args


def main(argv: Sequence[str] | None = None) -> int:
    return run(_main, argv)


def _parser() -> argparse.ArgumentParser:
    p = base_parser(
        "eomatch-add-asset",
        "Add a dated analysis result ({prefix}:YYYY-MM-DD) to a catalogue item and move "
        "{prefix}:latest to the newest date; --push also upserts the item into pgSTAC.",
    )
    p.add_argument("--catalogue", help="catalog.json or its folder (default: matchup_catalogue.path)")
    p.add_argument("--collection-id", required=True)
    p.add_argument("--item-id", required=True)
    p.add_argument("--file", help="result file (path or file://), or the http(s) URL it is published at")
    p.add_argument("--list", action="store_true", help="print the item's versions instead of adding one")
    p.add_argument("--date", help="run date YYYY-MM-DD (default: the date in the file name, else today)")
    p.add_argument("--key-prefix", default="comparison", help="asset key prefix (default: comparison)")
    p.add_argument("--title", help="asset title (default: 'Spectral comparison')")
    p.add_argument("--media-type", help="asset media type (default: from the file extension)")
    p.add_argument("--role", action="append", dest="roles", help="asset role (repeatable; default: data, analysis)")
    p.add_argument("--href", help="record this http(s) URL for the local file instead of its file:// URI")
    p.add_argument("--push", action="store_true", help="also upsert the item into pgSTAC (safe to repeat)")
    p.add_argument("--api-url", help="push through this internal API (e.g. http://server/api) instead of the database")
    p.add_argument(
        "--api-key-file", metavar="PATH",
        help="file holding the API key for --api-url (default: $EOMATCH_API_KEY_FILE, else $EOMATCH_API_KEY)",
    )  # fmt: skip
    p.add_argument("--api-key", help="API key for --api-url; visible to other users in 'ps': prefer --api-key-file")
    add_db_flags(p)
    return p


def _main(argv: Sequence[str] | None) -> int:
    p = _parser()
    args = p.parse_args(argv)
    settings = settings_from_args(args, {**db_overrides(args), "api_key_file": args.api_key_file})
    if args.api_key is not None:
        logging.getLogger("eomatch.cli").warning(
            "--api-key is visible to every user of this machine (ps, /proc); use --api-key-file PATH or EOMATCH_API_KEY"
        )
    from eomatch.add_asset import list_analysis_versions, register_analysis
    from eomatch.errors import ConfigError

    catalogue = args.catalogue or settings.matchup_catalogue.path
    if catalogue is None:
        raise ConfigError("no catalogue given: pass --catalogue or set matchup_catalogue.path in the config")
    if args.list:
        versions = list_analysis_versions(catalogue, args.collection_id, args.item_id, args.key_prefix)
        if not versions:
            print(f"no {args.key_prefix}: versions on {args.collection_id}/{args.item_id}")
            return 0
        print("latest  date        size_bytes  checksum                                                              href")
        for v in versions:
            size = "-" if v.size_bytes is None else str(v.size_bytes)
            print(f"{'*' if v.is_latest else ' ':<7} {v.date.isoformat()}  {size:>10}  {v.checksum or '-':<68}  {v.href}")
        return 0
    if not args.file:
        raise ConfigError("--file is required (or --list)")
    result = register_analysis(
        catalogue_path=catalogue,
        collection_id=args.collection_id,
        item_id=args.item_id,
        file_path=args.file,
        push=args.push,
        key_prefix=args.key_prefix,
        date=args.date,
        title=args.title,
        media_type=args.media_type,
        roles=args.roles,
        href=args.href,
        settings=settings,
        api_url=args.api_url,
        api_key=args.api_key,  # default: --api-key-file / EOMATCH_API_KEY_FILE / EOMATCH_API_KEY (register_analysis)
    )
    print(result.line(), file=sys.stdout)
    return 0
