"""The seed's ``ObservabilityStack``: logging, metrics, tracing, alerting, a dashboard, analytics and
anomaly detection set up together, with user journeys and one comprehensive report.

::

    config = {"log_level": "INFO", "metrics_enabled": True, "tracing_enabled": True, "dashboard_port": 8080}
    stack = clisight.ObservabilityStack(config)
    await stack.setup_observability()
    await stack.track_user_journey("user_login")
    print(stack.generate_comprehensive_report())

Configuration keys (the seed's four, then clisight's):

- ``log_level``: the lowest level recorded (``DEBUG``, ``INFO``...; clisight's ``level``).
- ``metrics_enabled`` (default True): ``metrics`` is a :class:`clisight.PerformanceMonitor`.
- ``tracing_enabled`` (default True): ``tracer`` makes spans; each journey step is a trace.
- ``dashboard_port``: when set, ``setup_observability`` serves ``clisight serve``'s app (the web
  dashboard and the REST API, when the ``server`` extra is installed) on ``127.0.0.1:PORT`` from a
  background thread; ``dashboard_url`` says where.  A taken port or a missing extra is reported in
  ``problems`` and the report, never raised.  ``dashboard`` is the terminal
  :class:`clisight.MonitoringDashboard` either way.
- ``service``, ``store``: passed to :func:`clisight.init` (defaults: the program's name, the
  configured store).  A client already running in the process is used as it is.

Every public method is safe to call: none raises into the program (the asyncio cancellation of the
program's own tasks excepted).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Final

from clisight._safety import guard
from clisight.client import core as _core
from clisight.client import tracing as _tracing
from clisight.exceptions import ClisightError, ConfigError

SERVER_START_TIMEOUT: Final = 10.0
SERVER_STOP_TIMEOUT: Final = 5.0
FLUSH_TIMEOUT: Final = 5.0
MAX_FINDINGS: Final = 50


class Tracer:
    """Spans for the stack (``tracing_enabled``): ``span(name, **attributes)`` is :class:`clisight.span`;
    ``start_as_current_span(name, attributes=None)`` is the same span with OpenTelemetry's manners
    (the ``with`` block gets an object with ``set_attribute``, ``set_attributes`` and
    ``record_exception``), for code written against an OpenTelemetry tracer, as the seed's was."""

    def span(self, name: str, **attributes: Any) -> _tracing.span:
        return _tracing.span(name, **attributes)

    def start_as_current_span(self, name: str, attributes: Mapping[str, Any] | None = None) -> OtelStyleSpan:
        return OtelStyleSpan(name, attributes)


class OtelStyleSpan:
    """A :class:`clisight.span` used as an OpenTelemetry span is (see :class:`Tracer`)."""

    def __init__(self, name: str, attributes: Mapping[str, Any] | None = None) -> None:
        self.span = _tracing.span(name, **{str(k): v for k, v in (attributes or {}).items()})

    def __enter__(self) -> OtelStyleSpan:
        self.span.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.span.__exit__(exc_type, exc, tb)

    @property
    def trace_id(self) -> str | None:
        return self.span.trace_id

    @property
    def span_id(self) -> str | None:
        return self.span.span_id

    def set_attribute(self, key: str, value: Any) -> None:
        self.span.set(**{str(key): value})

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        self.span.set(**{str(k): v for k, v in attributes.items()})

    def record_exception(self, exception: BaseException, **_: Any) -> None:
        """Capture the exception as an error occurrence of this span's trace."""
        from clisight.client.errors import capture_exception

        capture_exception(exception)


class _DashboardServer:
    """``clisight serve``'s app in a daemon thread on 127.0.0.1 (uvicorn), for ``dashboard_port``."""

    def __init__(self, client: Any, port: int) -> None:
        import uvicorn

        from clisight.query import Query
        from clisight.server.app import create_app

        self.query = Query(client.store_url)
        app = create_app(
            client.pipeline,
            client.redactor,
            allowed_hosts=["127.0.0.1"],
            pipeline_stats=client.pipeline.stats,
            query=self.query,
        )
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, name="clisight-dashboard", daemon=True)
        self.port = port
        self.error = ""
        self.socket: socket.socket | None = None

    def _run(self) -> None:
        with contextlib.suppress(SystemExit):  # uvicorn exits when it cannot start: start() reports it
            self.server.run(sockets=[self.socket] if self.socket is not None else None)

    def start(self) -> bool:
        # Listen here first: a taken port is then one line in problems, not uvicorn's ERROR log on
        # the program's stderr.
        try:
            self.socket = socket.create_server(("127.0.0.1", self.port))
        except OSError as error:
            self.error = error.strerror or str(error)
            self.query.close()
            return False
        self.thread.start()
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline and self.thread.is_alive() and not self.server.started:
            time.sleep(0.02)
        if not self.server.started:
            self.stop()
        return bool(self.server.started)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(SERVER_STOP_TIMEOUT)
        if self.socket is not None:
            self.socket.close()
        self.query.close()


class ObservabilityStack:
    """The seed's complete stack (see the module doc for the configuration keys).

    Attributes after :meth:`setup_observability`: ``logger`` (:class:`clisight.Logger`), ``metrics``
    (:class:`clisight.PerformanceMonitor` or None), ``tracer`` (:class:`Tracer` or None),
    ``alerting`` (``clisight.AlertingSystem``: the seed's thresholds as alert rules), ``dashboard``
    (:class:`clisight.MonitoringDashboard`), ``analytics`` (:class:`clisight.UserAnalytics`),
    ``detector`` (the seed's :class:`clisight.AnomalyDetector`, fed each journey step's duration),
    ``dashboard_url`` and ``problems`` (what could not be set up, in words).
    """

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        self.config: dict[str, Any] = dict(config) if isinstance(config, Mapping) else {}
        self.logger: Any = None
        self.metrics: Any = None
        self.tracer: Tracer | None = None
        self.alerting: Any = None
        self.dashboard: Any = None
        self.analytics: Any = None
        self.detector: Any = None
        self.dashboard_url: str | None = None
        self.problems: list[str] = []
        self.findings: list[str] = []
        self.service: str | None = None
        self.ready = False
        self._server: _DashboardServer | None = None

    # -- setup ------------------------------------------------------------------------------------
    async def setup_observability(self) -> None:
        """Start clisight (unless running) and build every component; idempotent."""
        if self.ready:
            return
        with guard():
            self._setup()

    def _setup(self) -> None:
        from clisight.client.logger import get_logger
        from clisight.client.performance import PerformanceMonitor
        from clisight.detect import AnomalyDetector
        from clisight.tui.dashboard import MonitoringDashboard
        from clisight.user_analytics import UserAnalytics

        client = _core._client or self._init()
        self.service = client.resource.service or None
        self.logger = get_logger(str(self.config.get("component") or "observability"))
        if self.config.get("metrics_enabled", True):
            self.metrics = PerformanceMonitor(self.logger)
        if self.config.get("tracing_enabled", True):
            self.tracer = Tracer()
        self.analytics = UserAnalytics(client.store_url or "analytics.db")
        self.detector = AnomalyDetector()
        self.alerting = self._alerting()
        self.dashboard = MonitoringDashboard(self.logger, self.metrics)
        port = self.config.get("dashboard_port")
        if port not in (None, False, ""):
            self._serve(client, port)
        self.ready = True
        self.logger.info(
            "observability stack ready",
            metrics=self.metrics is not None,
            tracing=self.tracer is not None,
            alerting=self.alerting is not None,
            dashboard_url=self.dashboard_url,
        )

    def _init(self) -> Any:
        from clisight.client.core import init

        kwargs: dict[str, Any] = {}
        for key in ("service", "store"):
            if self.config.get(key) is not None:
                kwargs[key] = self.config[key]
        level = self.config.get("log_level")
        if level is not None:
            try:
                return init(**kwargs, level=level)
            except ConfigError as error:
                self.problems.append(f"log_level {level!r} ignored: {error}")
        return init(**kwargs)

    def _alerting(self) -> Any:
        from clisight.alerts import AlertingSystem

        return AlertingSystem(self.logger, self.metrics)

    def _serve(self, client: Any, port: Any) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            self.problems.append(f"dashboard_port {port!r} is not a port number (1-65535): no web dashboard")
            return
        if not client.store_url:
            self.problems.append("dashboard_port: nothing is stored (store is 'none'): no web dashboard")
            return
        try:
            server = _DashboardServer(client, port)
        except ImportError as error:
            self.problems.append(
                f"dashboard_port: the web dashboard needs the server extra ({error.name} is missing): "
                "pip install 'clisight[server]'"
            )
            return
        if server.start():
            self._server = server
            self.dashboard_url = server.url
        else:
            reason = server.error or "in use?"
            self.problems.append(f"dashboard_port: could not listen on 127.0.0.1:{port} ({reason})")

    # -- journeys ---------------------------------------------------------------------------------
    async def track_user_journey(self, user_action: str, **properties: Any) -> str | None:
        """One journey step through every component: a span (its trace), a log line, a timed
        operation, a usage action, a ``journey:<action>`` event, and the seed detector's check of
        its duration.  Returns the trace id (None without tracing or before setup)."""
        if not self.ready:
            await self.setup_observability()
        with guard():
            return self._track(str(user_action), properties)
        return None

    def _track(self, action: str, properties: dict[str, Any]) -> str | None:
        from clisight.client.journey import track_user_journey

        started = time.perf_counter()
        operation_id = f"{action}-{uuid.uuid4().hex[:12]}"
        trace_id = None
        span: Any = (
            self.tracer.span(f"user_journey.{action}", user_action=action)
            if self.tracer is not None
            else contextlib.nullcontext()
        )
        with span:
            trace_id = getattr(span, "trace_id", None)
            if self.metrics is not None:
                self.metrics.start_operation(operation_id, action)
            self.logger.info("user journey step", user_action=action, **properties)
            track_user_journey(action, **properties)
            if self.metrics is not None:
                self.metrics.end_operation(operation_id, action, success=True)
            duration = time.perf_counter() - started
            self.analytics.track_action(action, properties or None, duration=duration, success=True)
        metric = f"journey.{action}.seconds"
        for finding in self.detector.check({metric: duration}):
            self.findings = [*self.findings, finding][-MAX_FINDINGS:]
        self.detector.update_baseline({metric: duration})
        return trace_id

    # -- the report -------------------------------------------------------------------------------
    def generate_comprehensive_report(self, fmt: str = "text", since: Any = None) -> str:
        """Performance, errors, usage, traces, anomalies and alerts of this stack's service, as
        ``text`` (default), ``markdown``, ``html`` or ``json``; everything queued is written first.
        ``since``: a datetime, nanoseconds, or a CLI time word (``24h``, ``2024-05-01``); default
        everything stored."""
        with guard():
            return self._report(fmt, since)
        return "clisight comprehensive report: unavailable (see clisight doctor)\n"

    def _report(self, fmt: str, since: Any) -> str:
        from clisight.client.core import flush
        from clisight.query import Filter, Query, parse_time
        from clisight.stack.render import FORMATS, render
        from clisight.stack.report import build_report

        if fmt not in FORMATS:
            choices = ", ".join(FORMATS)
            return f"clisight comprehensive report: unknown format {fmt!r}; expected one of {choices}\n"
        client = _core._client
        if client is None or not client.store_url:
            return "clisight comprehensive report: nothing is stored (clisight is not running)\n"
        if isinstance(since, str):
            try:
                since = parse_time(since)
            except ClisightError as error:
                return f"clisight comprehensive report: {error}\n"
        flush(FLUSH_TIMEOUT)
        if self.alerting is not None:  # the seed's thresholds, evaluated now: the alerts section is current
            self.alerting.check_alerts(store=client.store_url)
        notes = [f"Setup: {p}" for p in self.problems]
        if self.dashboard is not None:
            notes.append(_now_line(self.dashboard.get_metrics()))
        if self.dashboard_url:
            notes.append(f"Web dashboard: {self.dashboard_url}")
        findings = [f"Seed detector: {f}" for f in self.findings]
        with Query(client.store_url) as query:
            flt = Filter(since=since, service=self.service)
            report = build_report(query, flt, notes=notes, findings=findings)
        return render(report, fmt)

    # -- shutdown ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the terminal dashboard and the web dashboard server; clisight itself keeps running
        (``clisight.shutdown()`` ends it, as at exit)."""
        with guard():
            if self.dashboard is not None:
                self.dashboard.stop()
            server, self._server = self._server, None
            if server is not None:
                server.stop()
            self.dashboard_url = None


def _now_line(m: dict[str, Any]) -> str:
    """The terminal dashboard's numbers at report time, as one summary line."""

    def pct(value: Any) -> str:
        return "-" if value is None else f"{value:.0f}%"

    rss = m.get("process_memory_bytes")
    rate = m.get("error_rate")
    return (
        f"Now: CPU {pct(m.get('cpu_percent'))}, memory {pct(m.get('memory_percent'))}"
        f"{'' if rss is None else f', this process {rss / 1_048_576:.0f} MB'}; "
        f"active operations {m.get('active_operations', 0)}; "
        f"error rate of operations timed here {'-' if rate is None else f'{rate:.1%}'}"
    )


__all__ = ["ObservabilityStack", "OtelStyleSpan", "Tracer"]
