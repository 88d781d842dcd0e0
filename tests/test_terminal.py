"""Durations for people: a fast operation never reads as taking no time."""

from __future__ import annotations

import io

from hypothesis import given
from hypothesis import strategies as st

from clisight._terminal import period, seconds, tolerant


def test_durations_read_in_the_unit_that_fits() -> None:
    assert [seconds(v) for v in (0, 0.000101, 0.042, 2.414, 192)] == [
        "0 ms",
        "101 µs",
        "42 ms",
        "2.41 s",
        "3.2 min",
    ]


@given(st.floats(min_value=1e-6, max_value=0.0009994))
def test_a_duration_under_a_millisecond_is_shown_in_microseconds_not_as_0_ms(value: float) -> None:
    shown = seconds(value)
    assert shown.endswith(" µs") and float(shown.split()[0]) == round(value * 1e6)


def test_a_period_reads_in_its_largest_units_never_as_168_h() -> None:
    shown = [period(v) for v in (0, 0.4, 45, 1800, 3600, 5400, 4 * 3600, 86_400, 168 * 3600, 2160 * 3600)]
    assert shown == ["0 s", "0 s", "45 s", "30 min", "1 h", "1 h 30 min", "4 h", "1 d", "7 d", "90 d"]
    assert period(86_400 + 300) == "1 d 5 min"  # a zero unit between is left out, not shown as 0 h


UNITS = {"d": 86_400, "h": 3600, "min": 60, "s": 1}
LARGEST = {"d": 10**9, "h": 24, "min": 60, "s": 60}


@given(st.integers(0, 10**9))
def test_a_period_is_at_most_two_units_largest_first_and_short_by_less_than_its_last(value: int) -> None:
    words = period(value).split()
    counts, units = [int(n) for n in words[::2]], words[1::2]
    assert 1 <= len(units) <= 2 and all(n > 0 for n in counts) == (value > 0)
    sizes = [UNITS[u] for u in units]
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == len(sizes)
    assert all(n < LARGEST[u] for n, u in zip(counts, units, strict=True))  # 24 h is 1 d, 60 min 1 h
    shown = sum(n * size for n, size in zip(counts, sizes, strict=True))
    assert 0 <= value - shown < sizes[-1]


@given(st.text(max_size=50))
def test_a_narrow_stream_made_tolerant_writes_anything_and_a_utf_8_one_is_left_strict(text: str) -> None:
    narrow = tolerant(io.TextIOWrapper(io.BytesIO(), encoding="ascii"))
    narrow.write(text + "█ µs · …")  # would raise UnicodeEncodeError unchanged
    narrow.flush()
    written = narrow.buffer.getvalue().decode("ascii")
    assert written.endswith("? ?s ? ?") and len(written) >= 8
    wide = tolerant(io.TextIOWrapper(io.BytesIO(), encoding="utf-8"))
    assert wide.errors == "strict"  # nothing to degrade: a lone surrogate still fails loudly
