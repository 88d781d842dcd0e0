"""The comprehensive report (:mod:`clisight.stack.report`) as ``text``, ``markdown``, ``html`` or ``json``.

All four formats are drawn from one small document model (:func:`sections`: titled sections of lines
and tables of strings).  Stored values are attacker-controlled (any program, any OTLP client writes
them): the text form shows control characters as escapes, the markdown form escapes markdown and
HTML, the HTML form is escaped with ``html.escape``, carries no script and a strict CSP.  The JSON
form is the data itself, every non-ASCII character escaped.
"""

from __future__ import annotations

import dataclasses
import html
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from clisight._terminal import clean, seconds
from clisight.detect import DEFAULT_DETECTOR
from clisight.stack.report import MIN_POINTS, ComprehensiveReport

FORMATS: Final = ("text", "markdown", "html", "json")
_CSP: Final = "default-src 'none'; style-src 'unsafe-inline'"


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
    """``seconds``, which goes down to microseconds (a report of fast steps should not read "0 ms")."""
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
    firing = sum(a.state == "firing" and not a.silenced for a in report.alerts)
    evaluated = max((a.evaluated_ns for a in report.alerts), default=0)
    alert_lines: tuple[str, ...] = (
        (
            f"Alerts: {len(report.alerts)}; firing: {firing}; last evaluated: {_when(evaluated)}",
            *(f"Firing: {a.rule}: {a.summary}" for a in report.alerts if a.state == "firing" and a.summary),
        )
        if report.alerts
        else ("No alert rule has been evaluated on this store (`clisight alerts check` evaluates them).",)
    )
    alert_tables: list[Table] = []
    if report.alerts:
        alert_tables.append(
            Table(
                "Alert states",
                ("Alert", "Labels", "State", "Severity", "Value", "Threshold", "Since"),
                tuple(
                    (
                        a.rule,
                        a.labels,
                        a.state + (" (silenced)" if a.silenced else ""),
                        a.severity,
                        "-" if a.value is None else f"{a.value:.4g}",
                        f"{a.threshold:.4g}",
                        _when(a.since_ns),
                    )
                    for a in report.alerts
                ),
                frozenset({4, 5}),
            )
        )
    if report.alert_changes:
        alert_tables.append(
            Table(
                "Recent changes",
                ("Time", "Alert", "Labels", "From", "To", "Value"),
                tuple(
                    (
                        _when(c.time_ns),
                        c.rule,
                        c.labels,
                        c.previous,
                        c.state,
                        "-" if c.value is None else f"{c.value:.4g}",
                    )
                    for c in report.alert_changes
                ),
                frozenset({5}),
            )
        )
    out.append(Section("Alerts", alert_lines, tuple(alert_tables)))
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


__all__ = ["FORMATS", "Section", "Table", "document", "render", "sections"]
