"""``clisight top`` under Textual's pilot, on stores written by ``clisight demo`` and by real programs."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from clisight.query import Filter, Query, live
from clisight.tui.app import TopApp
from tests.helpers import run_python
from tests.tui.screen import screen_text, terminal_bytes, wait_until

WEEK = 7 * 86_400.0
HOSTILE = "[bold red]pwn[/]\x1b[2J\x1b]0;owned\x07\r\u202eevil"
# What Textual itself sends: colours and styles (SGR, ...m) and cursor moves to a cell (CUP, ...H).
OWN_SEQUENCES = re.compile(r"\x1b\[[0-9;]*[mH]")


def write(db: Path, service: str, body: str) -> None:
    """Run a real program that records into ``db`` as ``service`` (``body`` uses ``clisight``)."""
    run_python(
        f"import clisight\nclisight.init(service={service!r}, store={str(db)!r})\n{body}",
        timeout=60,
    )


def span_program(*names: str) -> str:
    return "\n".join(f"with clisight.span({name!r}):\n    pass" for name in names)


def run_app(app: TopApp, test: Callable[[Any], Awaitable[None]], size: tuple[int, int] = (80, 24)) -> None:
    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await wait_until(pilot, lambda: app.generation >= 1)
            # The footer is painted after the first data: on a loaded machine, a moment later.
            await wait_until(pilot, lambda: screen_text(app).splitlines()[-1].strip() != "")
            await test(pilot)

    asyncio.run(asyncio.wait_for(main(), timeout=90))


def test_renders_every_number_of_a_demo_store_in_80x24(demo_copy: Path) -> None:
    with Query(demo_copy) as query:
        expected = live.snapshot(query, window_s=WEEK)
        app = TopApp(query, window_s=WEEK, host=False)

        async def check(pilot: Any) -> None:
            lines = screen_text(app).splitlines()
            assert len(lines) == 24
            assert all(len(line) <= 80 for line in lines)
            text = "\n".join(lines)
            for label in (
                "clisight top",
                "CPU",
                "Mem",
                "Events/s",
                "Active",
                "Error rate",
                "Today $",
                "Alerts",
            ):
                assert label in text
            assert "1 Overview" in text and "5 Active" in text  # the panel bar
            assert "Quit" in text and "Service" in text  # the key footer
            assert expected.latencies[0].name in text  # p95 by command, most runs first
            assert f"{expected.operations:,} operations, {expected.failed_operations:,} failed" in text
            assert f"Errors {expected.rates.errors:,}" in text
            assert f"${expected.cost_today.cost_usd:,.2f}" in text

        run_app(app, check)


def test_keys_switch_panels_and_show_help(demo_copy: Path) -> None:
    with Query(demo_copy) as query:
        expected = live.snapshot(query, window_s=WEEK)
        app = TopApp(query, window_s=WEEK, host=False)

        async def check(pilot: Any) -> None:
            await pilot.press("4")
            assert app.panel == "resources"
            text = screen_text(app)
            assert "Trend" in text and expected.resources[0].metric in text
            await pilot.press("2")
            assert app.panel == "errors"
            newest = expected.recent_errors[0]
            assert newest.where[:20] in screen_text(app)
            await pilot.press("tab")
            assert app.panel == "alerts"
            await pilot.press("5")
            assert app.panel == "active"
            await pilot.press("tab")
            assert app.panel == "overview"
            await pilot.press("question_mark")
            assert "this help" in screen_text(app)
            await pilot.press("question_mark")
            assert "this help" not in screen_text(app)

        run_app(app, check)


def test_service_key_filters_every_panel_to_one_service(tmp_path: Path) -> None:
    db = tmp_path / "two.db"
    write(db, "alpha", span_program("alpha.fetch", "alpha.fetch"))
    write(db, "beta", span_program("beta.upload"))
    with Query(db) as query:
        app = TopApp(query, host=False)

        async def check(pilot: Any) -> None:
            text = screen_text(app)
            assert "alpha.fetch" in text and "beta.upload" in text
            await pilot.press("s")  # all -> alpha (services are sorted)
            await wait_until(pilot, lambda: app.service == "alpha" and app.data is not None)
            await wait_until(pilot, lambda: "beta.upload" not in screen_text(app))
            text = screen_text(app)
            assert "service alpha" in text and "alpha.fetch" in text
            await pilot.press("s")
            await wait_until(pilot, lambda: "alpha.fetch" not in screen_text(app))
            assert "beta.upload" in screen_text(app) and app.service == "beta"
            await pilot.press("a")
            await wait_until(pilot, lambda: "alpha.fetch" in screen_text(app))
            assert app.service is None and "beta.upload" in screen_text(app)

        run_app(app, check)


def test_refresh_picks_up_records_written_while_it_runs(tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    write(db, "svc", span_program("before.op"))
    with Query(db) as query:
        app = TopApp(query, interval=0.5, host=False)

        async def check(pilot: Any) -> None:
            assert "before.op" in screen_text(app) and "after.op" not in screen_text(app)
            first = app.generation
            await asyncio.to_thread(write, db, "svc", span_program("after.op"))
            # No key pressed: the interval timer refreshes.
            await wait_until(pilot, lambda: "after.op" in screen_text(app))
            assert app.generation > first

        run_app(app, check)


def test_hostile_strings_are_shown_escaped_and_never_reach_the_terminal(tmp_path: Path) -> None:
    db = tmp_path / "hostile.db"
    write(
        db,
        HOSTILE,
        f"""
with clisight.span({HOSTILE!r}):
    pass
clisight.get_logger({HOSTILE!r}).error({HOSTILE!r})
clisight.capture_exception(ValueError({HOSTILE!r}))
""",
    )
    with Query(db) as query:
        app = TopApp(query, host=False)

        async def check(pilot: Any) -> None:
            for panel in ("1", "2"):
                await pilot.press(panel)
                text = screen_text(app)
                assert "[bold red]pwn[/]" in text  # markup shown as written, not applied
                assert "\\x1b[2J" in text  # the escape shown, not sent
                raw = terminal_bytes(app)
                assert "\x07" not in raw and "\r" not in raw and "\u202e" not in raw
                leftover = OWN_SEQUENCES.sub("", raw)
                assert "\x1b" not in leftover, "only Textual's own sequences may reach the terminal"
            await pilot.press("s")  # the hostile service name, in the title
            await wait_until(pilot, lambda: app.service == HOSTILE and app.data is not None)
            title = screen_text(app).splitlines()[0]
            assert "service [bold red]pwn[/]\\x1b" in title
            assert "\x1b" not in OWN_SEQUENCES.sub("", terminal_bytes(app))

        run_app(app, check)


def test_an_unreadable_store_is_reported_on_screen_not_raised(tmp_path: Path) -> None:
    db = tmp_path / "gone.db"
    write(db, "svc", span_program("x.op"))
    query = Query(db)
    app = TopApp(query, interval=0.3, host=False)

    async def check(pilot: Any) -> None:
        for part in db.parent.glob(db.name + "*"):  # the file, its WAL and index: damaged
            part.write_bytes(b"not a database" * 4096)
        await pilot.press("r")
        await wait_until(pilot, lambda: "cannot read the store" in screen_text(app))
        assert app.is_running

    try:
        run_app(app, check)
    finally:
        query.close()


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_footer_and_panel_bar_fit_the_terminal(demo_copy: Path, size: tuple[int, int]) -> None:
    with Query(demo_copy) as query:
        app = TopApp(query, host=False)

        async def check(pilot: Any) -> None:
            lines = screen_text(app).splitlines()
            assert len(lines) == size[1]
            assert "q Quit" in lines[-1]
            assert lines[3].lstrip().startswith("1 Overview")

        run_app(app, check, size)


def test_latencies_list_commands_first(tmp_path: Path) -> None:
    db = tmp_path / "cmd.db"
    write(db, "svc", span_program("zzz.many", "zzz.many", "zzz.many", "command:deploy"))
    with Query(db) as query:
        names = [lat.name for lat in live.latencies(query, Filter())]
    assert names == ["command:deploy", "zzz.many"]


def test_a_read_that_ends_after_the_app_quit_draws_nothing_and_raises_nothing(demo_copy: Path) -> None:
    """The refresh worker hands its data to the app from its thread; when the user quits while a
    read runs, the data arrives with the widgets gone (a loaded run once crashed the app's exit
    with ``NoMatches: '#title'``)."""
    with Query(demo_copy) as query:
        app = TopApp(query, host=False)

        async def check(pilot: Any) -> None:
            pass

        run_app(app, check)
        assert app.data is not None
        before = app.generation
        app._show(app.data, app.service)  # what the worker's call_from_thread runs
        assert app.generation == before + 1


def test_an_unreadable_store_is_named_once_with_what_went_wrong(tmp_path: Path) -> None:
    from clisight.tui import _data

    db = tmp_path / "damaged.db"
    query = Query(db)
    query.store.migrate()
    try:
        for part in db.parent.glob(db.name + "*"):
            part.write_bytes(b"not a database" * 4096)
        problem = _data.load(query, None, 900.0, None).problem
    finally:
        query.close()
    assert problem is not None and "not a database" in problem and str(db) in problem
    # it read "cannot read the store: StoreError: cannot read the store sqlite:///...: ..."
    assert problem.count("cannot read the store") == 1 and "StoreError" not in problem, problem
