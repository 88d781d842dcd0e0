"""The panels' formatting helpers (property tests) and cells that never interpret stored text."""

from __future__ import annotations

import io

from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from clisight._terminal import clean
from clisight.tui import panels

finite = st.floats(min_value=0, max_value=1e12, allow_nan=False)


@given(st.lists(finite, max_size=100), st.integers(min_value=1, max_value=60))
def test_sparkline_has_one_block_per_recent_value_and_tops_out_at_the_maximum(
    values: list[float], width: int
) -> None:
    line = panels.sparkline(tuple(values), width)
    shown = values[-width:]
    assert len(line) == len(shown)
    assert set(line) <= set("▁▂▃▄▅▆▇█")
    if shown and max(shown) > 0:
        assert line[shown.index(max(shown))] == "█"


@given(finite)
def test_short_size_fits_five_characters(n_bytes: float) -> None:
    text = panels.short_size(n_bytes)
    assert len(text) <= 5 or text.endswith("G")
    assert text[-1] in "BKMG"


@given(st.floats(min_value=1, max_value=90 * 86_400, allow_nan=False))
def test_window_words_read_back_within_a_percent(seconds: float) -> None:
    word = panels.span(seconds)
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86_400}[word[-1]]
    assert abs(float(word[:-1]) * unit - seconds) <= seconds * 0.01


@given(st.text(max_size=100))
def test_a_cell_shows_any_text_as_written_never_as_markup_or_control(text: str) -> None:
    console = Console(width=2000, force_terminal=True, color_system=None, record=True, file=io.StringIO())
    console.print(panels.cell(text), end="")
    out = console.export_text()
    assert not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F for c in out if c != "\n")
    assert out.rstrip("\n") == clean(text).replace("\n", "")
