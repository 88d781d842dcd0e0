"""``clisight detect``: find anomalies in any CSV time series from the shell."""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from clisight.cli._common import FiniteFloatRange
from clisight.detect import (
    DEFAULT_DETECTOR,
    DEFAULT_THRESHOLD,
    DETECTORS,
    default_threshold,
    has_alert_level,
    make_detector,
)

__all__ = [
    "SNIFFED_DELIMITERS",
    "Anomaly",
    "Series",
    "describe_delimiter",
    "detect",
    "find_anomalies",
    "parse_delimiter",
    "read_series",
    "sniff_delimiter",
]

_BLOCKS = "▁▂▃▄▅▆▇█"


@dataclass(frozen=True, slots=True)
class Anomaly:
    """A run of consecutive points scoring at or above the threshold, described by its peak."""

    line: int  # CSV line of the first point
    end_line: int
    index: int  # row index of the first point (0-based, data rows only)
    timestamp: str  # the timestamp cell as written (or the row number)
    value: float
    score: float  # highest score in the run
    points: int
    time: str = ""  # as the table shows it: an epoch number as a UTC date-time (see shown_time)


#: Delimiters tried when ``--delimiter`` is not given, in order of preference when several fit.
SNIFFED_DELIMITERS = (",", ";", "\t", "|")
_SNIFF_CHARS = 64 * 1024  # enough for the header and dozens of rows of any sane CSV
_SNIFF_ROWS = 50
# A day inside datetime's range: detectors that read the calendar time, shifted by a UTC offset, must not fail
_EARLIEST = datetime(1, 1, 2, tzinfo=UTC).timestamp()
_LATEST = datetime(9999, 12, 30, tzinfo=UTC).timestamp()
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe", " ": "space"}


@dataclass(frozen=True, slots=True)
class Series:
    """A parsed CSV column: values with their timestamps (epoch seconds) and CSV line numbers.

    The points are in file order, or in time order when read with ``sort=True``; ``warnings`` says
    what was odd but usable (rows out of time order, repeated timestamps, ragged rows).
    """

    timestamps: list[float]
    values: list[float]
    lines: list[int]
    labels: list[str]  # the timestamp cell as written (or the row number)
    warnings: list[str] = field(default_factory=list)


def _parse_time(text: str) -> float | None:
    cell = text.strip()
    try:
        number = float(cell)
    except ValueError:
        pass
    else:
        if not math.isfinite(number):
            return None
        # Epoch seconds, or (past what seconds reach by the year 5138) milliseconds, microseconds or
        # nanoseconds, as clisight's own export writes its ``time_ns`` column.
        for limit, scale in ((1e17, 1e9), (1e14, 1e6), (1e11, 1e3)):
            if abs(number) > limit:
                return number / scale
        return number
    try:
        when = datetime.fromisoformat(cell.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


# An epoch number of seconds below this (March 1973) is more likely a counter or elapsed seconds
# than a date: shown as written.
_EPOCH_SHOWN_FROM = 1e8


def shown_time(label: str, timestamp: float) -> str:
    """The time of a point as the table shows it: an epoch number (seconds, ms, us or ns) as a UTC
    date-time, as ISO cells read; anything else (ISO text, small numbers, row numbers) as written."""
    try:
        float(label)
    except ValueError:
        return label
    if not _EPOCH_SHOWN_FROM <= timestamp <= _LATEST:
        return label
    moment = datetime.fromtimestamp(timestamp, UTC)
    precision = "seconds" if moment.microsecond == 0 else "milliseconds"
    if moment.microsecond % 1000:
        precision = "microseconds"
    return moment.replace(tzinfo=None).isoformat(sep=" ", timespec=precision) + "Z"


def describe_delimiter(delimiter: str) -> str:
    """A delimiter as a person would name it: ``comma``, ``tab``, or the character quoted."""
    return _DELIMITER_NAMES.get(delimiter, repr(delimiter))


def sniff_delimiter(sample: str, *, complete: bool = True) -> str:
    """The delimiter of the CSV text ``sample`` (the start of a file): one of :data:`SNIFFED_DELIMITERS`.

    The one that splits the header into the most columns wins, preferring one under which every
    sampled row has as many cells as the header.  A file with a single column (no candidate splits its
    header) is read with a comma.  ``complete=False`` says the sample was cut short, so its last row
    may be partial and is not counted.
    """
    best, best_key = ",", (False, 1)
    for candidate in SNIFFED_DELIMITERS:
        try:
            rows = list(
                itertools.islice(csv.reader(io.StringIO(sample), delimiter=candidate), _SNIFF_ROWS + 1)
            )
        except csv.Error:
            continue  # the real read names the line
        if len(rows) > _SNIFF_ROWS:
            rows = rows[:_SNIFF_ROWS]  # another row followed, so these are whole
        elif not complete:
            rows = rows[:-1]
        rows = [row for row in rows if not _blank(row)]
        if not rows:
            continue
        width = len(rows[0])
        key = (width > 1 and all(len(row) == width for row in rows), width)
        if key > best_key:
            best, best_key = candidate, key
    return best


def parse_delimiter(text: str) -> str:
    """A ``--delimiter`` value as the character it stands for: one character, or ``tab`` / ``\\t``."""
    named = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|", "space": " "}
    delimiter = named.get(text.lower(), text)
    if len(delimiter) != 1 or delimiter in '\r\n"':
        raise click.BadParameter(
            f"expected one character such as ',', ';', '|' or 'tab', got {text!r}", param_hint="--delimiter"
        )
    return delimiter


def _blank(row: Sequence[str]) -> bool:
    return all(not cell.strip() for cell in row)


def read_series(
    path: Path,
    column: str,
    timestamp: str | None,
    *,
    delimiter: str | None = None,
    sort: bool = False,
) -> Series:
    """Read one numeric column (and its timestamps) from a CSV file with a header row.

    ``delimiter`` (a single character) is sniffed from the start of the file when not given, see
    :func:`sniff_delimiter`.  Without ``timestamp``, a ``timestamp`` column is used if there is one,
    else row numbers.  Rows out of time order are kept in file order, or sorted by time (stably, so
    rows with the same time keep file order) with ``sort=True``; either way, and for repeated
    timestamps, :attr:`Series.warnings` names the first such line.

    Raises :class:`click.ClickException` naming the file and CSV line for a missing column, a
    non-numeric value, an unreadable timestamp, a file that is not UTF-8 text or is not CSV.
    """
    try:
        fh = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise click.ClickException(f"cannot read {path}: {exc.strerror or exc}") from None
    with fh:
        reader: Any = None
        try:
            sample = fh.read(_SNIFF_CHARS)
            used = delimiter or sniff_delimiter(sample, complete=len(sample) < _SNIFF_CHARS)
            fh.seek(0)
            reader = csv.reader(fh, delimiter=used)
            return _read_table(path, reader, used, column, timestamp, sort)
        except UnicodeDecodeError:
            raise click.ClickException(f"{path}: the file is not UTF-8 text; save it as UTF-8 CSV") from None
        except csv.Error as exc:
            line = reader.line_num if reader is not None else 1
            raise click.ClickException(f"{path}: line {line}: not readable as CSV: {exc}") from None
        except OSError as exc:
            raise click.ClickException(f"cannot read {path}: {exc.strerror or exc}") from None


def _read_table(
    path: Path, reader: Any, delimiter: str, column: str, timestamp: str | None, sort: bool
) -> Series:
    header = next(reader, None)
    while header is not None and _blank(header):
        header = next(reader, None)
    if header is None:
        raise click.ClickException(f"{path}: line 1: the file is empty (expected a header row)")
    header_line: int = reader.line_num
    names = [h.strip() for h in header]
    where = f"{path}: line {header_line}"
    if column not in names:
        hint = "choose one with --column"
        if len(names) == 1:
            hint += (
                f"; the header reads as one column with delimiter {describe_delimiter(delimiter)}: "
                f"if the file uses another one, give it with --delimiter"
            )
        raise click.ClickException(
            f"{where}: no column {column!r} in the header (columns: {', '.join(names)}); {hint}"
        )
    value_at = names.index(column)
    time_at: int | None
    if timestamp is None:
        time_at = names.index("timestamp") if "timestamp" in names else None
    elif timestamp in names:
        time_at = names.index(timestamp)
    else:
        raise click.ClickException(
            f"{where}: no timestamp column {timestamp!r} in the header (columns: {', '.join(names)})"
        )
    series = _read_rows(path, reader, column, value_at, time_at, len(names))
    if time_at is None:
        return series
    return _in_time_order(path, series, sort)


def _read_rows(
    path: Path, reader: Any, column: str, value_at: int, time_at: int | None, width: int
) -> Series:
    """The data rows of an open ``csv.reader`` (``reader.line_num`` gives each row's line)."""
    series = Series([], [], [], [])
    wide_rows = 0
    first_wide = ""
    line_num: int = reader.line_num
    for row in reader:
        line_num = reader.line_num
        if not row or _blank(row):
            continue
        where = f"{path}: line {line_num}"
        if len(row) > width and not _blank(row[width:]):
            wide_rows += 1
            first_wide = first_wide or f"{where}: {len(row)} cells, the header has {width}"
        if value_at >= len(row):
            raise click.ClickException(f"{where}: the row has no {column!r} cell ({len(row)} cells)")
        cell = row[value_at].strip()
        try:
            value = float(cell)
        except ValueError:
            raise click.ClickException(
                f"{where}: value {cell!r} in column {column!r} is not a number"
            ) from None
        if not math.isfinite(value):
            raise click.ClickException(f"{where}: value {cell!r} in column {column!r} is not a finite number")
        if time_at is None:
            t = float(len(series.values))
            label = str(len(series.values) + 1)
        else:
            label = row[time_at].strip() if time_at < len(row) else ""
            parsed = _parse_time(label)
            if parsed is None:
                raise click.ClickException(
                    f"{where}: timestamp {label!r} is neither ISO 8601"
                    " nor an epoch time (seconds, ms, us or ns)"
                )
            if not _EARLIEST <= parsed <= _LATEST:
                raise click.ClickException(f"{where}: timestamp {label!r} is outside the years 1 to 9999")
            t = parsed
        series.timestamps.append(t)
        series.values.append(value)
        series.lines.append(line_num)
        series.labels.append(label)
    if not series.values:
        raise click.ClickException(f"{path}: line {line_num + 1}: no data rows after the header")
    if wide_rows:
        series.warnings.append(
            f"{first_wide}; {_rows(wide_rows)} with more cells than the header: is the delimiter right?"
        )
    return series


def _in_time_order(path: Path, series: Series, sort: bool) -> Series:
    """Warn of rows out of time order and of repeated timestamps; sort by time if asked."""
    times, lines, labels = series.timestamps, series.lines, series.labels
    back = [i for i in range(1, len(times)) if times[i] < times[i - 1]]
    if back and not sort:
        i = back[0]
        series.warnings.append(
            f"{path}: line {lines[i]}: timestamp {labels[i]!r} is earlier than {labels[i - 1]!r} on line "
            f"{lines[i - 1]}; {_rows(len(back))} out of time order, read in file order "
            f"(--sort sorts the rows by time)"
        )
    seen: dict[float, int] = {}
    repeats: list[tuple[int, int]] = []  # (index, index of the first row with that time)
    for i, t in enumerate(times):
        if t in seen:
            repeats.append((i, seen[t]))
        else:
            seen[t] = i
    if repeats:
        i, first = repeats[0]
        series.warnings.append(
            f"{path}: line {lines[i]}: timestamp {labels[i]!r} repeats line {lines[first]}; "
            f"{_rows(len(repeats))} share a timestamp with an earlier row, kept in file order"
        )
    if not (back and sort):
        return series
    order = sorted(range(len(times)), key=times.__getitem__)  # stable: equal times keep file order
    return Series(
        [times[i] for i in order],
        [series.values[i] for i in order],
        [lines[i] for i in order],
        [labels[i] for i in order],
        series.warnings,
    )


def _rows(n: int) -> str:
    return f"{n} row{'' if n == 1 else 's'}"


def find_anomalies(series: Series, scores: Sequence[float], threshold: float) -> list[Anomaly]:
    """Group consecutive points scoring ``>= threshold`` into anomalies."""
    found: list[Anomaly] = []
    start: int | None = None
    for i in range(len(scores) + 1):
        hit = i < len(scores) and scores[i] >= threshold
        if hit and start is None:
            start = i
        elif not hit and start is not None:
            peak = max(range(start, i), key=lambda j: scores[j])
            found.append(
                Anomaly(
                    line=series.lines[start],
                    end_line=series.lines[i - 1],
                    index=start,
                    timestamp=series.labels[peak],
                    time=shown_time(series.labels[peak], series.timestamps[peak]),
                    value=series.values[peak],
                    score=scores[peak],
                    points=i - start,
                )
            )
            start = None
    return found


def sparkline(values: Sequence[float], marks: Sequence[int], width: int) -> tuple[str, str]:
    """A one-line chart of ``values`` (bucketed to ``width`` columns) and a line marking ``marks``."""
    n = len(values)
    width = max(1, min(width, n))
    lo, hi = min(values), max(values)
    span = hi - lo or 1.0
    chart = []
    for c in range(width):
        bucket = values[c * n // width : max((c + 1) * n // width, c * n // width + 1)]
        level = max(bucket, key=lambda v: abs(v - (lo + hi) / 2))  # keep spikes visible when bucketing
        chart.append(_BLOCKS[min(len(_BLOCKS) - 1, int((level - lo) / span * len(_BLOCKS)))])
    marker = [" "] * width
    for i in marks:
        marker[min(width - 1, i * width // n)] = "▲"
    return "".join(chart), "".join(marker)


def _parse_params(pairs: Sequence[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected NAME=VALUE, got {pair!r}", param_hint="--param")
        try:
            params[name.strip()] = json.loads(raw)
        except ValueError:
            raise click.BadParameter(
                f"value of {name!r} is not a number: {raw!r}", param_hint="--param"
            ) from None
    return params


def _delimiter_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    return None if value is None else parse_delimiter(value)


@click.command("detect")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--column", default="value", show_default=True, help="Numeric column to analyse.")
@click.option(
    "--timestamp",
    "timestamp_column",
    default=None,
    help=(
        "Timestamp column (ISO 8601, or epoch seconds, ms, us or ns, told apart by size)."
        " [default: 'timestamp' if present, else row numbers]"
    ),
)
@click.option(
    "--delimiter",
    default=None,
    callback=_delimiter_option,
    metavar="CHAR",
    help="Field delimiter: one character, or 'tab'. [default: sniffed: comma, semicolon, tab or pipe]",
)
@click.option(
    "--sort",
    "sort_rows",
    is_flag=True,
    help="Sort the rows by time (rows with the same time keep file order) instead of reading them in "
    "file order.",
)
@click.option(
    "--detector",
    type=click.Choice(sorted(DETECTORS)),
    default=DEFAULT_DETECTOR,
    show_default=True,
    help="Detector to run.",
)
@click.option(
    "--threshold",
    type=FiniteFloatRange(0.0, 1.0),
    default=None,
    help=f"Score (0-1) at or above which a point is an anomaly. [default: the detector's own; "
    f"{DEFAULT_THRESHOLD} for {DEFAULT_DETECTOR}]",
)
@click.option(
    "--param",
    "-p",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="Detector parameter, repeatable (e.g. -p probation=50, or -p warmup=50 for most others).",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the anomalies as JSON instead of a table and chart."
)
def detect(
    file: Path,
    column: str,
    timestamp_column: str | None,
    delimiter: str | None,
    sort_rows: bool,
    detector: str,
    threshold: float | None,
    params: tuple[str, ...],
    as_json: bool,
) -> None:
    """Find anomalies in a time series stored in a CSV file.

    FILE is a CSV file with a header row, its delimiter (comma, semicolon, tab or pipe) sniffed unless
    --delimiter is given.  Each row is one point: the value comes from --column, the time from
    --timestamp.  Rows are read in file order, with a warning naming the first row out of time order
    or with a repeated timestamp; --sort sorts them by time.  The detector reads the series once, as
    it would live, so its warm-up is never reported (the default detector learns from the first 15 %
    of the rows, at least 30 and at most 750, as in the NAB benchmark); a series no longer than the
    warm-up says that nothing could be judged.

    Prints each anomaly (CSV line, time, value, score from 0 to 1) and a small chart of the series
    with the anomalies marked; --json prints the same as JSON.  Exit status is 0 whether or not
    anomalies were found, and non-zero on bad input, with the offending CSV line named.

    \b
    Examples:
      clisight detect latency.csv --column p95_ms
      clisight detect cpu.csv --timestamp time --threshold 0.7 --json
      clisight detect errors.csv --detector mad -p window=120
      clisight detect export.tsv --delimiter tab --sort
    """
    options = _parse_params(params)
    if threshold is None:
        threshold = default_threshold(detector)
    if has_alert_level(detector):
        options.setdefault("alert_level", threshold)  # its masking after an alert follows the threshold
    series = read_series(file, column, timestamp_column, delimiter=delimiter, sort=sort_rows)
    # the whole series is known, so as in NAB a detector with a learning period learns from its
    # first 15 % (the other detectors keep the defaults they have in live use)
    known = {"series_length": len(series.values)} if "probation" in DETECTORS[detector]._params else {}
    unknown = sorted(set(options) - set(DETECTORS[detector]._params))
    if unknown:
        raise click.BadParameter(
            f"the {detector} detector has no parameter {unknown[0]!r}; "
            f"it takes {', '.join(DETECTORS[detector]._params)}",
            param_hint="--param",
        )
    try:
        instance = make_detector(detector, **known, **options)
    except TypeError as exc:
        raise click.BadParameter(str(exc), param_hint="--param") from None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--param") from None
    for warning in series.warnings:
        click.echo(f"Warning: {warning}", err=True)
    update = instance.update
    scores = [update(t, v) for t, v in zip(series.timestamps, series.values, strict=True)]
    anomalies = find_anomalies(series, scores, threshold)
    n = len(series.values)
    warmup = instance.warmup_points
    knob = "probation" if "probation" in DETECTORS[detector]._params else "warmup"
    too_short = (
        f"series has {n} point{'' if n == 1 else 's'}; the {detector} detector needs at least "
        f"{warmup + 1} to warm up (it only learns from the first {warmup}); nothing could be judged. "
        f"Give it a longer series, or a shorter warm-up with -p {knob}=N"
        if n <= warmup
        else None
    )
    if as_json:
        if too_short:
            click.echo(f"Warning: {too_short}", err=True)
        payload = {
            "file": str(file),
            "column": column,
            "detector": detector,
            "threshold": threshold,
            "points": n,
            "warmup": warmup,
            "judged": max(0, n - warmup),
            "warnings": [*series.warnings, *([too_short] if too_short else [])],
            "anomalies": [
                {
                    "line": a.line,
                    "end_line": a.end_line,
                    "timestamp": a.timestamp,
                    "time": a.time or a.timestamp,
                    "value": a.value,
                    "score": round(a.score, 4),
                    "points": a.points,
                }
                for a in anomalies
            ],
        }
        click.echo(json.dumps(payload, indent=2))
        return
    _print_report(file, column, detector, threshold, series, anomalies, too_short)


def _print_report(
    file: Path,
    column: str,
    detector: str,
    threshold: float,
    series: Series,
    anomalies: list[Anomaly],
    too_short: str | None,
) -> None:
    from rich.table import Table

    from clisight.cli._common import console as make_console

    console = make_console()
    n = len(series.values)
    title = f"{file.name}: {column}, {n} points, detector {detector}, threshold {threshold:g}"
    console.print(title, markup=False)
    if too_short:
        console.print(too_short, markup=False, soft_wrap=True)  # one greppable line
    elif not anomalies:
        console.print("no anomalies found")
    else:
        table = Table()
        table.add_column("line", justify="right")
        table.add_column("time")
        table.add_column("value", justify="right")
        table.add_column("score", justify="right")
        table.add_column("points", justify="right")
        for a in anomalies:
            table.add_row(
                str(a.line), a.time or a.timestamp, f"{a.value:.6g}", f"{a.score:.2f}", str(a.points)
            )
        console.print(table)
        console.print(f"{len(anomalies)} anomal{'y' if len(anomalies) == 1 else 'ies'} found")
    chart, marker = sparkline(
        series.values, [a.index for a in anomalies], max(10, min(console.width - 2, 100))
    )
    console.print(f"min {min(series.values):.6g}  max {max(series.values):.6g}")
    console.print(chart, markup=False)
    if anomalies:
        console.print(marker, style="bold red", markup=False)
