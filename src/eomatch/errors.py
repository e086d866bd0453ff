"""Errors that carry a one-line message for the user.

Commands catch :class:`EomatchError` at the edge and print ``error: <message>``
with no traceback: these are user or environment problems, not bugs.
"""

from __future__ import annotations


class EomatchError(Exception):
    """Base of every error whose message is meant for the user."""

    exit_code: int = 2


class ConfigError(EomatchError):
    """A setting, flag or config file is wrong."""


class StackError(EomatchError):
    """A local stack service could not be started, stopped or reached."""


class CatalogueError(EomatchError):
    """The local catalogue is missing, unreadable or inconsistent."""


class IngestError(EomatchError):
    """Pushing items into pgSTAC failed."""


class QueryError(EomatchError):
    """Pulling items from a STAC API failed."""


class DownloadError(EomatchError):
    """Downloading product assets failed."""


class DatasetError(EomatchError):
    """Building a matchup dataset failed."""
