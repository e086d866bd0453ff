"""``eomatch-tle``: fetch current element sets into the TLE cache."""

from __future__ import annotations

from collections.abc import Sequence

from eomatch.cli import base_parser, run, settings_from_args
from eomatch.errors import ConfigError
from eomatch.orbits.tle import default_tle_cache_dir, fetch_tles, find_satellite


def _main(argv: Sequence[str] | None) -> int:
    parser = base_parser("eomatch-tle", "Manage the TLE files eomatch propagates orbits from.")
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="download current element sets from CelesTrak")
    fetch.add_argument("--norad", type=int, nargs="+", default=[], metavar="ID", help="NORAD ids")
    fetch.add_argument(
        "--platform", nargs="+", default=[], metavar="NAME", help="platform names or aliases"
    )
    fetch.add_argument("--out", help="folder to write into (default: the TLE cache)")
    fetch.add_argument("--timeout", type=float, default=30.0, help="HTTP timeout in seconds")
    args = parser.parse_args(argv)

    settings = settings_from_args(args)
    ids = list(args.norad)
    ids += [find_satellite(name, settings.satellites).norad_id for name in args.platform]
    if not ids:
        raise ConfigError("give --norad ID... or --platform NAME...")
    out = args.out or default_tle_cache_dir(settings)
    results = fetch_tles(dict.fromkeys(ids), out, settings.celestrak_url, args.timeout,
                         retries=settings.provider_retries, backoff_s=settings.provider_backoff_s)  # fmt: skip
    for r in results:
        print(f"NORAD {r.norad_id}: {r.new_sets} new, {r.total_sets} total -> {r.path}")
    new = sum(r.new_sets for r in results)
    print(f"fetched {len(results)} satellites, {new} new element sets")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
