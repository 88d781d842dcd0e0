"""Notifiers for real: webhooks to a receiver on 127.0.0.1, commands in subprocesses, the log record in
a SQLite store; and the dispatcher keeping a hanging or failing notifier from holding up the others."""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from clisight.alerts import AlertEngine, parse_rules
from clisight.alerts import notifiers as notifiers_module
from clisight.alerts.notifiers import (
    CommandNotifier,
    DesktopNotifier,
    Dispatcher,
    LogNotifier,
    NotifyFailed,
    WebhookNotifier,
)
from clisight.query import Filter, Query
from clisight.store import SqliteStore
from tests.alerts.conftest import MINUTE, T0, Clock, ops
from tests.alerts.receiver import webhook_receiver

PAYLOAD = {"rule": "chat slow", "state": "firing", "value": 2.5, "threshold": 1.0, "labels": {"team": "cli"}}


def soon(seconds: float) -> float:
    return time.monotonic() + seconds


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens there once the socket is closed


def test_webhook_retries_5xx_with_exponential_backoff_then_delivers() -> None:
    with webhook_receiver(statuses=[503, 502]) as hook:
        notifier = WebhookNotifier("hook", hook.url, backoff_s=0.1, retries=3)
        notifier.send(PAYLOAD, soon(10))
        assert hook.bodies == [PAYLOAD]
        first, second = hook.times[1] - hook.times[0], hook.times[2] - hook.times[1]
    assert notifier.attempts == 3
    assert first >= 0.1 and second >= 0.2, "the wait doubles after each failure"


def test_webhook_never_retries_a_4xx() -> None:
    with webhook_receiver(statuses=[404]) as hook:
        notifier = WebhookNotifier("hook", hook.url, backoff_s=0.01, retries=3)
        with pytest.raises(NotifyFailed, match="HTTP 404; not retried"):
            notifier.send(PAYLOAD, soon(10))
        assert hook.posts() == 1


def test_webhook_redirects_are_final_and_messages_keep_the_secret_path_out() -> None:
    with webhook_receiver(statuses=[302]) as hook:
        secret = hook.url.replace("/hook", "/services/T0001/B0002/s3cr3tt0k3n")
        notifier = WebhookNotifier("hook", secret, backoff_s=0.01)
        with pytest.raises(NotifyFailed) as caught:
            notifier.send(PAYLOAD, soon(10))
        assert hook.posts() == 1
    assert "HTTP 302; not retried" in str(caught.value) and "s3cr3tt0k3n" not in str(caught.value)
    assert secret.split("/services")[0] + "/..." in str(caught.value)


def test_webhook_retries_refused_connections_only_until_its_deadline() -> None:
    import httpx  # noqa: F401  (imported before the clock starts: on a loaded machine it takes seconds)

    notifier = WebhookNotifier("hook", f"http://127.0.0.1:{closed_port()}/", backoff_s=0.2, retries=10)
    started = time.monotonic()
    with pytest.raises(NotifyFailed, match="gave up"):
        notifier.send(PAYLOAD, soon(2.0))
    took = time.monotonic() - started
    # Tries at about 0, 0.2, 0.6 and 1.4 s, then gives up at the 2 s deadline: not all 11 tries
    # (0.2 s doubling to 102 s), and never long past the deadline (slack for a loaded machine).
    assert 2 <= notifier.attempts < 11 and took < 6.0, (notifier.attempts, took)


def test_webhook_to_a_hanging_server_times_out_each_try() -> None:
    with webhook_receiver(delay=3.0) as hook:
        notifier = WebhookNotifier("hook", hook.url, timeout_s=0.3, backoff_s=0.05, retries=2)
        started = time.monotonic()
        with pytest.raises(NotifyFailed, match="ReadTimeout"):
            notifier.send(PAYLOAD, soon(10))
        took = time.monotonic() - started
    assert notifier.attempts == 3 and took < 5.0, took  # 3 x 0.3 s, not 3 x 3 s


def test_command_gets_the_alert_as_json_on_stdin(tmp_path: Path) -> None:
    out = tmp_path / "alert.json"
    script = f"import sys; open({str(out)!r}, 'w').write(sys.stdin.read())"
    CommandNotifier("cmd", [sys.executable, "-c", script], timeout_s=30).send(PAYLOAD, soon(30))
    import json

    assert json.loads(out.read_text()) == PAYLOAD


def test_command_that_hangs_is_killed_at_its_timeout_and_a_failing_one_reports_why() -> None:
    started = time.monotonic()
    with pytest.raises(NotifyFailed, match="did not finish"):
        CommandNotifier("cmd", [sys.executable, "-c", "import time; time.sleep(30)"], 0.5).send(
            PAYLOAD, soon(30)
        )
    assert time.monotonic() - started < 5
    failing = [sys.executable, "-c", "import sys; sys.stderr.write('no route'); sys.exit(3)"]
    with pytest.raises(NotifyFailed, match="exited 3: no route"):
        CommandNotifier("cmd", failing, 30).send(PAYLOAD, soon(30))
    with pytest.raises(NotifyFailed, match="cannot run"):
        CommandNotifier("cmd", ["/nonexistent/notifier"], 30).send(PAYLOAD, soon(30))


def test_desktop_without_a_notification_tool_is_skipped_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    notifiers_module._desktop_warned.clear()
    notifier = DesktopNotifier("desk", which=lambda name: None)
    with caplog.at_level(logging.WARNING, logger="clisight.alerts"):
        notifier.send(PAYLOAD, soon(5))
        notifier.send(PAYLOAD, soon(5))
    assert [r.getMessage() for r in caplog.records] == [
        "desktop notifier desk: neither notify-send nor osascript is here; skipped"
    ]


def test_log_notifier_writes_a_warning_record_to_the_store(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    SqliteStore(db).close()
    LogNotifier("log", str(db)).send({**PAYLOAD, "condition": "latency_p95 > 1"}, soon(10))
    with Query(db) as query:
        [line] = query.tail(Filter())
    assert (line.severity_text, line.component) == ("WARNING", "clisight.alerts")
    assert line.message == "alert chat slow firing: latency_p95 > 1"
    assert line.attributes["alert.labels"] == {"team": "cli"} and line.attributes["alert.value"] == 2.5


class Hanging:
    """A notifier that never returns until released (what a wedged custom notifier does)."""

    def __init__(self) -> None:
        self.name = "hang"
        self.release = threading.Event()
        self.calls = 0

    def send(self, payload: Mapping[str, Any], deadline: float) -> None:
        self.calls += 1
        self.release.wait(60)


class Failing:
    name = "fail"

    def send(self, payload: Mapping[str, Any], deadline: float) -> None:
        raise ConnectionError("pager service down")


def test_a_hanging_and_a_failing_notifier_never_hold_up_evaluation_or_the_others(
    tmp_path: Path, clock: Clock
) -> None:
    store = SqliteStore(tmp_path / "d.db")
    store.write_batch(ops(T0 - 5 * MINUTE, T0, 5, 3.0))
    rules = parse_rules(
        '[[rule]]\nname = "slow"\nmetric = "latency_p95"\nabove = 1\nnotify = ["hang", "fail", "hook"]\n'
        '[notifier.hang]\ntype = "log"\n[notifier.fail]\ntype = "log"\n'
        '[notifier.hook]\ntype = "webhook"\nurl = "http://127.0.0.1:1/"\n',
        "alerts.toml",
    )
    hanging = Hanging()
    try:
        with webhook_receiver(statuses=[500]) as hook, Query(store) as query:
            good = WebhookNotifier("hook", hook.url, backoff_s=0.05)
            engine = AlertEngine(
                query, rules, clock, notifiers={"hang": hanging, "fail": Failing(), "hook": good}
            )
            started = time.monotonic()
            [status] = engine.evaluate()
            assert status.state == "firing" and time.monotonic() - started < 5.0, (
                "evaluate does not wait (60 s)"
            )
            assert len(hook.wait_for(1, timeout=10)) == 1, "the webhook delivered (after one retry)"
            assert engine.flush(0.3) is False, "the hanging notifier is still busy; flush gave up in time"
            assert engine.dispatcher.stats.sent == {"hook": 1}
            assert engine.dispatcher.stats.failed == {"fail": 1}
            assert "pager service down" in engine.dispatcher.stats.errors[0]
            assert hook.posts() == 2 and hanging.calls == 1
    finally:
        hanging.release.set()
        store.close()


def test_a_full_queue_drops_and_counts_instead_of_growing() -> None:
    hanging = Hanging()
    dispatcher = Dispatcher({"hang": hanging})
    try:
        for _ in range(notifiers_module.QUEUE_LIMIT + 10):
            dispatcher.submit(["hang"], PAYLOAD)
        time.sleep(0.05)
        assert 9 <= dispatcher.stats.dropped["hang"] <= 10
    finally:
        hanging.release.set()
    assert dispatcher.flush(10)


def test_close_ends_the_worker_threads_once_their_queues_are_empty() -> None:
    with webhook_receiver() as hook:
        dispatcher = Dispatcher({"hook": WebhookNotifier("hook", hook.url)})
        dispatcher.submit(["hook"], PAYLOAD)
        assert dispatcher.close(10)
        assert hook.bodies == [PAYLOAD]
        worker = dispatcher._workers["hook"]
        worker.thread.join(5)
        assert not worker.thread.is_alive()
        dispatcher.submit(["hook"], PAYLOAD)  # used after close: a new worker takes it
        assert dispatcher.flush(10) and len(hook.wait_for(2)) == 2
