"""``clisight report``: logs by level and component, errors, slow operations and usage, in one view."""

from __future__ import annotations

import dataclasses
from typing import Any

import click
from rich import box
from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from clisight.cli._common import (
    CommandError,
    OutputPath,
    console,
    echo_json,
    make_filter,
    open_store,
    refuse_output_over_store,
    report_options,
)
from clisight.cli._text import clean, seconds, when
from clisight.cli.errors import STATUS_LABEL, short_title
from clisight.cli.tail import level_style
from clisight.query import Filter, Report


def report_document(report: Report, store: str, flt: Filter) -> dict[str, Any]:
    """The report as one JSON-able document (the same content the tables show, plus totals)."""
    body = dataclasses.asdict(report)
    body["total_logs"] = report.total_logs
    body["errors"]["total"] = report.errors.total
    body["usage"]["llm_cost_usd"] = report.usage.llm_cost_usd
    scope = {"since_ns": flt.since, "until_ns": flt.until, "service": flt.service, "session": flt.session}
    return {"store": store, "filter": scope, **body}


def tokens(count: int) -> str:
    """A token count short enough for a terminal column (``--json`` keeps the exact number)."""
    if count < 100_000:
        return f"{count:,}"
    if count < 1_000_000:
        return f"{count / 1000:.1f}k"
    return f"{count / 1_000_000:,.2f}M"


def _table(title: str, *columns: str) -> Table:
    table = Table(
        title=title,
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
    )
    for index, column in enumerate(columns):
        text_column = index == 0 or column in ("Message", "Status")
        # Numbers and times never wrap; names and messages fold to the room left.
        table.add_column(
            column,
            justify="left" if text_column else "right",
            overflow="fold",
            no_wrap=not text_column,
            min_width=16 if index == 0 else None,
        )
    return table


def logs_section(report: Report) -> RenderableType:
    levels = _table("Logs by level", "Level", "Lines", "Share")
    total = report.total_logs or 1
    for level in report.levels:
        levels.add_row(
            Text(clean(level.level), style=level_style(level.severity)),
            f"{level.count:,}",
            f"{level.count / total:.1%}",
        )
    components = _table("Top components", "Component", "Lines")
    for row in report.components:
        components.add_row(Text(clean(row.key, 50)), f"{row.count:,}")
    return Group(levels, Text(""), components)


def errors_section(report: Report) -> RenderableType:
    errors = report.errors
    if not errors.groups and not errors.log_errors:
        return Text("No errors.", style="green")
    groups = _table("Error groups", "Error", "Here", "All time", "Last seen", "Status")
    for group in errors.groups:
        groups.add_row(
            Text(short_title(group)),  # as `clisight errors` names it: an LLM error by kind and model
            f"{group.count:,}",
            f"{group.total_count:,}",
            when(group.last_seen_ns),
            STATUS_LABEL.get(group.status, clean(group.status)),
        )
    lines = _table("Top error lines", "Component", "Message", "Count", "Last seen")
    for line in errors.log_errors:
        lines.add_row(
            Text(clean(line.component, 30)),
            Text(clean(line.message, 100)),
            f"{line.count:,}",
            when(line.last_seen_ns),
        )
    return Group(groups, Text(""), lines)


def slow_section(report: Report) -> RenderableType:
    if not report.slow_operations:
        return Text("No timed operations (log.log_performance) recorded.", style="dim")
    table = _table("Slowest operations (by p95)", "Operation", "Count", "p50", "p95", "Max", "Total")
    for op in report.slow_operations:
        table.add_row(
            Text(clean(op.operation, 60)),
            f"{op.count:,}",
            seconds(op.p50),
            seconds(op.p95),
            seconds(op.max),
            seconds(op.total),
        )
    return table


def usage_section(report: Report) -> RenderableType:
    usage = report.usage
    totals = usage.sessions
    summary = Text.assemble(
        ("Sessions ", "bold"),
        f"{totals.sessions:,}",
        "   ",
        ("Users ", "bold"),
        f"{totals.users:,}",
        "   ",
        ("Failed ", "bold"),
        (f"{totals.failed:,}", "red" if totals.failed else ""),
    )
    events = _table("Events", "Event", "Count")
    for event in usage.events:
        events.add_row(Text(clean(event.key, 50)), f"{event.count:,}")
    parts: list[RenderableType] = [summary, Text(""), events]
    if usage.llm:
        llm = _table(
            "LLM usage by model",
            "Model",
            "Calls",
            "Input",
            "Output",
            "Cached",
            "Cost $",
            "Avg",
        )
        for model in usage.llm:
            average = model.duration_s / model.requests if model.requests else 0.0
            llm.add_row(
                Text(clean(model.model, 40)),
                f"{model.requests:,}",
                tokens(model.input_tokens),
                tokens(model.output_tokens),
                tokens(model.cache_read_tokens),
                f"{model.cost_usd:,.4f}",
                seconds(average),
            )
        llm.add_section()
        llm.add_row(
            Text("total", style="bold"),
            f"{sum(m.requests for m in usage.llm):,}",
            tokens(sum(m.input_tokens for m in usage.llm)),
            tokens(sum(m.output_tokens for m in usage.llm)),
            tokens(sum(m.cache_read_tokens for m in usage.llm)),
            f"{usage.llm_cost_usd:,.4f}",
            "",
        )
        parts += [Text(""), llm]
    return Group(*parts)


def render_report(out: Console, report: Report, store: str) -> None:
    out.print(Text.assemble(("clisight report", "bold"), "  ", (clean(store), "dim")))
    if report.total_logs == 0 and report.usage.sessions.sessions == 0 and not report.usage.events:
        out.print("No records match these filters (try a wider --since).")
        return
    for title, section in (
        ("Logs", logs_section(report)),
        ("Errors", errors_section(report)),
        ("Slow operations", slow_section(report)),
        ("Usage", usage_section(report)),
    ):
        out.print(Panel(section, title=title, title_align="left", border_style="blue", expand=True))


EPILOG = """\b
Examples:
  clisight report                         everything in the configured store
  clisight report --since 24h --service claude-cli
  clisight report --since 2024-05-01 --until 2024-05-08
  clisight report --json | jq .usage.llm  LLM tokens and cost per model
  clisight report --full                  + performance, traces, anomalies and alerts
  clisight report --full --format html -o report.html
"""


@click.command(epilog=EPILOG)
@click.option(
    "--top",
    type=click.IntRange(1, 1000),
    default=10,
    show_default=True,
    help="Rows per ranking (components, errors, operations).",
)
@click.option(
    "--full",
    is_flag=True,
    help="The comprehensive report: performance, errors, usage, traces, anomalies and alerts.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "markdown", "html", "json"]),
    default=None,
    help="Format of the --full report (default text; --json means json).",
)
@click.option(
    "--output",
    "-o",
    type=OutputPath(dir_okay=False, writable=True),
    default=None,
    help="Write the --full report to this file instead of standard output.",
)
@report_options
def report(
    top: int,
    full: bool,
    fmt: str | None,
    output: str | None,
    store: str | None,
    as_json: bool,
    since: int | None,
    until: int | None,
    service: str | None,
    session: str | None,
) -> None:
    """Summarise logs, errors, timings and usage.

    Logs by level and component, error groups and the most frequent error lines, slow operations
    (p50/p95/max), and usage: events, sessions, users, LLM tokens and cost per model.  With --full,
    the comprehensive report (the one ObservabilityStack.generate_comprehensive_report() prints):
    also operations with breaches and resources, commands and journeys, recent traces, anomalies
    found by the default detector in hourly series, and alert rules.
    """
    flt = make_filter(since, until, service, session)
    if not full and (fmt is not None or output is not None):
        raise click.UsageError("--format and --output go with --full")
    if full:
        _full_report(store, flt, top, "json" if as_json and fmt is None else fmt or "text", output)
        return
    with open_store(store).query as query:
        result = query.report(flt, top=top)
        url = query.url
    if as_json:
        echo_json(report_document(result, url, flt))
    else:
        render_report(console(), result, url)


def _full_report(store: str | None, flt: Filter, top: int, fmt: str, output: str | None) -> None:
    from clisight.stack.render import render
    from clisight.stack.report import build_report

    opened = open_store(store)
    with opened.query as query:
        refuse_output_over_store(output, opened)
        text = render(build_report(query, flt, top), fmt)
    if output is None:
        # The text form escapes control characters itself; the others are escaped for their format.
        click.echo(text, nl=False)
        return
    try:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as error:
        raise CommandError(
            f"cannot write the report to {clean(output)}: {clean(error.strerror or error)}"
        ) from None
    click.echo(f"Wrote the {fmt} report to {clean(output)}", err=True)
