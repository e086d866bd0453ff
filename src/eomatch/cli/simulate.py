"""``eomatch-simulate``: a simulated product archive along real ground tracks.

For trying the pipeline without provider access: writes static STAC catalogues
of simulated products (labelled ``eomatch:simulated``) and, with
``--write-config``, a copy of the run config whose providers point at them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml

from eomatch.cli import base_parser, run, settings_from_args
from eomatch.errors import ConfigError


def main(argv: Sequence[str] | None = None) -> int:
    return run(_main, argv)


def _main(argv: Sequence[str] | None) -> int:
    p = base_parser("eomatch-simulate", "Simulate provider archives along the real ground tracks of the TLEs.")
    p.add_argument("--out", required=True, help="folder for the simulated static catalogue")
    p.add_argument("--write-config", help="write a copy of --config with providers pointed at the archive")
    args = p.parse_args(argv)
    settings = settings_from_args(args)
    if len(settings.find.platforms) < 2 or settings.find.start_time is None or settings.find.end_time is None:
        raise ConfigError("the config needs 'find:' with 'platforms' (two or more), 'start_time' and 'end_time'")
    from eomatch.simulate import simulate_archive, simulated_providers

    bbox = None
    if None not in (settings.find.min_lon, settings.find.min_lat, settings.find.max_lon, settings.find.max_lat):
        bbox = (settings.find.min_lon, settings.find.min_lat, settings.find.max_lon, settings.find.max_lat)
    archive = simulate_archive(
        Path(args.out), settings.find.platforms, settings.find.start_time, settings.find.end_time,
        bbox=bbox, settings=settings, quiet=args.quiet,
    )
    print(f"simulated archive: {archive}")
    if args.write_config:
        if settings.config_file is None:
            raise ConfigError("--write-config needs --config (the file to copy)")
        data = yaml.safe_load(settings.config_file.read_text()) or {}
        providers = simulated_providers(settings, archive, settings.find.platforms)
        data["providers"] = {k: v.model_dump(mode="json") for k, v in providers.items()}
        Path(args.write_config).write_text(yaml.safe_dump(data, sort_keys=False))
        print(f"wrote {args.write_config} (providers point at the simulated archive)")
    return 0
