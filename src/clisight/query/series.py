"""Metric values and per-minute metric series, read from the rollups: what alert rules evaluate and
what the dashboard's anomaly page draws.

Stable API (the alert engine, the dashboard and ``clisight top`` build on it):

- :func:`metric_value` ``(query, metric, where, start_ns, end_ns, *, of=None, group_by=(), agg=None)
  -> dict[labels, float | None]``: one aggregate over ``[start_ns, end_ns]``, one value per group
  (``labels`` is a sorted tuple of ``(key, value)`` pairs; ``()`` without ``group_by``).
- :func:`metric_series` ``(query, metric, where, start_ns, end_ns, step_ns, *, of=None, agg=None)
  -> list[tuple[int, float]]``: the metric per ``step_ns`` bucket (a multiple of a minute), oldest
  first, each bucket's start time in ns.  Counts, cost and tokens are 0 in a bucket with no
  records; the other metrics leave such a bucket out (no latency is not a latency of 0).

Metrics (:data:`METRICS`): ``latency_p50``, ``latency_p95``, ``latency_p99``, ``latency_max``
(seconds, of operations: spans and PERFORMANCE logs), ``error_rate`` (failed / all operations, or
with ``of="logs"`` ERROR-and-above logs / all logs; 0..1), ``count`` (records; ``of`` =
``operations`` (default), ``logs``, ``events``, ``errors`` or ``llm``), ``cost`` (US dollars) and
``tokens`` (input + output) of ``llm.request`` events, ``cpu`` (process CPU %) and ``rss``
(resident memory, MB) of resource samples; ``agg`` = ``avg`` (default) or ``max`` for those two.

``where`` filters by the keys of :data:`WHERE_KEYS` for the metric's source (``service``,
``operation``, ``component``, ``level``, ``event``, ``model``, ``type``); each is answered by the
rollups, so a window of a month reads a few hundred rollup cells, never the raw records.
A bad metric, source or key raises ``ValueError`` naming it and what is allowed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from clisight._sketch import QuantileSketch
from clisight.query.service import Query
from clisight.store.base import Selection
from clisight.types import ERROR_LEVEL, SEVERITY_NUMBERS

METRICS: Final = (
    "latency_p50",
    "latency_p95",
    "latency_p99",
    "latency_max",
    "error_rate",
    "count",
    "cost",
    "tokens",
    "cpu",
    "rss",
)
LLM_EVENT: Final = "llm.request"
CPU_METRIC: Final = "process.cpu.utilization"
RSS_METRIC: Final = "process.memory.rss"
MB: Final = 1024 * 1024
MINUTE_NS: Final = 60 * 1_000_000_000

# The sources a metric may read (first: its default), and per source the where/group keys and the
# aggregate field each maps to ("" = a Selection field only, never a group).
SOURCES: Final[dict[str, tuple[str, ...]]] = {
    "latency_p50": ("operations",),
    "latency_p95": ("operations",),
    "latency_p99": ("operations",),
    "latency_max": ("operations",),
    "error_rate": ("operations", "logs"),
    "count": ("operations", "logs", "events", "errors", "llm"),
    "cost": ("llm",),
    "tokens": ("llm",),
    "cpu": ("metrics",),
    "rss": ("metrics",),
}
WHERE_KEYS: Final[dict[str, dict[str, str]]] = {
    "operations": {"service": "service", "operation": "name"},
    "logs": {"service": "service", "component": "component", "level": ""},
    "events": {"service": "service", "event": "name", "model": "model"},
    "llm": {"service": "service", "model": "model"},
    "errors": {"service": "service", "type": "type"},
    "metrics": {"service": "service"},
}
_KIND: Final = {
    "operations": "operation",
    "logs": "log",
    "events": "event",
    "llm": "event",
    "errors": "error",
    "metrics": "metric",
}
_QUANTILE: Final = {"latency_p50": 0.5, "latency_p95": 0.95, "latency_p99": 0.99}
_ZERO_WHEN_EMPTY: Final = frozenset({"count", "cost", "tokens"})

Labels = tuple[tuple[str, str], ...]


def source_of(metric: str, of: str | None) -> str:
    """The source a metric reads (``of`` or the metric's default); ValueError when not allowed."""
    if metric not in SOURCES:
        raise ValueError(f"unknown metric {metric!r}: expected one of {', '.join(METRICS)}")
    allowed = SOURCES[metric]
    if of is None:
        return allowed[0]
    if of not in allowed:
        raise ValueError(f"metric {metric!r} cannot be read of {of!r}: expected one of {', '.join(allowed)}")
    return of


@dataclass(frozen=True, slots=True)
class _Request:
    kind: str
    sel: Selection
    group_by: tuple[str, ...]  # aggregate fields
    labels: tuple[tuple[str, str], ...]  # (label key, aggregate field) of the caller's group_by
    post: tuple[tuple[str, str], ...]  # (aggregate field, value) filtered after aggregating
    measures: tuple[str, ...]


def _request(
    metric: str,
    where: Mapping[str, Any],
    start_ns: int,
    end_ns: int,
    of: str | None,
    group_by: Sequence[str],
    agg: str | None,
    bucket_s: int | None,
) -> _Request:
    source = source_of(metric, of)
    keys = WHERE_KEYS[source]
    for key in [*where, *group_by]:
        if key not in keys:
            raise ValueError(
                f"metric {metric!r} of {source} cannot filter or group by {key!r}: "
                f"expected one of {', '.join(keys)}"
            )
    if "level" in where and metric != "count":
        raise ValueError(f"'level' filters counts of logs only, not {metric!r}")
    if agg not in (None, "avg", "max"):
        raise ValueError(f"unknown agg {agg!r}: expected 'avg' or 'max'")
    sel: dict[str, Any] = {"since_ns": start_ns, "until_ns": end_ns}
    post: list[tuple[str, str]] = []
    groups: list[str] = [] if bucket_s is None else [f"bucket:{bucket_s}"]
    for key, value in where.items():
        text = str(value)
        field = keys[key]
        if key == "level":
            sel["min_severity"] = level_number(value)
        elif field in ("service", "component", "name"):
            sel[field] = text
        elif field == "type":
            sel["name"] = text  # errors are selected by exception type through Selection.name
        else:  # a field the rollups group by but Selection cannot select: group, then keep the match
            groups.append(field)
            post.append((field, text))
    labels = []
    for key in group_by:
        field = keys[key]
        if field not in groups:
            groups.append(field)
        labels.append((key, field))
    if source == "llm":
        sel["name"] = LLM_EVENT
    elif source == "metrics":
        sel["name"] = CPU_METRIC if metric == "cpu" else RSS_METRIC
    if metric in _QUANTILE:
        measures: tuple[str, ...] = ("count", "quantiles:duration")
    elif metric == "latency_max":
        measures = ("count", "max:duration")
    elif metric == "error_rate" and source == "operations":
        measures = ("count", "errors")
    elif metric == "error_rate":
        if "severity" not in groups:
            groups.append("severity")
        measures = ("count",)
    elif metric == "cost":
        measures = ("count", "sum:cost_usd")
    elif metric == "tokens":
        measures = ("count", "sum:input_tokens", "sum:output_tokens")
    elif metric in ("cpu", "rss"):
        measures = ("count", "max:value") if agg == "max" else ("count", "sum:value")
    else:
        measures = ("count",)
    return _Request(_KIND[source], Selection(**sel), tuple(groups), tuple(labels), tuple(post), measures)


def level_number(value: Any) -> int:
    """A ``level`` filter (``"error"``, ``"WARNING"``, a severity number) as its severity number."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    number = SEVERITY_NUMBERS.get(str(value).strip().upper())
    if number is None:
        raise ValueError(f"unknown level {value!r}: expected one of {', '.join(SEVERITY_NUMBERS)}")
    return number


class _Acc:
    """The measures of one (group, bucket) cell, merged over the rows that make it up."""

    __slots__ = ("bad", "count", "errors", "high", "sketch", "total")

    def __init__(self) -> None:
        self.count = 0
        self.errors = 0
        self.total = 0.0
        self.high: float | None = None
        self.sketch: QuantileSketch | None = None
        self.bad = 0  # error_rate of logs: ERROR-and-above rows


def _cells(query: Query, req: _Request, metric: str) -> dict[tuple[Labels, int], _Acc]:
    rows = query.reader.aggregate(req.kind, req.sel, req.group_by, req.measures)
    bucket = next((g for g in req.group_by if g.startswith("bucket:")), None)
    cells: dict[tuple[Labels, int], _Acc] = {}
    for row in rows:
        if not row["count"] or any(str(row.get(field) or "") != value for field, value in req.post):
            continue
        labels = tuple(sorted((key, str(row.get(field) or "")) for key, field in req.labels))
        at = int(row[bucket]) if bucket else 0
        acc = cells.get((labels, at))
        if acc is None:
            acc = cells[(labels, at)] = _Acc()
        acc.count += row["count"]
        if metric in _QUANTILE:
            found = row["quantiles:duration"]
            if isinstance(found, QuantileSketch):
                if acc.sketch is None:
                    acc.sketch = QuantileSketch()
                acc.sketch.merge(found)
        elif metric in ("latency_max", "cpu", "rss"):
            value = row.get("max:duration", row.get("max:value"))
            if value is not None:
                acc.high = float(value) if acc.high is None else max(acc.high, float(value))
            acc.total += float(row.get("sum:value") or 0.0)
        elif metric == "error_rate" and "errors" in row:
            acc.errors += int(row["errors"] or 0)
        elif metric == "error_rate":
            if int(row["severity"] or 0) >= ERROR_LEVEL:
                acc.bad += row["count"]
        elif metric == "cost":
            acc.total += float(row["sum:cost_usd"] or 0.0)
        elif metric == "tokens":
            acc.total += float(row["sum:input_tokens"] or 0) + float(row["sum:output_tokens"] or 0)
    return cells


def _value(metric: str, acc: _Acc | None) -> float | None:
    if acc is None or not acc.count:
        return 0.0 if metric in _ZERO_WHEN_EMPTY else None
    if metric in _QUANTILE:
        if acc.sketch is None:
            return None
        return acc.sketch.quantiles((_QUANTILE[metric],))[0]
    if metric == "latency_max":
        return acc.high
    if metric == "error_rate":
        return (acc.errors + acc.bad) / acc.count
    if metric == "count":
        return float(acc.count)
    if metric in ("cost", "tokens"):
        return acc.total
    scale = MB if metric == "rss" else 1.0
    value = acc.high if acc.high is not None else acc.total / acc.count
    return None if value is None or not math.isfinite(value) else value / scale


def metric_value(
    query: Query,
    metric: str,
    where: Mapping[str, Any],
    start_ns: int,
    end_ns: int,
    *,
    of: str | None = None,
    group_by: Sequence[str] = (),
    agg: str | None = None,
) -> dict[Labels, float | None]:
    """The metric over ``[start_ns, end_ns]`` per group of ``group_by`` (one store aggregate).

    Without ``group_by`` the one key is ``()`` and always present (None when there is no data,
    0 for counts, cost and tokens); with it, only groups that have records appear."""
    req = _request(metric, where, start_ns, end_ns, of, group_by, agg, None)
    cells = _cells(query, req, metric)
    if not group_by:
        return {(): _value(metric, cells.get(((), 0)))}
    return {labels: _value(metric, acc) for (labels, _), acc in cells.items()}


def grouped_series(
    query: Query,
    metric: str,
    where: Mapping[str, Any],
    start_ns: int,
    end_ns: int,
    step_ns: int,
    *,
    of: str | None = None,
    group_by: Sequence[str] = (),
    agg: str | None = None,
) -> dict[Labels, list[tuple[int, float]]]:
    """:func:`metric_series` per group of ``group_by`` (one store aggregate)."""
    if step_ns <= 0 or step_ns % MINUTE_NS:
        raise ValueError(f"step {step_ns} ns is not a whole number of minutes")
    first = start_ns - start_ns % step_ns
    req = _request(metric, where, first, end_ns, of, group_by, agg, step_ns // 1_000_000_000)
    cells = _cells(query, req, metric)
    groups = {labels for labels, _ in cells} or ({()} if not group_by else set())
    out: dict[Labels, list[tuple[int, float]]] = {}
    for labels in groups:
        points = []
        for at in range(first, end_ns + 1, step_ns):
            value = _value(metric, cells.get((labels, at)))
            if value is not None:
                points.append((at, value))
        out[labels] = points
    return out


def metric_series(
    query: Query,
    metric: str,
    where: Mapping[str, Any],
    start_ns: int,
    end_ns: int,
    step_ns: int,
    *,
    of: str | None = None,
    agg: str | None = None,
) -> list[tuple[int, float]]:
    """The metric per ``step_ns`` bucket from the bucket holding ``start_ns`` to the one holding
    ``end_ns``, oldest first: ``(bucket start ns, value)``.  One store aggregate, over rollups."""
    return grouped_series(query, metric, where, start_ns, end_ns, step_ns, of=of, agg=agg).get((), [])
