"""Alert states stay bounded: a rule deleted or renamed in the rules file loses its states at the next
evaluation (a firing alert resolved and notified first), a label set gone quiet is dropped, a rule
keeps at most a cap of label sets; a real rules file, a real SQLite store and a real webhook."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clisight.alerts import AlertEngine, alert_history, alert_statuses, parse_rules
from clisight.alerts.engine import STALE_MIN_NS, rule_set_source
from clisight.alerts.rules import RuleSet, default_rules
from clisight.alerts.scheduler import AlertScheduler
from clisight.query import Query
from clisight.query import alerts as stored_alerts
from clisight.store import MemoryStore, SqliteStore
from tests.alerts.conftest import MINUTE, Clock, ops
from tests.alerts.receiver import Receiver, webhook_receiver
from tests.cli.clirun import run_clisight

RULES = """
[[rule]]
name = "{slow}"
metric = "latency_p95"
group_by = ["operation"]
window = "10m"
above = 1.0
notify = ["hook"]
{busy}
[notifier.hook]
type = "webhook"
url = "{url}"
"""
BUSY = """
[[rule]]
name = "busy"
metric = "count"
window = "10m"
above = 0
notify = ["hook"]
"""


def write_rules(path: Path, url: str, slow: str = "slow chat", busy: bool = True) -> None:
    before = path.stat().st_mtime if path.exists() else 0.0
    path.write_text(RULES.format(slow=slow, busy=BUSY if busy else "", url=url))
    os.utime(path, (before + 10, before + 10))  # a new mtime, however coarse the file system's clock


def slow_ops(store: SqliteStore, now: int, *names: str) -> None:
    for i, name in enumerate(names):
        store.write_batch(ops(now - 5 * MINUTE, now, 10, 3.0, seed=i, name=name))


def rounds(scheduler: AlertScheduler, hook: Receiver, expected: int) -> list[dict[str, Any]]:
    """One scheduler round (re-reading the rules file if it changed), then the webhook's bodies."""
    scheduler.run_once()
    assert scheduler.failures == 0
    assert scheduler._engine is not None and scheduler._engine.flush(10)
    return hook.wait_for(expected, timeout=10)


def state_keys(query: Query) -> list[str]:
    return [key for key, _ in query.store.state_items(stored_alerts.STATE_PREFIX)]


def alerts_table(page: str) -> str:
    """The dashboard's table of alert states (the history below it may name removed rules)."""
    found = re.search(r'<table class="alerts">.*?</table>', page, re.S)
    return found.group(0) if found else ""


def test_a_deleted_or_renamed_rule_is_resolved_and_leaves_the_store_and_the_dashboard(
    tmp_path: Path, store: SqliteStore, query: Query, clock: Clock
) -> None:
    pytest.importorskip("jinja2", reason="the server extra (jinja2) is not installed")
    from starlette.testclient import TestClient

    from clisight.pipeline.redact import PatternRedactor
    from clisight.server.app import create_app
    from clisight.server.dashboard.alerting import AlertsView

    slow_ops(store, clock.now, "chat", "search")
    path = tmp_path / "alerts.toml"
    with webhook_receiver() as hook:
        write_rules(path, hook.url)
        scheduler = AlertScheduler(query, path, clock=clock)
        firing = rounds(scheduler, hook, 3)
        assert sorted((b["rule"], b["state"]) for b in firing) == [
            ("busy", "firing"),
            ("slow chat", "firing"),
            ("slow chat", "firing"),
        ]
        # "busy" deleted, "slow chat" renamed: the file is re-read at the next round.
        write_rules(path, hook.url, slow="slow operation", busy=False)
        clock.advance(30)
        bodies = rounds(scheduler, hook, 8)[3:]
        scheduler.stop(5)
        assert sorted((b["rule"], b["state"], b.get("labels", {}).get("operation")) for b in bodies) == [
            ("busy", "resolved", None),
            ("slow chat", "resolved", "chat"),
            ("slow chat", "resolved", "search"),
            ("slow operation", "firing", "chat"),
            ("slow operation", "firing", "search"),
        ]
        resolved = [b for b in bodies if b["state"] == "resolved"]
        assert all(b["reason"] == "its rule is no longer configured" for b in resolved)
        assert all(b["ended_at"] and b["started_at_ns"] <= clock.now for b in resolved)
        assert len(hook.bodies) == 8, "one resolution each, nothing sent twice"

    assert {s.rule for s in alert_statuses(query)} == {"slow operation"}
    assert [key.split("\x1f")[0] for key in state_keys(query)] == ["alert:state:slow operation"] * 2
    view = AlertsView(query)
    assert {s.rule for s in view.states()} == {"slow operation"}
    assert {s.rule for s in view.firing()} == {"slow operation"}
    # The history keeps what happened: each removed alert's firing and its resolution.
    ended = [(t.rule, t.previous, t.state) for t in alert_history(query) if t.rule in ("busy", "slow chat")]
    for rule, count in (("busy", 1), ("slow chat", 2)):
        assert sorted(e for e in ended if e[0] == rule) == [
            *[(rule, "firing", "resolved")] * count,
            *[(rule, "inactive", "firing")] * count,
        ]
    app = create_app(_NoQueue(), PatternRedactor(), query=query)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        table = alerts_table(client.get("/alerts").text)
        overview = client.get("/").text
    assert "slow operation" in table and "busy" not in table and "slow chat" not in table
    assert re.search(r'data-key="firing">2</p>', overview), "two alerts firing, not five"


class _NoQueue:
    def offer(self, records: object) -> bool:
        return True


def test_a_label_set_gone_quiet_is_dropped_and_notifies_again_when_it_comes_back(
    tmp_path: Path, store: SqliteStore, query: Query, clock: Clock
) -> None:
    slow_ops(store, clock.now, "chat", "search")
    with webhook_receiver() as hook:
        rules = parse_rules(RULES.format(slow="slow", busy="", url=hook.url), str(tmp_path / "a.toml"))
        engine = AlertEngine(query, rules, clock)
        assert [s.state for s in engine.evaluate()] == ["firing", "firing"]
        clock.advance(11 * 60)  # no records in the window any more: resolved, kept
        assert [s.state for s in engine.evaluate()] == ["resolved", "resolved"]
        assert len(state_keys(query)) == 2 and engine.last.dropped == 0
        clock.advance(STALE_MIN_NS / 1e9 - 11 * 60)  # quiet for just an hour: kept
        assert len(engine.evaluate()) == 2 and engine.last.dropped == 0
        clock.advance(STALE_MIN_NS / 4e9)  # and the quarter the stored time of its records may lag
        assert engine.evaluate() == [] and engine.last.dropped == 2
        assert state_keys(query) == [] and alert_statuses(query) == []
        slow_ops(store, clock.now, "chat")
        assert [(s.rule, dict(s.labels), s.state) for s in engine.evaluate()] == [
            ("slow", {"operation": "chat"}, "firing")
        ]
        assert engine.flush(10)
        bodies = hook.wait_for(5)
        assert [b["state"] for b in bodies if b["labels"]["operation"] == "chat"] == [
            "firing",
            "resolved",
            "firing",
        ], "the alert that came back notified again: its episodes went on from its history"
    chat = [t.state for t in alert_history(query) if t.labels.get("operation") == "chat"]
    assert chat == ["firing", "resolved", "firing"]


def test_a_rule_keeps_at_most_the_cap_of_label_sets_firing_ones_first(
    tmp_path: Path, store: SqliteStore, query: Query, clock: Clock
) -> None:
    slow_ops(store, clock.now, "a", "b", "c")
    rules = parse_rules(RULES.format(slow="slow", busy="", url="http://127.0.0.1:9/"), "alerts.toml")
    engine = AlertEngine(query, rules, clock, notifiers={})
    engine.max_alerts_per_rule = 2
    assert [s.labels["operation"] for s in engine.evaluate()] == ["a", "b"]
    assert engine.last.evicted == 1 and len(state_keys(query)) == 2
    clock.advance(60)
    slow_ops(store, clock.now, "0first", "0second")  # new label sets that sort before the firing ones
    statuses = engine.evaluate()
    assert [(s.labels["operation"], s.state) for s in statuses] == [("a", "firing"), ("b", "firing")]
    assert engine.last.evicted == 3 and len(state_keys(query)) == 2


def test_states_saved_before_the_fix_still_load_and_other_rule_sets_keep_theirs(
    tmp_path: Path, store: SqliteStore, query: Query, clock: Clock
) -> None:
    slow_ops(store, clock.now, "chat")
    old = {  # as the engine saved a firing alert before states noted their rule set
        "rule": "slow",
        "labels": {"operation": "chat"},
        "state": "firing",
        "episode": 1,
        "since_ns": clock.now - MINUTE,
        "active_since_ns": clock.now - MINUTE,
        "last_true_ns": clock.now - MINUTE,
        "notified": True,
        "value": 3.0,
        "threshold": 1.0,
        "severity": "warning",
        "evaluated_ns": clock.now - MINUTE,
    }
    chat_key = stored_alerts.alert_key("slow", {"operation": "chat"})
    query.store.save_state(stored_alerts.STATE_PREFIX + chat_key, old)
    gone_key = stored_alerts.alert_key("deleted long ago", {})
    query.store.save_state(stored_alerts.STATE_PREFIX + gone_key, {**old, "rule": "deleted long ago"})
    assert {s.rule for s in alert_statuses(query)} == {"slow", "deleted long ago"}, "old states load"

    # Another rule set (the seed's AlertingSystem's) leaves the file's and old states alone...
    seed = RuleSet(tuple(default_rules(enable=("query_time",))), {}, "<AlertingSystem>")
    AlertEngine(query, seed, clock, notifiers={}).evaluate()
    assert {s.rule for s in alert_statuses(query)} == {"slow", "deleted long ago", "query_time"}
    with webhook_receiver() as hook:
        path = str(tmp_path / "alerts.toml")
        rules = parse_rules(RULES.format(slow="slow", busy="", url=hook.url), path)
        engine = AlertEngine(query, rules, clock)
        # ...the rules file adopts its rule's old state (still firing: no second notification) and
        # drops the old state of a rule it does not have.
        assert [(s.rule, s.state, s.since_ns) for s in engine.evaluate()] == [
            ("slow", "firing", clock.now - MINUTE)
        ]
        assert engine.flush(10) and engine.last.notifications == 0 and hook.bodies == []
    assert {s.rule for s in alert_statuses(query)} == {"slow", "query_time"}
    adopted = query.store.load_state(stored_alerts.STATE_PREFIX + chat_key)
    assert adopted["source"] == rule_set_source(rules) == str(Path(path).absolute())
    assert adopted["episode"] == 1


RULE_POOL = {
    "p95": 'metric = "latency_p95"\ngroup_by = ["operation"]\nabove = 1.0',
    "errors": 'metric = "error_rate"\ngroup_by = ["operation"]\nabove = 0.5',
    "count": 'metric = "count"\nabove = 0',
}
OPERATIONS = ("a", "b", "c", "d", "e")
CAP = 2

steps = st.lists(
    st.tuples(
        st.lists(st.sampled_from(sorted(RULE_POOL)), unique=True, max_size=3),  # the rules file
        st.lists(st.sampled_from(OPERATIONS), unique=True, max_size=5),  # operations recorded now
        st.sampled_from([0, 1, 11, 45, 61]),  # minutes until the next evaluation
        st.booleans(),  # slow and failing, or fast and fine
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_stored_states_stay_bounded_under_any_rule_sets_and_series(
    sequence: list[tuple[list[str], list[str], int, bool]],
) -> None:
    store = MemoryStore()
    clock = Clock()
    with Query(store) as query:
        for names, operations, minutes, bad in sequence:
            for i, name in enumerate(operations):
                store.write_batch(ops(clock.now - MINUTE, clock.now, 20, 3.0 if bad else 0.1, bad, i, name))
            text = "".join(f'[[rule]]\nname = "{n}"\nwindow = "10m"\n{RULE_POOL[n]}\n' for n in names)
            engine = AlertEngine(query, parse_rules(text, "/rules/alerts.toml"), clock, notifiers={})
            engine.max_alerts_per_rule = CAP
            engine.evaluate()
            states = list(stored_alerts.load_states(query).values())
            rules = [s["rule"] for s in states]
            assert set(rules) <= set(names), "no state of a rule that is not configured"
            assert all(rules.count(n) <= CAP for n in names), "at most the cap per rule"
            for saved in states:  # nothing quiet past its time, unless active when this round began
                quiet = clock.now - saved["seen_ns"]
                ended_now = saved["since_ns"] == clock.now and saved["state"] in ("inactive", "resolved")
                stale = STALE_MIN_NS * 5 // 4  # an hour, and the quarter the stored time may lag
                assert quiet < stale or saved["state"] in ("pending", "firing") or ended_now, saved
            clock.advance(minutes * 60)


def test_alerts_check_after_a_rule_is_deleted_resolves_it_in_the_store(tmp_path: Path) -> None:
    """The same through two real ``clisight alerts check`` processes and the rules file edited
    between them."""
    db = tmp_path / "check.db"
    writer = SqliteStore(db)
    slow_ops(writer, time.time_ns(), "chat")
    writer.close()
    slow = '[[rule]]\nname = "slow chat"\nmetric = "latency_p95"\nwindow = "10m"\nabove = 1.0\n'
    busy = BUSY.replace('notify = ["hook"]\n', "")
    path = tmp_path / "alerts.toml"
    path.write_text(slow + busy)
    first = run_clisight("alerts", "check", "--rules", str(path), "--store", str(db), "--json", "--wait", "0")
    assert first.returncode == 1, first.stderr  # firing
    assert sorted(a["rule"] for a in json.loads(first.stdout)["alerts"]) == ["busy", "slow chat"]
    path.write_text(busy)  # "slow chat" deleted
    second = run_clisight(
        "alerts", "check", "--rules", str(path), "--store", str(db), "--json", "--wait", "0"
    )
    assert second.returncode == 1, second.stderr
    assert [a["rule"] for a in json.loads(second.stdout)["alerts"]] == ["busy"]
    with Query(f"sqlite:///{db}") as query:
        assert {s.rule for s in alert_statuses(query)} == {"busy"}
    history = json.loads(run_clisight("alerts", "history", "--store", str(db), "--json").stdout)
    moves = [(h["previous"], h["state"], h["reason"]) for h in history if h["rule"] == "slow chat"]
    assert moves == [("firing", "resolved", "its rule is no longer configured"), ("inactive", "firing", "")]


def test_a_deleted_rules_pending_alert_goes_inactive_and_a_silenced_one_resolves_quietly(
    tmp_path: Path, store: SqliteStore, query: Query, clock: Clock
) -> None:
    from clisight.alerts import add_silence

    slow_ops(store, clock.now, "chat")
    pending = RULES.format(slow="slow", busy="", url="{url}").replace(
        "above = 1.0", 'above = 1.0\nfor = "5m"'
    )
    with webhook_receiver() as hook:
        text = pending.format(url=hook.url) + BUSY
        engine = AlertEngine(query, parse_rules(text, str(tmp_path / "a.toml")), clock)
        assert sorted((s.rule, s.state) for s in engine.evaluate()) == [
            ("busy", "firing"),
            ("slow", "pending"),
        ]
        assert engine.flush(10) and len(hook.wait_for(1)) == 1  # busy's firing
        add_silence(query, "busy", {}, clock.now + 3600 * 10**9, comment="maintenance")
        clock.advance(30)
        empty = parse_rules(
            f'[notifier.hook]\ntype = "webhook"\nurl = "{hook.url}"\n', str(tmp_path / "a.toml")
        )
        engine = AlertEngine(query, empty, clock)
        assert engine.evaluate() == [] and engine.last.dropped == 2
        assert engine.flush(10) and engine.last.notifications == 0
        assert len(hook.bodies) == 1, "a silenced alert resolves without a notification"
    assert alert_statuses(query) == []
    moves = sorted((t.rule, t.previous, t.state, t.silenced) for t in alert_history(query))
    assert moves == [
        ("busy", "firing", "resolved", True),
        ("busy", "inactive", "firing", False),
        ("slow", "inactive", "pending", False),
        ("slow", "pending", "inactive", False),
    ]
