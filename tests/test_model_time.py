"""Period bounds: one rule for every command and config value (a date alone is its whole day)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from eomatch.model import MatchupError, parse_time_bound
from eomatch.settings import load_settings


@pytest.mark.parametrize("value", ["2022-12-31", "20221231", date(2022, 12, 31), " 2022-12-31 "])
def test_a_date_alone_is_the_whole_utc_day(value: object) -> None:
    assert parse_time_bound(value, end=False) == datetime(2022, 12, 31, tzinfo=UTC)  # type: ignore[arg-type]
    assert parse_time_bound(value, end=True) == datetime(2022, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2022-12-31T00:00:00Z", datetime(2022, 12, 31, tzinfo=UTC)),
        ("2022-12-31T10:00", datetime(2022, 12, 31, 10, tzinfo=UTC)),  # naive = UTC
        ("2022-12-31T10:00+02:00", datetime(2022, 12, 31, 8, tzinfo=UTC)),
        (datetime(2022, 12, 31, 10), datetime(2022, 12, 31, 10, tzinfo=UTC)),
    ],
)
def test_a_time_is_taken_as_given(value: object, expected: datetime) -> None:
    assert parse_time_bound(value, end=True) == expected  # type: ignore[arg-type]


def test_garbage_is_an_error() -> None:
    with pytest.raises(MatchupError):
        parse_time_bound("yesterday", end=True)


def test_settings_read_dates_the_same_way_from_every_source(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "run.yaml"
    cfg.write_text("start_time: 2022-12-31\nend_time: 2022-12-31\n")  # YAML dates
    last = datetime(2022, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
    for settings in (
        load_settings(cfg, environ={}),
        load_settings(environ={"EOMATCH_START_TIME": "2022-12-31", "EOMATCH_END_TIME": "2022-12-31"}),
        load_settings(overrides={"start_time": "2022-12-31", "end_time": "2022-12-31"}, environ={}),
    ):
        assert (settings.start_time, settings.end_time) == (datetime(2022, 12, 31, tzinfo=UTC), last)
    # a naive time next to a date compares (both UTC)
    mixed = load_settings(overrides={"start_time": "2022-12-30T12:00", "end_time": "2022-12-31"}, environ={})
    assert mixed.start_time == datetime(2022, 12, 30, 12, tzinfo=UTC)
