"""What selects items: time bounds as epoch seconds, and property conditions."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from eomatch.errors import CatalogueError, MatchupError
from eomatch.times import parse_time_bound

OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda v, t: v == t,
    "ne": lambda v, t: v != t,
    "lt": lambda v, t: v < t,
    "lte": lambda v, t: v <= t,
    "gt": lambda v, t: v > t,
    "gte": lambda v, t: v >= t,
    "in": lambda v, t: v in t,
}


def epoch_s(value: Any, end: bool = False) -> float | None:
    """Seconds since 1970 of a time bound; a date alone is its whole UTC day (as in find/query)."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return parse_time_bound(value, end=end).timestamp()
    except MatchupError as exc:
        raise CatalogueError(str(exc)) from None


def props_match(props: Mapping[str, Any], conditions: Mapping[str, Any]) -> bool:
    """Exact-match filters; a dict value holds operators (lt, lte, gt, gte, eq, ne, in)."""
    for key, cond in conditions.items():
        if key not in props:
            return False
        value = props[key]
        if isinstance(cond, Mapping):
            for op, threshold in cond.items():
                fn = OPERATORS.get(op)
                if fn is None:
                    raise CatalogueError(f"unknown property filter operator {op!r} (use one of {', '.join(OPERATORS)})")
                try:
                    if value is None or not fn(value, threshold):
                        return False
                except TypeError:
                    return False
        elif value != cond:
            return False
    return True
