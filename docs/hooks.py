"""mkdocs hook: the command-line reference is generated from each command's --help."""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from typing import Any

COMMANDS = [
    ("eomatch-stack", "eomatch.cli.stack"),
    ("eomatch-find", "eomatch.cli.find"),
    ("eomatch-tle", "eomatch.cli.tle"),
    ("eomatch-ingest", "eomatch.cli.ingest"),
    ("eomatch-query", "eomatch.cli.query"),
    ("eomatch-download", "eomatch.cli.download"),
    ("eomatch-add-asset", "eomatch.cli.add_asset"),
    ("eomatch-migrate-hrefs", "eomatch.cli.migrate_hrefs"),
]


def command_help(module: str, argv: list[str] | None = None) -> str:
    """What ``COMMAND --help`` prints (argparse exits after printing)."""
    import importlib

    mod = importlib.import_module(module)
    buf = io.StringIO()
    with redirect_stdout(buf):
        try:
            mod.main([*(argv or []), "--help"])
        except SystemExit:
            pass
    return buf.getvalue().rstrip()


def cli_reference() -> str:
    parts = [
        "# Command line\n",
        "Generated from each command's `--help` when the site is built, so it cannot drift.\n",
    ]
    for name, module in COMMANDS:
        parts.append(f"## `{name}`\n\n```text\n{command_help(module)}\n```\n")
    return "\n".join(parts)


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    if page.file.src_uri == "cli.md":
        return cli_reference()
    return markdown
