from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from clisight.exceptions import DataError
from clisight.query import Filter, parse_level, parse_time, to_ns
from clisight.store import Selection

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
NOW_NS = 1_714_564_800 * 10**9


def test_to_ns_keeps_microseconds_and_treats_ints_as_ns() -> None:
    assert to_ns(NOW) == NOW_NS
    assert to_ns(NOW + timedelta(microseconds=7)) == NOW_NS + 7000
    assert to_ns(datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))) == NOW_NS
    assert to_ns(123) == 123


@pytest.mark.parametrize(
    ("word", "seconds_ago"),
    [
        ("30s", 30),
        ("15m", 900),
        ("2h", 7200),
        ("7d", 604_800),
        ("1w", 604_800),
        ("1.5h", 5400),
        ("now", 0),
        (" 2H ", 7200),
    ],
)
def test_parse_time_reads_durations_ago(word: str, seconds_ago: int) -> None:
    assert parse_time(word, now=NOW) == NOW_NS - seconds_ago * 10**9


def test_parse_time_reads_iso_dates_and_nanoseconds() -> None:
    assert parse_time("2024-05-01T12:00:00+00:00") == NOW_NS
    assert parse_time(str(NOW_NS)) == NOW_NS
    naive = datetime(2024, 5, 1)
    assert parse_time("2024-05-01") == to_ns(naive.astimezone())


def test_parse_time_says_what_it_accepts() -> None:
    with pytest.raises(DataError, match="15m"):
        parse_time("yesterday-ish")


def test_a_date_that_does_not_exist_is_named_with_why() -> None:
    # It said "expected ... an ISO date such as 2024-05-01": the form it was already in.
    with pytest.raises(DataError, match=r"'2024-02-30'.*day is out of range for month"):
        parse_time("2024-02-30")
    with pytest.raises(DataError, match=r"'2024-05-01T25:00'.*hour must be in 0\.\.23"):
        parse_time("2024-05-01T25:00")


def test_parse_level_reads_names_numbers_and_aliases() -> None:
    assert [
        parse_level(x) for x in ("debug", "INFO", "warn", "Warning", "performance", "fatal", "17", 3)
    ] == [5, 9, 13, 13, 11, 21, 17, 3]
    with pytest.raises(DataError, match="unknown level"):
        parse_level("loud")


def test_filter_becomes_a_store_selection() -> None:
    flt = Filter(
        since=NOW,
        until=NOW_NS + 5,
        service="svc",
        session="s1",
        level="warning",
        component="db",
        name="command",
        text="disk",
    )
    assert flt.selection() == Selection(NOW_NS, NOW_NS + 5, "svc", "s1", 13, "db", "command", "disk")
    assert Filter().selection() == Selection()
    assert Filter(text="").selection().text is None


@pytest.mark.parametrize(
    "word", ["1000000d", "200000d", "99999999999999999999", "1969-12-31", "0001-01-01", "9999-12-31T23:59:59"]
)
def test_times_a_store_cannot_hold_are_refused_with_the_range(word: str) -> None:
    with pytest.raises(DataError, match="out of range"):
        parse_time(word)
