"""The comprehensive report: performance, errors, usage, traces, anomalies and alerts, as data.

One builder (:func:`build_report`) serves both ``ObservabilityStack.generate_comprehensive_report()``
and ``clisight report --full``; :mod:`clisight.stack.render` writes it as ``text``, ``markdown``,
``html`` or ``json``.  Every number is read through the query service (rollups first); anomalies come
from the default detector run over hourly series of the same rollups.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from clisight.alerts import alert_history, alert_statuses
from clisight.detect import DEFAULT_DETECTOR, default_threshold, has_alert_level, make_detector
from clisight.query import Filter, Query, Report, live, perf, traces
from clisight.query import analytics as qa
from clisight.query import errors as qe

MIN_POINTS: Final = 24  # hourly points a series needs before the detector is asked about it
JOURNEY_PREFIX: Final = "journey:"
_ALL: Final = Filter()


@dataclass(frozen=True, slots=True)
class Anomaly:
    """A point of an hourly series the detector scored at or above its threshold."""

    series: str
    time_ns: int
    value: float
    score: float


@dataclass(frozen=True, slots=True)
class AlertState:
    """One alert's state as the alert engine last stored it (``clisight.alerts.AlertStatus``)."""

    rule: str
    labels: str
    state: str
    severity: str
    value: float | None
    threshold: float
    since_ns: int
    silenced: bool
    summary: str
    evaluated_ns: int


@dataclass(frozen=True, slots=True)
class AlertChange:
    """One recorded change of an alert's state (``clisight.alerts.AlertTransition``)."""

    rule: str
    labels: str
    previous: str
    state: str
    time_ns: int
    value: float | None
    threshold: float


@dataclass(frozen=True, slots=True)
class ComprehensiveReport:
    """Everything the report shows, as data (``render(report, "json")`` is this, as JSON)."""

    store: str
    generated_ns: int
    since_ns: int | None
    until_ns: int | None
    service: str | None
    overview: Report
    operations: tuple[perf.OperationPerf, ...]
    breaches: tuple[perf.Breach, ...]
    resources: tuple[perf.ResourcePeak, ...]
    error_groups: tuple[qe.ErrorGroupView, ...]
    commands: tuple[qa.CommandStats, ...]
    journeys: tuple[tuple[str, int], ...]
    traces: tuple[traces.TraceSummary, ...]
    anomalies: tuple[Anomaly, ...]
    series_checked: tuple[tuple[str, int], ...]  # (series, points) given to the detector
    alerts: tuple[AlertState, ...]
    alert_changes: tuple[AlertChange, ...]  # newest first, within the report's range
    notes: tuple[str, ...] = field(default=())  # shown in the summary
    findings: tuple[str, ...] = field(default=())  # shown with the anomalies


def _labels(labels: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))


def alert_states(q: Query) -> tuple[AlertState, ...]:
    """Every alert's stored state, firing first, then pending, then the rest."""
    order = {"firing": 0, "pending": 1}
    found = sorted(alert_statuses(q), key=lambda s: (order.get(s.state, 2), s.rule, _labels(s.labels)))
    return tuple(
        AlertState(
            s.rule,
            _labels(s.labels),
            s.state,
            s.severity,
            s.value,
            s.threshold,
            s.since_ns,
            s.silenced,
            s.summary,
            s.evaluated_ns,
        )
        for s in found
    )


def alert_changes(q: Query, since_ns: int | None, until_ns: int | None, top: int) -> tuple[AlertChange, ...]:
    """The newest ``top`` alert state changes between ``since_ns`` and ``until_ns``."""
    found = alert_history(q, since_ns or 0, limit=top if until_ns is None else 10_000)
    if until_ns is not None:
        found = [t for t in found if t.time_ns <= until_ns][:top]
    return tuple(
        AlertChange(t.rule, _labels(t.labels), t.previous, t.state, t.time_ns, t.value, t.threshold)
        for t in found
    )


def find_anomalies(q: Query, flt: Filter, top: int = 10) -> tuple[list[Anomaly], list[tuple[str, int]]]:
    """The default detector over each hourly series of :func:`clisight.query.live.series` with at
    least :data:`MIN_POINTS` points: the ``top`` highest-scoring points at or above its threshold,
    and which series were checked with how many points."""
    threshold = default_threshold(DEFAULT_DETECTOR)
    found: list[Anomaly] = []
    checked: list[tuple[str, int]] = []
    for name, points in live.series(q, flt, 3600).items():
        if len(points) < MIN_POINTS:
            continue
        checked.append((name, len(points)))
        params = {"alert_level": threshold} if has_alert_level(DEFAULT_DETECTOR) else {}
        detector = make_detector(DEFAULT_DETECTOR, series_length=len(points), **params)
        for time_ns, value in points:
            score = detector.update(time_ns / 1e9, value)
            if score >= threshold:
                found.append(Anomaly(name, time_ns, value, score))
    found.sort(key=lambda a: (-a.score, -a.time_ns))
    return found[:top], checked


def build_report(
    q: Query, flt: Filter = _ALL, top: int = 10, notes: Sequence[str] = (), findings: Sequence[str] = ()
) -> ComprehensiveReport:
    """The report for ``flt`` (see the module doc), ``top`` rows per table.  ``notes`` are extra
    lines for the summary, ``findings`` for the anomalies section (``ObservabilityStack`` passes its
    setup problems and the seed ``AnomalyDetector``'s findings)."""
    sel = flt.selection()
    events = q.usage(flt).events
    journeys = tuple(
        (e.key[len(JOURNEY_PREFIX) :], e.count) for e in events if e.key.startswith(JOURNEY_PREFIX)
    )
    anomalies, checked = find_anomalies(q, flt, top)
    return ComprehensiveReport(
        store=q.url,
        generated_ns=time.time_ns(),
        since_ns=sel.since_ns,
        until_ns=sel.until_ns,
        service=flt.service,
        overview=q.report(flt, top),
        operations=tuple(perf.operations(q, flt)[:top]),
        breaches=tuple(perf.breaches(q, flt, top)),
        resources=tuple(perf.resource_peaks(q, flt)),
        error_groups=tuple(qe.error_groups(q, flt, top=top)),
        commands=tuple(qa.command_stats(q.reader, dataclasses.replace(sel, min_severity=None))[:top]),
        journeys=journeys,
        traces=tuple(traces.recent_traces(q, flt, top)),
        anomalies=tuple(anomalies),
        series_checked=tuple(checked),
        alerts=alert_states(q),
        alert_changes=alert_changes(q, sel.since_ns, sel.until_ns, top),
        notes=tuple(notes),
        findings=tuple(findings),
    )


__all__ = [
    "AlertChange",
    "AlertState",
    "Anomaly",
    "ComprehensiveReport",
    "alert_changes",
    "alert_states",
    "build_report",
    "find_anomalies",
]
