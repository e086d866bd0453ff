"""``eomatch-find``: matchup events, matchups and their products into the local catalogue."""

from __future__ import annotations

import csv
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from eomatch.cli import base_parser, run, settings_from_args
from eomatch.errors import ConfigError

EXIT_FAILURES = 1


def main(argv: Sequence[str] | None = None) -> int:
    return run(_main, argv)


def _main(argv: Sequence[str] | None) -> int:
    p = base_parser(
        "eomatch-find",
        "Find satellite crossovers, search provider products in them, and write matchups to the local catalogue.",
    )
    p.add_argument(
        "--tle", action="append", default=[], metavar="PATH",
        help="TLE file or folder (repeatable; searched before tle_paths of the config)",
    )
    p.add_argument("--events-only", action="store_true", help="stop after the orbit step: events only, no product search")
    p.add_argument(
        "--format", choices=["csv", "json", "ics"],
        help="with --events-only: print the events instead of writing a catalogue"
        " (ics: the site passes as iCalendar events; needs sites)",
    )
    p.add_argument(
        "--sites", metavar="NAME[,NAME]",
        help="keep only events with a daylight pass of both satellites over these calibration sites"
        " (packaged names, e.g. Libya-4,Gobabeb; default: find.sites)",
    )
    p.add_argument("--catalogue", help="local catalogue folder (default: matchup_catalogue.path)")
    p.add_argument(
        "--max-cloud-cover", type=float, metavar="PERCENT",
        help="skip matchups whose products' eo:cloud_cover exceeds this (default: find.max_cloud_cover)",
    )
    p.add_argument(
        "--no-quicklooks", action="store_true",
        help="write no thumbnail PNGs for matchups and events (default: find.quicklooks)",
    )
    p.add_argument(
        "--full-regions", action="store_true",
        help="keep every vertex of event regions (default: at most 64 coordinates, within 1 km or more for long events; find.full_regions)",
    )
    args = p.parse_args(argv)
    if args.format and not args.events_only:
        raise ConfigError("--format needs --events-only")
    find_over: dict[str, Any] = {}
    if args.max_cloud_cover is not None:
        find_over["max_cloud_cover"] = args.max_cloud_cover
    if args.no_quicklooks:
        find_over["quicklooks"] = False
    if args.full_regions:
        find_over["full_regions"] = True
    over = {"find": find_over} if find_over else {}
    if args.sites:
        over = {**over, "find": {**over.get("find", {}), "sites": args.sites}}
    settings = settings_from_args(args, over)
    if args.format == "ics" and not settings.find.sites:
        raise ConfigError("--format ics needs calibration sites (--sites NAME[,NAME] or find.sites): its events are site passes")
    if args.tle:
        missing = [t for t in args.tle if not Path(t).expanduser().exists()]
        if missing:
            raise ConfigError(f"--tle path not found: {missing[0]}")
        settings = settings.model_copy(update={"tle_paths": [Path(t) for t in args.tle] + list(settings.tle_paths)})

    from eomatch.find import find, find_site_events

    if args.format:
        from eomatch.orbits import EVENT_COLUMNS
        from eomatch.progress import Progress

        # stdout carries the table; progress and the summary go to stderr.
        n_events = 0
        with Progress("find", unit="days", decimals=1, quiet=args.quiet, note=lambda: f"{n_events} events") as progress:
            events = find_site_events(settings, progress=progress)
            with_sites = bool(settings.find.sites)
            if args.format == "ics":
                from eomatch.ics import site_pairs_calendar

                pairs = [p for _, on_site in events for p in on_site]
                positions = {s.name: (float(s.lat or 0.0), float(s.lon or 0.0)) for s in settings.find.sites}
                calendar = site_pairs_calendar(pairs, positions)
                n_events = len(calendar.subcomponents)
                sys.stdout.flush()
                sys.stdout.buffer.write(calendar.to_ical())
                sys.stdout.buffer.flush()
            elif args.format == "csv":
                columns = [*EVENT_COLUMNS, "sites"] if with_sites else list(EVENT_COLUMNS)
                writer = csv.DictWriter(sys.stdout, fieldnames=columns)
                writer.writeheader()
                for xo, on_site in events:
                    row = xo.to_row("wkt")
                    if with_sites:  # a JSON list in one cell
                        row["sites"] = orjson.dumps([p.to_dict() for p in on_site]).decode()
                    writer.writerow(row)
                    n_events += 1
            else:
                rows = []
                for xo, on_site in events:
                    rows.append(xo.to_row("geojson"))
                    if with_sites:
                        rows[-1]["sites"] = [p.to_dict() for p in on_site]
                n_events = len(rows)
                sys.stdout.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
        if not args.quiet:
            what = "site passes (calendar events)" if args.format == "ics" else "crossover events"
            print(f"find: {n_events} {what} in {progress.elapsed_s():.1f} s", file=sys.stderr)
        return 0

    summary = find(settings, events_only=args.events_only, quiet=args.quiet, catalogue=args.catalogue)
    for line in summary.failure_digest():
        print(f"failed: {line}", file=sys.stderr)
    print(summary.line())
    return 0 if summary.ok else EXIT_FAILURES
