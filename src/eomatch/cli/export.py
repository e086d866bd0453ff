"""``eomatch-export``: a catalogue's matchups as one table file (GeoParquet, CSV or GeoJSON)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from eomatch.cli import base_parser, run, settings_from_args
from eomatch.export import FORMATS


def _parser() -> argparse.ArgumentParser:
    p = base_parser("eomatch-export", "Write one row per matchup of a local catalogue to a table file.")
    p.add_argument("--catalogue", help="local catalogue folder (default: matchup_catalogue.path from --config)")
    p.add_argument(
        "--format", choices=FORMATS, help="file format (default: from the output's suffix: .parquet, .csv, .geojson)"
    )
    p.add_argument("--output", required=True, help="the file to write (replaced when complete)")
    p.add_argument("--collection", help="only the matchups of this matchup collection")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    return run(_main, argv)


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    settings = settings_from_args(args)
    from eomatch.catalogue import MatchupCatalogue
    from eomatch.errors import ConfigError
    from eomatch.export import export_matchups, format_for
    from eomatch.progress import Progress

    path = args.catalogue or settings.matchup_catalogue.path
    if path is None:
        raise ConfigError("no catalogue given: pass --catalogue or set matchup_catalogue.path in the config")
    fmt = format_for(args.output, args.format)  # a bad output name fails before the catalogue is read
    with MatchupCatalogue.open(path) as cat:
        total = cat.count(kind="matchup", collection=args.collection)
        with Progress("export", total=total, unit="matchups", quiet=args.quiet) as progress:
            summary = export_matchups(cat, args.output, fmt, collection=args.collection, progress=progress)
    print(summary.line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
