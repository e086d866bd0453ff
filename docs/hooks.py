"""mkdocs hook: the command-line reference is generated from each command's --help.

Commands are the console scripts of ``pyproject.toml`` (``[project.scripts]``); their
subcommands are read from the argparse parser each script builds, so a new script or
subcommand appears in the reference without touching this file.
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import tomllib
from collections.abc import Callable, Iterator, Sequence
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any
from unittest import mock

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
HELP_COLUMNS = "80"  # argparse wraps to the terminal: the same width on every build


def console_scripts(pyproject: Path = PYPROJECT) -> dict[str, str]:
    """``{command: "module:function"}`` from ``[project.scripts]``, in file order."""
    return dict(tomllib.loads(pyproject.read_text())["project"]["scripts"])


def entry_point(target: str) -> Callable[[Sequence[str] | None], Any]:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr or "main")


class _Caught(BaseException):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser


def script_parser(target: str) -> argparse.ArgumentParser:
    """The parser a console script builds, caught when it starts parsing (nothing runs)."""

    def catch(self: argparse.ArgumentParser, *_: Any, **__: Any) -> Any:
        raise _Caught(self)

    with mock.patch.object(argparse.ArgumentParser, "parse_known_args", catch):
        try:
            entry_point(target)(["--help"])
        except _Caught as caught:
            return caught.parser
    raise RuntimeError(f"{target} did not parse its arguments with argparse")


def subcommands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every subcommand path under ``parser`` (``("keys",)``, ``("keys", "add")``, ...)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen: set[int] = set()
            for name, sub in action.choices.items():
                if id(sub) in seen:  # an alias of a subcommand already listed
                    continue
                seen.add(id(sub))
                yield (*path, name)
                yield from subcommands(sub, (*path, name))


def command_help(target: str, argv: Sequence[str] = ()) -> str:
    """What ``COMMAND [SUBCOMMAND...] --help`` prints (argparse exits after printing)."""
    buf = io.StringIO()
    with mock.patch.dict(os.environ, {"COLUMNS": HELP_COLUMNS}), redirect_stdout(buf):
        try:
            entry_point(target)([*argv, "--help"])
        except SystemExit:
            pass
    return buf.getvalue().rstrip()


def cli_reference() -> str:
    parts = [
        "# Command line\n",
        "Generated from each command's `--help` when the site is built, so it cannot drift.\n",
    ]
    for name, target in console_scripts().items():
        parts.append(f"## `{name}`\n\n```text\n{command_help(target)}\n```\n")
        for path in subcommands(script_parser(target)):
            level = "#" * min(2 + len(path), 6)
            title = " ".join([name, *path])
            parts.append(f"{level} `{title}`\n\n```text\n{command_help(target, path)}\n```\n")
    return "\n".join(parts)


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    if page.file.src_uri == "cli.md":
        return cli_reference()
    return markdown
