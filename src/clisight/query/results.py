"""The values queries return: frozen dataclasses, safe to share between threads and to cache."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class LogLine:
    """One stored log line.  ``id`` grows with every insert and is never reused (for live follow)."""

    id: int
    time_ns: int
    severity: int
    severity_text: str
    component: str
    message: str
    attributes: dict[str, Any]
    service: str
    session_id: str | None
    trace_id: str | None
    span_id: str | None


@dataclass(frozen=True, slots=True)
class Count:
    """A key (level, component, event name...) and how many records have it."""

    key: str
    count: int


@dataclass(frozen=True, slots=True)
class ErrorGroupCount:
    """An error group (one fingerprint): ``count`` occurrences within the filter; ``total_count``,
    ``first_seen_ns`` and ``last_seen_ns`` over all time; ``status`` as ``clisight errors`` gives it
    (``unresolved``, ``resolved``, ``ignored``, ``regression``)."""

    fingerprint: str
    type: str
    title: str
    status: str
    count: int
    total_count: int
    first_seen_ns: int
    last_seen_ns: int
    kind: str | None = None  # an LLM API error's kind (``llm.rate_limit``...), from its latest occurrence
    model: str | None = None  # and its model


@dataclass(frozen=True, slots=True)
class ErrorLogCount:
    """ERROR/CRITICAL log lines with the same component and message, counted."""

    component: str
    message: str
    severity: int
    count: int
    first_seen_ns: int
    last_seen_ns: int


@dataclass(frozen=True, slots=True)
class SessionTotals:
    """How many sessions a filter covers, from how many distinct (hashed) users, and how many failed."""

    sessions: int
    users: int
    failed: int


@dataclass(frozen=True, slots=True)
class ModelUsage:
    """Totals of ``llm.request`` events for one model.  Missing attributes count as zero."""

    model: str
    requests: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cost_usd: float
    duration_s: float


@dataclass(frozen=True, slots=True)
class LevelCount:
    """Logs at one level; ``severity`` is the level's number (numbers between levels round down)."""

    level: str
    severity: int
    count: int


@dataclass(frozen=True, slots=True)
class OperationStats:
    """Durations (seconds) of one operation: its spans and PERFORMANCE logs.  Percentiles come from
    the store's quantile sketches (within 1 % of the exact value); ``failed`` counts spans with an
    error status and PERFORMANCE logs with ``success=False``."""

    operation: str
    count: int
    total: float
    p50: float
    p95: float
    max: float
    p99: float = 0.0
    failed: int = 0


@dataclass(frozen=True, slots=True)
class ErrorSummary:
    """Error groups seen in the filter, and ERROR/CRITICAL log lines grouped by component and message."""

    groups: tuple[ErrorGroupCount, ...]
    log_errors: tuple[ErrorLogCount, ...]

    @property
    def total(self) -> int:
        """Error occurrences plus ERROR/CRITICAL log lines."""
        return sum(g.count for g in self.groups) + sum(e.count for e in self.log_errors)


@dataclass(frozen=True, slots=True)
class UsageSummary:
    """Events by name, session totals and LLM totals per model."""

    events: tuple[Count, ...]
    sessions: SessionTotals
    llm: tuple[ModelUsage, ...]

    @property
    def llm_cost_usd(self) -> float:
        return sum(m.cost_usd for m in self.llm)


@dataclass(frozen=True, slots=True)
class Report:
    """Everything ``clisight report`` shows, for one filter."""

    levels: tuple[LevelCount, ...]
    components: tuple[Count, ...]
    errors: ErrorSummary
    slow_operations: tuple[OperationStats, ...]
    usage: UsageSummary

    @property
    def total_logs(self) -> int:
        return sum(level.count for level in self.levels)


@dataclass(frozen=True, slots=True)
class PipelineLosses:
    """What recent runs of instrumented programs reported losing (from their sessions' counters)."""

    runs: int  # runs that reported their counters
    runs_with_drops: int
    emitted: int
    dropped: int
    sink_errors: int
    spooled_imported: int = 0  # records runs spooled at their exit deadline, since imported
