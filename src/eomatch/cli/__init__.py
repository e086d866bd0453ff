"""Thin command-line entry points: parse flags, load settings, call the library."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from eomatch.errors import EomatchError
from eomatch.settings import Settings, load_settings, pgpassword


def base_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """Every command takes ``--config``, ``-q`` and ``--log-format``."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", help="YAML config file (default: $EOMATCH_CONFIG)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    parser.add_argument(
        "--log-format", choices=["text", "json"], default=None, help="log line format"
    )
    return parser


def add_db_flags(parser: argparse.ArgumentParser) -> None:
    """The design's database flags (password from PGPASSWORD) and the local stack's folder."""
    parser.add_argument("--db-host")
    parser.add_argument("--db-port", type=int)
    parser.add_argument("--db-name")
    parser.add_argument("--db-user", help="a role in pgstac_ingest (password: PGPASSWORD)")
    parser.add_argument("--state-dir", help="local stack state folder (when no database is given)")


def db_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Settings overrides from :func:`add_db_flags`, with the password from PGPASSWORD."""
    return {
        "ingest": {
            "db_host": args.db_host,
            "db_port": args.db_port,
            "db_name": args.db_name,
            "db_user": args.db_user,
            "db_password": pgpassword(),
        },
        "stack": {"state_dir": args.state_dir},
    }


def settings_from_args(args: argparse.Namespace, overrides: dict[str, Any] | None = None) -> Settings:
    """Load settings from the config file, env and the flags the user gave."""
    over = dict(overrides or {})
    if getattr(args, "log_format", None):
        over.setdefault("stack", {})["log_format"] = args.log_format
    settings = load_settings(getattr(args, "config", None), over, warn=False)
    setup_logging(settings)
    for note in settings.deprecations:  # in the log format just set up
        logging.getLogger("eomatch.settings").warning(note)
    return settings


def run(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run a command body: user errors become one line on stderr, no traceback."""
    try:
        return main(argv)
    except EomatchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into e.g. `head`, which stopped reading: not an error.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:
        # A path that is a file, not a folder; no permission; a full disk: name it, no traceback.
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2


def setup_logging(settings: Settings, service: str = "cli") -> None:
    """Warnings of a command on stderr in the configured format (``--log-format``):
    ``warning: ...`` lines for people, one JSON object per line for log collectors.
    Progress and the summary line are not log records and stay as they are."""
    from eomatch.logs import configure_logging

    configure_logging(service=service, log_format=settings.stack.log_format, level=logging.WARNING, console_style="short")
    # urllib3 warns on every retry with the whole pool and policy in the text; the
    # command reports the final failure itself, once, with the cause.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
