"""`clisight demo` writes a realistic workload; `clisight report` summarises it, as tables or JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cli.clirun import invoke, invoke_json, make_demo_store, run_clisight


def test_demo_then_report_json_end_to_end_with_the_installed_command(tmp_path: Path) -> None:
    db = tmp_path / "e2e.db"
    demo = run_clisight("demo", "--store", str(db), "--sessions", "40", "--seed", "3")
    assert demo.returncode == 0, demo.stderr
    assert str(db) in demo.stdout and "clisight report" in demo.stdout
    assert "Wrote" in demo.stdout.splitlines()[0]
    report = run_clisight("report", "--store", str(db), "--json")
    assert report.returncode == 0, report.stderr
    doc = json.loads(report.stdout)
    assert doc["usage"]["sessions"]["sessions"] == 41  # 40 simulated + the demo run itself
    assert doc["total_logs"] > 0 and doc["errors"]["total"] > 0


def test_report_json_lists_llm_cost_per_model(demo_store: Path) -> None:
    doc = invoke_json("report", "--store", str(demo_store))
    models = {m["model"]: m for m in doc["usage"]["llm"]}
    assert set(models) <= {"claude-sonnet-4", "claude-haiku-3.5", "claude-opus-4"}
    assert "claude-sonnet-4" in models
    for usage in models.values():
        assert usage["requests"] > 0 and usage["input_tokens"] > 0 and usage["cost_usd"] > 0
    assert doc["usage"]["llm_cost_usd"] == pytest.approx(sum(m["cost_usd"] for m in models.values()))


def test_demo_records_errors_retries_slow_operations_and_several_users(demo_store: Path) -> None:
    doc = invoke_json("report", "--store", str(demo_store))
    error_types = {g["type"] for g in doc["errors"]["groups"]}
    assert {"RateLimitError", "OverloadedError"} <= error_types
    events = {e["key"]: e["count"] for e in doc["usage"]["events"]}
    assert {"command", "llm.request", "tool.call", "llm.retry", "conversation.turn"} <= set(events)
    assert doc["usage"]["sessions"]["users"] >= 5
    operations = {op["operation"]: op for op in doc["slow_operations"]}
    assert "llm.request" in operations
    assert all(op["p50"] <= op["p95"] <= op["max"] for op in operations.values())
    levels = {lv["level"] for lv in doc["levels"]}
    assert {"DEBUG", "INFO", "PERFORMANCE", "WARNING", "ERROR"} <= levels


def test_demo_commands_fill_the_insights_command_table(demo_store: Path) -> None:
    # Each simulated command runs in a command:<path> span, as clisight.instrument records one; the
    # sessions that end with exit code 1 are its failures.
    doc = invoke_json("insights", "--store", str(demo_store), "--days", "30")
    commands = {c["command"]: c for c in doc["commands"]}
    assert {"chat", "ask", "review"} <= set(commands)
    assert sum(c["runs"] for c in commands.values()) == 80  # one a session: the demo_store has 80
    assert sum(c["failed"] for c in commands.values()) > 0
    assert all(0 < c["p50"] <= c["p95"] for c in commands.values())


def test_report_error_groups_say_what_clisight_errors_says(tmp_path: Path) -> None:
    # The status a user set with `errors resolve` and an LLM error's kind and model, not the store's
    # own "open" and the provider's message (which read the same for every model).
    db = make_demo_store(tmp_path, sessions=40, seed=3)
    listed = invoke_json("errors", "--store", str(db))
    first = listed[0]["fingerprint"]
    assert invoke("errors", "resolve", first[:12], "--store", str(db)).exit_code == 0
    doc = invoke_json("report", "--store", str(db))
    groups = {g["fingerprint"]: g for g in doc["errors"]["groups"]}
    assert groups[first]["status"] == "resolved"
    assert {g["status"] for f, g in groups.items() if f != first} == {"unresolved"}
    by_errors = {g["fingerprint"]: (g["kind"], g["model"]) for g in listed}
    assert {f: (g["kind"], g["model"]) for f, g in groups.items()} == {f: by_errors[f] for f in groups}
    assert any(g["model"] for g in groups.values())
    table = invoke("report", "--store", str(db), env={"COLUMNS": "160"})
    assert table.exit_code == 0
    assert "resolved" in table.output and " · claude-" in table.output


def test_demo_spreads_records_over_the_past_days(demo_store: Path) -> None:
    all_time = invoke_json("report", "--store", str(demo_store))
    last_day = invoke_json("report", "--store", str(demo_store), "--since", "1d")
    assert 0 < last_day["total_logs"] < all_time["total_logs"]
    assert 0 < last_day["usage"]["sessions"]["sessions"] < all_time["usage"]["sessions"]["sessions"]


def _counts(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "levels": doc["levels"],
        "events": doc["usage"]["events"],
        "llm": doc["usage"]["llm"],
        "sessions": doc["usage"]["sessions"],
    }


def test_demo_with_the_same_seed_writes_the_same_workload(tmp_path: Path) -> None:
    docs = []
    for name in ("a.db", "b.db"):
        result = invoke("demo", "--store", name, "--sessions", "25", "--seed", "11")
        assert result.exit_code == 0, result.output
        docs.append(_counts(invoke_json("report", "--store", name)))
    assert docs[0] == docs[1]
    other = invoke("demo", "--store", "c.db", "--sessions", "25", "--seed", "12")
    assert other.exit_code == 0
    assert _counts(invoke_json("report", "--store", "c.db")) != docs[0]


def test_demo_default_size_finishes_in_a_few_seconds(tmp_path: Path) -> None:
    import time

    started = time.monotonic()
    proc = run_clisight("demo", "--store", str(tmp_path / "big.db"), "--seed", "1")
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started < 10
    assert "200 sessions" in proc.stdout


def test_demo_scrubs_secrets_like_any_client_record(tmp_path: Path) -> None:
    result = invoke("demo", "--store", "s.db", "--sessions", "5", "--seed", "1")
    assert result.exit_code == 0
    exported = invoke("export", "--store", "s.db", "--kind", "logs").stdout
    configured = [json.loads(line) for line in exported.splitlines() if "client configured" in line]
    assert len(configured) == 5
    assert "sk-ant-" not in exported and "@example.com" not in exported
    assert configured[0]["attributes"]["authorization"] == "[REDACTED]"
    assert "[REDACTED:email]" in configured[0]["message"]


def test_demo_under_do_not_track_writes_no_usage_events(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DO_NOT_TRACK", "1")
    result = invoke("demo", "--store", "dnt.db", "--sessions", "10", "--seed", "2")
    assert result.exit_code == 0
    assert "usage events are off" in result.stderr
    doc = invoke_json("report", "--store", "dnt.db")
    assert doc["usage"]["events"] == [] and doc["total_logs"] > 0


def test_demo_to_an_unknown_url_scheme_fails_cleanly(tmp_path: Path) -> None:
    result = invoke("demo", "--store", "redis://localhost/0")
    assert result.exit_code == 1
    assert "unsupported store URL" in result.stderr


def test_report_tables_show_every_section(demo_store: Path) -> None:
    result = invoke("report", "--store", str(demo_store))
    assert result.exit_code == 0
    for heading in (
        "Logs by level",
        "Top components",
        "Error groups",
        "Top error lines",
        "Slowest operations",
        "LLM usage by model",
        "Sessions",
    ):
        assert heading in result.stdout, heading
    assert "claude-sonnet" in result.stdout


def test_report_filters_by_service_and_session(demo_store: Path) -> None:
    nothing = invoke("report", "--store", str(demo_store), "--service", "no-such-service")
    assert nothing.exit_code == 0 and "No records match" in nothing.stdout
    session_id = json.loads(
        invoke(
            "export", "--store", str(demo_store), "--kind", "sessions", "--limit", "2"
        ).stdout.splitlines()[1]
    )["id"]
    one = invoke_json("report", "--store", str(demo_store), "--session", session_id)
    assert one["usage"]["sessions"]["sessions"] == 1
    assert one["filter"]["session"] == session_id
