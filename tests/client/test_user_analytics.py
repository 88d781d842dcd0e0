"""The seed's UserAnalytics, journeys, and the structlog/loguru bridges, against a real SQLite store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import clisight
from clisight.query import Query
from clisight.store.base import Selection
from tests.helpers import run_python

SEED_KEYS = {
    "period_days",
    "session_id",
    "total_actions",
    "total_commands",
    "command_usage",
    "most_used_commands",
    "action_types",
    "session_metrics",
    "insights",
    "generated_at",
}


def test_user_analytics_keeps_the_seed_calls_and_fills_in_the_session(tmp_path: Path) -> None:
    db = tmp_path / "analytics.db"
    analytics = clisight.UserAnalytics(str(db))
    assert analytics.session_id and len(analytics.session_id) == 32
    for index in range(6):
        analytics.track_command_usage("chat", execution_time=0.5, success=index % 3 != 0)
    analytics.track_command_usage("ask", 2.0, True)
    analytics.track_conversation_metrics(message_count=10, total_tokens=5000, response_time=2.5)
    analytics.track_conversation_metrics(message_count=4, total_tokens=1000, response_time=1.5)
    analytics.track_action("file_upload", {"size_kb": 120}, duration=0.4, success=False)
    analytics.track_action("file_upload", {"size_kb": 10}, duration=0.2)
    analytics.track_action("login", None)
    report = analytics.generate_usage_insights(days=7)
    assert set(report) == SEED_KEYS
    assert report["session_id"] == analytics.session_id and report["period_days"] == 7
    assert report["command_usage"] == [
        {"command": "chat", "usage_count": 6, "avg_execution_time": 0.5, "success_rate": round(4 / 6, 6)},
        {"command": "ask", "usage_count": 1, "avg_execution_time": 2.0, "success_rate": 1.0},
    ]
    assert report["most_used_commands"] == ["chat", "ask"] and report["total_commands"] == 7
    assert report["action_types"][0] == {
        "action_type": "file_upload",
        "count": 2,
        "avg_duration": pytest.approx(0.3),
        "success_rate": 0.5,
    }
    assert report["total_actions"] == 3
    metrics = report["session_metrics"]
    assert (metrics["conversations"], metrics["avg_message_count"], metrics["avg_tokens"]) == (2, 7.0, 3000.0)
    assert metrics["avg_response_time"] == 2.0 and metrics["total_tokens"] == 6000
    assert "most used command: chat (6 runs)" in report["insights"]
    assert any("high error rate in chat" in line for line in report["insights"])
    with Query(db) as q:
        events = q.reader.rows("event", Selection(), limit=50).rows
    assert events and all(e["session_id"] == analytics.session_id for e in events)


def test_user_analytics_never_raises_into_the_program(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clisight import _safety

    monkeypatch.setattr(_safety, "_raise_internal", False)
    analytics = clisight.UserAnalytics(str(tmp_path / "a.db"))
    odd: Any = object()
    analytics.track_action(odd, odd, duration=odd, success=odd)
    analytics.track_command_usage(odd, odd, odd)
    analytics.track_conversation_metrics(odd, float("inf"), "x")
    assert set(analytics.generate_usage_insights(days=odd)) == SEED_KEYS


def test_journey_steps_are_recorded_with_the_user_and_not_under_do_not_track(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    clisight.init(store=db)
    with clisight.session(user="alice"):
        clisight.track_user_journey("signup", plan="free")
    clisight.flush(10)
    with Query(db) as q:
        [step] = q.reader.rows("event", Selection(name="journey:signup"), limit=10).rows
    assert step["attributes"]["step"] == "signup" and step["attributes"]["plan"] == "free"
    assert step["attributes"]["user_id"].startswith("u_") and "alice" not in str(step)
    assert step["attributes"]["actor"] == step["attributes"]["model"] == step["attributes"]["user_id"]
    out = run_python(
        f"""
        import clisight
        clisight.init(store={str(tmp_path / "dnt.db")!r})
        clisight.track_user_journey("signup")
        clisight.llm.record(model="gpt-4o", input_tokens=3)
        clisight.get_logger("x").info("still logged")
        """,
        env={"DO_NOT_TRACK": "1"},
    )
    assert out.returncode == 0
    with Query(tmp_path / "dnt.db") as q:
        assert q.reader.rows("event", Selection(), limit=10).rows == []
        assert len(q.reader.rows("log", Selection(), limit=10).rows) == 1


def test_structlog_processor_routes_events_with_bound_context(tmp_path: Path) -> None:
    structlog = pytest.importorskip("structlog")
    db = tmp_path / "s.db"
    clisight.init(store=db)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            clisight.structlog_processor,
            structlog.processors.KeyValueRenderer(),
        ],
        logger_factory=structlog.ReturnLoggerFactory(),
    )
    try:
        log = structlog.get_logger("billing").bind(customer="c-42", attempt=2)
        assert "event='charged'" in log.warning("charged", amount=12.5)
        try:
            raise ValueError("card declined")
        except ValueError:
            log.error("charge failed", exc_info=True)
    finally:
        structlog.reset_defaults()
    clisight.flush(10)
    with Query(db) as q:
        rows = q.reader.rows("log", Selection(), limit=10).rows
    first, second = rows
    assert (first["message"], first["severity_text"]) == ("charged", "WARNING")
    assert first["attributes"]["customer"] == "c-42" and first["attributes"]["amount"] == 12.5
    assert second["severity_text"] == "ERROR" and second["attributes"]["exception.type"] == "ValueError"


def test_loguru_sink_routes_records_with_extra_fields(tmp_path: Path) -> None:
    loguru = pytest.importorskip("loguru")
    db = tmp_path / "s.db"
    clisight.init(store=db)
    sink_id = loguru.logger.add(clisight.loguru_sink, level="DEBUG")
    try:
        loguru.logger.bind(request_id="r-1").success("uploaded {}", "a.txt")
        try:
            _ = 1 / 0
        except ZeroDivisionError:
            loguru.logger.exception("math")
    finally:
        loguru.logger.remove(sink_id)
    clisight.flush(10)
    with Query(db) as q:
        first, second = q.reader.rows("log", Selection(), limit=10).rows
    assert (first["message"], first["severity_text"]) == ("uploaded a.txt", "INFO")
    assert (
        first["attributes"]["request_id"] == "r-1"
        and first["component"] == "tests.client.test_user_analytics"
    )
    assert (
        second["severity_text"] == "ERROR" and second["attributes"]["exception.type"] == "ZeroDivisionError"
    )


def test_bridges_never_raise_into_the_program(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from clisight import _safety

    monkeypatch.setattr(_safety, "_raise_internal", False)
    clisight.init(store=tmp_path / "s.db")
    odd: Any = object()
    assert clisight.structlog_processor(odd, odd, {"event": odd, "exc_info": odd, "level": odd}) is not None
    clisight.loguru_sink(odd)
    clisight.track_user_journey(odd, **{"x": odd})
