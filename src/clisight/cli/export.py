"""``clisight export``: stream stored records out as JSON lines or CSV, through the query layer.

Where the records go (``-o``): a regular file is replaced atomically (written beside it, then
renamed over it, keeping its permissions; through a symlink, the file it points at); a FIFO or a
character device (``/dev/stdout``, ``/dev/null``, a terminal) is written into as a stream and
never replaced; anything else (a socket, a block device, a directory) is refused.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import itertools
import json
import os
import secrets
import stat
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Final

import click

from clisight.cli._common import (
    TEXT,
    CommandError,
    OutputPath,
    filter_options,
    make_filter,
    open_store,
    refuse_output_over_store,
    store_option,
)
from clisight.cli._text import clean

# CLI word -> the query layer's record kind.
KINDS: Final = {
    "sessions": "session",
    "logs": "log",
    "events": "event",
    "spans": "span",
    "errors": "error",
    "metrics": "metric",
}


class KindChoice(click.Choice):  # type: ignore[type-arg]
    """``--kind``: the plural words (shown in the help), or the REST API's singular ones (``log``
    as well as ``logs``), normalised to the plural."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str):
            word = value.strip().lower()
            value = next((plural for plural, single in KINDS.items() if word == single), value)
        return super().convert(value, param, ctx)


# A spreadsheet runs a cell starting with these as a formula (OWASP, "CSV injection").
FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")


def write_jsonl(rows: Iterable[dict[str, Any]], out: IO[str]) -> int:
    """One JSON object per line (``kind`` says which record); returns the number written.

    Every control and non-ASCII character is escaped, so the lines are safe on a terminal too.
    """
    count = 0
    for row in rows:
        out.write(json.dumps(row, ensure_ascii=True, default=str))
        out.write("\n")
        count += 1
    return count


def csv_cell(value: Any) -> Any:
    """``value`` as a CSV cell: nested values as JSON text, text that a spreadsheet would run as a
    formula prefixed with a single quote (as OWASP recommends); numbers and None unchanged."""
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False, default=str)
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def write_csv(rows: Iterable[dict[str, Any]], out: IO[str], *, for_terminal: bool = False) -> int:
    """A header from the first row's columns, then one line per row; nested values as JSON text.

    Formula-like text is neutralised (see :func:`csv_cell`).  With ``for_terminal``, control
    characters in text are shown as escapes (``\\x1b``, ``\\n``) instead of reaching the terminal.
    """
    stream: Iterator[dict[str, Any]] = iter(rows)
    first = next(stream, None)
    if first is None:
        return 0
    writer = csv.DictWriter(out, fieldnames=list(first), restval="", extrasaction="ignore")
    writer.writeheader()
    count = 0
    for row in itertools.chain([first], stream):
        cells = {key: csv_cell(value) for key, value in row.items()}
        if for_terminal:
            cells = {key: clean(value) if isinstance(value, str) else value for key, value in cells.items()}
        writer.writerow(cells)
        count += 1
    return count


@contextlib.contextmanager
def open_output(output: str) -> Iterator[IO[str]]:
    """The stream ``-o`` names (see the module docstring); CommandError naming the path and the
    reason when it cannot be written.  A regular file only appears if the block ends without error."""
    if output == "-":
        yield sys.stdout
        return
    shown = clean(output)
    real = Path(os.path.realpath(output))
    try:
        st: os.stat_result | None = real.stat()
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise CommandError(f"cannot write {shown}: {_reason(exc, real)}") from None
    if st is not None and (stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode)):
        try:
            with real.open("w", encoding="utf-8", newline="") as stream:
                yield stream
        except OSError as exc:
            raise CommandError(f"cannot write {shown}: {_reason(exc, real)}") from None
        return
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise CommandError(
            f"cannot write {shown}: it is a {_node_kind(st.st_mode)}, not a regular file, FIFO or "
            "character device; pass a file path or - for standard output"
        )
    with _atomic_file(real, shown, None if st is None else stat.S_IMODE(st.st_mode)) as stream:
        yield stream


@contextlib.contextmanager
def _atomic_file(real: Path, shown: str, mode: int | None) -> Iterator[IO[str]]:
    # Unpredictable and exclusive: in a shared directory no one can plant a symlink at this name.
    temp = real.with_name(f".{real.name}.{secrets.token_hex(6)}.tmp")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if mode is None else mode)
        if mode is not None:
            os.fchmod(fd, mode)  # the umask would otherwise narrow the file's old permissions
    except OSError as exc:
        raise CommandError(f"cannot write {shown}: {_reason(exc, real)}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as stream:
            yield stream
        os.replace(temp, real)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise CommandError(f"cannot write {shown}: {_reason(exc, real)}") from None
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _reason(exc: OSError, real: Path) -> str:
    if exc.errno == errno.ENOENT and not real.parent.is_dir():
        return f"the directory {clean(real.parent)} does not exist"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (
            f"permission denied ({clean(exc.strerror or exc)}; check the permissions of {clean(real.parent)})"
        )
    if exc.errno == errno.EPIPE:
        return "the reader closed the pipe before the export ended"
    return clean(exc.strerror or exc)


def _node_kind(mode: int) -> str:
    kinds = ((stat.S_ISDIR, "directory"), (stat.S_ISSOCK, "socket"), (stat.S_ISBLK, "block device"))
    return next((name for test, name in kinds if test(mode)), "special file")


EPILOG = """\b
Examples:
  clisight export > everything.jsonl                 all kinds, one JSON object per line
  clisight export --kind logs --since 1d -o logs.jsonl
  clisight export --format csv --kind events -o events.csv
  clisight export --kind events --name llm.request --service claude-cli

JSON lines carry a "kind" field; a CSV file holds one kind (pass exactly one --kind).
Records stream in chunks, so exports of any size use little memory.
-o replaces a regular file only once the export is complete; a FIFO or a device
(/dev/stdout) is written into, never replaced.  CSV cells that a spreadsheet would run
as a formula (starting with = + - @, tab or CR) get a leading single quote.
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
    type=KindChoice(list(KINDS), case_sensitive=False),
    multiple=True,
    help="Which records (repeatable; default: all).  The REST API's singular words (log, event...) work too.",
)
@click.option(
    "--name",
    type=TEXT,
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
    type=OutputPath(dir_okay=False, allow_dash=True),
    help="Write to FILE instead of standard output (a regular file is replaced once the export is complete).",
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
    # "all" is every kind --kind offers; the query layer's default order leaves metric points out.
    chosen = [KINDS[k] for k in dict.fromkeys(kinds)] or list(KINDS.values())
    if fmt == "csv" and len(chosen) != 1:
        raise click.UsageError(
            "a CSV file holds one kind of record: pass exactly one --kind (e.g. --kind logs)"
        )
    opened = open_store(store)
    with opened.query as query:
        refuse_output_over_store(output, opened)
        rows = query.export(flt, chosen)
        with open_output(output) as out:
            if fmt == "csv":
                count = write_csv(rows, out, for_terminal=out.isatty())
            else:
                count = write_jsonl(rows, out)
    if output != "-":
        click.echo(f"Exported {count:,} records to {clean(output)}", err=True)
