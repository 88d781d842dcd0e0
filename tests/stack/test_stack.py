"""``clisight.ObservabilityStack``: the seed's complete stack on a real store, its journeys and report."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import clisight
from clisight import _safety
from clisight.client.performance import PerformanceMonitor
from clisight.client.tracing import span as span_class
from clisight.detect import AnomalyDetector
from clisight.query import Query
from clisight.stack import Tracer
from clisight.store.base import Selection
from clisight.tui.dashboard import MonitoringDashboard

SEED_CONFIG = {"log_level": "INFO", "metrics_enabled": True, "tracing_enabled": True}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stack_on(db: Path, **config: Any) -> clisight.ObservabilityStack:
    stack = clisight.ObservabilityStack({**SEED_CONFIG, "store": str(db), "service": "seedapp", **config})
    asyncio.run(asyncio.wait_for(stack.setup_observability(), timeout=30))
    return stack


def test_setup_builds_every_component_the_seed_names(tmp_path: Path) -> None:
    stack = stack_on(tmp_path / "s.db")
    assert stack.ready and stack.service == "seedapp"
    assert isinstance(stack.logger, clisight.Logger)
    assert isinstance(stack.metrics, PerformanceMonitor)
    assert isinstance(stack.tracer, Tracer)
    assert (
        isinstance(stack.dashboard, MonitoringDashboard)
        and stack.dashboard.performance_monitor is stack.metrics
    )
    assert isinstance(stack.analytics, clisight.UserAnalytics)
    assert isinstance(stack.detector, AnomalyDetector)
    assert isinstance(stack.alerting, clisight.AlertingSystem)
    assert stack.alerting.performance_monitor is stack.metrics
    assert stack.dashboard_url is None  # no dashboard_port
    assert isinstance(stack.tracer.span("y"), span_class)


def test_the_tracer_takes_code_written_for_an_opentelemetry_tracer(tmp_path: Path) -> None:
    stack = stack_on(tmp_path / "s.db")
    assert stack.tracer is not None
    with stack.tracer.start_as_current_span("checkout", attributes={"cart": 3}) as span:
        span.set_attribute("paid", True)
        span.set_attributes({"items": 2})
        span.record_exception(ValueError("card declined"))
    clisight.flush(10)
    with Query(tmp_path / "s.db") as query:
        [row] = query.reader.rows("span", Selection(name="checkout")).rows
        errors = query.reader.rows("error", Selection(trace_id=span.trace_id)).rows
    assert row["trace_id"] == span.trace_id and row["span_id"] == span.span_id
    assert {k: row["attributes"][k] for k in ("cart", "paid", "items")} == {
        "cart": 3,
        "paid": True,
        "items": 2,
    }
    assert [e["message"] for e in errors] == ["card declined"]


def test_metrics_and_tracing_can_be_turned_off(tmp_path: Path) -> None:
    stack = stack_on(tmp_path / "s.db", metrics_enabled=False, tracing_enabled=False)
    assert stack.metrics is None and stack.tracer is None
    assert asyncio.run(stack.track_user_journey("user_login")) is None  # no trace without tracing
    clisight.flush(10)
    with Query(tmp_path / "s.db") as query:
        assert [c.key for c in query.usage().events] == ["action:user_login", "journey:user_login"]


def test_log_level_is_the_level_recorded(tmp_path: Path) -> None:
    stack = stack_on(tmp_path / "s.db", log_level="WARNING")
    stack.logger.info("hidden")
    stack.logger.warning("shown")
    clisight.flush(10)
    with Query(tmp_path / "s.db") as query:
        messages = [line.message for line in query.tail(n=50)]
    assert "shown" in messages and "hidden" not in messages


def test_a_bad_log_level_is_reported_and_the_stack_still_runs(tmp_path: Path) -> None:
    stack = stack_on(tmp_path / "s.db", log_level="LOUD")
    assert stack.ready
    assert any("log_level 'LOUD' ignored" in p for p in stack.problems)
    assert "log_level 'LOUD' ignored" in stack.generate_comprehensive_report()


def test_a_journey_step_is_one_trace_across_every_component(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    stack = stack_on(db)
    trace_id = asyncio.run(stack.track_user_journey("send_message", channel="cli"))
    assert isinstance(trace_id, str) and len(trace_id) == 32
    clisight.flush(10)
    with Query(db) as query:
        in_trace = Selection(trace_id=trace_id)
        spans = query.reader.rows("span", in_trace).rows
        logs = query.reader.rows("log", in_trace).rows
        events = query.reader.rows("event", in_trace).rows
    assert [s["name"] for s in spans] == ["user_journey.send_message"]
    assert {log["message"] for log in logs} >= {"user journey step"}
    assert any(log["severity_text"] == "PERFORMANCE" for log in logs)  # the timed operation
    assert sorted(e["name"] for e in events) == ["action:send_message", "journey:send_message"]
    assert stack.detector.baseline("journey.send_message.seconds")[2] == 1


def test_the_seed_detector_flags_a_step_far_slower_than_its_baseline(tmp_path: Path) -> None:
    stack = stack_on(tmp_path / "s.db")
    for _ in range(6):
        stack.detector.update_baseline({"journey.view_sessions.seconds": 0.001})
    stack.detector.update_baseline({"journey.view_sessions.seconds": 0.0011})
    stack.metrics.alert_thresholds.clear()

    async def slow_step() -> None:
        original = stack.analytics.track_action

        def slow(*args: Any, **kwargs: Any) -> None:
            import time

            time.sleep(0.2)
            original(*args, **kwargs)

        stack.analytics.track_action = slow
        await stack.track_user_journey("view_sessions")

    asyncio.run(slow_step())
    assert any("journey.view_sessions.seconds" in f for f in stack.findings)
    assert "Seed detector: journey.view_sessions.seconds" in stack.generate_comprehensive_report()


def test_dashboard_port_serves_the_server_on_loopback_until_closed(tmp_path: Path) -> None:
    port = free_port()
    stack = stack_on(tmp_path / "s.db", dashboard_port=port)
    try:
        assert stack.dashboard_url == f"http://127.0.0.1:{port}/"
        reply = httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=10)
        assert reply.status_code == 200
        assert f"Web dashboard: http://127.0.0.1:{port}/" in stack.generate_comprehensive_report()
    finally:
        stack.close()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=5)


def test_a_taken_dashboard_port_is_reported_not_raised(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        stack = stack_on(tmp_path / "s.db", dashboard_port=port)
    assert stack.ready and stack.dashboard_url is None
    assert any(f"could not listen on 127.0.0.1:{port}" in p for p in stack.problems)
    assert (
        capfd.readouterr().err == ""
    )  # a line in problems, not the web server's log on the program's stderr


@pytest.mark.parametrize("port", ["8080", -1, 70000, True])
def test_a_dashboard_port_that_is_not_a_port_is_reported(tmp_path: Path, port: object) -> None:
    stack = stack_on(tmp_path / "s.db", dashboard_port=port)
    assert stack.ready and any("is not a port number" in p for p in stack.problems)


def test_the_report_covers_every_section_in_every_format(tmp_path: Path) -> None:
    stack = stack_on(tmp_path / "s.db")
    for step in ("user_login", "send_message", "view_sessions"):
        asyncio.run(stack.track_user_journey(step))
    text = stack.generate_comprehensive_report()
    for title in ("Summary", "Performance", "Errors", "Usage", "Traces", "Anomalies", "Alerts"):
        assert f"\n{title}\n{'=' * len(title)}\n" in text
    assert "service: seedapp" in text
    assert "active operations 0; error rate of operations timed here 0.0%" in text  # the dashboard's numbers
    assert "user_journey.view_sessions" in text
    markdown = stack.generate_comprehensive_report("markdown")
    assert "## Traces" in markdown and "| user\\_login | 1 |" in markdown
    page = stack.generate_comprehensive_report("html")
    assert page.startswith("<!DOCTYPE html>") and "<h2>Anomalies</h2>" in page
    assert "Range: all time" not in stack.generate_comprehensive_report(since="1h")
    assert "cannot read time 'soonish'" in stack.generate_comprehensive_report(since="soonish")
    document = json.loads(stack.generate_comprehensive_report("json"))
    assert [j["step"] for j in document["journeys"]] == ["send_message", "user_login", "view_sessions"]
    assert len(document["traces"]) == 3


def test_never_raises_into_the_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_safety, "_raise_internal", False)
    stack = clisight.ObservabilityStack("not a mapping")  # type: ignore[arg-type]
    assert stack.config == {}
    assert "nothing is stored" in stack.generate_comprehensive_report()  # before setup, no client
    stack = stack_on(tmp_path / "s.db")
    stack.logger = None  # a component the program broke
    assert asyncio.run(stack.track_user_journey("user_login")) is None
    assert "unknown format 'yaml'" in stack.generate_comprehensive_report("yaml")
    stack.close()
    stack.close()


def test_the_report_evaluates_the_seeds_thresholds_and_shows_what_fires(tmp_path: Path) -> None:
    stack = stack_on(tmp_path / "s.db")
    assert stack.alerting is not None and stack.metrics is not None
    stack.alerting.alert_thresholds["query_time"] = 0.001  # seconds
    stack.metrics.start_operation("q1", "query_time")
    time.sleep(0.02)
    stack.metrics.end_operation("q1", "query_time")
    text = stack.generate_comprehensive_report()
    alerts = text.split("\nAlerts\n======\n", 1)[1]
    assert "Alerts: 3; firing: 1;" in alerts  # the seed's three thresholds, one crossed
    assert "Firing: query_time: a query_time operation took longer than 0.001 s" in alerts
    states = alerts.split("Alert states\n", 1)[1].split("\n\n", 1)[0].splitlines()[2:]
    assert states[0].split()[:3] == ["query_time", "source=default", "firing"]
    changes = alerts.split("Recent changes\n", 1)[1].splitlines()[2:]
    assert any("query_time" in line and "inactive" in line and "firing" in line for line in changes)
    document = json.loads(stack.generate_comprehensive_report("json"))
    assert [a["rule"] for a in document["alerts"] if a["state"] == "firing"] == ["query_time"]
