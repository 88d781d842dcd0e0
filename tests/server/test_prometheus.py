"""The Prometheus text format: label values escaped so any sink or signal name parses back."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from clisight.server.prometheus import Exposition

SAMPLE = re.compile(r'^(\w+)\{sink="((?:[^"\\]|\\.)*)"\} (\S+)$')


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), text)


@given(name=st.text(), value=st.integers(0, 2**53) | st.floats(allow_nan=False, allow_infinity=False))
def test_any_label_value_round_trips(name: str, value: int) -> None:
    out = Exposition()
    out.family("clisight_x_total", "counter", "x", [({"sink": name}, value)])
    lines = out.text().rstrip("\n").split("\n")  # Prometheus splits lines on \n only
    assert lines[:2] == ["# HELP clisight_x_total x", "# TYPE clisight_x_total counter"]
    assert len(lines) == 3  # a newline in a value never breaks the line
    match = SAMPLE.match(lines[2])
    assert match is not None
    assert _unescape(match.group(2)) == name and float(match.group(3)) == value
