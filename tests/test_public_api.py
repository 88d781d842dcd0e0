"""The public surface is pinned: changing it must be a deliberate act, made here."""

from __future__ import annotations

import clisight
from tests.helpers import run_python

EXPECTED = [
    "AlertingSystem",
    "AnomalyDetector",
    "Logger",
    "LoggingHandler",
    "MonitoringDashboard",
    "ObservabilityStack",
    "PerformanceMonitor",
    "StructuredLogger",
    "UserAnalytics",
    "__version__",
    "capture_exception",
    "capture_warnings",
    "child_env",
    "counter",
    "flush",
    "gauge",
    "get_logger",
    "histogram",
    "init",
    "instrument",
    "instrument_http",
    "llm",
    "loguru_sink",
    "pipeline_stats",
    "session",
    "set_command",
    "set_session_context",
    "shutdown",
    "span",
    "structlog_processor",
    "trace_headers",
    "traced",
    "track",
    "track_user_journey",
]


def test_all_is_sorted_and_pinned() -> None:
    assert clisight.__all__ == sorted(clisight.__all__)
    assert clisight.__all__ == EXPECTED
    assert sorted([*clisight._LAZY, "__version__"]) == EXPECTED


def test_every_public_name_resolves() -> None:
    for name in clisight.__all__:
        assert getattr(clisight, name) is not None


def test_import_loads_nothing_heavy() -> None:
    out = run_python("""
        import sys
        before = set(sys.modules)
        import clisight
        print(sorted(set(sys.modules) - before))
    """)
    loaded = eval(out.stdout)  # a printed list of module names
    assert set(loaded) <= {"clisight", "__future__"}, loaded
