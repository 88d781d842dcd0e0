"""Performance for ``clisight perf``: per operation type, slowest recent operations, threshold
breaches and resource peaks; optionally against another time range.

Operation rows come from the store's ``operation`` rollups (count, failures, duration sum and max,
and the quantile sketch, merged across processes and time buckets: p50/p90/p95/p99 within 1 %),
resource peaks from the ``metric`` rollups; only the short lists (slowest recent operations,
breaches) read raw rows, a bounded number of them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Final

from clisight._sketch import QuantileSketch
from clisight.query.filters import Filter
from clisight.query.service import Query
from clisight.store.base import Selection
from clisight.types import PERFORMANCE, WARNING

_ALL: Final = Filter()

ALERT_COMPONENT: Final = "clisight.perf"  # the component of threshold WARNING logs
RESOURCE_METRICS: Final = (
    "process.cpu.utilization",
    "process.memory.rss",
    "process.threads",
    "process.open_files",
    "system.cpu.utilization",
    "system.memory.utilization",
)
RECENT_SCAN: Final = 2000  # raw spans and PERFORMANCE logs read for "slowest recent"


@dataclass(frozen=True, slots=True)
class OperationPerf:
    """One operation type (span name, or a PERFORMANCE log's ``operation``); times in seconds."""

    operation: str
    count: int
    failed: int
    success_rate: float
    mean: float
    p50: float
    p90: float
    p95: float
    p99: float
    max: float


@dataclass(frozen=True, slots=True)
class OperationChange:
    """One operation in two ranges: ``before`` is None when it did not run in the other range.
    ``mean_change``/``p95_change`` are relative (0.25 = 25 % slower); ``success_change`` in points."""

    now: OperationPerf | None
    before: OperationPerf | None
    count_change: int
    mean_change: float | None
    p95_change: float | None
    success_change: float | None


@dataclass(frozen=True, slots=True)
class SlowOperation:
    operation: str
    time_ns: int
    duration: float
    failed: bool
    session_id: str | None


@dataclass(frozen=True, slots=True)
class Breach:
    """Threshold alerts of one operation (``alert`` events)."""

    operation: str
    count: int
    threshold: float
    worst: float
    unit: str
    last_ns: int


@dataclass(frozen=True, slots=True)
class ResourcePeak:
    metric: str
    unit: str
    samples: int
    mean: float
    max: float


@dataclass(frozen=True, slots=True)
class PerfReport:
    operations: tuple[OperationPerf, ...]
    slowest: tuple[SlowOperation, ...]
    breaches: tuple[Breach, ...]
    resources: tuple[ResourcePeak, ...]
    changes: tuple[OperationChange, ...] | None = None


def _selection(flt: Filter) -> Selection:
    return dataclasses.replace(flt.selection(), min_severity=None, component=None)


def operations(q: Query, flt: Filter = _ALL) -> list[OperationPerf]:
    """Every operation type in ``flt``, most frequent first."""
    found = q.reader.aggregate(
        "operation",
        _selection(flt),
        ("name",),
        ("count", "errors", "sum:duration", "max:duration", "quantiles:duration"),
    )
    rows = []
    for r in found:
        count = int(r["count"] or 0)
        if not count:
            continue
        sketch = r["quantiles:duration"]
        qs = sketch.quantiles((0.5, 0.9, 0.95, 0.99)) if isinstance(sketch, QuantileSketch) else [None] * 4
        failed = int(r["errors"] or 0)
        p50, p90, p95, p99 = (float(v or 0.0) for v in qs)
        rows.append(
            OperationPerf(
                str(r["name"]),
                count,
                failed,
                (count - failed) / count,
                float(f"{float(r['sum:duration'] or 0.0) / count:.12g}"),
                p50,
                p90,
                p95,
                p99,
                float(r["max:duration"] or 0.0),
            )
        )
    rows.sort(key=lambda o: (-o.count, o.operation))
    return rows


def _relative(now: float, before: float) -> float | None:
    return None if before <= 0 else now / before - 1.0


def compare(now: list[OperationPerf], before: list[OperationPerf]) -> list[OperationChange]:
    """Each operation of either list against itself in the other; ordered as ``now``, then the rest."""
    old = {o.operation: o for o in before}
    changes = []
    for op in now:
        prev = old.pop(op.operation, None)
        changes.append(
            OperationChange(
                op,
                prev,
                op.count - (prev.count if prev else 0),
                _relative(op.mean, prev.mean) if prev else None,
                _relative(op.p95, prev.p95) if prev else None,
                op.success_rate - prev.success_rate if prev else None,
            )
        )
    for prev in old.values():
        changes.append(OperationChange(None, prev, -prev.count, None, None, None))
    return changes


def slowest(q: Query, flt: Filter = _ALL, top: int = 5) -> list[SlowOperation]:
    """The ``top`` longest of the most recent spans and PERFORMANCE logs in ``flt``."""
    sel = _selection(flt)
    found: list[SlowOperation] = []
    for row in q.reader.rows("span", sel, limit=RECENT_SCAN, newest_first=True).rows:
        if row["end_ns"] is not None:
            found.append(
                SlowOperation(
                    row["name"],
                    row["start_ns"],
                    max(row["end_ns"] - row["start_ns"], 0) / 1e9,
                    row["status"] not in (0, 1),
                    row["session_id"],
                )
            )
    log_sel = dataclasses.replace(sel, min_severity=PERFORMANCE)
    for row in q.reader.rows("log", log_sel, limit=RECENT_SCAN, newest_first=True).rows:
        attrs = row["attributes"] or {}
        duration = attrs.get("duration")
        if row["severity"] >= WARNING or not isinstance(duration, int | float) or isinstance(duration, bool):
            continue
        name = attrs.get("operation")
        found.append(
            SlowOperation(
                name if isinstance(name, str) and name else row["message"],
                row["time_ns"],
                float(duration),
                attrs.get("success") is False,
                row["session_id"],
            )
        )
    found.sort(key=lambda s: (-s.duration, -s.time_ns))
    return found[:top]


def breaches(q: Query, flt: Filter = _ALL, top: int = 10) -> list[Breach]:
    """Threshold alerts in ``flt`` per operation, most first: the WARNING logs of ``clisight.perf``
    (the newest 1000 are read)."""
    sel = dataclasses.replace(
        flt.selection(), min_severity=WARNING, component=ALERT_COMPONENT, name=None, text=None
    )
    per: dict[str, dict[str, Any]] = {}
    for row in q.reader.rows("log", sel, limit=1000, newest_first=True).rows:
        attrs = row["attributes"] or {}
        if "threshold" not in attrs:
            continue
        operation = str(attrs.get("operation", "?"))
        value = attrs.get("value")
        entry = per.setdefault(
            operation,
            {
                "count": 0,
                "threshold": attrs.get("threshold"),
                "worst": 0.0,
                "unit": attrs.get("unit", "s"),
                "last": row["time_ns"],
            },
        )
        entry["count"] += 1
        if isinstance(value, int | float) and value > entry["worst"]:
            entry["worst"] = float(value)
    out = [
        Breach(name, e["count"], float(e["threshold"] or 0.0), e["worst"], str(e["unit"]), e["last"])
        for name, e in per.items()
    ]
    out.sort(key=lambda b: (-b.count, b.operation))
    return out[:top]


def resource_peaks(q: Query, flt: Filter = _ALL) -> list[ResourcePeak]:
    """Peak and mean of each sampled resource metric in ``flt``."""
    found = q.reader.aggregate("metric", _selection(flt), ("name",), ("count", "sum:value", "max:value"))
    units = {"process.memory.rss": "By", "process.threads": "1", "process.open_files": "1"}
    peaks = []
    for r in found:
        if r["name"] in RESOURCE_METRICS and r["count"]:
            peaks.append(
                ResourcePeak(
                    r["name"],
                    units.get(r["name"], "%"),
                    int(r["count"]),
                    float(r["sum:value"] or 0.0) / int(r["count"]),
                    float(r["max:value"] or 0.0),
                )
            )
    peaks.sort(key=lambda p: RESOURCE_METRICS.index(p.metric))
    return peaks


def perf_report(q: Query, flt: Filter = _ALL, compare_to: Filter | None = None, top: int = 20) -> PerfReport:
    """Everything ``clisight perf`` shows; ``compare_to`` adds the change per operation."""
    now = operations(q, flt)
    changes = None
    if compare_to is not None:
        changes = tuple(compare(now, operations(q, compare_to))[:top])
    return PerfReport(
        tuple(now[:top]),
        tuple(slowest(q, flt)),
        tuple(breaches(q, flt)),
        tuple(resource_peaks(q, flt)),
        changes,
    )
