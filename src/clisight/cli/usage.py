"""``clisight usage``: LLM tokens and cost per day, month, session and 5-hour block (ccusage-style),
and ``clisight usage import-claude-code``."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from rich import box
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from clisight import _config, _prices
from clisight.cli import _claude_code
from clisight.cli._common import (
    TEXT,
    TIME,
    CommandError,
    console,
    echo_json,
    make_filter,
    open_store,
    resolve_store_url,
    store_option,
)
from clisight.cli._text import clean, counted
from clisight.query import Filter
from clisight.query import usage as usage_query

EPILOG = """\b
Examples:
  clisight usage import-claude-code           read Claude Code's transcripts (incremental)
  clisight usage daily --since 7d --breakdown tokens and cost per day, per model
  clisight usage blocks                       5-hour billing blocks, the active one's burn rate
  clisight usage session --json               per session, as JSON
"""


def _options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for decorator in reversed(
        [
            store_option,
            click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables."),
            click.option(
                "--since", type=TIME, default=None, help="Only usage at or after TIME (7d, 2025-06-01)."
            ),
            click.option("--until", type=TIME, default=None, help="Only usage at or before TIME."),
            click.option(
                "--service",
                type=TEXT,
                default=None,
                metavar="NAME",
                help="Only this service (claude-code...).",
            ),
            click.option("--breakdown", is_flag=True, help="One line per model under each row."),
        ]
    ):
        fn = decorator(fn)
    return fn


def _price_table() -> _prices.PriceTable:
    """The shipped prices with the user's ``llm_prices`` over them.  A broken override is an error:
    costs from prices the user did not ask for would look right and be wrong.  Other settings do
    not matter here, and a problem with them does not stop the report."""
    config = _config.resolve(strict=False)
    for problem in config.problems:
        if problem.parameter in ("llm_prices", "[tool.clisight]"):
            raise problem
    return _prices.table(config["llm_prices"])


def _report(
    kind: str,
    store: str | None,
    as_json: bool,
    since: int | None,
    until: int | None,
    service: str | None,
    breakdown: bool,
) -> None:
    sel = make_filter(since, until, service, None).selection()  # refuses --since after --until
    table = _price_table()
    is_priced = lambda model: table.find(model) is not None  # noqa: E731
    opened = open_store(store)
    now = time.time_ns()
    with opened.query as query:
        reader = query.reader
        if kind == "daily":
            rows = usage_query.daily(reader, sel, None, is_priced)
        elif kind == "monthly":
            rows = usage_query.monthly(reader, sel, None, is_priced)
        elif kind == "session":
            rows = usage_query.sessions(reader, sel, is_priced)
        else:
            rows = usage_query.blocks(reader, sel, now, is_priced)
    totals = usage_query.total(rows)
    if as_json:
        echo_json(
            {
                "kind": kind,
                "prices_as_of": table.as_of,
                "rows": [r.as_dict() for r in rows],
                "totals": totals.as_dict(),
            }
        )
        return
    out = console()
    if not rows:
        out.print(
            "No LLM usage in this range. (Claude Code's: `clisight usage import-claude-code` reads its"
            " transcripts, or point its telemetry at `clisight serve`; see docs/server.md.)"
        )
        return
    first = {"daily": "Date", "monthly": "Month", "session": "Session", "blocks": "Block start"}[kind]
    title = {"daily": "day", "monthly": "month", "session": "session", "blocks": "5-hour block"}[kind]
    grid = Table(
        box=box.SIMPLE_HEAD,
        title=f"LLM usage by {title}",
        title_justify="left",
        title_style="bold",
        pad_edge=False,
        collapse_padding=True,
    )
    for name in (first, "Input", "Output", "Cache write", "Cache read", "Total", "Cost"):
        grid.add_column(
            name, justify="left" if name == first else "right", overflow="fold", no_wrap=name != first
        )
    for row in rows:
        label = row.key[:8] if kind == "session" else row.key
        if kind == "blocks":
            label = datetime.fromtimestamp(row.extra["start_ns"] / 1e9).strftime("%Y-%m-%d %H:%M")
            label += " (active)" if row.extra.get("active") else ""
        grid.add_row(clean(label), *_numbers(row.totals))
        if breakdown:
            for model, tokens in sorted(row.models.items()):
                grid.add_row(f"└ {clean(model)}", *_numbers(tokens), style="dim")
    grid.add_section()
    grid.add_row("Total", *_numbers(totals), style="bold")
    out.print(grid)
    unpriced = sorted({m for r in rows for m in r.unpriced_models})
    if unpriced:
        out.print(
            f"[yellow]Cost unknown for {', '.join(map(clean, unpriced))}: not in the price table "
            f"(dated {table.as_of}); add it with the llm_prices setting.[/yellow]"
        )
    for row in rows:
        if kind == "blocks" and row.extra.get("active") and row.extra.get("burn_rate"):
            rate, projection = row.extra["burn_rate"], row.extra["projection"]
            out.print(
                f"Active block: {rate['tokens_per_minute']:,.0f} tokens/min, "
                f"${rate['cost_per_hour']:,.2f}/h; "
                f"projected {projection['total_tokens']:,} tokens, ${projection['cost_usd']:,.2f} by its end "
                f"({row.extra['remaining_minutes']:.0f} min left)"
            )


def _numbers(tokens: usage_query.Tokens) -> list[str]:
    cost = (
        "unknown"
        if tokens.requests and tokens.unpriced_requests == tokens.requests
        else f"${tokens.cost_usd:,.2f}"
    )
    if tokens.unpriced_requests and cost != "unknown":
        cost += "+?"  # the legend under the table names the unpriced models
    return [
        f"{tokens.input_tokens:,}",
        f"{tokens.output_tokens:,}",
        f"{tokens.cache_creation_tokens:,}",
        f"{tokens.cache_read_tokens:,}",
        f"{tokens.total_tokens:,}",
        cost,
    ]


@click.group(epilog=EPILOG, invoke_without_command=True)
@_options
@click.pass_context
def usage(
    ctx: click.Context,
    store: str | None,
    as_json: bool,
    since: int | None,
    until: int | None,
    service: str | None,
    breakdown: bool,
) -> None:
    """LLM tokens and cost: per day, month, session and 5-hour billing block.

    Without a subcommand: the daily report (the options here apply to it).  Reads the llm.request
    events that clisight.llm.record, the SDK instrumentation, import-claude-code and clisight serve
    (Claude Code's telemetry) write.
    """
    if ctx.invoked_subcommand is None:
        _report("daily", store, as_json, since, until, service, breakdown)


def _subcommand(kind: str, doc: str) -> click.Command:
    @_options
    def command(
        store: str | None,
        as_json: bool,
        since: int | None,
        until: int | None,
        service: str | None,
        breakdown: bool,
    ) -> None:
        _report(kind, store, as_json, since, until, service, breakdown)

    command.__doc__ = doc
    return click.command(kind)(command)


for _kind, _doc in (
    ("daily", "Tokens by type and cost per day (local time)."),
    ("monthly", "Tokens by type and cost per month (local time)."),
    ("session", "Tokens by type and cost per session, the most recent first."),
    ("blocks", "5-hour billing blocks; the active block's burn rate and projection."),
):
    usage.add_command(_subcommand(_kind, _doc))


@usage.command("import-claude-code")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path, exists=True))
@store_option
@click.option("--json", "as_json", is_flag=True, help="Print the import's counts as JSON.")
def import_claude_code(paths: tuple[Path, ...], store: str | None, as_json: bool) -> None:
    """Read Claude Code's transcripts into sessions and LLM records.

    PATHS are transcript files or folders (default: $CLAUDE_CONFIG_DIR and ~/.claude/projects).
    Incremental: a re-run reads only what was added since.  Entries repeated across files (same
    message id and request id) are counted once, and so are API calls clisight serve already
    received from Claude Code's telemetry (same request id).
    """
    roots = list(paths) or [p for p in _claude_code.default_roots() if p.exists()]
    files = _claude_code.transcript_files(roots)
    url = resolve_store_url(store)
    open_store(url, must_exist=False, writes=True).query.close()  # before the writer opens (and migrates) it
    write, close = _claude_code.store_writer(url)
    opened = open_store(url, must_exist=False)
    query = opened.query
    importer = _claude_code.ClaudeCodeImport(
        query.load_state,
        query.save_state,
        write,
        _price_table(),
        received=lambda: _claude_code.received_request_ids(
            query.export(Filter(name=_claude_code.EVENT), kinds=("event",))
        ),
    )
    err = console(stderr=True)
    total = sum(f.stat().st_size for f in files)
    columns = (TextColumn("importing transcripts"), BarColumn(), DownloadColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as progress:
            task = progress.add_task("import", total=total or None)
            result = importer.run(files, lambda n: progress.advance(task, n))
    finally:
        close()
        query.close()
    if as_json:
        echo_json(
            {
                "store": url,
                **{k: v for k, v in dataclasses.asdict(result).items() if k != "malformed"},
                "malformed": [{"file": f, "line": n, "problem": p} for f, n, p in result.malformed],
            }
        )
    else:
        had = counted(result.received, "request")
        received = f" and {had} clisight serve already had" if result.received else ""
        click.echo(
            f"Imported {counted(result.entries, 'request')} in {counted(result.sessions, 'session')} "
            f"from {result.files_read:,} of {counted(result.files, 'file')} "
            f"({counted(result.duplicates, 'duplicate')}{received} skipped) into {url}"
        )
    for file, line, problem in result.malformed[:50]:
        click.echo(f"skipped malformed line {clean(file)}:{line}: {clean(problem)}", err=True)
    if len(result.malformed) > 50:
        click.echo(f"... and {len(result.malformed) - 50} more malformed lines", err=True)
    if not files and not as_json:
        raise CommandError("no Claude Code transcripts found (looked in " + ", ".join(map(str, roots)) + ")")
