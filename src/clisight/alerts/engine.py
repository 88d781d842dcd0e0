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

The stored states stay bounded (``docs/alerts.md``, "How many alerts are kept"):

- each state notes the rule set that evaluates it (``source``: the rules file's path); at each
  evaluation the states of that rule set's rules that are no longer configured (deleted, renamed,
  disabled) are removed.  A firing one is *resolved* first, as if its condition had stopped
  holding: the transition is recorded and, if its firing notification went out, a ``resolved``
  one goes to the notifiers it was sent to (those the rules file still defines), with
  ``reason`` saying why.  A pending one goes back to ``inactive``.
- a label set of a live rule that has had no records for ``STALE_WINDOWS`` windows (at least
  ``STALE_MIN_NS``; removed by the time a quarter more passed), and is neither pending nor
  firing, is removed; it starts afresh if its
  records come back (episode numbers go on from its history, so claims never collide).
- a rule keeps at most ``MAX_ALERTS_PER_RULE`` label sets: beyond, those firing or pending, then
  those crossing now, then the most recently seen are kept; the others are evicted (resolved as
  above when firing) and counted in :attr:`EvaluationStats.evicted`.
- a state of another rule set that none has evaluated for ``ORPHAN_NS`` (a rules file moved away)
  is removed too.  A state stored before ``source`` existed is adopted by the first rule set that
  evaluates its rule, and removed by a rules file that does not have that rule.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
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
MAX_ALERTS_PER_RULE: Final = 1000  # label sets kept per rule; more are evicted (and counted)
STALE_WINDOWS: Final = 3  # a label set with no records for this many windows is dropped...
STALE_MIN_NS: Final = 3600 * 10**9  # ...and for at least an hour
ORPHAN_NS: Final = 7 * 24 * 3600 * 10**9  # another rule set's state unevaluated this long is dropped
ACTIVE: Final = ("pending", "firing")

log = logging.getLogger("clisight.alerts")


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
    reason: str = ""  # why, when not the rule's value: "its rule is no longer configured"...

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
            "reason": self.reason,
        }


@dataclass
class EvaluationStats:
    """What the latest :meth:`AlertEngine.evaluate` did."""

    rules: int = 0
    seconds: float = 0.0
    transitions: int = 0
    notifications: int = 0
    errors: list[str] = field(default_factory=list)
    dropped: int = 0  # states removed: rule no longer configured, label set gone quiet, orphaned
    evicted: int = 0  # label sets beyond MAX_ALERTS_PER_RULE left out (stored ones among them removed)


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
                reason=str(value.get("reason") or ""),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
        if item.time_ns >= since_ns:
            out.append(item)
    out.sort(key=lambda t: (-t.time_ns, t.rule))
    return out[: max(0, limit)]


def rule_set_source(rules: RuleSet) -> str:
    """What a state's ``source`` names: a rules file by its absolute path, else the set's name."""
    if not rules.path or rules.path.startswith("<"):
        return rules.path or "<rules>"
    return str(Path(rules.path).expanduser().absolute())


def stale_after_ns(rule: Rule) -> int:
    """How long a label set of ``rule`` may go without records before its state is dropped."""
    window = max(rule.window_ns, rule.history_ns if rule.metric == ANOMALY else 0)
    return max(STALE_WINDOWS * window, STALE_MIN_NS)


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _seen(state: Mapping[str, Any]) -> int:
    """When the alert's label set last had records (older states: their latest time stored)."""
    if "seen_ns" in state:
        return _int(state["seen_ns"])
    return max(_int(state.get(k)) for k in ("since_ns", "last_true_ns", "evaluated_ns"))


def _quiet_for(state: Mapping[str, Any], now: int) -> int:
    return now - _seen(state)


def _last_evaluated(state: Mapping[str, Any]) -> int:
    return max(_int(state.get("evaluated_ns")), _seen(state))


class _Episodes:
    """The last episode of each alert in the store's history, read once, when a new alert needs it."""

    def __init__(self, query: Query) -> None:
        self.query = query
        self._found: dict[str, int] | None = None

    def last(self, alert: str) -> int:
        if self._found is None:
            self._found = _stored.last_episodes(self.query)
        return self._found.get(alert, 0)


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
        self.source = rule_set_source(rules)
        self.max_alerts_per_rule = MAX_ALERTS_PER_RULE

    # -- evaluation -------------------------------------------------------------------------
    def evaluate(self) -> list[AlertStatus]:
        """Evaluate every enabled rule once; return the state of every alert of those rules.  States
        of rules no longer configured, and of label sets gone quiet, are removed (module docstring)."""
        started = time.perf_counter()
        now = self.clock()
        stats = EvaluationStats()
        stored = _stored.load_states(self.query)
        silences = list_silences(self.query, now)
        by_rule: dict[str, dict[str, dict[str, Any]]] = {}
        for key, saved in stored.items():
            by_rule.setdefault(str(saved.get("rule")), {})[key] = saved
        gone: list[tuple[str, dict[str, Any], Rule | None, str]] = []  # key, state, rule, reason
        episodes = _Episodes(self.query)
        out: list[AlertStatus] = []
        for rule in self.rules.enabled:
            stats.rules += 1
            values = self.values(rule, now)
            kept_states = by_rule.pop(rule.name, {})
            current: dict[str, tuple[dict[str, str], float | None, bool]] = {}
            for pairs, found in values.items():
                labels = dict(pairs)
                current[_stored.alert_key(rule.name, labels)] = (labels, found, True)
            for key, kept in kept_states.items():
                if key in current:
                    continue
                # The stored seen_ns lags the true one by less than a quarter (see _step): past
                # this, the label set has had no records for stale_after_ns at least.
                quiet_enough = _quiet_for(kept, now) >= stale_after_ns(rule) * 5 // 4
                if quiet_enough and kept.get("state") not in ACTIVE:
                    gone.append((key, kept, rule, "its label set had no records"))
                    continue
                # its group had no records this time: the condition does not hold
                labels = {str(k): str(v) for k, v in (kept.get("labels") or {}).items()}
                current[key] = (labels, None, False)
            keep = self._bounded(rule, current, kept_states, now)
            for key in current.keys() - keep:
                stats.evicted += 1
                if key in kept_states:
                    gone.append((key, kept_states[key], rule, "too many label sets: evicted"))
            for key in sorted(keep):
                labels, number, seen = current[key]
                prev = kept_states.get(key)
                out.append(self._step(rule, key, labels, number, prev, now, silences, stats, seen, episodes))
        for states in by_rule.values():  # rules this rule set does not evaluate
            for key, saved in states.items():
                if self._owns(saved):
                    gone.append((key, saved, None, "its rule is no longer configured"))
                elif now - _last_evaluated(saved) >= ORPHAN_NS:
                    gone.append((key, saved, None, "no rule set evaluated it for a week"))
        if gone:
            self._remove(gone, now, silences, stats)
        if stats.evicted:
            log.warning(
                "alert states: %d label sets beyond %d per rule were evicted (group_by on a key with"
                " many values?)",
                stats.evicted,
                self.max_alerts_per_rule,
            )
        stats.seconds = time.perf_counter() - started
        self.last = stats
        return out

    def _owns(self, saved: Mapping[str, Any]) -> bool:
        """Whether this rule set evaluates the state's rule: it saved it, or (a state saved before
        states noted their rule set) this rule set is a rules file."""
        source = saved.get("source")
        if source is None:
            return not self.source.startswith("<")
        return bool(source == self.source)

    def _bounded(
        self,
        rule: Rule,
        current: Mapping[str, tuple[dict[str, str], float | None, bool]],
        kept_states: Mapping[str, Mapping[str, Any]],
        now: int,
    ) -> set[str]:
        """The label sets of ``rule`` to keep: all of them up to the cap; beyond it those firing or
        pending first, then those crossing now, then the most recently seen."""
        if len(current) <= self.max_alerts_per_rule:
            return set(current)

        def rank(key: str) -> tuple[int, int, str]:
            _, value, seen = current[key]
            prev = kept_states.get(key) or {}
            level = 0 if prev.get("state") in ACTIVE else 1 if rule.crossed(value) else 2
            return (level, -(now if seen else _seen(prev)), key)

        return set(sorted(current, key=rank)[: self.max_alerts_per_rule])

    def _remove(
        self,
        gone: Sequence[tuple[str, dict[str, Any], Rule | None, str]],
        now: int,
        silences: Sequence[Silence],
        stats: EvaluationStats,
    ) -> None:
        """Remove the states in ``gone``; a firing one is resolved first (and a pending one made
        inactive), with the transition recorded and the ``resolved`` notification sent as when its
        condition stops holding."""
        for key, saved, rule, reason in gone:
            state = str(saved.get("state") or "inactive")
            if state not in ACTIVE:
                continue
            new = "resolved" if state == "firing" else "inactive"
            name = str(saved.get("rule"))
            labels = {str(k): str(v) for k, v in (saved.get("labels") or {}).items()}
            episode = int(saved.get("episode") or 0)
            silenced = any(s.matches(name, labels) for s in silences)
            record = {
                "rule": name,
                "labels": labels,
                "previous": state,
                "state": new,
                "time_ns": now,
                "value": None,
                "threshold": _number(saved.get("threshold")) or 0.0,
                "severity": str(saved.get("severity") or "warning"),
                "silenced": silenced,
                "reason": reason,
            }
            stats.transitions += 1
            _stored.claim_transition(self.query, key, episode, new, record)
            if new != "resolved" or not saved.get("notified") or silenced:
                continue
            notify = list(rule.notify) if rule is not None else [str(n) for n in saved.get("notify") or ()]
            if _stored.claim_notification(self.query, key, episode, new) and notify:
                stats.notifications += 1
                self.dispatcher.submit(notify, self._resolved_payload(saved, labels, reason, now))
        stats.dropped += _stored.drop_states(self.query, [key for key, *_ in gone])

    def _resolved_payload(
        self, saved: Mapping[str, Any], labels: Mapping[str, str], reason: str, now: int
    ) -> dict[str, Any]:
        """The ``resolved`` notification of a removed alert, from its stored state: the fields of
        :meth:`payload` (``value`` None) and ``reason``."""
        name = str(saved.get("rule"))
        started = int(saved.get("active_since_ns") or saved.get("since_ns") or now)
        body: dict[str, Any] = {
            "rule": name,
            "state": "resolved",
            "value": None,
            "threshold": _number(saved.get("threshold")) or 0.0,
            "condition": str(saved.get("condition") or ""),
            "metric": str(saved.get("metric") or ""),
            "labels": dict(labels),
            "severity": str(saved.get("severity") or "warning"),
            "summary": str(saved.get("summary") or ""),
            "started_at": iso(started),
            "started_at_ns": started,
            "at": iso(now),
            "ended_at": iso(now),
            "reason": reason,
        }
        if self.server_url:
            body["url"] = f"{self.server_url}/alerts?rule={quote(name, safe='')}"
        return body

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
        seen: bool = True,
        episodes: _Episodes | None = None,
    ) -> AlertStatus:
        if prev:
            st: dict[str, Any] = dict(prev)
        else:  # a new alert, or one dropped earlier: its episodes go on from its history
            first = episodes.last(key) if episodes is not None else 0
            st = {"state": "inactive", "episode": first, "since_ns": now, "seen_ns": now}
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
            st["notify"] = list(rule.notify)  # a resolution after the rule is removed goes there too
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
            metric=rule.metric if rule.metric != ANOMALY else f"anomaly({rule.over})",
            source=self.source,
            evaluated_ns=now,
        )
        # Seen now: noted, but saved only once it moved a quarter of the time to going stale (a
        # save per alert per evaluation would be a write each time for every steady alert), so the
        # stored seen_ns is always less than that quarter behind.
        seen_before = _seen(prev or {})
        if seen:
            st["seen_ns"] = now
        moved = seen and now - seen_before >= stale_after_ns(rule) // 4
        quiet = ("evaluated_ns", "seen_ns")
        if prev is None or moved or any(prev.get(k) != st.get(k) for k in st if k not in quiet):
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
