"""Terminal text helpers of the CLI (clisight.cli._text)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from clisight.cli._text import counted


@given(st.integers(0, 10**12), st.sampled_from(["span", "request", "file", "session"]))
def test_counted_is_singular_only_for_one(n: int, noun: str) -> None:
    text = counted(n, noun)
    number, word = text.split(" ")
    assert int(number.replace(",", "")) == n
    assert word == (noun if n == 1 else noun + "s")
