"""``eomatch-download``: fetch the EO products of a catalogue to local files."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from eomatch.cli import base_parser, run, settings_from_args


def _parser() -> argparse.ArgumentParser:
    p = base_parser("eomatch-download", "Download product data assets (http(s), s3) and register the local copies.")
    p.add_argument("--path", help="local catalogue folder (default: matchup_catalogue.path from --config)")
    p.add_argument("--products-root", help="where files go (download.products_root; default <catalogue>/products)")
    p.add_argument("--parallel", type=int, help="concurrent downloads (download.parallel)")
    p.add_argument("--assets", help="comma-separated asset keys to fetch (default: every data asset)")
    p.add_argument("--ids", help="comma-separated product ids (default: every product)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    return run(_main, argv)


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    settings = settings_from_args(args, {"download": {"products_root": args.products_root, "parallel": args.parallel}})
    from eomatch.download import download

    summary = download(
        settings,
        path=args.path,
        product_ids=[i.strip() for i in args.ids.split(",") if i.strip()] if args.ids else None,
        asset_keys=[k.strip() for k in args.assets.split(",") if k.strip()] if args.assets else None,
        quiet=args.quiet,
    )
    print(summary.line())
    if summary.failures:
        print(f"{len(summary.failures)} downloads failed:", file=sys.stderr)
        print(summary.failure_table(), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
