"""Aggregates, shared by every backend: what may be asked, which rollups answer it, and merging parts.

``aggregate(kind, selection, group_by, measures)``:

- ``kind``: one of :data:`AGG_FIELDS` (``log``, ``event``, ``operation``, ``metric``, ``error``,
  ``session``).  ``operation`` is spans and PERFORMANCE logs together (see ``_model``).
- ``group_by``: fields of the kind (a log's ``message`` is its shape: ``clisight._shape``), and
  ``bucket:N`` (N seconds, a multiple of 60: the start of
  the UTC-aligned N-second bucket, in ns).
- ``measures``: ``count``; ``errors`` (operations that failed); ``sum:F``, ``min:F``, ``max:F``
  over a numeric field F; ``quantiles:F`` (a :class:`~clisight._sketch.QuantileSketch` of F, 1 %
  relative accuracy); ``distinct:F`` (count of distinct values, never from rollups).  The special
  field ``time`` is the record's time in ns.

How it is answered (:func:`plan`): if the selection and every group and measure can be read from
a rollup series, the time range is cut into whole days, whole hours and whole minutes read from
the day, hour and minute rollups, plus at most two partial minutes at the ends read from raw
rows.  Rollups are written in the same transaction as raw rows, so a rollup bucket holds exactly
the rows of its interval: the current minute is answered from rollups as well.  Anything else is
read from raw rows.  The parts are merged by :func:`merge_parts`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from clisight._shape import message_shape
from clisight._sketch import QuantileSketch
from clisight.store._model import USAGE_FIELDS, Acc, shape_of
from clisight.store.base import RESOLUTIONS, Selection
from clisight.types import ERROR_LEVEL

# Fields each aggregate kind may group by, and the numeric fields its measures may use.
AGG_FIELDS: Final[dict[str, tuple[frozenset[str], frozenset[str]]]] = {
    "log": (
        frozenset({"service", "component", "severity", "message", "session_id"}),
        frozenset({"time", "severity"}),
    ),
    "event": (
        frozenset({"service", "name", "model", "session_id"}),
        frozenset({"time", *USAGE_FIELDS}),
    ),
    "operation": (
        frozenset({"service", "name", "session_id"}),
        frozenset({"time", "duration"}),
    ),
    "metric": (frozenset({"service", "name", "session_id"}), frozenset({"time", "value"})),
    "error": (
        frozenset({"service", "type", "fingerprint", "session_id"}),
        frozenset({"time"}),
    ),
    "session": (
        frozenset({"service", "command", "user_id"}),
        frozenset({"time", "duration", "failed", "exit_code"}),
    ),
}
OPS: Final = frozenset({"count", "errors", "sum", "min", "max", "quantiles", "distinct"})


@dataclass(frozen=True, slots=True)
class Measure:
    """One parsed measure: ``text`` as asked (the result's key), ``op`` and its ``field``."""

    text: str
    op: str
    field: str


def parse(kind: str, group_by: Sequence[str], measures: Sequence[str]) -> list[Measure]:
    """Check a request against :data:`AGG_FIELDS`; ValueError naming what is wrong."""
    if kind not in AGG_FIELDS:
        raise ValueError(f"cannot aggregate {kind!r}: expected one of {', '.join(AGG_FIELDS)}")
    groups, values = AGG_FIELDS[kind]
    for name in group_by:
        if name.startswith("bucket:"):
            bucket_seconds(name)
        elif name not in groups:
            choices = ", ".join(sorted(groups))
            raise ValueError(f"cannot group {kind} by {name!r}: expected bucket:SECONDS or one of {choices}")
    parsed = []
    for text in measures:
        op, _, field = text.partition(":")
        if op not in OPS:
            raise ValueError(f"unknown measure {text!r}: expected one of {', '.join(sorted(OPS))}")
        if op in ("count", "errors"):
            if field:
                raise ValueError(f"measure {op!r} takes no field, got {text!r}")
            if op == "errors" and kind != "operation":
                raise ValueError("measure 'errors' exists for operations only")
        elif op == "distinct":
            if field not in groups:
                raise ValueError(
                    f"cannot count distinct {field!r} of {kind}: expected one of {sorted(groups)}"
                )
        elif field not in values:
            raise ValueError(f"measure {text!r}: {kind} has no numeric field {field!r}; try {sorted(values)}")
        parsed.append(Measure(text, op, field))
    return parsed


def bucket_seconds(name: str) -> int:
    """N of a ``bucket:N`` group; ValueError unless N is a positive multiple of 60."""
    try:
        seconds = int(name.partition(":")[2])
    except ValueError:
        seconds = 0
    if seconds <= 0 or seconds % 60:
        raise ValueError(f"bad time bucket {name!r}: expected bucket:SECONDS, a positive multiple of 60")
    return seconds


# -- rollup plans ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RollupPlan:
    """How to read one request from a rollup series.

    ``columns`` maps each group field to a rollup column (``service``, ``name``, ``dim``, or
    ``bucket`` for ``bucket:N``); ``filters`` are (column, operator, value) with operator ``=`` or
    ``>=int`` (dim compared as an integer).
    """

    series: str
    columns: Mapping[str, str]
    filters: tuple[tuple[str, str, Any], ...]
    segments: tuple[tuple[int, int, int], ...]  # (resolution s, or 0 for raw; start ns; end ns exclusive)


_MEASURE_COLUMNS: Final[dict[str, dict[str, str | None]]] = {
    # series -> measure text -> what answers it (None: cannot)
    "log": {"count": "count"},
    "log_error": {"count": "count", "min:time": "first_ns", "max:time": "last_ns", "max:severity": "max"},
    "event": {
        "count": "count",
        "min:time": "first_ns",
        "max:time": "last_ns",
        **{f"sum:{f}": f"sums.{f}" for f in USAGE_FIELDS},
    },
    "operation": {
        "count": "count",
        "errors": "errors",
        "sum:duration": "sum",
        "min:duration": "min",
        "max:duration": "max",
        "quantiles:duration": "sketch",
    },
    "metric": {
        "count": "count",
        "sum:value": "sum",
        "min:value": "min",
        "max:value": "max",
        "quantiles:value": "sketch",
    },
    "error": {"count": "count", "min:time": "first_ns", "max:time": "last_ns"},
}


def measure_column(series: str, measure: str) -> str | None:
    return _MEASURE_COLUMNS[series].get(measure)


def plan(
    kind: str, sel: Selection, group_by: Sequence[str], measures: Sequence[Measure]
) -> RollupPlan | None:
    """The rollup plan for a request, or None when only raw rows can answer it."""
    if sel.session_id is not None or sel.text or sel.trace_id is not None:
        return None
    wanted = {m.text for m in measures}
    groups = {g for g in group_by if not g.startswith("bucket:")}
    filters: list[tuple[str, str, Any]] = []
    if sel.service is not None:
        filters.append(("service", "=", sel.service))
    columns: dict[str, str] = {"service": "service"}
    if kind == "log":
        if sel.name is not None:
            return None
        if "message" in groups or "max:severity" in wanted:
            # The error table: ERROR and above by component and message, so exactly that selection.
            if sel.min_severity != ERROR_LEVEL or "severity" in groups:
                return None
            series = "log_error"
            columns |= {"component": "name", "message": "dim"}
        else:
            series = "log"
            columns |= {"component": "name", "severity": "dim"}
            if sel.min_severity is not None:
                filters.append(("dim", ">=int", sel.min_severity))
        if sel.component is not None:
            filters.append(("name", "=", sel.component))
    else:
        if sel.component is not None or sel.min_severity is not None:
            return None
        series = kind
        if kind == "event":
            columns |= {"name": "name", "model": "dim"}
        elif kind in ("operation", "metric"):
            columns |= {"name": "name"}
        elif kind == "error":
            columns |= {"fingerprint": "name", "type": "dim"}
        else:
            return None
        if sel.name is not None:
            filters.append(("dim" if kind == "error" else "name", "=", sel.name))
    if not groups <= columns.keys() or any(measure_column(series, w) is None for w in wanted):
        return None
    widths = [bucket_seconds(g) for g in group_by if g.startswith("bucket:")]
    allowed = tuple(r for r in RESOLUTIONS if all(w % r == 0 for w in widths))
    if not allowed:
        return None
    lo = sel.since_ns if sel.since_ns is not None else -math.inf
    hi = sel.until_ns + 1 if sel.until_ns is not None else math.inf
    if hi <= lo:
        return None
    columns_all = dict(columns)
    for g in group_by:
        if g.startswith("bucket:"):
            columns_all[g] = "bucket"
    return RollupPlan(series, columns_all, tuple(filters), tuple(split(lo, hi, allowed)))


def split(lo: float, hi: float, resolutions: Sequence[int]) -> list[tuple[int, int, int]]:
    """Cut [lo, hi) into whole buckets of the coarsest resolutions that fit, finer ones at the ends
    and raw (resolution 0) pieces of less than the finest resolution; infinite ends stay open."""
    out: list[tuple[int, int, int]] = []

    def cut(a: float, b: float, level: int) -> None:
        if b <= a:
            return
        if level < 0:
            out.append((0, int(a), int(b)))
            return
        width = resolutions[level] * 1_000_000_000
        # Integer arithmetic: times near 1.8e18 ns lose their last digits in a float.
        start = a if a == -math.inf else -(-int(a) // width) * width
        end = b if b == math.inf else int(b) // width * width
        if start < end:
            cut(a, start, level - 1)
            out.append((resolutions[level], _clip(start), _clip(end)))
            cut(end, b, level - 1)
        else:
            cut(a, b, level - 1)

    cut(lo, hi, len(resolutions) - 1)
    return out


_BIG: Final = 2**62


def _clip(x: float) -> int:
    return -_BIG if x == -math.inf else _BIG if x == math.inf else int(x)


def answer(
    kind: str,
    sel: Selection,
    group_by: Sequence[str],
    measures: Sequence[str],
    source: str,
    rollups: Callable[[RollupPlan, list[Measure]], list[dict[str, Any]]],
    raw: Callable[[Selection, list[Measure]], list[dict[str, Any]]],
) -> list[dict[str, Any]]:
    """An aggregate, every backend alike: parse and plan the request, read the rollup segments with
    ``rollups`` and the raw ones (or everything, when no rollup can answer or ``source="raw"``) with
    ``raw``, and merge the parts."""
    if source not in ("auto", "raw"):
        raise ValueError(f"unknown aggregate source {source!r}: expected 'auto' or 'raw'")
    parsed = parse(kind, group_by, measures)
    found = None if source == "raw" else plan(kind, sel, group_by, parsed)
    if found is None:
        return raw(sel, parsed)
    parts = []
    if any(resolution for resolution, _, _ in found.segments):
        cells = rollups(found, parsed)
        if kind == "log" and "message" in group_by:
            # Cells written before log_error was keyed by the shape hold exact messages: shaped here,
            # they merge with the newer cells of the same shape.
            cells = [{**row, "message": message_shape(row["message"] or "")} for row in cells]
        parts.append(cells)
    for resolution, start, end in found.segments:
        if not resolution:
            edge = Selection(start, end - 1, sel.service, None, sel.min_severity, sel.component, sel.name)
            parts.append(raw(edge, parsed))
    return merge_parts(parts, group_by, parsed)


# -- merging ----------------------------------------------------------------------------------
def empty_value(m: Measure) -> Any:
    """A measure's value over no rows."""
    return 0 if m.op in ("count", "errors", "distinct") else 0.0 if m.op == "sum" else None


def combine(m: Measure, a: Any, b: Any) -> Any:
    """Two partial values of one measure, combined (distinct counts cannot be, and never are)."""
    if a is None:
        return b
    if b is None:
        return a
    if m.op in ("count", "errors", "sum"):
        return a + b
    if m.op == "min":
        return min(a, b)
    if m.op == "max":
        return max(a, b)
    if m.op == "quantiles":
        merged = QuantileSketch()
        merged.merge(a)
        merged.merge(b)
        return merged
    raise ValueError(f"measure {m.text!r} cannot be merged across parts")


def merge_parts(
    parts: Iterable[Iterable[dict[str, Any]]], group_by: Sequence[str], measures: Sequence[Measure]
) -> list[dict[str, Any]]:
    """One row per group over every part's rows (rows of one group may come from several parts)."""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for part in parts:
        for row in part:
            key = tuple(row[g] for g in group_by)
            have = merged.get(key)
            if have is None:
                merged[key] = dict(row)
            else:
                for m in measures:
                    have[m.text] = combine(m, have[m.text], row[m.text])
    if not group_by and not merged:
        return [{m.text: empty_value(m) for m in measures}]
    return list(merged.values())


def python_aggregate(
    rows: Iterable[Mapping[str, Any]], group_by: Sequence[str], measures: Sequence[Measure]
) -> list[dict[str, Any]]:
    """Aggregate rows of field values in Python (memory store; quantiles of raw rows in SQL stores).

    Each row maps field names (``time`` included) to values; ``bucket:N`` groups are computed from
    ``time``.  None values are skipped by every measure but ``count``.
    """
    groups: dict[tuple[Any, ...], list[Any]] = {}
    getters = [_getter(g) for g in group_by]
    for row in rows:
        key = tuple(get(row) for get in getters)
        state = groups.get(key)
        if state is None:
            state = groups[key] = [_start(m) for m in measures]
        for i, m in enumerate(measures):
            state[i] = _step(m, state[i], row)
    out = []
    for key, state in groups.items():
        item = dict(zip(group_by, key, strict=True))
        for m, value in zip(measures, state, strict=True):
            item[m.text] = len(value) if m.op == "distinct" else value
        out.append(item)
    if not group_by and not out:
        return [{m.text: empty_value(m) for m in measures}]
    return out


def _getter(group: str) -> Callable[[Mapping[str, Any]], Any]:
    if group == "message":  # logs group by the shape of their message, as the log_error rollups do
        return lambda row: shape_of(row.get("message") or "")
    if not group.startswith("bucket:"):
        return lambda row: row.get(group)
    width = bucket_seconds(group) * 1_000_000_000

    def bucket(row: Mapping[str, Any]) -> Any:
        # Computed from ``time`` unless the row carries it already (a SQL query computed it).
        return row[group] if group in row else row["time"] - row["time"] % width

    return bucket


def _start(m: Measure) -> Any:
    if m.op == "distinct":
        return set()
    return empty_value(m)


def _step(m: Measure, state: Any, row: Mapping[str, Any]) -> Any:
    op = m.op
    if op == "count":
        return state + 1
    if op == "errors":
        return state + bool(row.get("failed"))
    value = row.get(m.field)
    if value is None or (isinstance(value, bool) and op != "sum"):
        return state
    if op == "distinct":
        state.add(value)
        return state
    if not isinstance(value, int | float):
        return state
    if op == "sum":
        return state + value
    if op == "min":
        return value if state is None or value < state else state
    if op == "max":
        return value if state is None or value > state else state
    sketch = state if state is not None else QuantileSketch()
    if math.isfinite(value):
        sketch.add(float(value))
    return sketch


def rollup_value(m: Measure, column: str, acc: Acc) -> Any:
    """The value of measure ``m`` in a merged rollup cell."""
    if column == "count":
        return acc.count
    if column == "errors":
        return acc.errors
    if column == "first_ns":
        return acc.first
    if column == "last_ns":
        return acc.last
    if column == "sum":
        return acc.sum
    if column == "min":
        return acc.min
    if column == "max":
        return int(acc.max) if m.field == "severity" and acc.max is not None else acc.max
    if column == "sketch":
        acc.settle()
        return acc.sketch
    if column.startswith("sums."):
        return (acc.sums or {}).get(column[5:], 0.0)
    raise ValueError(f"unknown rollup column {column!r}")
