"""The query service: every read of stored records (CLI, server, TUI, alerts) goes through here.

``Query(url_or_store)`` answers tail, follow, report, export and doctor questions with frozen
dataclasses; a :class:`Filter` says which records.  Nothing outside ``clisight.store`` writes SQL.
"""

from __future__ import annotations

from clisight.query.filters import Filter, parse_level, parse_time, to_ns
from clisight.query.percentiles import percentile
from clisight.query.results import (
    Count,
    ErrorGroupCount,
    ErrorLogCount,
    ErrorSummary,
    LevelCount,
    LogLine,
    ModelUsage,
    OperationStats,
    PipelineLosses,
    Report,
    SessionTotals,
    UsageSummary,
)
from clisight.query.service import EXPORT_ORDER, Query
from clisight.store.base import RetentionPolicy, RetentionResult, StoreInfo

__all__ = [
    "EXPORT_ORDER",
    "Count",
    "ErrorGroupCount",
    "ErrorLogCount",
    "ErrorSummary",
    "Filter",
    "LevelCount",
    "LogLine",
    "ModelUsage",
    "OperationStats",
    "PipelineLosses",
    "Query",
    "Report",
    "RetentionPolicy",
    "RetentionResult",
    "SessionTotals",
    "StoreInfo",
    "UsageSummary",
    "parse_level",
    "parse_time",
    "percentile",
    "to_ns",
]
