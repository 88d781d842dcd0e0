"""Durations for people: a fast operation never reads as taking no time."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from clisight._terminal import seconds


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
