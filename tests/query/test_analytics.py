"""query.analytics against a real SQLite store: funnels, paths and retention on a hand-computed
fixture, and insight rules with the numbers that made them fire."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from clisight.query import analytics as qa
from clisight.store import SqliteStore
from clisight.store.base import Selection
from clisight.types import ERROR_LEVEL, Record, Resource

SVC = Resource("tool", version="1.0", host="box", pid=1)
T0 = int(datetime(2025, 6, 2, tzinfo=UTC).timestamp()) * 10**9  # a Monday
HOUR = 3600 * 10**9
WEEK = 7 * 24 * HOUR


def journey(user: str, step: str, hours: float) -> Record:
    """A step as clisight.track_user_journey records it (the actor is also the rollups' dimension)."""
    attrs = {"step": step, "user_id": user, "actor": user, "model": user}
    return Record("event", T0 + int(hours * HOUR), "journey:" + step, "", 0, attrs, SVC, f"s-{user}")


def session(user: str, week: int, n: int = 0) -> Record:
    start = T0 + week * WEEK + (n + 1) * HOUR
    return Record(
        "session", start, "tool", "", 0, {"user_id": user}, SVC, f"r-{user}-{week}-{n}", end_ns=start + 10**9
    )


JOURNEYS = [
    journey("u_a", "install", 1),
    journey("u_a", "first_run", 2),
    journey("u_a", "first_chat", 3),
    journey("u_b", "install", 1),
    journey("u_b", "first_run", 30),
    journey("u_b", "first_chat", 31),
    journey("u_c", "install", 5),
    journey("u_c", "first_chat", 6),
    journey("u_c", "first_run", 7),
    journey("u_d", "first_run", 1),
    journey("u_e", "install", 1),
    journey("u_e", "install", 50),
    journey("u_e", "first_run", 51),
    journey("u_e", "first_chat", 52),
]
SESSIONS = [
    session("u_a", 0),
    session("u_a", 1),
    session("u_a", 2),
    session("u_b", 0),
    session("u_b", 2),
    session("u_c", 0),
    session("u_f", 1),
    session("u_f", 2),
    session("u_g", 1),
]


@pytest.fixture
def journeys(tmp_path: Any) -> Any:
    store = SqliteStore(tmp_path / "j.db")
    store.write_batch(JOURNEYS + SESSIONS)
    yield store
    store.close()


EVERYTHING = Selection(since_ns=T0 - WEEK, until_ns=T0 + 5 * WEEK)


def test_funnel_counts_ordered_steps_within_the_window(journeys: Any) -> None:
    actors = qa.journey_steps(journeys, EVERYTHING)
    found = qa.funnel(actors, ["install", "first_run", "first_chat"], window_s=86_400)
    assert [(s.step, s.entered, s.dropped) for s in found.steps] == [
        ("install", 4, 0),
        ("first_run", 3, 1),
        ("first_chat", 2, 1),
    ]
    assert [s.conversion for s in found.steps] == [1.0, 0.75, 0.5]
    assert [s.step_conversion for s in found.steps] == [1.0, 0.75, 0.666667]
    by_hour = qa.journey_steps(journeys, EVERYTHING, ["install", "first_run", "first_chat"], resolution=3600)
    assert qa.funnel(by_hour, ["install", "first_run", "first_chat"], window_s=86_400) == found
    wide = qa.funnel(actors, ["install", "first_run", "first_chat"], window_s=3 * 86_400)
    assert [s.entered for s in wide.steps] == [4, 4, 3]  # u_b now makes it; u_c never chats after running


def test_paths_are_the_most_common_next_steps(journeys: Any) -> None:
    actors = qa.journey_steps(journeys, EVERYTHING)
    top = qa.next_steps(actors)
    assert [(s.step, s.next, s.count) for s in top[:2]] == [
        ("first_run", "first_chat", 3),
        ("install", "first_run", 3),
    ]
    after = qa.next_steps(actors, after="install")
    assert [(s.next, s.count, s.share) for s in after] == [
        ("first_run", 3, 0.6),
        ("first_chat", 1, 0.2),
        ("install", 1, 0.2),
    ]


def test_weekly_retention_cohorts(journeys: Any) -> None:
    cohorts = qa.retention(journeys, EVERYTHING, weeks=3)
    assert [(c.week, c.size, c.active) for c in cohorts] == [
        ("2025-06-02", 3, (3, 1, 2)),  # u_d and u_e took journey steps but had no session of their own
        ("2025-06-09", 2, (2, 1, 0)),
    ]
    assert cohorts[0].rates == (1.0, 1 / 3, 2 / 3)


def command(name: str, seconds: float, failed: bool, at_ns: int) -> Record:
    return Record(
        "span",
        at_ns,
        f"command:{name}",
        "",
        ERROR_LEVEL if failed else 0,
        {"command": name},
        SVC,
        None,
        "t",
        "s",
        end_ns=at_ns + int(seconds * 1e9),
    )


def llm(cost: float, at_ns: int) -> Record:
    attrs = {"model": "claude-sonnet-4-5", "input_tokens": 1000, "output_tokens": 100, "cost_usd": cost}
    return Record("event", at_ns, "llm.request", "", 0, attrs, SVC)


def test_insight_rules_fire_with_their_numbers(tmp_path: Any) -> None:
    now = T0 + 3 * WEEK
    day = 24 * HOUR
    records = [command("deploy", 3.0, i < 4, now - day - i * HOUR) for i in range(10)]
    records += [command("deploy", 1.0, False, now - 8 * day - i * HOUR) for i in range(5)]
    records += [command("status", 0.1, False, now - 2 * day - i * HOUR) for i in range(20)]
    records += [llm(7.0, now - day), llm(7.0, now - 2 * day), llm(10.0, now - 9 * day)]
    store = SqliteStore(tmp_path / "i.db")
    store.write_batch(records)
    found = qa.insights(store, 7, now)
    store.close()
    by_rule = {f.rule: f for f in found.findings}
    assert by_rule["high_error_rate"].subject == "deploy"
    assert by_rule["high_error_rate"].numbers == {"runs": 10, "failed": 4, "error_rate": 0.4}
    assert "4 of 10 runs failed (40%)" in by_rule["high_error_rate"].message
    slower = by_rule["slower"]
    assert slower.subject == "deploy" and slower.numbers["ratio"] == pytest.approx(3.0, rel=0.03)
    assert "3.0x slower than the week before" in slower.message
    cost = by_rule["cost_change"]
    assert cost.numbers == {"value": 14.0, "before": 10.0, "change": 0.4}
    assert cost.message == "cost up 40% week over week ($14.00 against $10.00)"
    assert [(c.command, c.runs, c.failed) for c in found.commands] == [("status", 20, 0), ("deploy", 10, 4)]
    assert sum(found.by_hour) == sum(found.by_weekday) == 30 + 2
    assert found.llm_requests == 2 and found.cost_usd == 14.0 and found.tokens == 2200
    assert "status" not in {f.subject for f in found.findings}
