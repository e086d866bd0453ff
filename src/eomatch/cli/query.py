"""``eomatch-query``: pull matchups (and what they link to) from a STAC API to a local catalogue.

Exit codes: 0 done; 1 done, but items whose id is not a safe file name were refused;
2 bad input or the API failed (one ``error:`` line).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from eomatch.cli import base_parser, run, settings_from_args


def _parser() -> argparse.ArgumentParser:
    p = base_parser("eomatch-query", "Pull items from a STAC API (/api/ or /external/) into a local catalogue.")
    p.add_argument("--api-url", required=True, help="STAC API root, e.g. http://server/api/")
    p.add_argument("--output", required=True, help="folder of the local catalogue (created or merged into)")
    p.add_argument("--start-time", help="ISO 8601 start of the time range, inclusive (default: start_time of --config)")
    p.add_argument(
        "--end-time",
        help="ISO 8601 end of the time range, inclusive; a date alone is the whole day (default: end_time of --config)",
    )
    p.add_argument(
        "--bbox", nargs=4, metavar=("W", "S", "E", "N"),
        help="bounding box in degrees (default: min_lon min_lat max_lon max_lat of --config)",
    )  # fmt: skip
    p.add_argument(
        "--collections",
        help="comma-separated collection ids; product collections also keep the events and matchups "
        "between them (default: collections of --config)",
    )
    p.add_argument(
        "--platforms",
        help="comma-separated platforms (names or aliases): their products, and events and matchups "
        "of two of them (default: platforms of --config)",
    )
    p.add_argument("--filter", help="CQL2 text filter, e.g. \"matchup:abs_time_diff_s < 600\"")
    p.add_argument("--ids", help="comma-separated item ids")
    p.add_argument("--since", choices=["last"], help="only items updated since the previous sync of this output")
    p.add_argument(
        "--parallel", type=int, metavar="N",
        help="search windows fetched at the same time (query.parallel, default 4; 1 = one paged search)",
    )  # fmt: skip
    return p


def main(argv: Sequence[str] | None = None) -> int:
    return run(_main, argv)


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    settings = settings_from_args(args, {"query": {"parallel": args.parallel}})
    from eomatch.query import query

    summary = query(
        settings,
        api_url=args.api_url,
        output=args.output,
        start_time=args.start_time,
        end_time=args.end_time,
        bbox=args.bbox,
        collections=args.collections,
        platforms=args.platforms,
        filter=args.filter,
        ids=args.ids,
        since=args.since,
        quiet=args.quiet,
    )
    print(summary.line())
    return 1 if summary.refused else 0


if __name__ == "__main__":
    raise SystemExit(main())
