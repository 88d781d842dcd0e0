"""``clisight export``: stream stored records out as JSON lines or CSV, through the query layer."""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Iterable, Iterator
from typing import IO, Any, Final

import click

from clisight.cli._common import filter_options, make_filter, open_store, store_option
from clisight.query import EXPORT_ORDER

# CLI word -> the query layer's record kind.
KINDS: Final = {
    "sessions": "session",
    "logs": "log",
    "events": "event",
    "spans": "span",
    "errors": "error",
    "metrics": "metric",
}


def write_jsonl(rows: Iterable[dict[str, Any]], out: IO[str]) -> int:
    """One JSON object per line (``kind`` says which record); returns the number written."""
    count = 0
    for row in rows:
        out.write(json.dumps(row, ensure_ascii=True, default=str))
        out.write("\n")
        count += 1
    return count


def _cell(value: Any) -> Any:
    return json.dumps(value, ensure_ascii=False, default=str) if isinstance(value, dict | list) else value


def write_csv(rows: Iterable[dict[str, Any]], out: IO[str]) -> int:
    """A header from the first row's columns, then one line per row; nested values as JSON text."""
    stream: Iterator[dict[str, Any]] = iter(rows)
    first = next(stream, None)
    if first is None:
        return 0
    writer = csv.DictWriter(out, fieldnames=list(first), restval="", extrasaction="ignore")
    writer.writeheader()
    count = 0
    for row in itertools.chain([first], stream):
        writer.writerow({key: _cell(value) for key, value in row.items()})
        count += 1
    return count


EPILOG = """\b
Examples:
  clisight export > everything.jsonl                 all kinds, one JSON object per line
  clisight export --kind logs --since 1d -o logs.jsonl
  clisight export --format csv --kind events -o events.csv
  clisight export --kind events --name llm.request --service claude-cli

JSON lines carry a "kind" field; a CSV file holds one kind (pass exactly one --kind).
Records stream in chunks, so exports of any size use little memory.
"""


@click.command(epilog=EPILOG)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv"]),
    default="jsonl",
    show_default=True,
    help="Output format.",
)
@click.option(
    "--kind",
    "kinds",
    type=click.Choice(list(KINDS)),
    multiple=True,
    help="Which records (repeatable; default: all).",
)
@click.option(
    "--name",
    default=None,
    metavar="NAME",
    help="Only events, spans and metrics with this name, errors of this type.",
)
@click.option("--limit", type=click.IntRange(1), default=None, help="Stop after this many records.")
@click.option(
    "-o",
    "--output",
    default="-",
    metavar="FILE",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Write to FILE instead of standard output.",
)
@store_option
@filter_options
def export(
    fmt: str,
    kinds: tuple[str, ...],
    name: str | None,
    limit: int | None,
    output: str,
    store: str | None,
    since: int | None,
    until: int | None,
    service: str | None,
    session: str | None,
) -> None:
    """Export records as JSON lines or CSV.

    Streams logs, events, spans, errors, sessions and metric points through the query layer, with
    the same filters as the reports.
    """
    flt = make_filter(since, until, service, session, name=name, limit=limit)
    chosen = [KINDS[k] for k in dict.fromkeys(kinds)] or list(EXPORT_ORDER)
    if fmt == "csv" and len(chosen) != 1:
        raise click.UsageError(
            "a CSV file holds one kind of record: pass exactly one --kind (e.g. --kind logs)"
        )
    write = write_csv if fmt == "csv" else write_jsonl
    with open_store(store).query as query:
        rows = query.export(flt, chosen)
        with click.open_file(output, "w", encoding="utf-8", atomic=output != "-") as out:
            count = write(rows, out)
    if output != "-":
        click.echo(f"Exported {count:,} records to {output}", err=True)
