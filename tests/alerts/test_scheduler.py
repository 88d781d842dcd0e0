"""The background schedule `clisight serve` runs: rounds, reloading the file, surviving bad rounds."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from clisight.alerts import alert_statuses
from clisight.alerts.scheduler import AlertScheduler
from clisight.exceptions import AlertRulesError
from clisight.query import Query
from clisight.store import SqliteStore, open_store
from tests.alerts.conftest import T0, Clock, ops

RULE = '[[rule]]\nname = "{name}"\nmetric = "error_rate"\nwindow = "1m"\nabove = 0.5\n'


def wait_until(check: object, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < end, "not within the timeout"
        time.sleep(0.02)


def test_rounds_run_reload_a_changed_file_and_keep_the_rules_when_an_edit_is_bad(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    store.write_batch(ops(T0 - 30_000_000_000, T0, 1, 0.1, fail=1.0))
    rules = tmp_path / "alerts.toml"
    rules.write_text(RULE.format(name="first"))
    with Query(store) as query:
        scheduler = AlertScheduler(query, rules, interval=0.05, clock=Clock(T0)).start()
        try:
            wait_until(lambda: {s.rule for s in alert_statuses(query)} == {"first"})
            rules.write_text(RULE.format(name="second") + "window = 'soon'\n")  # a bad edit
            os.utime(rules, (time.time() + 5, time.time() + 5))
            rounds = scheduler.rounds
            wait_until(lambda: scheduler.rounds > rounds + 2)
            rules.write_text(RULE.format(name="second"))
            os.utime(rules, (time.time() + 10, time.time() + 10))
            wait_until(lambda: "second" in {s.rule for s in alert_statuses(query)})
            assert scheduler.failures == 0
        finally:
            assert scheduler.stop(timeout=5)
    store.close()


def test_a_failing_round_is_logged_and_the_schedule_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = open_store("memory://")
    rules = tmp_path / "alerts.toml"
    rules.write_text(RULE.format(name="r"))
    query = Query(store)
    scheduler = AlertScheduler(query, rules, interval=0.05, clock=Clock(T0)).start()
    try:
        wait_until(lambda: scheduler.rounds >= 1)
        store.close()  # a closed in-memory store cannot reopen: every round fails, none ends the schedule
        wait_until(lambda: scheduler.failures >= 3)
        assert "alert evaluation failed" in caplog.text
    finally:
        started = time.monotonic()
        scheduler.stop(timeout=5)
        assert time.monotonic() - started < 5


def test_a_bad_file_is_refused_before_the_schedule_starts(tmp_path: Path) -> None:
    rules = tmp_path / "alerts.toml"
    rules.write_text('[[rule]]\nname = "r"\nmetric = "nope"\n')
    with Query("memory://") as query, pytest.raises(AlertRulesError, match=r"alerts\.toml:3"):
        AlertScheduler(query, rules).start()
