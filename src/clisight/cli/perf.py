"""``clisight perf``: per operation type count, success rate, mean, p50/p95/p99 and max; the slowest
recent operations, threshold breaches and resource peaks; ``--compare-to`` another time range."""

from __future__ import annotations

import dataclasses
from typing import Any

import click
from rich import box
from rich.table import Table
from rich.text import Text

from clisight.cli._common import console, echo_json, make_filter, open_store, report_options
from clisight.cli._text import clean, seconds, size, when
from clisight.query import Filter, parse_time
from clisight.query.perf import OperationChange, PerfReport, perf_report


def _table(title: str) -> Table:
    return Table(
        title=title,
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
    )


def short_seconds(value: float) -> str:
    """A duration in at most 7 characters: ``850ms``, ``2.41s``, ``3.2m``."""
    if value < 0.001:
        return f"{value * 1e6:.0f}µs"
    if value < 1:
        return f"{value * 1000:.0f}ms"
    if value < 100:
        return f"{value:.2f}s"
    return f"{value / 60:.1f}m"


def change(value: float | None, *, points: bool = False) -> Text:
    if value is None:
        return Text("new" if not points else "-", style="dim")
    if points:
        text = f"{value * 100:+.1f}pt"
        return Text(text, style="red" if value < -0.005 else ("green" if value > 0.005 else ""))
    text = f"{value * 100:+.0f}%"
    return Text(text, style="red" if value > 0.10 else ("green" if value < -0.10 else ""))


def operations_table(report: PerfReport) -> Table:
    table = _table("Operations")
    table.add_column("Operation", overflow="fold", ratio=1, min_width=14)
    for name in ("Count", "OK %", "Mean", "p50", "p95", "p99", "Max"):
        table.add_column(name, justify="right", no_wrap=True)
    for op in report.operations:
        table.add_row(
            Text(clean(op.operation, 80)),
            f"{op.count:,}",
            Text(f"{op.success_rate * 100:.1f}", style="red" if op.success_rate < 0.95 else ""),
            short_seconds(op.mean),
            short_seconds(op.p50),
            short_seconds(op.p95),
            short_seconds(op.p99),
            short_seconds(op.max),
        )
    return table


def changes_table(changes: tuple[OperationChange, ...]) -> Table:
    table = _table("Change against the other range")
    table.add_column("Operation", overflow="fold", ratio=1, min_width=14)
    for name in ("Count", "Δ", "Mean", "Δ", "p95", "Δ", "OK Δ"):
        table.add_column(name, justify="right", no_wrap=True)
    for c in changes:
        op = c.now or c.before
        assert op is not None
        if c.now is None:
            table.add_row(
                Text(clean(op.operation, 80), style="dim"),
                "0",
                f"{c.count_change:+,}",
                "-",
                Text("gone", style="dim"),
                "-",
                "",
                "",
            )
            continue
        table.add_row(
            Text(clean(op.operation, 80)),
            f"{c.now.count:,}",
            f"{c.count_change:+,}",
            short_seconds(c.now.mean),
            change(c.mean_change),
            short_seconds(c.now.p95),
            change(c.p95_change),
            change(c.success_change, points=True),
        )
    return table


def resource_value(metric: str, value: float) -> str:
    if metric == "process.memory.rss":
        return size(int(value))
    if metric.endswith("utilization"):
        return f"{value:.1f}%"
    return f"{value:,.0f}"


def render(report: PerfReport, url: str) -> None:
    out = console()
    out.print(Text.assemble(("clisight perf", "bold"), "  ", (clean(url), "dim")))
    if not report.operations and not report.resources:
        out.print("No timed operations in this range (spans, PerformanceMonitor, log_performance).")
        return
    out.print(operations_table(report))
    if report.changes is not None:
        out.print(changes_table(report.changes))
    if report.slowest:
        table = _table("Slowest recent operations")
        table.add_column("Operation", overflow="fold", ratio=1, min_width=14)
        table.add_column("Took", justify="right", no_wrap=True)
        table.add_column("When", no_wrap=True)
        table.add_column("", no_wrap=True)
        for s in report.slowest:
            table.add_row(
                Text(clean(s.operation, 80)),
                seconds(s.duration),
                when(s.time_ns),
                Text("failed", style="red") if s.failed else "",
            )
        out.print(table)
    table = _table("Threshold breaches")
    if report.breaches:
        table.add_column("Operation", overflow="fold", ratio=1, min_width=14)
        for name in ("Count", "Limit", "Worst", "Last"):
            table.add_column(name, justify="right", no_wrap=True)
        for b in report.breaches:
            unit = "s" if b.unit == "s" else f" {b.unit}"
            table.add_row(
                Text(clean(b.operation, 80)),
                f"{b.count:,}",
                f"{b.threshold:g}{unit}",
                f"{b.worst:.2f}{unit}",
                when(b.last_ns),
            )
        out.print(table)
    else:
        out.print(Text("Threshold breaches: none", style="green"))
    if report.resources:
        table = _table("Resources")
        table.add_column("Metric", overflow="fold", ratio=1, min_width=14)
        for name in ("Samples", "Mean", "Peak"):
            table.add_column(name, justify="right", no_wrap=True)
        for r in report.resources:
            table.add_row(
                r.metric, f"{r.samples:,}", resource_value(r.metric, r.mean), resource_value(r.metric, r.max)
            )
        out.print(table)


def parse_range(text: str) -> tuple[int, int | None]:
    """``A..B`` (two times: 14d..7d) or ``A`` (from A until the report's own --since)."""
    start, sep, end = text.partition("..")
    try:
        since = parse_time(start.strip())
        until = parse_time(end.strip()) if sep and end.strip() else None
    except ValueError as exc:
        raise click.BadParameter(f"{exc}; expected A..B, e.g. 14d..7d", param_hint="--compare-to") from None
    return since, until


EPILOG = """\b
Examples:
  clisight perf --since 24h                  the last day
  clisight perf --since 7d --compare-to 14d..7d   this week against the week before
  clisight perf --json | jq '.operations[0]'
"""


@click.command(epilog=EPILOG)
@click.option("--top", type=click.IntRange(1, 1000), default=15, show_default=True, help="Operations shown.")
@click.option(
    "--compare-to",
    "compare_to",
    metavar="RANGE",
    default=None,
    help="Another range, A..B (14d..7d; B defaults to --since): the change per operation.",
)
@report_options
def perf(
    top: int,
    compare_to: str | None,
    store: str | None,
    as_json: bool,
    since: int | None,
    until: int | None,
    service: str | None,
    session: str | None,
) -> None:
    """Timings per operation type, slowest operations, threshold breaches and resource peaks."""
    flt = make_filter(since, until, service, session)
    other: Filter | None = None
    if compare_to is not None:
        other_since, other_until = parse_range(compare_to)
        if other_until is None:
            other_until = since - 1 if since is not None else None
        other = make_filter(other_since, other_until, service, session)
    with open_store(store).query as query:
        report = perf_report(query, flt, other, top=top)
        url = query.url
    if as_json:
        body: dict[str, Any] = dataclasses.asdict(report)
        body["store"] = url
        echo_json(body)
        return
    render(report, url)
