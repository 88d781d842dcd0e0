"""Alerting: rules over latency, error rate, counts, cost, tokens, resources and anomaly scores,
with pending periods, silences and notifiers, as Prometheus + Alertmanager do it.

Stable API (the dashboard and ``clisight top`` build on it; names and fields are not renamed):

``load_rules(path) -> RuleSet``
    Read and check a TOML rules file (``docs/alerts.md``); a file with any mistake raises
    :class:`clisight.exceptions.AlertRulesError` (a ``ConfigError``) naming file, line and reason.
    ``parse_rules(text, path)`` does the same for a text.  ``RuleSet.rules`` holds every
    :class:`Rule` (the seed's default rules included, ``enabled`` or not), ``RuleSet.enabled`` the
    ones evaluated.

``AlertEngine(query, rules, clock=time.time_ns, *, notifiers=None, server_url="")``
    ``evaluate() -> list[AlertStatus]``: one evaluation of every enabled rule (one store aggregate
    over the rollups per rule), storing states and transitions and sending notifications (in the
    background: ``flush(timeout)`` / ``close(timeout)`` wait for them).  ``clock`` returns ns.
    States of rules no longer in ``rules`` (deleted, renamed, disabled) are resolved and removed,
    as are label sets gone quiet, and a rule keeps at most 1000 (``docs/alerts.md``); ``last``
    counts what the latest evaluation did (``transitions``, ``notifications``, ``dropped``,
    ``evicted``).

``alert_statuses(query) -> list[AlertStatus]``
    The last stored state of every alert (firing first).  :class:`AlertStatus` fields: ``rule``,
    ``labels`` (dict), ``state`` (``inactive``, ``pending``, ``firing``, ``resolved``), ``value``
    (float or None: no data), ``threshold``, ``since_ns`` (entered this state), ``silenced``,
    ``severity``; also ``condition`` (text), ``summary``, ``active_since_ns``, ``evaluated_ns``
    and ``to_dict()``.

``alert_history(query, since_ns=0, limit=100) -> list[AlertTransition]``
    Transitions, newest first: ``rule``, ``labels``, ``previous``, ``state``, ``time_ns``,
    ``value``, ``threshold``, ``severity``, ``silenced``, ``reason`` (empty, or why an alert was
    resolved other than by its value: its rule removed, its label set evicted); ``to_dict()``.

``list_silences(query, now_ns=None) -> list[Silence]``; ``add_silence(query, rule, matchers,
until_ns, comment="", author="") -> Silence``; ``remove_silence(query, silence_id) -> bool``
    :class:`Silence` fields: ``id``, ``rule`` (None: every rule), ``matchers`` (label -> value),
    ``until_ns``, ``comment``, ``author``, ``created_ns``; ``active(now_ns)``, ``matches(rule,
    labels)``, ``to_dict()``.  A silenced alert changes state but does not notify.

``AlertingSystem(logger=None, performance_monitor=None)``
    The seed's class: ``alert_thresholds`` and ``check_alerts()`` / ``check_thresholds(metrics)``,
    evaluated through the engine's default rules.

The per-minute series the ``anomaly`` metric scores is
:func:`clisight.query.series.metric_series` ``(query, metric, where, start_ns, end_ns, step_ns)``.
"""

from __future__ import annotations

from clisight.alerts.engine import (
    AlertEngine,
    AlertStatus,
    AlertTransition,
    alert_history,
    alert_statuses,
)
from clisight.alerts.notifiers import Dispatcher, Notifier
from clisight.alerts.rules import NotifierSpec, Rule, RuleSet, load_rules, parse_duration, parse_rules
from clisight.alerts.silences import Silence, add_silence, list_silences, remove_silence
from clisight.alerts.system import AlertingSystem

__all__ = [
    "AlertEngine",
    "AlertStatus",
    "AlertTransition",
    "AlertingSystem",
    "Dispatcher",
    "Notifier",
    "NotifierSpec",
    "Rule",
    "RuleSet",
    "Silence",
    "add_silence",
    "alert_history",
    "alert_statuses",
    "list_silences",
    "load_rules",
    "parse_duration",
    "parse_rules",
    "remove_silence",
]
