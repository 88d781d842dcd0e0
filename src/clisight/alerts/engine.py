"""The alert engine: evaluates rules through the query service and keeps each alert's state.

An *alert* is one rule and one label set (the rule's ``labels`` and, with ``group_by``, the
group's values).  Its state machine, as Prometheus's:

- ``inactive`` or ``resolved`` and the condition holds: ``pending`` (or ``firing`` at once when
  ``for`` is 0); a new *episode* starts.
- ``pending``: ``firing`` once the condition has held for ``for``; ``inactive`` if it stops first.
- ``firing``: stays while the condition holds, and ``keep_firing_for`` after it last held; then
  ``resolved``.  No data (no records in the window) is "the condition does not hold".

Every transition is recorded in the store (``clisight alerts history``) with its time and the value
that caused it; every evaluation stores the alert's current value.  A notification goes out on
entering ``firing`` and on ``resolved`` (only after a firing one went out), through the rule's
``notify`` list, unless a silence matches; a store claim per (alert, episode, state) makes sure one
evaluation sends it however many run at once.  Each rule is one store aggregate over the rollups
(an ``anomaly`` rule: one aggregate of the per-minute series its detector scores).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote

from clisight.alerts.notifiers import Dispatcher, Notifier, build_notifiers, notifier_deadline_s
from clisight.alerts.rules import ANOMALY, Rule, RuleSet
from clisight.alerts.silences import Silence, list_silences
from clisight.query import Query
from clisight.query import alerts as _stored
from clisight.query.series import MINUTE_NS, grouped_series, metric_value

STATES: Final = ("inactive", "pending", "firing", "resolved")
MIN_ANOMALY_POINTS: Final = 30  # fewer per-minute points than this: too little to score


@dataclass(frozen=True, slots=True)
class AlertStatus:
    """The state of one alert after an evaluation (or as last stored)."""

    rule: str
    labels: Mapping[str, str]
    state: str
    value: float | None
    threshold: float
    since_ns: int
    silenced: bool = False
    severity: str = "warning"
    condition: str = ""
    summary: str = ""
    active_since_ns: int | None = None  # when the current episode began (pending or firing)
    evaluated_ns: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "labels": dict(self.labels),
            "state": self.state,
            "value": self.value,
            "threshold": self.threshold,
            "since_ns": self.since_ns,
            "silenced": self.silenced,
            "severity": self.severity,
            "condition": self.condition,
            "summary": self.summary,
            "active_since_ns": self.active_since_ns,
            "evaluated_ns": self.evaluated_ns,
        }


@dataclass(frozen=True, slots=True)
class AlertTransition:
    """One recorded change of an alert's state: from ``previous`` to ``state`` at ``time_ns``."""

    rule: str
    labels: Mapping[str, str]
    previous: str
    state: str
    time_ns: int
    value: float | None
    threshold: float
    severity: str = "warning"
    silenced: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "labels": dict(self.labels),
            "previous": self.previous,
            "state": self.state,
            "time_ns": self.time_ns,
            "value": self.value,
            "threshold": self.threshold,
            "severity": self.severity,
            "silenced": self.silenced,
        }


@dataclass
class EvaluationStats:
    """What the latest :meth:`AlertEngine.evaluate` did."""

    rules: int = 0
    seconds: float = 0.0
    transitions: int = 0
    notifications: int = 0
    errors: list[str] = field(default_factory=list)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _status(value: Mapping[str, Any]) -> AlertStatus | None:
    try:
        return AlertStatus(
            rule=str(value["rule"]),
            labels={str(k): str(v) for k, v in (value.get("labels") or {}).items()},
            state=str(value["state"]),
            value=_number(value.get("value")),
            threshold=float(value.get("threshold") or 0.0),
            since_ns=int(value.get("since_ns") or 0),
            silenced=bool(value.get("silenced")),
            severity=str(value.get("severity") or "warning"),
            condition=str(value.get("condition") or ""),
            summary=str(value.get("summary") or ""),
            active_since_ns=None if value.get("active_since_ns") is None else int(value["active_since_ns"]),
            evaluated_ns=int(value.get("evaluated_ns") or 0),
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def alert_statuses(query: Query) -> list[AlertStatus]:
    """Every alert's last stored state (of every rule evaluated against this store), firing first,
    then pending, resolved, inactive; by rule name within each."""
    order = {"firing": 0, "pending": 1, "resolved": 2, "inactive": 3}
    found = [s for s in map(_status, _stored.load_states(query).values()) if s is not None]
    return sorted(found, key=lambda s: (order.get(s.state, 4), s.rule, sorted(s.labels.items())))


def alert_history(query: Query, since_ns: int = 0, limit: int = 100) -> list[AlertTransition]:
    """Recorded transitions at or after ``since_ns``, newest first, at most ``limit``."""
    out = []
    for value in _stored.load_transitions(query):
        try:
            item = AlertTransition(
                rule=str(value["rule"]),
                labels={str(k): str(v) for k, v in (value.get("labels") or {}).items()},
                previous=str(value["previous"]),
                state=str(value["state"]),
                time_ns=int(value["time_ns"]),
                value=_number(value.get("value")),
                threshold=float(value.get("threshold") or 0.0),
                severity=str(value.get("severity") or "warning"),
                silenced=bool(value.get("silenced")),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
        if item.time_ns >= since_ns:
            out.append(item)
    out.sort(key=lambda t: (-t.time_ns, t.rule))
    return out[: max(0, limit)]


def iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class AlertEngine:
    """Evaluates a rule set against one store.

    ``clock`` returns nanoseconds since the epoch (tests inject one); ``notifiers`` replaces the
    ones the rules file defines (by name); ``server_url`` (the ``server_url`` parameter) puts a
    link to the dashboard's alert page in notifications.  Call :meth:`evaluate` as often as you
    like (``clisight serve`` every ``alerts_interval`` seconds) and :meth:`close` at the end: it
    waits, at most ``timeout`` seconds, for notifications still being sent.
    """

    def __init__(
        self,
        query: Query,
        rules: RuleSet,
        clock: Callable[[], int] = time.time_ns,
        *,
        notifiers: Mapping[str, Notifier] | None = None,
        server_url: str = "",
    ) -> None:
        self.query = query
        self.rules = rules
        self.clock = clock
        self.server_url = server_url.rstrip("/")
        built = build_notifiers(rules.notifiers, query.url) if notifiers is None else dict(notifiers)
        deadlines = {name: notifier_deadline_s(rules.notifiers.get(name)) for name in built}
        self.dispatcher = Dispatcher(built, deadlines)
        self.last = EvaluationStats()

    # -- evaluation -------------------------------------------------------------------------
    def evaluate(self) -> list[AlertStatus]:
        """Evaluate every enabled rule once; return the state of every alert of those rules."""
        started = time.perf_counter()
        now = self.clock()
        stats = EvaluationStats()
        stored = _stored.load_states(self.query)
        silences = list_silences(self.query, now)
        by_rule: dict[str, dict[str, dict[str, Any]]] = {}
        for key, saved in stored.items():
            by_rule.setdefault(str(saved.get("rule")), {})[key] = saved
        out: list[AlertStatus] = []
        for rule in self.rules.enabled:
            stats.rules += 1
            values = self.values(rule, now)
            current: dict[str, tuple[dict[str, str], float | None]] = {}
            for pairs, found in values.items():
                labels = dict(pairs)
                current[_stored.alert_key(rule.name, labels)] = (labels, found)
            for key, kept in by_rule.get(rule.name, {}).items():
                if key not in current:  # its group had no records this time: the condition does not hold
                    current[key] = ({str(k): str(v) for k, v in (kept.get("labels") or {}).items()}, None)
            for key, (labels, number) in sorted(current.items()):
                out.append(self._step(rule, key, labels, number, stored.get(key), now, silences, stats))
        stats.seconds = time.perf_counter() - started
        self.last = stats
        return out

    def values(self, rule: Rule, now_ns: int) -> dict[tuple[tuple[str, str], ...], float | None]:
        """The rule's value per label set (the rule's labels and its groups') at ``now_ns``."""
        static = dict(rule.labels)
        if rule.metric == ANOMALY:
            found = self._anomaly(rule, now_ns)
        else:
            found = metric_value(
                self.query,
                rule.metric,
                rule.where,
                now_ns - rule.window_ns,
                now_ns,
                of=rule.of,
                group_by=rule.group_by,
                agg=rule.agg,
            )
        return {tuple(sorted({**static, **dict(labels)}.items())): value for labels, value in found.items()}

    def _anomaly(self, rule: Rule, now_ns: int) -> dict[tuple[tuple[str, str], ...], float | None]:
        from clisight.detect import DEFAULT_DETECTOR, has_alert_level, make_detector

        assert rule.over is not None
        end = now_ns - now_ns % MINUTE_NS - 1  # whole minutes only: a partial one is not comparable
        series = grouped_series(
            self.query,
            rule.over,
            rule.where,
            end + 1 - rule.history_ns,
            end,
            MINUTE_NS,
            of=rule.of,
            group_by=rule.group_by,
            agg=rule.agg,
        )
        out: dict[tuple[tuple[str, str], ...], float | None] = {}
        recent = end + 1 - max(rule.window_ns, MINUTE_NS)
        for labels, points in series.items():
            if len(points) < MIN_ANOMALY_POINTS:
                out[labels] = None
                continue
            params: dict[str, Any] = (
                {"alert_level": rule.threshold} if has_alert_level(DEFAULT_DETECTOR) else {}
            )
            detector = make_detector(DEFAULT_DETECTOR, series_length=len(points), **params)
            score: float | None = None
            for at, value in points:
                s = detector.update(at / 1e9, value)
                if at >= recent and math.isfinite(s):
                    score = s if score is None else max(score, s)
            out[labels] = score
        return out

    def _step(
        self,
        rule: Rule,
        key: str,
        labels: Mapping[str, str],
        value: float | None,
        prev: Mapping[str, Any] | None,
        now: int,
        silences: Sequence[Silence],
        stats: EvaluationStats,
    ) -> AlertStatus:
        st: dict[str, Any] = dict(prev) if prev else {"state": "inactive", "episode": 0, "since_ns": now}
        state = str(st.get("state", "inactive"))
        episode = int(st.get("episode") or 0)
        active_since = st.get("active_since_ns")
        last_true = st.get("last_true_ns")
        new = state
        if rule.crossed(value):
            last_true = now
            if state not in ("pending", "firing"):
                episode += 1
                active_since = now
                st["notified"] = False
                new = "firing" if rule.for_ns <= 0 else "pending"
            elif state == "pending" and now - int(active_since or now) >= rule.for_ns:
                new = "firing"
        elif state == "pending":
            new = "inactive"
        elif state == "firing" and (last_true is None or now - int(last_true) >= rule.keep_firing_for_ns):
            new = "resolved"
        silenced = any(s.matches(rule.name, labels) for s in silences)
        record = {
            "rule": rule.name,
            "labels": dict(labels),
            "previous": state,
            "state": new,
            "time_ns": now,
            "value": value,
            "threshold": rule.threshold,
            "severity": rule.severity,
            "silenced": silenced,
        }
        if new != state:
            stats.transitions += 1
            _stored.claim_transition(self.query, key, episode, new, record)
            st["since_ns"] = now
        payload_state = None
        if new == "firing" and not st.get("notified") and not silenced:
            payload_state = "firing"  # entering firing, or firing when its silence ended
        elif new == "resolved" and state == "firing" and st.get("notified") and not silenced:
            payload_state = "resolved"
        if payload_state is not None:
            won = _stored.claim_notification(self.query, key, episode, payload_state)
            st["notified"] = True
            if won and rule.notify:
                stats.notifications += 1
                self.dispatcher.submit(
                    rule.notify,
                    self.payload(rule, labels, payload_state, value, int(active_since or now), now),
                )
        st.update(
            rule=rule.name,
            labels=dict(labels),
            state=new,
            episode=episode,
            active_since_ns=active_since if new in ("pending", "firing") else None,
            last_true_ns=last_true,
            value=value,
            threshold=rule.threshold,
            severity=rule.severity,
            silenced=silenced,
            condition=rule.condition,
            summary=rule.summary,
            evaluated_ns=now,
        )
        if prev is None or any(prev.get(k) != st.get(k) for k in st if k != "evaluated_ns"):
            _stored.save_state(self.query, key, st)
        status = _status(st)
        assert status is not None
        return status

    def payload(
        self,
        rule: Rule,
        labels: Mapping[str, str],
        state: str,
        value: float | None,
        started_ns: int,
        now: int,
    ) -> dict[str, Any]:
        """What a notifier sends: rule, state, value, threshold, labels, started_at and more."""
        body: dict[str, Any] = {
            "rule": rule.name,
            "state": state,
            "value": value,
            "threshold": rule.threshold,
            "condition": rule.condition,
            "metric": rule.metric if rule.metric != ANOMALY else f"anomaly({rule.over})",
            "labels": dict(labels),
            "severity": rule.severity,
            "summary": rule.summary,
            "started_at": iso(started_ns),
            "started_at_ns": started_ns,
            "at": iso(now),
        }
        if state == "resolved":
            body["ended_at"] = iso(now)
        if self.server_url:
            body["url"] = f"{self.server_url}/alerts?rule={quote(rule.name, safe='')}"
        return body

    def firing(self, statuses: Sequence[AlertStatus]) -> list[AlertStatus]:
        return [s for s in statuses if s.state == "firing"]

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait for queued notifications, at most ``timeout`` seconds (False if some were left)."""
        return self.dispatcher.flush(timeout)

    def close(self, timeout: float = 30.0) -> bool:
        """Wait for queued notifications (at most ``timeout`` seconds), then end the notifier threads."""
        return self.dispatcher.close(timeout)
