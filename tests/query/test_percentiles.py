from __future__ import annotations

import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clisight.query import percentile

finite = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)
samples = st.lists(finite, min_size=1, max_size=200)
qs = st.floats(min_value=0, max_value=100, allow_nan=False)


@given(st.lists(finite, min_size=2, max_size=200), st.integers(min_value=1, max_value=99))
def test_matches_statistics_quantiles_inclusive(values: list[float], k: int) -> None:
    expected = statistics.quantiles(values, n=100, method="inclusive")[k - 1]
    assert percentile(values, k) == pytest.approx(expected, rel=1e-9, abs=1e-6)


@given(samples, qs)
def test_lies_between_min_and_max_and_ignores_order(values: list[float], q: float) -> None:
    result = percentile(values, q)
    assert min(values) <= result <= max(values)
    assert percentile(list(reversed(values)), q) == result


@given(samples, qs, qs)
def test_is_monotone_in_q(values: list[float], q1: float, q2: float) -> None:
    low, high = sorted((q1, q2))
    assert percentile(values, low) <= percentile(values, high)


@given(samples)
def test_ends_are_min_and_max(values: list[float]) -> None:
    assert percentile(values, 0) == min(values)
    assert percentile(values, 100) == max(values)


def test_worked_examples() -> None:
    assert percentile([3.0], 95) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile(list(range(1, 101)), 95) == pytest.approx(95.05)
    assert percentile([10.0, 0.0], 25) == 2.5


@pytest.mark.parametrize(("values", "q"), [([], 50), ([1.0], -1), ([1.0], 100.5)])
def test_rejects_no_values_and_q_outside_0_100(values: list[float], q: float) -> None:
    with pytest.raises(ValueError):
        percentile(values, q)
