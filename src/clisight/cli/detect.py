"""``clisight detect``: find anomalies in any CSV time series from the shell."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from clisight.detect import DEFAULT_DETECTOR, DEFAULT_THRESHOLD, DETECTORS, has_alert_level, make_detector

__all__ = ["Anomaly", "Series", "detect", "find_anomalies", "read_series"]

_BLOCKS = "▁▂▃▄▅▆▇█"


@dataclass(frozen=True, slots=True)
class Series:
    """A parsed CSV column: values with their timestamps (epoch seconds) and CSV line numbers."""

    timestamps: list[float]
    values: list[float]
    lines: list[int]
    labels: list[str]  # the timestamp cell as written (or the row number)


@dataclass(frozen=True, slots=True)
class Anomaly:
    """A run of consecutive points scoring at or above the threshold, described by its peak."""

    line: int  # CSV line of the first point
    end_line: int
    index: int  # row index of the first point (0-based, data rows only)
    timestamp: str
    value: float
    score: float  # highest score in the run
    points: int


def _parse_time(text: str) -> float | None:
    cell = text.strip()
    try:
        number = float(cell)
    except ValueError:
        pass
    else:
        return number / 1000.0 if abs(number) > 1e11 else number  # epoch milliseconds
    try:
        when = datetime.fromisoformat(cell.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def read_series(path: Path, column: str, timestamp: str | None) -> Series:
    """Read one numeric column (and its timestamps) from a CSV file with a header row.

    Raises :class:`click.ClickException` naming the CSV line for a missing column, a non-numeric value,
    an unreadable timestamp or timestamps out of order.  Without ``timestamp``, a ``timestamp`` column
    is used if there is one, else row numbers.
    """
    try:
        fh = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise click.ClickException(f"cannot read {path}: {exc.strerror or exc}") from None
    with fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise click.ClickException(f"{path}: line 1: the file is empty (expected a header row)")
        names = [h.strip() for h in header]
        if column not in names:
            raise click.ClickException(
                f"{path}: line 1: no column {column!r} in the header (columns: {', '.join(names)}); "
                f"choose one with --column"
            )
        value_at = names.index(column)
        time_at: int | None
        if timestamp is None:
            time_at = names.index("timestamp") if "timestamp" in names else None
        elif timestamp in names:
            time_at = names.index(timestamp)
        else:
            raise click.ClickException(
                f"{path}: line 1: no timestamp column {timestamp!r} in the header "
                f"(columns: {', '.join(names)})"
            )
        return _read_rows(path, reader, column, value_at, time_at)


def _read_rows(path: Path, reader: Any, column: str, value_at: int, time_at: int | None) -> Series:
    """The data rows of an open ``csv.reader`` (``reader.line_num`` gives each row's line)."""
    series = Series([], [], [], [])
    previous = -math.inf
    for row in reader:
        line_num: int = reader.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        where = f"{path}: line {line_num}"
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
                    f"{where}: timestamp {label!r} is neither ISO 8601 nor epoch seconds"
                )
            t = parsed
            if t < previous:
                raise click.ClickException(
                    f"{where}: timestamp {label!r} is earlier than the row before it; sort the file by time"
                )
            previous = t
        series.timestamps.append(t)
        series.values.append(value)
        series.lines.append(line_num)
        series.labels.append(label)
    if not series.values:
        raise click.ClickException(f"{path}: no data rows after the header")
    return series


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


@click.command("detect")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--column", default="value", show_default=True, help="Numeric column to analyse.")
@click.option(
    "--timestamp",
    "timestamp_column",
    default=None,
    help="Timestamp column (ISO 8601 or epoch seconds). [default: 'timestamp' if present, else row numbers]",
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
    type=click.FloatRange(0.0, 1.0),
    default=DEFAULT_THRESHOLD,
    show_default=True,
    help="Score (0-1) at or above which a point is an anomaly.",
)
@click.option(
    "--param",
    "-p",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="Detector parameter, repeatable (e.g. -p warmup=50).",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the anomalies as JSON instead of a table and chart."
)
def detect(
    file: Path,
    column: str,
    timestamp_column: str | None,
    detector: str,
    threshold: float,
    params: tuple[str, ...],
    as_json: bool,
) -> None:
    """Find anomalies in a time series stored in a CSV file.

    FILE is a CSV file with a header row.  Each row is one point: the value comes from --column, the
    time from --timestamp; rows must be in time order.  The detector reads the series once, as it
    would live, so the first few hundred points (its warm-up) are never reported.

    Prints each anomaly (CSV line, time, value, score from 0 to 1) and a small chart of the series
    with the anomalies marked; --json prints the same as JSON.  Exit status is 0 whether or not
    anomalies were found, and non-zero on bad input, with the offending CSV line named.

    \b
    Examples:
      clisight detect latency.csv --column p95_ms
      clisight detect cpu.csv --timestamp time --threshold 0.7 --json
      clisight detect errors.csv --detector mad -p window=120
    """
    options = _parse_params(params)
    if has_alert_level(detector):
        options.setdefault("alert_level", threshold)  # its cooldown follows the threshold
    try:
        instance = make_detector(detector, **options)
    except TypeError as exc:
        raise click.BadParameter(str(exc), param_hint="--param") from None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--param") from None
    series = read_series(file, column, timestamp_column)
    update = instance.update
    scores = [update(t, v) for t, v in zip(series.timestamps, series.values, strict=True)]
    anomalies = find_anomalies(series, scores, threshold)
    if as_json:
        payload = {
            "file": str(file),
            "column": column,
            "detector": detector,
            "threshold": threshold,
            "points": len(series.values),
            "anomalies": [
                {
                    "line": a.line,
                    "end_line": a.end_line,
                    "timestamp": a.timestamp,
                    "value": a.value,
                    "score": round(a.score, 4),
                    "points": a.points,
                }
                for a in anomalies
            ],
        }
        click.echo(json.dumps(payload, indent=2))
        return
    _print_report(file, column, detector, threshold, series, anomalies)


def _print_report(
    file: Path, column: str, detector: str, threshold: float, series: Series, anomalies: list[Anomaly]
) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    n = len(series.values)
    title = f"{file.name}: {column}, {n} points, detector {detector}, threshold {threshold:g}"
    console.print(title, markup=False)
    if not anomalies:
        console.print("no anomalies found")
    else:
        table = Table()
        table.add_column("line", justify="right")
        table.add_column("time")
        table.add_column("value", justify="right")
        table.add_column("score", justify="right")
        table.add_column("points", justify="right")
        for a in anomalies:
            table.add_row(str(a.line), a.timestamp, f"{a.value:.6g}", f"{a.score:.2f}", str(a.points))
        console.print(table)
        console.print(f"{len(anomalies)} anomal{'y' if len(anomalies) == 1 else 'ies'} found")
    chart, marker = sparkline(
        series.values, [a.index for a in anomalies], max(10, min(console.width - 2, 100))
    )
    console.print(f"min {min(series.values):.6g}  max {max(series.values):.6g}")
    console.print(chart, markup=False)
    if anomalies:
        console.print(marker, style="bold red", markup=False)
