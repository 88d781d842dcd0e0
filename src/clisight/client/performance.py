"""Timed operations the seed's way (``PerformanceMonitor``), and the slow-operation thresholds.

``PerformanceMonitor(logger)`` keeps the seed's names and signatures: ``start_operation``,
``end_operation``, ``get_performance_stats``, ``generate_performance_report`` and
``alert_thresholds``.  Each ended operation is a PERFORMANCE record (``operation`` = its type,
``duration`` in seconds, ``success``), so the store's operation rollups and ``clisight perf`` see it.

Fixed from the seed: the success rate counts ``success``, not durations above zero; ending an
operation id that was never started (or ended twice) records nothing and never raises.

Thresholds: a span or operation longer than the limit of its name or type (the ``thresholds``
parameter; ``query_time`` 10 s, ``connection_time`` 5 s, ``memory_usage`` 500 MB by default) writes
a WARNING log (component ``clisight.perf``) and an ``alert`` event (not under DO_NOT_TRACK), both with
``alert="slow_operation"``, ``operation``, ``value``, ``threshold`` and ``unit``.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Final

from clisight._safety import guard
from clisight._sketch import QuantileSketch
from clisight.client import context as _ctx
from clisight.client import core as _core
from clisight.pipeline.redact import as_text
from clisight.types import WARNING

DEFAULT_THRESHOLDS: Final = {"query_time": 10.0, "connection_time": 5.0, "memory_usage": 500.0}
ALERT_EVENT: Final = "alert"
ALERT_COMPONENT: Final = "clisight.perf"
MAX_ACTIVE: Final = 10_000  # operations started and never ended are forgotten beyond this


def check_threshold(
    client: Any,
    operation: str,
    value: float,
    attributes: dict[str, Any] | None = None,
    ctx: _ctx.Context | None = None,
    limit: float | None = None,
    unit: str = "s",
) -> bool:
    """Alert (WARNING log + ``alert`` event) when ``value`` is over the limit of ``operation`` (or of
    the ``operation_type`` attribute); True if it was.  ``limit`` overrides the configured one."""
    if limit is None:
        limit = client.thresholds.get(operation)
        if limit is None and attributes:
            kind = attributes.get("operation_type")
            if type(kind) is str:
                limit = client.thresholds.get(kind)
    if limit is None or not value > limit:
        return False
    ctx = ctx if ctx is not None else _ctx.get()
    build = client.records
    fields = {
        "alert": "slow_operation" if unit == "s" else "threshold",
        "operation": operation,
        "value": value,
        "threshold": limit,
        "unit": unit,
    }
    shown = f"{value:.3f} s" if unit == "s" else f"{value:.1f} {unit}"
    message = (
        f"{operation} {'took' if unit == 's' else 'reached'} {shown}, over its {limit:g} {unit} threshold"
    )
    log = build.log(ALERT_COMPONENT, WARNING, message, build.merge(ctx, fields), ctx)
    client.emit(log)
    client.breadcrumbs.append(log)
    if client.usage:  # an event is usage data: not under DO_NOT_TRACK (the WARNING log stays)
        client.emit(build.event(ALERT_EVENT, build.merge(ctx, fields), ctx))
    return True


def _truth(value: object) -> bool:
    """``bool(value)``; a value whose ``__bool__`` raises counts as success (the seed's default)."""
    try:
        return bool(value)
    except Exception:
        return True


class _TypeStats:
    __slots__ = ("count", "failures", "max", "min", "sketch", "total")

    def __init__(self) -> None:
        self.count = 0
        self.failures = 0
        self.total = 0.0
        self.min = float("inf")
        self.max = 0.0
        self.sketch = QuantileSketch()

    def add(self, seconds: float, success: bool) -> None:
        self.count += 1
        self.failures += not success
        self.total += seconds
        self.min = min(self.min, seconds)
        self.max = max(self.max, seconds)
        self.sketch.add(seconds)


class PerformanceMonitor:
    """Times operations by id and type, as the seed's monitor did, through clisight.

    ``logger`` is a :class:`clisight.Logger`, a :class:`clisight.StructuredLogger` or None (the
    ``performance`` component's logger).  Every method never raises.
    """

    def __init__(self, logger: Any = None) -> None:
        self.logger = logger
        self.alert_thresholds: dict[str, float] = dict(DEFAULT_THRESHOLDS)
        client = _core._client
        if client is not None:
            self.alert_thresholds.update(client.thresholds)
        self.active_operations: dict[str, tuple[str, float]] = {}
        self._stats: dict[str, _TypeStats] = {}
        self._lock = threading.Lock()

    def start_operation(self, operation_id: str, operation_type: str) -> None:
        """Start timing ``operation_id`` (of ``operation_type``); starting an id again restarts it."""
        with guard(), self._lock:
            if len(self.active_operations) >= MAX_ACTIVE:
                self.active_operations.pop(next(iter(self.active_operations)))
            self.active_operations[as_text(operation_id)] = (as_text(operation_type), time.perf_counter())

    def end_operation(self, operation_id: str, operation_type: str, success: bool = True) -> float | None:
        """Stop timing ``operation_id``: record its duration and whether it succeeded, alert when it
        took longer than its type's threshold.  Returns the seconds it took, or None (and records
        nothing) for an id that was not started."""
        with guard():
            end = time.perf_counter()
            with self._lock:
                started = self.active_operations.pop(as_text(operation_id), None)
                if started is None:
                    return None
                seconds = end - started[1]
                kind = as_text(operation_type) if operation_type is not None else started[0]
                ok = _truth(success)
                self._stats.setdefault(kind, _TypeStats()).add(seconds, ok)
            self._record(as_text(operation_id), kind, seconds, ok)
            return seconds
        return None

    def _record(self, operation_id: str, kind: str, seconds: float, success: bool) -> None:
        from clisight.client.logger import Logger, get_logger
        from clisight.client.structured_logger import StructuredLogger

        fields = {"operation_id": operation_id, "operation_type": kind, "success": success}
        logger = self.logger
        if isinstance(logger, StructuredLogger):
            logger.log_performance("performance", kind, seconds, fields)
        elif isinstance(logger, Logger):
            logger.log_performance(kind, seconds, **fields)
        else:
            get_logger("performance").log_performance(kind, seconds, **fields)
        client = _core._client
        limit = self.alert_thresholds.get(kind)
        if client is not None and limit is not None:
            check_threshold(client, kind, seconds, fields, limit=limit)

    def get_performance_stats(self) -> dict[str, dict[str, Any]]:
        """Per operation type: ``count``, ``success_count``, ``failure_count``, ``success_rate`` (0..1),
        ``avg_time``, ``min_time``, ``max_time``, ``p50``, ``p90``, ``p95``, ``p99`` (seconds, the
        percentiles within 1 %), ``threshold`` and ``over_threshold`` (max above it)."""
        out: dict[str, dict[str, Any]] = {}
        with guard(), self._lock:
            for kind, s in sorted(self._stats.items()):
                p50, p90, p95, p99 = s.sketch.quantiles((0.5, 0.9, 0.95, 0.99))
                limit = self.alert_thresholds.get(kind)
                out[kind] = {
                    "count": s.count,
                    "success_count": s.count - s.failures,
                    "failure_count": s.failures,
                    "success_rate": (s.count - s.failures) / s.count if s.count else 0.0,
                    "avg_time": s.total / s.count if s.count else 0.0,
                    "min_time": s.min if s.count else 0.0,
                    "max_time": s.max,
                    "p50": p50,
                    "p90": p90,
                    "p95": p95,
                    "p99": p99,
                    "threshold": limit,
                    "over_threshold": limit is not None and s.max > limit,
                }
        return out

    def generate_performance_report(self) -> str:
        """The stats as a text table, one line per operation type."""
        with guard():
            stats = self.get_performance_stats()
            if not stats:
                return "Performance report: no operations recorded."
            lines = [
                "Performance report",
                f"{'operation':<20} {'count':>6} {'ok %':>6} {'mean':>9} {'p95':>9} {'max':>9}",
            ]
            for kind, s in stats.items():
                flag = "  over threshold" if s["over_threshold"] else ""
                lines.append(
                    f"{as_text(kind)[:20]:<20} {s['count']:>6} {s['success_rate'] * 100:>5.1f}% "
                    f"{s['avg_time']:>8.3f}s {s['p95'] or 0.0:>8.3f}s {s['max_time']:>8.3f}s{flag}"
                )
            return "\n".join(lines)
        return "Performance report: unavailable."
