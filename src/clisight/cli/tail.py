"""``clisight tail``: the latest log lines, oldest first, coloured by level; ``-f`` follows new ones."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Final

import click
from rich.text import Text

from clisight.cli._common import (
    LEVEL,
    MAX_ROWS,
    PATTERN,
    TEXT,
    FiniteFloatRange,
    console,
    make_filter,
    open_store,
    report_options,
)
from clisight.cli._text import clean, dumps, when
from clisight.query import Filter, LogLine, Query
from clisight.types import CRITICAL, DEBUG, ERROR_LEVEL, INFO, PERFORMANCE, WARNING

LEVEL_STYLES: Final = {
    DEBUG: "dim",
    INFO: "green",
    PERFORMANCE: "cyan",
    WARNING: "yellow",
    ERROR_LEVEL: "bold red",
    CRITICAL: "bold white on red",
}
HIDDEN_ATTRIBUTES: Final = frozenset({"exception.stacktrace"})  # many lines; `clisight export` has them
ATTRIBUTES_WIDTH: Final = 300
FOLLOW_BATCH: Final = 1000


def level_style(severity: int) -> str:
    style = ""
    for number, name in LEVEL_STYLES.items():
        if severity >= number:
            style = name
    return style


def render(line: LogLine, show_service: bool = False) -> Text:
    """One log line as styled text; every stored value is escaped (see ``_text.clean``)."""
    text = Text()
    text.append(when(line.time_ns, precise=True), style="dim")
    text.append(" ")
    text.append(f"{clean(line.severity_text, 11):<11}", style=level_style(line.severity))
    text.append(" ")
    if show_service:
        text.append(clean(line.service, 40) + " ", style="magenta")
    text.append(clean(line.component, 40), style="cyan")
    text.append("  ")
    text.append(clean(line.message))
    attrs = " ".join(
        f"{clean(k, 60)}={clean(v, 80)}" for k, v in line.attributes.items() if k not in HIDDEN_ATTRIBUTES
    )
    if attrs:
        text.append("  ")
        text.append(clean(attrs, ATTRIBUTES_WIDTH), style="dim")
    return text


def json_line(line: LogLine) -> str:
    """One log line as one line of JSON."""
    return dumps(dataclasses.asdict(line), indent=None)


def follow(
    query: Query, flt: Filter, after_id: int, interval: float, show: Callable[[LogLine], None]
) -> None:
    """Print lines stored after ``after_id`` as they arrive, until Ctrl-C."""
    try:
        while True:
            lines = query.follow(after_id, flt, limit=FOLLOW_BATCH)
            for line in lines:
                show(line)
                after_id = line.id
            if len(lines) < FOLLOW_BATCH:
                time.sleep(interval)
    except KeyboardInterrupt:
        return


EPILOG = """\b
Examples:
  clisight tail                        the last 20 log lines
  clisight tail -n 100 --level warning warnings and worse
  clisight tail -f --component api     follow the api component live (Ctrl-C stops)
  clisight tail --grep timeout --since 2h --json

Control characters in stored text are shown escaped (\\x1b, \\r), so a log line cannot
rewrite your terminal.
"""


@click.command(epilog=EPILOG)
@click.option(
    "-n",
    "--lines",
    "n",
    type=click.IntRange(0, MAX_ROWS),
    default=20,
    show_default=True,
    help="How many of the latest lines to show first.",
)
@click.option("-f", "--follow", "follow_", is_flag=True, help="Keep printing new lines as they are stored.")
@click.option("--level", type=LEVEL, default=None, help="Minimum level: debug, info, performance, warning...")
@click.option(
    "--component", type=TEXT, default=None, metavar="NAME", help="Only this component (logger name)."
)
@click.option(
    "--grep",
    "text",
    type=PATTERN,
    default=None,
    metavar="TEXT",
    help="Only messages containing TEXT (any case).",
)
@click.option(
    "--interval",
    type=FiniteFloatRange(0.05, 60),
    default=0.5,
    show_default=True,
    help="Seconds between polls with -f.",
)
@report_options
def tail(
    n: int,
    follow_: bool,
    level: int | None,
    component: str | None,
    text: str | None,
    interval: float,
    store: str | None,
    as_json: bool,
    since: int | None,
    until: int | None,
    service: str | None,
    session: str | None,
) -> None:
    """Show recent log lines (-f to follow).

    The latest lines, oldest first, coloured by level; with -f, new lines as they are stored
    until Ctrl-C.
    """
    flt = make_filter(since, until, service, session, level=level, component=component, text=text)
    out = console(markup=False)
    with open_store(store).query as query:
        newest = query.tail(Filter(), 1)
        lines = query.tail(flt, n)
        many_services = service is None and len({line.service for line in lines}) > 1

        def show(line: LogLine) -> None:
            if as_json:
                click.echo(json_line(line))
            else:
                out.print(render(line, show_service=many_services), soft_wrap=True)

        for line in lines:
            show(line)
        if follow_:
            after = max([newest[0].id if newest else 0, *(line.id for line in lines[-1:])])
            follow(query, flt, after, interval, show)
