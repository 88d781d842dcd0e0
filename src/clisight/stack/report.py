"""The comprehensive report: performance, errors, usage, traces, anomalies and alerts in one document.

One builder (:func:`build_report`) serves both ``ObservabilityStack.generate_comprehensive_report()``
and ``clisight report --full``; :func:`render` writes it as ``text``, ``markdown``, ``html`` or
``json``.  Every number is read through the query service (rollups first); anomalies come from the
default detector run over hourly series of the same rollups.

Stored values are attacker-controlled (any program, any OTLP client writes them): the text form
shows control characters as escapes, the markdown form escapes markdown and HTML, the HTML form is
escaped with ``html.escape`` and carries no script.  The JSON form is the data itself.
"""

from __future__ import annotations

import dataclasses
import html
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from clisight._terminal import clean, seconds
from clisight.detect import DEFAULT_DETECTOR, default_threshold, has_alert_level, make_detector
from clisight.query import Filter, Query, Report, live, perf, traces
from clisight.query import analytics as qa
from clisight.query import errors as qe

FORMATS: Final = ("text", "markdown", "html", "json")
MIN_POINTS: Final = 24  # hourly points a series needs before the detector is asked about it
JOURNEY_PREFIX: Final = "journey:"
_ALL: Final = Filter()
_CSP: Final = "default-src 'none'; style-src 'unsafe-inline'"


@dataclass(frozen=True, slots=True)
class Anomaly:
    """A point of an hourly series the detector scored at or above its threshold."""

    series: str
    time_ns: int
    value: float
    score: float


@dataclass(frozen=True, slots=True)
class AlertState:
    """One alert rule's state (``clisight.alerts``), as the report shows it."""

    rule: str
    labels: str
    state: str
    severity: str
    value: float | None
    threshold: float | None
    since_ns: int | None
    silenced: bool


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
    alerts: tuple[AlertState, ...] | None  # None: clisight.alerts is not available
    notes: tuple[str, ...] = field(default=())  # shown in the summary
    findings: tuple[str, ...] = field(default=())  # shown with the anomalies


def _labels(labels: Any) -> str:
    if isinstance(labels, dict):
        return ", ".join(f"{k}={v}" for k, v in sorted(labels.items(), key=lambda kv: str(kv[0])))
    return "" if labels is None else str(labels)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def alert_states(q: Query) -> tuple[AlertState, ...] | None:
    """Every alert rule's state, firing first; None when ``clisight.alerts`` is not available."""
    try:
        from clisight.alerts import alert_statuses  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    found = [
        AlertState(
            str(getattr(s, "rule", "")),
            _labels(getattr(s, "labels", None)),
            str(getattr(s, "state", "")),
            str(getattr(s, "severity", "") or ""),
            _number(getattr(s, "value", None)),
            _number(getattr(s, "threshold", None)),
            getattr(s, "since_ns", None) if isinstance(getattr(s, "since_ns", None), int) else None,
            bool(getattr(s, "silenced", False)),
        )
        for s in alert_statuses(q)
    ]
    order = {"firing": 0, "pending": 1}
    found.sort(key=lambda a: (order.get(a.state, 2), a.rule, a.labels))
    return tuple(found)


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
        notes=tuple(notes),
        findings=tuple(findings),
    )


# -- a small document model the four formats share ------------------------------------------------


@dataclass(frozen=True, slots=True)
class Table:
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: frozenset[int] = frozenset()  # right-aligned columns


@dataclass(frozen=True, slots=True)
class Section:
    title: str
    lines: tuple[str, ...] = ()
    tables: tuple[Table, ...] = ()


def _duration(value: float) -> str:
    """``seconds`` down to microseconds (a report of fast steps should not read "0 ms")."""
    if 0 < value < 0.001:
        return f"{value * 1e6:.0f} µs"
    return seconds(value)


def _when(time_ns: int | None) -> str:
    if time_ns is None:
        return "-"
    return datetime.fromtimestamp(time_ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _money(value: float) -> str:
    return f"${value:,.4f}"


def sections(report: ComprehensiveReport) -> list[Section]:
    """The report as titled sections of lines and tables (every cell a string)."""
    ov = report.overview
    usage = ov.usage
    until = _when(report.until_ns) if report.until_ns is not None else "now"
    scope = f"{_when(report.since_ns)} to {until}" if report.since_ns is not None else "all time"
    out = [
        Section(
            "Summary",
            (
                f"Store: {report.store}",
                f"Range: {scope}; service: {report.service or 'all'}",
                f"Generated: {_when(report.generated_ns)}",
                f"Logs: {ov.total_logs:,}; errors: {ov.errors.total:,}; operations: "
                f"{sum(o.count for o in report.operations):,} (top {len(report.operations)} types)",
                f"Sessions: {usage.sessions.sessions:,}; users: {usage.sessions.users:,}; "
                f"failed sessions: {usage.sessions.failed:,}; LLM cost: {_money(usage.llm_cost_usd)}",
                *report.notes,
            ),
        )
    ]
    perf_tables = [
        Table(
            "Operations",
            ("Operation", "Count", "OK %", "Mean", "p95", "Max"),
            tuple(
                (
                    o.operation,
                    f"{o.count:,}",
                    f"{o.success_rate * 100:.1f}",
                    _duration(o.mean),
                    _duration(o.p95),
                    _duration(o.max),
                )
                for o in report.operations
            ),
            frozenset({1, 2, 3, 4, 5}),
        )
    ]
    if report.breaches:
        perf_tables.append(
            Table(
                "Threshold breaches",
                ("Operation", "Count", "Limit", "Worst", "Last"),
                tuple(
                    (
                        b.operation,
                        f"{b.count:,}",
                        f"{b.threshold:g} {b.unit}",
                        f"{b.worst:.3g} {b.unit}",
                        _when(b.last_ns),
                    )
                    for b in report.breaches
                ),
                frozenset({1, 2, 3}),
            )
        )
    if report.resources:
        perf_tables.append(
            Table(
                "Resources",
                ("Metric", "Samples", "Mean", "Peak"),
                tuple(
                    (r.metric, f"{r.samples:,}", _resource(r.unit, r.mean), _resource(r.unit, r.max))
                    for r in report.resources
                ),
                frozenset({1, 2, 3}),
            )
        )
    out.append(
        Section(
            "Performance",
            () if report.operations else ("No timed operations recorded.",),
            tuple(perf_tables),
        )
    )
    err_tables = []
    if report.error_groups:
        err_tables.append(
            Table(
                "Error groups",
                ("Error", "Count", "All time", "Status", "Last seen"),
                tuple(
                    (g.title, f"{g.count:,}", f"{g.total:,}", g.status, _when(g.last_seen_ns))
                    for g in report.error_groups
                ),
                frozenset({1, 2}),
            )
        )
    if ov.errors.log_errors:
        err_tables.append(
            Table(
                "Top error lines",
                ("Component", "Message", "Count", "Last seen"),
                tuple(
                    (e.component, e.message, f"{e.count:,}", _when(e.last_seen_ns))
                    for e in ov.errors.log_errors
                ),
                frozenset({2}),
            )
        )
    out.append(Section("Errors", () if err_tables else ("No errors.",), tuple(err_tables)))
    usage_tables = []
    if report.commands:
        usage_tables.append(
            Table(
                "Commands",
                ("Command", "Runs", "Failed", "p50", "p95"),
                tuple(
                    (c.command, f"{c.runs:,}", f"{c.failed:,}", _duration(c.p50), _duration(c.p95))
                    for c in report.commands
                ),
                frozenset({1, 2, 3, 4}),
            )
        )
    if report.journeys:
        usage_tables.append(
            Table(
                "User journey steps",
                ("Step", "Count"),
                tuple((s, f"{n:,}") for s, n in report.journeys),
                frozenset({1}),
            )
        )
    if usage.events:
        usage_tables.append(
            Table(
                "Events",
                ("Event", "Count"),
                tuple((e.key, f"{e.count:,}") for e in usage.events[:20]),
                frozenset({1}),
            )
        )
    if usage.llm:
        usage_tables.append(
            Table(
                "LLM usage by model",
                ("Model", "Calls", "Input", "Output", "Cost"),
                tuple(
                    (
                        m.model,
                        f"{m.requests:,}",
                        f"{m.input_tokens:,}",
                        f"{m.output_tokens:,}",
                        _money(m.cost_usd),
                    )
                    for m in usage.llm
                ),
                frozenset({1, 2, 3, 4}),
            )
        )
    out.append(
        Section(
            "Usage",
            (
                f"Sessions: {usage.sessions.sessions:,}; users: {usage.sessions.users:,}; "
                f"failed: {usage.sessions.failed:,}",
            ),
            tuple(usage_tables),
        )
    )
    out.append(
        Section(
            "Traces",
            () if report.traces else ("No traces recorded.",),
            (
                Table(
                    "Recent traces",
                    ("Trace", "Root", "Service", "Spans", "Errors", "Duration", "Start"),
                    tuple(
                        (
                            t.trace_id[:16],
                            t.root,
                            t.service,
                            f"{t.spans:,}",
                            f"{t.errors:,}",
                            _duration(t.duration_s),
                            _when(t.start_ns),
                        )
                        for t in report.traces
                    ),
                    frozenset({3, 4, 5}),
                ),
            )
            if report.traces
            else (),
        )
    )
    checked = ", ".join(f"{name} ({n} h)" for name, n in report.series_checked)
    anomaly_lines = [
        f"Detector: {DEFAULT_DETECTOR} on hourly series"
        + (f": {checked}" if checked else f" (none has the {MIN_POINTS} hours of history it needs yet)"),
    ]
    if report.series_checked and not report.anomalies:
        anomaly_lines.append("No anomalies found.")
    anomaly_lines += list(report.findings)
    out.append(
        Section(
            "Anomalies",
            tuple(anomaly_lines),
            (
                Table(
                    "Anomalous hours",
                    ("Series", "Hour", "Value", "Score"),
                    tuple(
                        (a.series, _when(a.time_ns), f"{a.value:.4g}", f"{a.score:.3f}")
                        for a in report.anomalies
                    ),
                    frozenset({2, 3}),
                ),
            )
            if report.anomalies
            else (),
        )
    )
    if report.alerts is None:
        alert_lines: tuple[str, ...] = ("Alert rules are not available in this installation.",)
        alert_tables: tuple[Table, ...] = ()
    else:
        firing = sum(a.state == "firing" and not a.silenced for a in report.alerts)
        alert_lines = (f"Rules: {len(report.alerts)}; firing: {firing}",)
        alert_tables = (
            (
                Table(
                    "Alert rules",
                    ("Rule", "Labels", "State", "Severity", "Value", "Threshold", "Since"),
                    tuple(
                        (
                            a.rule,
                            a.labels,
                            a.state + (" (silenced)" if a.silenced else ""),
                            a.severity,
                            "-" if a.value is None else f"{a.value:.4g}",
                            "-" if a.threshold is None else f"{a.threshold:.4g}",
                            _when(a.since_ns),
                        )
                        for a in report.alerts
                    ),
                    frozenset({4, 5}),
                ),
            )
            if report.alerts
            else ()
        )
    out.append(Section("Alerts", alert_lines, alert_tables))
    return out


def _resource(unit: str, value: float) -> str:
    if unit == "By":
        return f"{value / 1_048_576:.1f} MB"
    return f"{value:.1f}%" if unit == "%" else f"{value:.0f}"


# -- renderers ------------------------------------------------------------------------------------

TEXT_CELL: Final = 60


def _text_table(table: Table) -> list[str]:
    rows = [tuple(clean(c, TEXT_CELL) for c in row) for row in table.rows]
    widths = [
        max(len(col), *(len(r[i]) for r in rows)) if rows else len(col) for i, col in enumerate(table.columns)
    ]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(widths[i]) if i in table.numeric else c.ljust(widths[i]) for i, c in enumerate(cells)
        ).rstrip()

    return [table.title, line(table.columns), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]


def render_text(report: ComprehensiveReport) -> str:
    """Plain text for a terminal or a file: no colour, control characters escaped."""
    out = ["clisight comprehensive report", ""]
    for section in sections(report):
        out += [section.title, "=" * len(section.title)]
        out += [clean(line, 300) for line in section.lines]
        for table in section.tables:
            out += ["", *_text_table(table)]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


_MD_SPECIAL: Final = re.compile(r"([\\`*_{}\[\]()#+!|<>~])")


def _md(value: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", clean(value, 200))


def render_markdown(report: ComprehensiveReport) -> str:
    """GitHub-flavoured markdown; every stored value escaped (no links, HTML or emphasis from data)."""
    out = ["# clisight comprehensive report", ""]
    for section in sections(report):
        out += [f"## {section.title}", ""]
        out += [f"- {_md(line)}" for line in section.lines]
        for table in section.tables:
            out += ["", f"### {table.title}", ""]
            out.append("| " + " | ".join(table.columns) + " |")
            out.append(
                "|"
                + "|".join("---:" if i in table.numeric else "---" for i in range(len(table.columns)))
                + "|"
            )
            out += ["| " + " | ".join(_md(c) for c in row) + " |" for row in table.rows]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


_CSS: Final = (
    "body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
    "table{border-collapse:collapse;margin:.5em 0 1.5em}"
    "th,td{border-bottom:1px solid #ddd;padding:.2em .8em;text-align:left}"
    "td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}"
    "h2{border-bottom:2px solid #4a6fa5;padding-bottom:.2em}"
)


def _num(index: int, table: Table) -> str:
    return ' class="n"' if index in table.numeric else ""


def render_html(report: ComprehensiveReport) -> str:
    """One self-contained HTML page (inline style, no script, no external resource); all escaped."""
    esc = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        "<title>clisight comprehensive report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>clisight comprehensive report</h1>",
    ]
    for section in sections(report):
        out.append(f"<h2>{esc(section.title)}</h2>")
        if section.lines:
            out.append("<ul>" + "".join(f"<li>{esc(clean(line))}</li>" for line in section.lines) + "</ul>")
        for table in section.tables:
            out.append(f"<h3>{esc(table.title)}</h3><table><thead><tr>")
            out += [f"<th{_num(i, table)}>{esc(c)}</th>" for i, c in enumerate(table.columns)]
            out.append("</tr></thead><tbody>")
            for row in table.rows:
                cells = "".join(f"<td{_num(i, table)}>{esc(clean(c))}</td>" for i, c in enumerate(row))
                out.append(f"<tr>{cells}</tr>")
            out.append("</tbody></table>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def document(report: ComprehensiveReport) -> dict[str, Any]:
    """The report as one JSON-able object (the data, not its display)."""
    body = dataclasses.asdict(report)
    body["overview"]["total_logs"] = report.overview.total_logs
    body["overview"]["usage"]["llm_cost_usd"] = report.overview.usage.llm_cost_usd
    body["journeys"] = [{"step": s, "count": n} for s, n in report.journeys]
    body["series_checked"] = [{"series": s, "points": n} for s, n in report.series_checked]
    body["detector"] = DEFAULT_DETECTOR
    return body


def render_json(report: ComprehensiveReport) -> str:
    """JSON, every non-ASCII character escaped (safe to print to a terminal)."""
    return json.dumps(document(report), indent=2, ensure_ascii=True, default=str) + "\n"


def render(report: ComprehensiveReport, fmt: str = "text") -> str:
    """The report in one of :data:`FORMATS`; ValueError for another format."""
    renderers = {"text": render_text, "markdown": render_markdown, "html": render_html, "json": render_json}
    try:
        return renderers[fmt](report)
    except KeyError:
        raise ValueError(f"unknown report format {fmt!r}: expected one of {', '.join(FORMATS)}") from None


__all__ = [
    "FORMATS",
    "AlertState",
    "Anomaly",
    "ComprehensiveReport",
    "alert_states",
    "build_report",
    "document",
    "find_anomalies",
    "render",
    "sections",
]
