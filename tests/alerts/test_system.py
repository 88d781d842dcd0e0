"""The seed's AlertingSystem: its thresholds, checked through the engine's default rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import clisight
from clisight.alerts import AlertingSystem, alert_history
from clisight.query import Query
from clisight.store import SqliteStore
from tests.alerts.conftest import MINUTE, T0, Clock, op
from tests.helpers import run_python


def test_the_seed_signature_and_thresholds() -> None:
    system = clisight.AlertingSystem()
    assert system.alert_thresholds == {"query_time": 10.0, "connection_time": 5.0, "memory_usage": 500.0}
    assert system.logger is None and system.performance_monitor is None
    monitor = clisight.PerformanceMonitor()
    monitor.alert_thresholds["query_time"] = 2.0
    assert AlertingSystem(None, monitor).alert_thresholds["query_time"] == 2.0
    rules = system.rules()
    assert [(r.name, r.metric, r.threshold, r.enabled) for r in rules.rules] == [
        ("query_time", "latency_max", 10.0, True),
        ("connection_time", "latency_max", 5.0, True),
        ("memory_usage", "rss", 500.0, True),
    ]


def test_check_thresholds_compares_given_values() -> None:
    system = AlertingSystem()
    fired = system.check_thresholds({"query_time": 12.5, "connection_time": 1.0, "memory_usage": 800})
    assert [(a["type"], a["value"], a["threshold"]) for a in fired] == [
        ("query_time", 12.5, 10.0),
        ("memory_usage", 800.0, 500.0),
    ]
    assert system.alert_history == fired
    assert system.check_thresholds({"query_time": "slow"}) == []  # type: ignore[dict-item]


def test_check_alerts_evaluates_the_default_rules_against_the_store(tmp_path: Path) -> None:
    db = tmp_path / "seed.db"
    store = SqliteStore(db)
    store.write_batch(
        [op(T0 - MINUTE, 14.0, name="query_time"), op(T0 - MINUTE, 1.0, name="connection_time")]
    )
    store.close()
    fired = AlertingSystem().check_alerts(str(db), clock=Clock(T0))
    assert [(a["type"], a["value"]) for a in fired] == [("query_time", 14.0)]
    with Query(db) as query:
        assert [(t.rule, t.state) for t in alert_history(query)] == [("query_time", "firing")]
    assert AlertingSystem().check_alerts(str(db), clock=Clock(T0 + 10 * MINUTE)) == []


def test_check_alerts_never_raises_into_the_program() -> None:
    out = run_python("""
        from clisight import AlertingSystem
        print(AlertingSystem().check_alerts("postgresql://nobody@127.0.0.1:1/none"))
        print(AlertingSystem().check_alerts("/nonexistent-dir/x/y.db"))
        print("still running")
    """)
    assert out.stdout.splitlines()[-1] == "still running"


@pytest.mark.parametrize("bad", [None, 3, object()])
def test_odd_performance_monitors_fall_back_to_the_defaults(bad: object) -> None:
    assert AlertingSystem(performance_monitor=bad).alert_thresholds["connection_time"] == 5.0


def test_a_program_checks_its_own_slow_queries_at_exit(tmp_path: Path) -> None:
    db = tmp_path / "own.db"
    out = run_python(f"""
        import clisight
        clisight.init(service="seedcli", store={str(db)!r})
        monitor = clisight.PerformanceMonitor()
        monitor.alert_thresholds["query_time"] = 0.05
        monitor.start_operation("q1", "query_time")
        import time; time.sleep(0.1)
        monitor.end_operation("q1", "query_time")
        alerting = clisight.AlertingSystem(performance_monitor=monitor)
        print([a["type"] for a in alerting.check_alerts()])
    """)
    assert out.stdout.strip().splitlines()[-1] == "['query_time']"


def test_what_fires_is_warned_through_the_given_logger(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    system = AlertingSystem(logger=logging.getLogger("seedcli"))
    with caplog.at_level(logging.WARNING, logger="seedcli"):
        system.check_thresholds({"connection_time": 7.5})
    assert [r.getMessage() for r in caplog.records] == [
        "alert connection_time: a connection_time operation took longer than 5 s (value 7.5)"
    ]


@given(
    st.dictionaries(
        st.sampled_from(["query_time", "connection_time", "memory_usage", "other", ""]),
        st.one_of(st.floats(), st.integers(), st.booleans(), st.none(), st.text(max_size=5)),
    )
)
def test_check_thresholds_never_raises_whatever_it_is_given(values: dict[str, object]) -> None:
    fired = AlertingSystem().check_thresholds(values)  # type: ignore[arg-type]
    for alert in fired:
        assert alert["value"] > alert["threshold"]
