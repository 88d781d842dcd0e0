"""``clisight top`` from the shell: --once output, options, and what it says when it cannot run."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click
import pytest
from hypothesis import given
from hypothesis import strategies as st

from clisight.cli.top import Duration
from clisight.query import Query, live
from tests.cli.clirun import invoke, run_clisight
from tests.helpers import run_python

HOSTILE = "[bold]x[/]\x1b[2J\x1b]0;t\x07"


def test_once_prints_every_panel_of_the_demo_store(demo_store: Path) -> None:
    proc = run_clisight("top", "--store", str(demo_store), "--once", "--window", "7d", "--no-host")
    assert proc.returncode == 0, proc.stderr
    with Query(demo_store) as query:
        snap = live.snapshot(query, window_s=7 * 86_400)
    for title in ("Overview", "Errors", "Alerts", "Resources", "Active"):
        assert f"─ {title} ─" in proc.stdout
    assert snap.latencies[0].name in proc.stdout
    assert "last 7d" in proc.stdout and "host" not in proc.stdout.splitlines()[1]


def test_once_shows_hostile_values_escaped(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    run_python(f"""
        import clisight
        clisight.init(service={HOSTILE!r}, store={str(db)!r})
        clisight.get_logger("c").error({HOSTILE!r})
    """)
    proc = run_clisight("top", "--store", str(db), "--once", "--service", HOSTILE)
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout and "\x07" not in proc.stdout
    assert "[bold]x[/]\\x1b[2J" in proc.stdout  # in the errors panel, and as the service filter


def test_top_needs_a_terminal_unless_once(demo_store: Path) -> None:
    proc = run_clisight("top", "--store", str(demo_store))
    assert proc.returncode == 1
    assert "needs a terminal; use --once" in proc.stderr


def test_bad_window_and_missing_store_are_clear_errors(tmp_path: Path) -> None:
    result = invoke("top", "--store", str(tmp_path / "x.db"), "--window", "soon")
    assert result.exit_code == 2 and "'soon' is not a duration" in result.output
    result = invoke("top", "--store", str(tmp_path / "x.db"), "--window", "10s")
    assert result.exit_code == 2 and "between 1 minute and 90 days" in result.output
    result = invoke("top", "--store", str(tmp_path / "x.db"), "--once")
    assert result.exit_code == 1 and "no data yet" in result.output


def test_help_lists_the_keys() -> None:
    result = invoke("top", "--help")
    assert result.exit_code == 0
    assert "s cycles the service filter" in result.output and "--interval" in result.output


@given(st.floats(min_value=1, max_value=1500), st.sampled_from(["s", "m", "h", "d", ""]))
def test_window_durations_read_as_seconds(amount: float, unit: str) -> None:
    seconds = amount * {"s": 1, "m": 60, "h": 3600, "d": 86_400, "": 1}[unit]
    text = f"{amount}{unit}"
    if 60 <= seconds <= 90 * 86_400:
        assert Duration().convert(text, None, None) == pytest.approx(seconds)
    else:
        with pytest.raises(click.BadParameter, match="between 1 minute and 90 days"):
            Duration().convert(text, None, None)


@given(st.text(max_size=20).filter(lambda t: not re.fullmatch(r"\s*\d+(\.\d+)?\s*[smhd]?\s*", t.lower())))
def test_anything_else_is_refused_with_the_forms_it_takes(text: str) -> None:
    with pytest.raises(click.BadParameter, match="expected 90s, 15m, 2h, 1d or seconds"):
        Duration().convert(text, None, None)


def test_without_textual_top_says_which_extra_to_install(
    demo_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delitem(sys.modules, "clisight.tui.app", raising=False)
    monkeypatch.setitem(sys.modules, "textual", None)  # as if not installed: importing it fails
    result = invoke("top", "--store", str(demo_store))
    assert result.exit_code == 1
    assert "pip install 'clisight[tui]'" in result.output
    result = invoke("top", "--store", str(demo_store), "--once")  # needs no Textual
    assert result.exit_code == 0 and "Overview" in result.output
