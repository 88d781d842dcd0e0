"""Security anomalies as rules over events given as plain mappings (dicts of event fields).

Each rule has ``check(event) -> list[SecurityFinding]`` and learns from the events it sees; a
:class:`SecurityMonitor` runs several.  Field names are constructor arguments; the defaults are::

    time        event time, epoch seconds (float)
    name        event name, e.g. "auth.failure", "llm.request"
    user        user id (hashed is fine), the key most rules group by
    host        host name or address
    user_agent  client user agent
    session_id  session (CLI run or conversation) id
    tokens      tokens used by the event; cost: its cost in dollars
    secrets_redacted  number (or list) of secrets the redactor removed from a prompt
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from clisight.detect._base import StateError

__all__ = [
    "AuthFailureBurstRule",
    "NewValueRule",
    "SecretInPromptRule",
    "SecurityFinding",
    "SecurityMonitor",
    "SecurityRule",
    "SessionSpikeRule",
    "UnusualHourRule",
    "default_rules",
]

Event = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class SecurityFinding:
    """One security anomaly: which rule, about whom, how bad, and a readable message."""

    rule: str
    key: str
    severity: str  # "info" | "warning" | "critical"
    message: str
    time: float | None = None


class SecurityRule(Protocol):
    """A stateful rule over a stream of events."""

    name: str

    def check(self, event: Event) -> list[SecurityFinding]: ...

    def to_state(self) -> dict[str, Any]: ...

    def load_state(self, state: Mapping[str, Any]) -> None: ...


def _time(event: Event, field: str) -> float | None:
    value = event.get(field)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _key(event: Event, field: str) -> str:
    value = event.get(field)
    return "?" if value is None else str(value)


class AuthFailureBurstRule:
    """At least ``limit`` authentication failures for one key within ``window`` seconds.

    Fires once per burst: the key is quiet again only after its count falls below ``limit``.
    """

    name = "auth_failure_burst"

    def __init__(
        self,
        limit: int = 5,
        window: float = 60.0,
        failure_names: Iterable[str] = ("auth.failure", "auth_failure", "login.failure"),
        key_field: str = "user",
        time_field: str = "time",
        name_field: str = "name",
    ) -> None:
        self.limit = limit
        self.window = window
        self.failure_names = frozenset(failure_names)
        self.key_field = key_field
        self.time_field = time_field
        self.name_field = name_field
        self._recent: dict[str, deque[float]] = {}
        self._firing: set[str] = set()

    def to_state(self) -> dict[str, Any]:
        """What the rule has learned (not its settings), JSON-serialisable."""
        return {"recent": {k: list(q) for k, q in self._recent.items() if q}, "firing": sorted(self._firing)}

    def load_state(self, state: Mapping[str, Any]) -> None:
        self._recent = {str(k): deque(float(t) for t in v) for k, v in state.get("recent", {}).items()}
        self._firing = {str(k) for k in state.get("firing", [])}

    def check(self, event: Event) -> list[SecurityFinding]:
        if event.get(self.name_field) not in self.failure_names:
            return []
        t = _time(event, self.time_field)
        if t is None:
            return []
        key = _key(event, self.key_field)
        q = self._recent.setdefault(key, deque())
        q.append(t)
        while q and q[0] <= t - self.window:
            q.popleft()
        if len(q) < self.limit:
            self._firing.discard(key)
            return []
        if key in self._firing:
            return []
        self._firing.add(key)
        return [
            SecurityFinding(
                self.name,
                key,
                "critical",
                f"{len(q)} authentication failures for {self.key_field} {key} within {self.window:g} s",
                t,
            )
        ]


class NewValueRule:
    """A value of ``field`` (a host, a user agent) never seen before for this key.

    The first ``learn`` events of each key only learn (a new user's first host is not news).
    """

    def __init__(
        self, field: str = "host", key_field: str = "user", learn: int = 5, time_field: str = "time"
    ) -> None:
        self.field = field
        self.key_field = key_field
        self.learn = learn
        self.time_field = time_field
        self.name = f"new_{field}"
        self._seen: dict[str, set[str]] = {}
        self._count: dict[str, int] = {}

    def to_state(self) -> dict[str, Any]:
        """What the rule has learned (not its settings), JSON-serialisable."""
        return {"seen": {k: sorted(v) for k, v in self._seen.items()}, "count": dict(self._count)}

    def load_state(self, state: Mapping[str, Any]) -> None:
        self._seen = {str(k): {str(x) for x in v} for k, v in state.get("seen", {}).items()}
        self._count = {str(k): int(v) for k, v in state.get("count", {}).items()}

    def check(self, event: Event) -> list[SecurityFinding]:
        value = event.get(self.field)
        if value is None:
            return []
        key = _key(event, self.key_field)
        seen = self._seen.setdefault(key, set())
        count = self._count.get(key, 0)
        self._count[key] = count + 1
        text = str(value)
        if text in seen:
            return []
        seen.add(text)
        if count < self.learn:
            return []
        return [
            SecurityFinding(
                self.name,
                key,
                "warning",
                f"new {self.field} {text!r} for {self.key_field} {key} (after {count} events)",
                _time(event, self.time_field),
            )
        ]


class UnusualHourRule:
    """Activity at an hour of the day when this key is rarely active.

    After ``learn`` events of a key, an event in an hour holding less than ``min_share`` of the key's
    activity (in the hours ``window`` either side, to allow some drift) is reported.
    """

    name = "unusual_hour"

    def __init__(
        self,
        learn: int = 50,
        min_share: float = 0.01,
        window: int = 1,
        key_field: str = "user",
        time_field: str = "time",
        utc_offset: float = 0.0,
    ) -> None:
        self.learn = learn
        self.min_share = min_share
        self.window = window
        self.key_field = key_field
        self.time_field = time_field
        self.utc_offset = utc_offset
        self._hours: dict[str, list[int]] = {}

    def to_state(self) -> dict[str, Any]:
        """What the rule has learned (not its settings), JSON-serialisable."""
        return {"hours": {k: list(v) for k, v in self._hours.items()}}

    def load_state(self, state: Mapping[str, Any]) -> None:
        hours = state.get("hours", {})
        self._hours = {str(k): [int(c) for c in v] for k, v in hours.items() if len(v) == 24}

    def check(self, event: Event) -> list[SecurityFinding]:
        t = _time(event, self.time_field)
        if t is None:
            return []
        key = _key(event, self.key_field)
        hours = self._hours.setdefault(key, [0] * 24)
        hour = datetime.fromtimestamp(t + self.utc_offset, UTC).hour
        total = sum(hours)
        near = sum(hours[(hour + d) % 24] for d in range(-self.window, self.window + 1))
        hours[hour] += 1
        if total < self.learn or near >= self.min_share * total:
            return []
        return [
            SecurityFinding(
                self.name,
                key,
                "warning",
                f"{self.key_field} {key} active at {hour:02d}:00 UTC{self.utc_offset / 3600:+g}, "
                f"an hour with {near} of their {total} past events",
                t,
            )
        ]


class SessionSpikeRule:
    """A session whose running total of ``field`` (tokens, cost) far exceeds past sessions' totals.

    Past sessions' final totals form the baseline (mean and standard deviation of their logarithms, so a
    heavy-tailed spread is handled).  A session is complete once idle for ``idle`` seconds (or when more
    than ``max_open`` are open).  After ``learn`` complete sessions, a session is reported once, when its
    running total exceeds both ``threshold`` standard deviations and ``min_factor`` times the typical total.
    """

    def __init__(
        self,
        field: str = "tokens",
        threshold: float = 4.0,
        learn: int = 10,
        idle: float = 1800.0,
        min_factor: float = 3.0,
        session_field: str = "session_id",
        time_field: str = "time",
        max_open: int = 1000,
    ) -> None:
        self.field = field
        self.threshold = threshold
        self.learn = learn
        self.idle = idle
        self.min_factor = min_factor
        self.session_field = session_field
        self.time_field = time_field
        self.max_open = max_open
        self.name = f"session_{field}_spike"
        self._open: dict[str, tuple[float, float]] = {}  # id -> (total, last time), least recent first
        self._reported: set[str] = set()
        self._n = 0
        self._mean = 0.0
        self._m2 = 0.0

    def to_state(self) -> dict[str, Any]:
        """What the rule has learned (not its settings), JSON-serialisable; open sessions in order."""
        return {
            "open": [[sid, total, last] for sid, (total, last) in self._open.items()],
            "reported": sorted(self._reported),
            "n": self._n,
            "mean": self._mean,
            "m2": self._m2,
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        self._open = {str(sid): (float(total), float(last)) for sid, total, last in state.get("open", [])}
        self._reported = {str(s) for s in state.get("reported", [])}
        self._n = int(state.get("n", 0))
        self._mean = float(state.get("mean", 0.0))
        self._m2 = float(state.get("m2", 0.0))

    def _close(self, sid: str) -> None:
        total, _ = self._open.pop(sid)
        self._reported.discard(sid)
        x = math.log1p(max(total, 0.0))
        self._n += 1
        d = x - self._mean
        self._mean += d / self._n
        self._m2 += d * (x - self._mean)

    def check(self, event: Event) -> list[SecurityFinding]:
        value = _time(event, self.field)
        raw_sid = event.get(self.session_field)
        if value is None or raw_sid is None:
            return []
        sid = str(raw_sid)
        t = _time(event, self.time_field)
        for other, (_total, last) in list(self._open.items()):
            idle = t is not None and last <= t - self.idle
            if other != sid and (idle or len(self._open) > self.max_open):
                self._close(other)
            elif not idle:
                break
        total = self._open.pop(sid, (0.0, 0.0))[0] + value
        self._open[sid] = (total, t if t is not None else 0.0)
        if self._n < self.learn or sid in self._reported:
            return []
        sd = math.sqrt(self._m2 / (self._n - 1)) if self._n > 1 else 0.0
        limit = max(self._mean + self.threshold * sd, self._mean + math.log(self.min_factor))
        if math.log1p(max(total, 0.0)) <= limit:
            return []
        self._reported.add(sid)
        return [
            SecurityFinding(
                self.name,
                sid,
                "warning",
                f"session {sid} used {total:g} {self.field}, typical session {math.expm1(self._mean):.3g}",
                t,
            )
        ]


class SecretInPromptRule:
    """The redactor removed secrets from a prompt (``secrets_redacted`` > 0 or a non-empty list)."""

    name = "secret_in_prompt"

    def __init__(
        self, field: str = "secrets_redacted", key_field: str = "user", time_field: str = "time"
    ) -> None:
        self.field = field
        self.key_field = key_field
        self.time_field = time_field

    def to_state(self) -> dict[str, Any]:
        return {}  # stateless: each prompt is judged alone

    def load_state(self, state: Mapping[str, Any]) -> None:
        pass

    def check(self, event: Event) -> list[SecurityFinding]:
        value = event.get(self.field)
        if isinstance(value, list | tuple | set | frozenset):
            count = len(value)
            kinds = f" ({', '.join(sorted(str(v) for v in value))})" if value else ""
        elif isinstance(value, int | float) and not isinstance(value, bool):
            count = int(value)
            kinds = ""
        else:
            return []
        if count <= 0:
            return []
        key = _key(event, self.key_field)
        return [
            SecurityFinding(
                self.name,
                key,
                "critical",
                f"{count} secret{'s' if count != 1 else ''}{kinds} redacted from a prompt"
                f" by {self.key_field} {key}",
                _time(event, self.time_field),
            )
        ]


def default_rules() -> list[SecurityRule]:
    """One of each rule with default settings."""
    return [
        AuthFailureBurstRule(),
        NewValueRule("host"),
        NewValueRule("user_agent"),
        UnusualHourRule(),
        SessionSpikeRule("tokens"),
        SessionSpikeRule("cost"),
        SecretInPromptRule(),
    ]


class SecurityMonitor:
    """Runs a list of rules over each event."""

    def __init__(self, rules: Iterable[SecurityRule] | None = None) -> None:
        self.rules: list[SecurityRule] = list(rules) if rules is not None else default_rules()

    def to_state(self) -> dict[str, Any]:
        """What every rule has learned, by rule name (JSON-serialisable; save it in the store)."""
        return {"kind": "security", "version": 1, "rules": {r.name: r.to_state() for r in self.rules}}

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Restore what the rules learned; rules are matched by name, unknown names are ignored."""
        if state.get("kind") != "security" or state.get("version") != 1:
            raise StateError(f"not a security monitor state: kind={state.get('kind')!r}")
        saved = state.get("rules", {})
        for rule in self.rules:
            if rule.name in saved:
                rule.load_state(saved[rule.name])

    def check(self, event: Event) -> list[SecurityFinding]:
        """Findings of every rule for this event (rules learn from it too)."""
        findings: list[SecurityFinding] = []
        for rule in self.rules:
            findings.extend(rule.check(event))
        return findings
