"""Times of items and periods: one parsing rule for every command, config value and file.

Every time eomatch stores or compares is timezone-aware UTC; a date alone as the
end of a period is that whole UTC day (see :func:`parse_time_bound`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from eomatch.errors import MatchupError

LAST_MICROSECOND = time(23, 59, 59, 999_999)
"""Where a date-only end of a period lands: STAC datetime intervals include both
ends, so the last representable instant of the day keeps all of it and nothing of
the next (pgSTAC and Python both count in microseconds)."""


def to_utc(value: datetime | str) -> datetime:
    """A timezone-aware UTC datetime (naive input is taken as UTC)."""
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise MatchupError(f"not an ISO 8601 datetime: {value!r}") from None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def date_only(value: object) -> date | None:
    """The date when ``value`` is a date without a time (``2022-12-31``, ``20221231``,
    or a ``date`` such as YAML's unquoted ``2022-12-31``), else None."""
    if isinstance(value, datetime):
        return None
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            return None
    return None


def parse_time_bound(value: datetime | date | str, end: bool = False) -> datetime:
    """One bound of a period, in UTC, for every command (find, query) and config value.

    A date alone means the whole of that UTC day: as a start its first instant
    (00:00:00Z), as an ``end`` its last microsecond (23:59:59.999999Z), so
    ``--end-time 2022-12-31`` keeps everything that happened on 31 December.
    Anything with a time is taken as given (naive = UTC). Raises :class:`MatchupError`.
    """
    day = date_only(value)
    if day is not None:
        return datetime.combine(day, LAST_MICROSECOND if end else time(0), tzinfo=UTC)
    if not isinstance(value, datetime | str):
        raise MatchupError(f"not an ISO 8601 date or datetime: {value!r}")
    return to_utc(value)


def round_to_second(value: datetime) -> datetime:
    """The nearest whole second in UTC (ids must not change with float jitter)."""
    value = to_utc(value)
    return (value + timedelta(microseconds=500_000)).replace(microsecond=0)


def format_datetime(value: datetime | str) -> str:
    """RFC 3339 in UTC with a ``Z``, as pystac writes it."""
    value = to_utc(value)
    if value.microsecond:
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def item_times(item: Mapping[str, Any]) -> tuple[datetime, datetime, datetime]:
    """(datetime, start, end) of an item; missing ones fall back on the others."""
    props = item.get("properties") or {}
    raw_dt = props.get("datetime")
    raw_start = props.get("start_datetime")
    raw_end = props.get("end_datetime")
    if raw_dt is None and raw_start is None and raw_end is None:
        raise MatchupError(f"item {item.get('id')!r} has no datetime, start_datetime or end_datetime")
    start = to_utc(raw_start or raw_dt or raw_end)
    end = to_utc(raw_end or raw_dt or raw_start)
    if raw_dt is not None:
        centre = to_utc(raw_dt)
    else:
        centre = start + (end - start) / 2
    return centre, start, end
