"""The alerts panel of ``clisight top``: what the alert engine stored, hostile labels escaped."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from clisight.alerts import AlertEngine, parse_rules
from clisight.query import Query
from clisight.tui.app import TopApp
from tests.helpers import run_python
from tests.tui.screen import screen_text, terminal_bytes, wait_until
from tests.tui.test_top_app import HOSTILE, OWN_SEQUENCES, run_app

RULES = """
[[rule]]
name = "many operations"
metric = "count"
of = "operations"
group_by = ["service"]
window = "1h"
above = 1
for = "0s"
severity = "critical"
summary = "busy service"
"""


def fill(db: Path) -> None:
    """Two services: the hostile one runs three operations (over the rule's limit), the other one."""
    for service, spans in ((HOSTILE, 3), ("calm", 1)):
        run_python(f"""
            import clisight
            clisight.init(service={service!r}, store={str(db)!r})
            for _ in range({spans}):
                with clisight.span("op"):
                    pass
        """)


def evaluate(db: Path) -> None:
    with Query(db) as query:
        engine = AlertEngine(query, parse_rules(RULES))
        engine.evaluate()
        engine.close(10)


def test_before_any_evaluation_the_panel_says_how_to_evaluate(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    fill(db)
    with Query(db) as query:
        app = TopApp(query, host=False)

        async def check(pilot: Any) -> None:
            assert "Alerts -" in screen_text(app)
            await pilot.press("3")
            assert "clisight alerts check" in screen_text(app)

        run_app(app, check)


def test_firing_alerts_are_counted_and_listed_with_labels_escaped(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    fill(db)
    evaluate(db)
    with Query(db) as query:
        app = TopApp(query, host=False)

        async def check(pilot: Any) -> None:
            assert "Alerts 1 firing" in screen_text(app)
            await pilot.press("3")
            text = screen_text(app)
            assert "many operations" in text and "critical" in text
            assert "service=[bold red]pwn[/]\\x1b[2J" in text  # the hostile service, a label
            assert "calm" not in text  # one operation: not firing
            assert "\x1b" not in OWN_SEQUENCES.sub("", terminal_bytes(app))

        run_app(app, check, size=(120, 30))


def test_a_new_evaluation_shows_at_the_next_refresh(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    fill(db)
    with Query(db) as query:
        app = TopApp(query, interval=0.5, host=False)

        async def check(pilot: Any) -> None:
            assert "Alerts -" in screen_text(app)
            await asyncio.to_thread(evaluate, db)
            await wait_until(pilot, lambda: "Alerts 1 firing" in screen_text(app))

        run_app(app, check)
