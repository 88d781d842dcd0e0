"""The state machine per rule and label set, silences, and what is stored, on an injected clock."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from clisight.alerts import (
    AlertEngine,
    add_silence,
    alert_history,
    alert_statuses,
    list_silences,
    parse_rules,
    remove_silence,
)
from clisight.query import Query
from clisight.store import SqliteStore
from tests.alerts.conftest import MINUTE, SECOND, T0, Clock, op, ops


class Collect:
    """A notifier that keeps what it was sent (the engine's seam for notifiers)."""

    def __init__(self) -> None:
        self.name = "collect"
        self.sent: list[dict[str, Any]] = []

    def send(self, payload: Mapping[str, Any], deadline: float) -> None:
        self.sent.append(dict(payload))


def engine_for(query: Query, clock: Clock, rule: str) -> tuple[AlertEngine, Collect]:
    collect = Collect()
    text = rule + 'notify = ["collect"]\n[notifier.collect]\ntype = "log"\n'
    return AlertEngine(
        query, parse_rules(text, "alerts.toml"), clock, notifiers={"collect": collect}
    ), collect


def sent(engine: AlertEngine, collect: Collect) -> list[tuple[str, dict[str, str]]]:
    assert engine.flush(10)
    return [(p["state"], p["labels"]) for p in collect.sent]


SLOW_BY_OPERATION = (
    '[[rule]]\nname = "slow"\nmetric = "latency_p95"\ngroup_by = ["operation"]\nwindow = "1m"\nabove = 1\n'
)
ERRORS = '[[rule]]\nname = "errors"\nmetric = "error_rate"\nwindow = "1m"\nabove = 0.5\n'


def test_pending_that_stops_holding_goes_inactive_without_a_notification(
    store: SqliteStore, query: Query, clock: Clock
) -> None:
    engine, collect = engine_for(query, clock, ERRORS + 'for = "5m"\n')
    store.write_batch(ops(T0 - 30 * SECOND, T0, 1, 0.1, fail=1.0))
    assert [s.state for s in engine.evaluate()] == ["pending"]
    clock.advance(90)  # the failures left the 1 m window: no data, so the condition does not hold
    assert [s.state for s in engine.evaluate()] == ["inactive"]
    assert sent(engine, collect) == []
    assert [(t.previous, t.state) for t in alert_history(query)] == [
        ("pending", "inactive"),
        ("inactive", "pending"),
    ]


def test_keep_firing_for_holds_firing_after_the_condition_stops(
    store: SqliteStore, query: Query, clock: Clock
) -> None:
    engine, collect = engine_for(query, clock, ERRORS + 'keep_firing_for = "2m"\n')
    store.write_batch(ops(T0 - 30 * SECOND, T0, 1, 0.1, fail=1.0))
    assert [s.state for s in engine.evaluate()] == ["firing"]
    clock.advance(90)
    assert [s.state for s in engine.evaluate()] == ["firing"], "kept firing: 90 s < 2 m since it last held"
    clock.advance(60)
    assert [s.state for s in engine.evaluate()] == ["resolved"]
    assert [state for state, _ in sent(engine, collect)] == ["firing", "resolved"]


def test_each_group_is_an_alert_of_its_own_and_a_vanished_group_resolves(
    store: SqliteStore, query: Query, clock: Clock
) -> None:
    rule = SLOW_BY_OPERATION
    engine, collect = engine_for(query, clock, rule + 'labels = { team = "cli" }\n')
    store.write_batch(
        ops(T0 - 30 * SECOND, T0, 1, 3.0, name="chat") + ops(T0 - 30 * SECOND, T0, 1, 0.1, name="ls")
    )
    found = {s.labels["operation"]: s.state for s in engine.evaluate()}
    assert found == {"chat": "firing", "ls": "inactive"}
    clock.advance(120)  # no records at all in the window now
    found = {s.labels["operation"]: s.state for s in engine.evaluate()}
    assert found == {"chat": "resolved", "ls": "inactive"}
    assert sent(engine, collect) == [
        ("firing", {"operation": "chat", "team": "cli"}),
        ("resolved", {"operation": "chat", "team": "cli"}),
    ]


def test_a_silenced_alert_changes_state_but_notifies_only_once_the_silence_ends(
    store: SqliteStore, query: Query, clock: Clock
) -> None:
    engine, collect = engine_for(query, clock, ERRORS)
    silence = add_silence(query, "errors", {}, T0 + 60 * SECOND, "deploying", "ana", now_ns=T0)
    assert [s.id for s in list_silences(query, T0)] == [silence.id]
    store.write_batch(ops(T0 - 30 * SECOND, T0 + 5 * MINUTE, 1, 0.1, fail=1.0))
    [status] = engine.evaluate()
    assert (status.state, status.silenced) == ("firing", True)
    assert sent(engine, collect) == []
    assert alert_history(query)[0].silenced is True
    clock.advance(90)  # the silence expired, still firing: now it notifies, once
    [status] = engine.evaluate()
    assert (status.state, status.silenced) == ("firing", False)
    clock.advance(30)
    engine.evaluate()
    assert sent(engine, collect) == [("firing", {})]
    assert list_silences(query, clock.now) == [] and len(list_silences(query)) == 1


def test_silence_matchers_pick_label_sets_and_unsilence_removes(
    store: SqliteStore, query: Query, clock: Clock
) -> None:
    rule = SLOW_BY_OPERATION
    engine, collect = engine_for(query, clock, rule)
    silence = add_silence(query, None, {"operation": "chat"}, T0 + MINUTE, now_ns=T0)
    store.write_batch([op(T0 - SECOND, 3.0, name="chat"), op(T0 - SECOND, 3.0, name="build")])
    found = {s.labels["operation"]: s.silenced for s in engine.evaluate()}
    assert found == {"chat": True, "build": False}
    assert sent(engine, collect) == [("firing", {"operation": "build"})]
    assert remove_silence(query, silence.id) is True
    assert remove_silence(query, silence.id) is False and remove_silence(query, "nope") is False
    engine.evaluate()
    assert sent(engine, collect) == [("firing", {"operation": "build"}), ("firing", {"operation": "chat"})]


def test_states_are_stored_for_other_processes_to_read(
    store: SqliteStore, query: Query, clock: Clock
) -> None:
    engine, _ = engine_for(query, clock, ERRORS + 'severity = "critical"\nsummary = "chat fails"\n')
    store.write_batch(ops(T0 - 30 * SECOND, T0, 1, 0.1, fail=1.0))
    engine.evaluate()
    with Query(store.url) as other:  # another reader of the same file
        [status] = alert_statuses(other)
    assert (status.rule, status.state, status.value, status.threshold) == ("errors", "firing", 1.0, 0.5)
    assert (status.severity, status.summary, status.since_ns) == ("critical", "chat fails", T0)
    assert status.condition == "error_rate > 0.5" and status.active_since_ns == T0


def test_below_rules_and_counts_of_nothing(store: SqliteStore, query: Query, clock: Clock) -> None:
    rule = '[[rule]]\nname = "quiet"\nmetric = "count"\nwindow = "10m"\nbelow = 1\n'
    engine, collect = engine_for(query, clock, rule)
    [status] = engine.evaluate()
    assert (status.state, status.value) == ("firing", 0.0), "no runs in 10 minutes: a count of 0"
    store.write_batch([op(T0 - SECOND, 0.1)])
    assert [s.state for s in engine.evaluate()] == ["resolved"]
    assert [state for state, _ in sent(engine, collect)] == ["firing", "resolved"]
