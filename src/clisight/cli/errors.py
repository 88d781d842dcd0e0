"""``clisight errors``: error groups ranked by count or recency with a trend; ``show``, ``resolve``,
``ignore`` and ``reopen`` one group."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import click
from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from clisight.cli._common import (
    TEXT,
    CommandError,
    console,
    echo_json,
    make_filter,
    open_store,
    report_options,
)
from clisight.cli._common import json_option as _json_option
from clisight.cli._common import store_option as _store_option
from clisight.cli._text import clean, when
from clisight.query.errors import ErrorDetail, ErrorGroupView, error_detail, error_groups, set_status
from clisight.query.results import ErrorGroupCount

SPARKS = "▁▂▃▄▅▆▇█"
STATUS_STYLE = {"unresolved": "yellow", "regression": "bold red", "resolved": "green", "ignored": "dim"}
STATUS_LABEL = {"unresolved": "open", "regression": "REGRESSED", "resolved": "resolved", "ignored": "ignored"}
ID_CHARS = 8


def sparkline(counts: tuple[int, ...] | list[int]) -> str:
    """One character per count, the tallest for the largest; a space for zero."""
    top = max(counts, default=0)
    if top <= 0:
        return " " * len(counts)
    return "".join(
        " " if c <= 0 else SPARKS[min(len(SPARKS) - 1, (c * len(SPARKS) - 1) // top)] for c in counts
    )


def ago(time_ns: int | None, now_ns: int | None = None) -> str:
    """``45s``, ``12m``, ``3h``, ``2d`` ago."""
    if time_ns is None:
        return "-"
    delta = max(0, ((now_ns if now_ns is not None else time.time_ns()) - time_ns) // 1_000_000_000)
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if delta >= size:
            return f"{delta // size}{unit}"
    return f"{delta}s"


def short_title(g: ErrorGroupView | ErrorGroupCount) -> str:
    """The group's title; an LLM API error's says its kind and model instead of the message."""
    if g.kind and g.kind.startswith("llm."):
        return clean(f"{g.type}: {g.kind[4:].replace('_', ' ')} · {g.model or 'unknown'}", 80)
    return clean(g.title, 70)


def groups_table(groups: list[ErrorGroupView]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title_justify="left")
    table.add_column("ID", no_wrap=True, style="cyan")
    table.add_column("Error", overflow="fold", ratio=1, min_width=20)
    table.add_column("Count", justify="right", no_wrap=True)
    table.add_column("Sess", justify="right", no_wrap=True)
    table.add_column("Last", justify="right", no_wrap=True)
    table.add_column("Trend", no_wrap=True, style="magenta")
    table.add_column("Status", no_wrap=True)
    for g in groups:
        status = Text(STATUS_LABEL[g.status], style=STATUS_STYLE[g.status])
        table.add_row(
            g.fingerprint[:ID_CHARS],
            Text(short_title(g)),
            f"{g.count:,}",
            f"{g.sessions:,}",
            ago(g.last_seen_ns),
            sparkline(g.trend),
            status,
        )
    return table


def detail_view(detail: ErrorDetail) -> RenderableType:
    g = detail.group
    head = Text.assemble(
        (clean(g.title, 300), "bold"),
        "\n",
        ("id ", "dim"),
        g.fingerprint,
        ("  status ", "dim"),
        (STATUS_LABEL[g.status], STATUS_STYLE[g.status]),
        ("  count ", "dim"),
        f"{g.total:,}",
        ("  sessions ", "dim"),
        f"{g.sessions:,}",
        ("\nfirst ", "dim"),
        when(g.first_seen_ns),
        ("  last ", "dim"),
        when(g.last_seen_ns),
    )
    parts: list[RenderableType] = [head]
    if g.regressed_ns is not None:
        parts.append(Text(f"regression: seen again {when(g.regressed_ns)} after it was resolved", "bold red"))
    latest = detail.latest
    if latest is None:
        parts.append(Text("No occurrence left (raw records past retention).", style="dim"))
        return Group(*parts)
    attrs: dict[str, Any] = latest.get("attributes") or {}
    facts = [
        ("time", when(latest["time_ns"], precise=True)),
        ("service", f"{latest.get('service')} {latest.get('service_version') or ''}".strip()),
        ("command", attrs.get("command")),
        ("session", latest.get("session_id")),
        ("model", attrs.get("llm.model")),
        ("kind", attrs.get("error.kind")),
    ]
    parts.append(Text("\nLatest occurrence", style="bold"))
    for key, value in facts:
        if value:
            parts.append(Text.assemble((f"  {key:<8}", "dim"), clean(value, 200)))
    frames = attrs.get("exception.frames")
    parts.append(Text("\nStack (innermost last)", style="bold"))
    if isinstance(frames, list) and frames:
        for frame in frames[-15:]:
            if not isinstance(frame, dict):
                continue
            style = "" if frame.get("in_app") else "dim"
            where = f"{clean(frame.get('file'), 60)}:{frame.get('line')}"
            parts.append(Text(f"  {clean(frame.get('function'), 40)}  {where}", style=style))
    else:
        for line in str(latest.get("stack") or "").splitlines()[-20:]:
            parts.append(Text("  " + clean(line, 200)))
    parts.append(Text(f"  {clean(latest['type'], 80)}: {clean(latest['message'], 300)}", style="red"))
    chain = attrs.get("exception.chain")
    if isinstance(chain, list):
        for link in chain:
            if isinstance(link, dict):
                word = "caused by" if link.get("relation") == "cause" else "while handling"
                parts.append(
                    Text(
                        f"  {word} {clean(link.get('type'), 60)}: {clean(link.get('message'), 200)}", "yellow"
                    )
                )
    crumbs = attrs.get("breadcrumbs")
    if isinstance(crumbs, list) and crumbs:
        parts.append(Text(f"\nBreadcrumbs (last {min(len(crumbs), 15)} of {len(crumbs)})", style="bold"))
        for crumb in crumbs[-15:]:
            if not isinstance(crumb, dict):
                continue
            moment = when(crumb.get("time_ns"), precise=True)[11:]
            if crumb.get("kind") == "span":
                duration = crumb.get("duration")
                took = f"{duration * 1000:.0f} ms" if isinstance(duration, int | float) else "?"
                text = f"  {moment} span  {clean(crumb.get('name'), 40)} {took}"
            else:
                level = {"PERFORMANCE": "PERF", "WARNING": "WARN", "CRITICAL": "CRIT"}.get(
                    str(crumb.get("level")), clean(crumb.get("level"), 5)
                )
                text = (
                    f"  {moment} {level:<5} {clean(crumb.get('name'), 16)}: {clean(crumb.get('message'), 80)}"
                )
            parts.append(Text(text, style="dim" if crumb.get("kind") == "span" else ""))
    local_vars = attrs.get("locals")
    if isinstance(local_vars, dict) and local_vars:
        parts.append(Text("\nLocals", style="bold"))
        for name, value in list(local_vars.items())[:30]:
            parts.append(Text(f"  {clean(name, 30)} = {clean(value, 120)}"))
    return Group(*parts)


EPILOG = """\b
Examples:
  clisight errors                      groups by count, with a trend
  clisight errors --sort recent --since 24h
  clisight errors show 3fa9c1d2        latest occurrence, stack, breadcrumbs
  clisight errors resolve 3fa9c1d2     a later occurrence in a newer version reopens it
"""


@click.group(invoke_without_command=True, epilog=EPILOG)
@click.option(
    "--sort", type=click.Choice(["count", "recent"]), default="count", show_default=True, help="Ranking."
)
@click.option("--top", type=click.IntRange(1, 1000), default=20, show_default=True, help="Groups shown.")
@report_options
@click.pass_context
def errors(
    ctx: click.Context,
    sort: str,
    top: int,
    store: str | None,
    as_json: bool,
    since: int | None,
    until: int | None,
    service: str | None,
    session: str | None,
) -> None:
    """Error groups: count, sessions affected, last seen, trend and status."""
    if ctx.invoked_subcommand is not None:
        return
    flt = make_filter(since, until, service, session)
    with open_store(store).query as query:
        groups = error_groups(query, flt, order=sort, top=top)
    if as_json:
        echo_json([dataclasses.asdict(g) for g in groups])
        return
    out = console()
    if not groups:
        out.print("No errors recorded in this range.", style="green")
        return
    title = "by count" if sort == "count" else "most recent first"
    out.print(Text.assemble(("Error groups ", "bold"), (title, "dim")))
    out.print(groups_table(groups))
    out.print(Text("clisight errors show ID: latest occurrence, stack and breadcrumbs", style="dim"))


def _inherited(ctx: click.Context, name: str, value: Any) -> Any:
    """A subcommand's option, else the same option given before it (``errors --store X show ID``)."""
    if value is None or value is False:
        parent = ctx.parent.params.get(name) if ctx.parent is not None else None
        return parent if parent is not None else value
    return value


@errors.command()
@click.argument("ident", type=TEXT, metavar="ID")
@_store_option
@_json_option
@click.pass_context
def show(ctx: click.Context, ident: str, store: str | None, as_json: bool) -> None:
    """The group ID (a fingerprint or its first 6+ characters): latest occurrence in full."""
    store, as_json = _inherited(ctx, "store", store), _inherited(ctx, "as_json", as_json)
    with open_store(store).query as query:
        detail = error_detail(query, ident)
    if detail is None:
        raise CommandError(_no_group(ident))
    if as_json:
        echo_json({"group": dataclasses.asdict(detail.group), "latest": detail.latest})
        return
    console().print(detail_view(detail))


def _no_group(ident: str) -> str:
    shown = f"no error group {clean(ident)!r}"
    if len(ident.strip()) < 6:
        return f"{shown}: give at least the first 6 characters of an ID `clisight errors` lists"
    return f"{shown}: no ID `clisight errors` lists starts with it, or more than one does"


def _status_command(status: str, help_text: str) -> click.Command:
    @click.command(
        name={"resolved": "resolve", "ignored": "ignore", "unresolved": "reopen"}[status], help=help_text
    )
    @click.argument("ident", type=TEXT, metavar="ID")
    @_store_option
    @click.pass_context
    def command(ctx: click.Context, ident: str, store: str | None) -> None:
        with open_store(_inherited(ctx, "store", store), writes=True).query as query:
            saved = set_status(query, ident, status)
        if saved is None:
            raise CommandError(_no_group(ident))
        click.echo(f"{saved['fingerprint'][:ID_CHARS]} {status}")

    return command


errors.add_command(
    _status_command(
        "resolved", "Mark group ID resolved; an occurrence in a newer version reopens it as a regression."
    )
)
errors.add_command(
    _status_command("ignored", "Hide group ID from the unresolved ones (it is still counted).")
)
errors.add_command(_status_command("unresolved", "Mark group ID unresolved again."))
