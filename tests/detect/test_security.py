"""Security rules over plain event dicts."""

from __future__ import annotations

import pytest

from clisight.detect.security import (
    AuthFailureBurstRule,
    NewValueRule,
    SecretInPromptRule,
    SecurityMonitor,
    SessionSpikeRule,
    UnusualHourRule,
)

T0 = 1_700_000_000.0  # 2023-11-14 22:13 UTC


def test_burst_of_auth_failures_fires_once_per_burst():
    rule = AuthFailureBurstRule(limit=5, window=60)
    findings = []
    for i in range(8):
        findings += rule.check({"name": "auth.failure", "user": "u1", "time": T0 + i})
    assert len(findings) == 1
    assert findings[0].severity == "critical" and "5 authentication failures" in findings[0].message
    assert rule.check({"name": "auth.failure", "user": "u2", "time": T0 + 9}) == []


def test_slow_auth_failures_are_not_a_burst():
    rule = AuthFailureBurstRule(limit=5, window=60)
    assert all(
        rule.check({"name": "auth.failure", "user": "u", "time": T0 + 30 * i}) == [] for i in range(20)
    )


def test_new_host_after_learning_is_reported_once():
    rule = NewValueRule("host", learn=3)
    for i in range(5):
        assert rule.check({"user": "u", "host": "laptop", "time": T0 + i}) == []
    (finding,) = rule.check({"user": "u", "host": "unknown-vps", "time": T0 + 10})
    assert "new host 'unknown-vps' for user u" in finding.message
    assert rule.check({"user": "u", "host": "unknown-vps", "time": T0 + 11}) == []


def test_a_new_users_first_host_is_not_news():
    rule = NewValueRule("user_agent", learn=3)
    assert rule.check({"user": "new", "user_agent": "curl/8", "time": T0}) == []


def test_activity_at_an_unusual_hour():
    rule = UnusualHourRule(learn=50)
    for day in range(20):
        for hour in (9, 11, 14, 16):
            assert rule.check({"user": "u", "time": T0 + day * 86400 + (hour - 22) * 3600}) == []
    # T0 is 22:13 UTC; a 03:00 event is far from the usual 9-16 window
    (finding,) = rule.check({"user": "u", "time": T0 + 25 * 86400 + 5 * 3600})
    assert "active at 03:00" in finding.message


def test_token_spike_in_one_session():
    rule = SessionSpikeRule("tokens", learn=10, idle=600)
    t = T0
    for s in range(15):
        for _ in range(5):
            t += 10
            assert rule.check({"session_id": f"s{s}", "tokens": 1000 + 10 * s, "time": t}) == []
        t += 3600
    findings = []
    for _ in range(20):
        t += 10
        findings += rule.check({"session_id": "big", "tokens": 2000, "time": t})
    assert len(findings) == 1 and "session big used" in findings[0].message


def test_secrets_redacted_from_a_prompt():
    rule = SecretInPromptRule()
    assert rule.check({"user": "u", "secrets_redacted": 0}) == []
    (finding,) = rule.check({"user": "u", "secrets_redacted": ["aws_key", "github_token"]})
    assert "2 secrets (aws_key, github_token)" in finding.message


def test_monitor_runs_every_rule():
    monitor = SecurityMonitor()
    findings = monitor.check({"user": "u", "time": T0, "secrets_redacted": 1, "name": "llm.request"})
    assert [f.rule for f in findings] == ["secret_in_prompt"]


def test_what_the_rules_learned_survives_a_restart_through_json() -> None:
    import json
    import random

    from clisight.detect import SecurityMonitor
    from clisight.detect._base import StateError

    rng = random.Random(3)
    users = ["ann", "bob", "cy"]

    def event(i: int) -> dict[str, object]:
        user = users[i % 3]
        return {
            "time": 1_700_000_000 + i * 97 + (0 if rng.random() < 0.9 else 13 * 3600),
            "user": user,
            "host": f"{user}-laptop" if rng.random() < 0.95 else f"host-{rng.randrange(50)}",
            "user_agent": "cli/1.0",
            "name": "auth.failure" if rng.random() < 0.05 else "command",
            "session_id": f"s{i // 20}",
            "tokens": rng.randrange(100, 2000) * (30 if rng.random() < 0.01 else 1),
            "cost": 0.01,
        }

    events = [event(i) for i in range(3000)]
    first = SecurityMonitor()
    for e in events[:2000]:
        first.check(e)
    saved = json.loads(json.dumps(first.to_state()))
    restored = SecurityMonitor()
    restored.load_state(saved)
    later = [(first.check(e), restored.check(e)) for e in events[2000:]]
    assert all(a == b for a, b in later)
    assert any(a for a, _ in later)  # the comparison covered findings, not only silence
    with pytest.raises(StateError):
        SecurityMonitor().load_state({"kind": "ensemble"})
