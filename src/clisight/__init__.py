"""clisight: local-first observability for command-line programs.

::

    import clisight

    clisight.init(service="mycli")
    log = clisight.get_logger("api")
    log.info("request done", status=200, path="/v1/messages")
    clisight.track("llm.request", model="claude-sonnet", input_tokens=1200, output_tokens=300)

Importing this package is cheap: every name below is loaded on first use.
"""

from __future__ import annotations

import sys

# Not ``from typing import TYPE_CHECKING``: importing typing costs more than the rest of this file.
TYPE_CHECKING = False

__version__ = "0.1.0"

# public name -> module that defines it (loaded on first attribute access)
_LAZY: dict[str, str] = {
    "AlertingSystem": "clisight.alerts",
    "AnomalyDetector": "clisight.detect",
    "LoggingHandler": "clisight.client.stdlib",
    "Logger": "clisight.client.logger",
    "MonitoringDashboard": "clisight.tui.dashboard",
    "ObservabilityStack": "clisight.stack",
    "PerformanceMonitor": "clisight.client.performance",
    "StructuredLogger": "clisight.client.structured_logger",
    "UserAnalytics": "clisight.user_analytics",
    "capture_exception": "clisight.client.errors",
    "capture_warnings": "clisight.client.stdlib",
    "child_env": "clisight.client.propagation",
    "counter": "clisight.client.metrics",
    "flush": "clisight.client.core",
    "gauge": "clisight.client.metrics",
    "get_logger": "clisight.client.logger",
    "histogram": "clisight.client.metrics",
    "init": "clisight.client.core",
    "instrument": "clisight.client.instrument",
    "instrument_http": "clisight.client.propagation",
    "llm": "clisight.client.llm",
    "loguru_sink": "clisight.client.integrations",
    "pipeline_stats": "clisight.client.core",
    "session": "clisight.client.analytics",
    "set_command": "clisight.client.analytics",
    "set_session_context": "clisight.client.analytics",
    "shutdown": "clisight.client.core",
    "span": "clisight.client.tracing",
    "structlog_processor": "clisight.client.integrations",
    "trace_headers": "clisight.client.propagation",
    "traced": "clisight.client.tracing",
    "track": "clisight.client.analytics",
    "track_user_journey": "clisight.client.journey",
}

# A literal list, so type checkers see the exports; tests/test_public_api.py pins it to _LAZY.
__all__ = [
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

if TYPE_CHECKING:
    from typing import Any

    from clisight.alerts import AlertingSystem as AlertingSystem
    from clisight.client.analytics import session as session
    from clisight.client.analytics import set_command as set_command
    from clisight.client.analytics import set_session_context as set_session_context
    from clisight.client.analytics import track as track
    from clisight.client.core import flush as flush
    from clisight.client.core import init as init
    from clisight.client.core import pipeline_stats as pipeline_stats
    from clisight.client.core import shutdown as shutdown
    from clisight.client.errors import capture_exception as capture_exception
    from clisight.client.instrument import instrument as instrument
    from clisight.client.integrations import loguru_sink as loguru_sink
    from clisight.client.integrations import structlog_processor as structlog_processor
    from clisight.client.journey import track_user_journey as track_user_journey
    from clisight.client.llm import llm as llm
    from clisight.client.logger import Logger as Logger
    from clisight.client.logger import get_logger as get_logger
    from clisight.client.metrics import counter as counter
    from clisight.client.metrics import gauge as gauge
    from clisight.client.metrics import histogram as histogram
    from clisight.client.performance import PerformanceMonitor as PerformanceMonitor
    from clisight.client.propagation import child_env as child_env
    from clisight.client.propagation import instrument_http as instrument_http
    from clisight.client.propagation import trace_headers as trace_headers
    from clisight.client.stdlib import LoggingHandler as LoggingHandler
    from clisight.client.stdlib import capture_warnings as capture_warnings
    from clisight.client.structured_logger import StructuredLogger as StructuredLogger
    from clisight.client.tracing import span as span
    from clisight.client.tracing import traced as traced
    from clisight.detect import AnomalyDetector as AnomalyDetector
    from clisight.stack import ObservabilityStack as ObservabilityStack
    from clisight.tui.dashboard import MonitoringDashboard as MonitoringDashboard
    from clisight.user_analytics import UserAnalytics as UserAnalytics


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'clisight' has no attribute {name!r}")
    __import__(module)
    value = getattr(sys.modules[module], name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return __all__
