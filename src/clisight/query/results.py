"""The values queries return: frozen dataclasses, safe to share between threads and to cache."""

from __future__ import annotations

from dataclasses import dataclass

from clisight.store.base import Count, ErrorGroupCount, ErrorLogCount, ModelUsage, SessionTotals


@dataclass(frozen=True, slots=True)
class LevelCount:
    """Logs at one level; ``severity`` is the level's number (numbers between levels round down)."""

    level: str
    severity: int
    count: int


@dataclass(frozen=True, slots=True)
class OperationStats:
    """Durations (seconds) of one operation's PERFORMANCE logs; percentiles as in ``percentiles``."""

    operation: str
    count: int
    total: float
    p50: float
    p95: float
    max: float


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
