"""The issue's story: a CLI whose chat latency degrades, a latency_p95 rule with ``for = "30s"`` on an
injected clock, a real webhook receiver on 127.0.0.1: pending, then one firing POST, then one
resolved POST when latency recovers; and the same for an anomaly rule over the error rate."""

from __future__ import annotations

from clisight.alerts import AlertEngine, alert_history, alert_statuses, parse_rules
from clisight.query import Query
from clisight.store import SqliteStore
from tests.alerts.conftest import MINUTE, T0, Clock, ops
from tests.alerts.receiver import webhook_receiver

LATENCY_RULES = """
[[rule]]
name = "chat slow"
metric = "latency_p95"
where = {{ operation = "chat", service = "mycli" }}
window = "2m"
above = "1s"
for = "30s"
severity = "critical"
labels = {{ team = "cli" }}
notify = ["hook"]

[notifier.hook]
type = "webhook"
url = "{url}"
backoff = "50ms"
"""


def states(engine: AlertEngine) -> list[str]:
    return [s.state for s in engine.evaluate()]


def test_degrading_chat_latency_goes_pending_then_fires_once_and_resolves_once(
    store: SqliteStore, query: Query, clock: Clock
) -> None:
    store.write_batch(ops(T0 - 10 * MINUTE, T0, 2, 0.15))  # healthy: ~150 ms
    with webhook_receiver() as hook:
        rules = parse_rules(LATENCY_RULES.format(url=hook.url), "alerts.toml")
        engine = AlertEngine(query, rules, clock, server_url="http://127.0.0.1:4318/")
        assert states(engine) == ["inactive"]

        store.write_batch(ops(T0, T0 + 3 * MINUTE, 2, 2.5, seed=1))  # chat degrades to ~2.5 s
        clock.advance(60)
        assert states(engine) == ["pending"], "the condition holds, but not for 30 s yet"
        clock.advance(20)
        assert states(engine) == ["pending"]
        clock.advance(15)  # 35 s since it began to hold
        [firing] = engine.evaluate()
        assert firing.state == "firing" and firing.value is not None and firing.value > 2.0
        clock.advance(30)
        assert states(engine) == ["firing"]
        assert engine.flush(10)
        assert len(hook.wait_for(1)) == 1, "one firing POST, however many evaluations see it firing"

        store.write_batch(ops(T0 + 3 * MINUTE, T0 + 10 * MINUTE, 2, 0.15, seed=2))  # recovers
        clock.now = T0 + 6 * MINUTE  # the 2 m window holds only fast calls again
        assert states(engine) == ["resolved"]
        clock.advance(30)
        assert states(engine) == ["resolved"]
        assert engine.flush(10)
        bodies = hook.wait_for(2)
    assert [b["state"] for b in bodies] == ["firing", "resolved"]
    first = bodies[0]
    assert first["rule"] == "chat slow" and first["threshold"] == 1.0 and first["value"] > 2.0
    assert first["labels"] == {"team": "cli"} and first["severity"] == "critical"
    assert first["started_at"] == "2027-01-15T08:01:00Z", "when the condition began to hold (pending)"
    assert first["url"] == "http://127.0.0.1:4318/alerts?rule=chat%20slow"
    assert bodies[1]["value"] < 1.0
    changes = [(t.previous, t.state) for t in reversed(alert_history(query))]
    assert changes == [("inactive", "pending"), ("pending", "firing"), ("firing", "resolved")]
    [stored] = alert_statuses(query)
    assert stored.state == "resolved" and stored.since_ns == T0 + 6 * MINUTE


ANOMALY_RULES = """
[[rule]]
name = "chat errors unusual"
metric = "anomaly"
over = "error_rate"
where = {{ operation = "chat" }}
window = "5m"
history = "2h"
notify = ["hook"]

[notifier.hook]
type = "webhook"
url = "{url}"
"""


def test_an_error_rate_anomaly_fires_once_and_resolves_once(
    store: SqliteStore, query: Query, clock: Clock
) -> None:
    store.write_batch(ops(T0 - 2 * 60 * MINUTE, T0, 3, 0.2, fail=0.03, seed=3))  # 2 h at ~3 % errors
    with webhook_receiver() as hook:
        rules = parse_rules(ANOMALY_RULES.format(url=hook.url), "alerts.toml")
        engine = AlertEngine(query, rules, clock)
        clock.now = T0 + 1
        assert states(engine) == ["inactive"]

        store.write_batch(ops(T0, T0 + MINUTE, 3, 0.2, fail=0.7, seed=4))  # one minute at ~70 % errors
        store.write_batch(ops(T0 + MINUTE, T0 + 30 * MINUTE, 3, 0.2, fail=0.03, seed=5))  # then normal
        clock.now = T0 + MINUTE + 1  # the bad minute is complete
        [status] = engine.evaluate()
        assert status.state == "firing", "for = 0s: fires at once"
        assert status.value is not None and status.value >= status.threshold
        clock.advance(30)
        assert states(engine) == ["firing"]
        clock.now = T0 + 8 * MINUTE + 1  # the bad minute has left the 5 m window
        assert states(engine) == ["resolved"]
        clock.advance(60)
        assert states(engine) == ["resolved"]
        assert engine.flush(10)
        bodies = hook.wait_for(2)
    assert [b["state"] for b in bodies] == ["firing", "resolved"]
    assert bodies[0]["metric"] == "anomaly(error_rate)" and "url" not in bodies[0]
