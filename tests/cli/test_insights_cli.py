"""``clisight insights``: the readable view and --json of insights, paths, funnels and retention."""

from __future__ import annotations

import json
import time
from pathlib import Path

from clisight.store import SqliteStore
from clisight.types import ERROR_LEVEL, Record, Resource
from tests.cli.clirun import invoke

SVC = Resource("tool", version="1.0", host="box", pid=1)
HOUR = 3600 * 10**9


def _store(path: Path) -> None:
    now = time.time_ns()
    records = []
    for i in range(12):
        at = now - (i + 1) * HOUR
        status = ERROR_LEVEL if i % 2 else 0
        records.append(
            Record("span", at, "command:tool sync", "", status, {}, SVC, None, "t", "s", end_ns=at + 10**9)
        )
    for user, steps in (
        ("u_1", ("install", "login", "chat")),
        ("u_2", ("install", "login")),
        ("u_3", ("install",)),
    ):
        for k, step in enumerate(steps):
            attrs = {"step": step, "actor": user, "model": user, "user_id": user}
            records.append(
                Record("event", now - 20 * HOUR + k * HOUR, "journey:" + step, "", 0, attrs, SVC, user)
            )
        start = now - 20 * HOUR
        records.append(
            Record("session", start, "tool", "", 0, {"user_id": user}, SVC, "r" + user, end_ns=start + 1)
        )
    store = SqliteStore(path)
    store.write_batch(records)
    store.close()


def test_insights_table_and_json(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    _store(db)
    text = invoke("insights", "--store", str(db), env={"COLUMNS": "120"})
    assert text.exit_code == 0, text.output
    assert "high error rate in tool sync: 6 of 12 runs failed (50%)" in text.output
    assert "Activity by hour of day" in text.output
    assert "1.00 s" in text.output and "Slowest: tool sync (p95 1.00 s)" in text.output  # as report shows
    doc = json.loads(invoke("insights", "--store", str(db), "--json").stdout)
    assert doc["commands"][0]["command"] == "tool sync" and doc["commands"][0]["failed"] == 6
    assert doc["findings"][0]["numbers"] == {"runs": 12, "failed": 6, "error_rate": 0.5}


def test_journey_views(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    _store(db)
    funnel = json.loads(
        invoke("insights", "funnel", "install", "login", "chat", "--store", str(db), "--json").stdout
    )
    assert [(s["step"], s["entered"], s["dropped"]) for s in funnel["steps"]] == [
        ("install", 3, 0),
        ("login", 2, 1),
        ("chat", 1, 1),
    ]
    paths = json.loads(invoke("insights", "paths", "--after", "install", "--store", str(db), "--json").stdout)
    assert [(p["next"], p["count"]) for p in paths] == [("login", 2)]
    cohorts = json.loads(invoke("insights", "retention", "--store", str(db), "--json").stdout)
    assert sum(c["size"] for c in cohorts) == 3
    table = invoke("insights", "funnel", "install", "login", "--window", "2h", "--store", str(db))
    assert table.exit_code == 0 and "install" in table.output
    bad = invoke("insights", "funnel", "install", "--window", "soon", "--store", str(db))
    assert bad.exit_code == 2 and "expected a duration" in bad.output


def test_retention_leaves_the_weeks_still_to_come_blank(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    _store(db)  # three users, first seen 20 hours ago: at most W1 has begun (on a Monday morning)
    table = invoke("insights", "retention", "--weeks", "4", "--store", str(db), env={"COLUMNS": "120"})
    assert table.exit_code == 0, table.output
    rows = [line for line in table.output.splitlines() if line.strip()[:2] == "20"]  # a cohort's date
    assert rows and all(row.count("%") <= 1 for row in rows), table.output  # W2, W3: not yet, not 0%
