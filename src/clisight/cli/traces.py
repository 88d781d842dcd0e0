"""``clisight traces``: recent traces, and ``clisight traces show ID``: one trace as a waterfall."""

from __future__ import annotations

import dataclasses
import time

import click
from rich import box
from rich.table import Table
from rich.text import Text

from clisight.cli._common import (
    NO_DATA_HINT,
    CommandError,
    console,
    echo_json,
    json_option,
    make_filter,
    open_store,
    report_options,
    store_option,
)
from clisight.cli._text import clean, counted, seconds, when
from clisight.query import Query
from clisight.query.traces import SpanNode, recent_traces, trace_tree

ERROR_STATUS = 17


@click.group(invoke_without_command=True)
@report_options
@click.option(
    "--limit", "-n", type=click.IntRange(1, 1000), default=20, show_default=True, help="Traces shown."
)
@click.pass_context
def traces(
    ctx: click.Context,
    store: str | None,
    as_json: bool,
    since: int | None,
    until: int | None,
    service: str | None,
    session: str | None,
    limit: int,
) -> None:
    """Recent traces: root span, service, start, duration, spans and errors.

    A trace is every span sharing a trace id, across the processes that wrote them.

    \b
    Examples:
      clisight traces                       the 20 most recent traces
      clisight traces --since 1h --service mycli
      clisight traces show 4bf92f3577b34da6a3ce929d0e0e4736
    """
    if ctx.invoked_subcommand is not None:
        ctx.obj = {"store": store}  # `clisight traces --store X show ID` reads X too
        return
    flt = make_filter(since, until, service, session)
    opened = open_store(store)
    try:
        found = recent_traces(opened.query, flt, limit)
    finally:
        opened.query.close()
    if as_json:
        echo_json([{**dataclasses.asdict(t), "duration_s": t.duration_s} for t in found])
        return
    if not found:
        click.echo("No traces." if opened.exists else NO_DATA_HINT)
        return
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("Trace", no_wrap=True)
    table.add_column("Root span", overflow="fold", min_width=12, ratio=2)
    table.add_column("Service", overflow="fold", min_width=6, ratio=1)
    for column in ("Started", "Took", "Spans", "Errors"):
        table.add_column(column, justify="right", no_wrap=True)
    today = time.strftime("%Y-%m-%d")
    for t in found:
        started = when(t.start_ns)
        table.add_row(
            t.trace_id[:8],
            clean(t.root, 60),
            clean(t.service, 30),
            started[11:] if started.startswith(today) else started[5:16],  # 23:29:33, or 11-28 23:29
            seconds(t.duration_s),
            f"{t.spans:,}",
            Text(str(t.errors), style="red") if t.errors else "0",
        )
    console().print(table)
    click.echo("`clisight traces show ID` draws one (the first characters of the id are enough).")


@traces.command()
@click.argument("trace_id")
@store_option
@json_option
@click.pass_context
def show(ctx: click.Context, trace_id: str, store: str | None, as_json: bool) -> None:
    """One trace's spans as a waterfall: nesting, start offset, duration, errors.

    \b
    Examples:
      clisight traces show 4bf92f3577b34da6a3ce929d0e0e4736
      clisight traces show 4bf92f35 --json
    """
    if store is None and isinstance(ctx.obj, dict):
        store = ctx.obj.get("store")
    opened = open_store(store)
    try:
        full = _resolve(opened.query, trace_id)
        spans = trace_tree(opened.query, full)
    finally:
        opened.query.close()
    if not spans:
        raise CommandError(f"no spans of trace {clean(trace_id)!r} in the store")
    if as_json:
        echo_json(
            {
                "trace_id": full,
                "spans": [{**dataclasses.asdict(s), "duration_s": s.duration_s} for s in spans],
            }
        )
        return
    click.echo(f"trace {full}: {counted(len(spans), 'span')}")
    out = console()
    out.print(waterfall(spans, out.width))  # the width it renders in (80 into a pipe), not a guess


def _resolve(query: Query, prefix: str) -> str:
    """A full trace id from a prefix of at least 6 hex characters, among recent traces."""
    text = prefix.strip().lower()
    if len(text) == 32:
        return text
    if len(text) < 6 or any(c not in "0123456789abcdef" for c in text):
        raise click.BadParameter(
            "a trace id is 32 hex characters (or at least the first 6)", param_hint="TRACE_ID"
        )
    matches = {t.trace_id for t in recent_traces(query, limit=1000) if t.trace_id.startswith(text)}
    if len(matches) > 1:
        raise CommandError(f"{len(matches)} recent traces start with {text!r}: give more of the id")
    if not matches:
        raise CommandError(f"no recent trace starts with {text!r}")
    return matches.pop()


def waterfall(spans: list[SpanNode], width: int) -> Table:
    """Name (indented by depth), offset from the trace's start, duration, and a bar on the time axis."""
    start = min(s.start_ns for s in spans)
    total = max(max(s.end_ns for s in spans) - start, 1)
    bar_width = max(10, min(60, width - 52))
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("Span", overflow="fold", max_width=max(16, width - bar_width - 22))
    table.add_column("Start", justify="right", no_wrap=True)
    table.add_column("Duration", justify="right", no_wrap=True)
    table.add_column("", no_wrap=True, width=bar_width)
    for span in spans:
        left = int((span.start_ns - start) / total * bar_width)
        length = max(1, round((span.end_ns - span.start_ns) / total * bar_width))
        failed = span.status >= ERROR_STATUS
        bar = Text(" " * min(left, bar_width - 1)) + Text(
            "█" * min(length, bar_width - min(left, bar_width - 1)), style="red" if failed else "cyan"
        )
        name = Text("  " * span.depth + clean(span.name, 60), style="red" if failed else "")
        if span.service and span.depth == 0:
            name.append(f"  {clean(span.service, 20)}", style="dim")
        table.add_row(name, seconds((span.start_ns - start) / 1e9), seconds(span.duration_s), bar)
    return table
