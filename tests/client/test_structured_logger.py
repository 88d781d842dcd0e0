"""The seed's StructuredLogger: same calls, same JSONL fields, and what the seed got wrong fixed."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import clisight
from clisight import StructuredLogger
from tests.helpers import run_python

SEED_FIELDS = {
    "timestamp",
    "level",
    "component",
    "message",
    "context",
    "session_id",
    "user_id",
    "performance_data",
}


def read_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_seed_calls_write_jsonl_entries_with_the_seed_fields(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "cli.jsonl"
    slog = StructuredLogger(str(path))
    slog.set_session_context("sess-1", user_id="user-42")
    slog.log_info("cli", "started", command="chat")
    slog.log_warning("api", "slow response", latency=3.2)
    slog.log_error("api", "request failed", error=TimeoutError("upstream"))
    slog.log_performance("api", "messages.create", 1.25, tokens=300)
    assert slog.close(5.0)
    entries = read_lines(path)
    assert [e["level"] for e in entries] == ["INFO", "WARNING", "ERROR", "PERFORMANCE"]
    for entry in entries:
        assert set(entry) >= SEED_FIELDS
        assert entry["session_id"] == "sess-1" and entry["user_id"] == "user-42"
    assert entries[0]["context"] == {"command": "chat"} and entries[0]["component"] == "cli"
    assert entries[2]["context"]["error_type"] == "TimeoutError"
    perf = entries[3]["performance_data"]
    assert perf == {"operation": "messages.create", "duration": 1.25, "tokens": 300}


def test_seed_logger_does_not_touch_the_root_logger(tmp_path: Path) -> None:
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    slog = StructuredLogger(tmp_path / "x.jsonl")
    slog.log_performance("c", "op", 0.1)  # the seed crashed here
    slog.close()
    assert (list(root.handlers), root.level) == before


def test_seed_logger_generates_a_session_id_when_none_was_set(tmp_path: Path) -> None:
    slog = StructuredLogger(tmp_path / "x.jsonl")
    slog.log_info("c", "m")
    slog.close()
    assert len(str(read_lines(tmp_path / "x.jsonl")[0]["session_id"])) == 32


def test_seed_logger_rotates_at_max_file_size(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    slog = StructuredLogger(path, max_file_size=80_000)
    for i in range(600):
        slog.log_info("c", "line", i=i)
        if i % 50 == 0:
            slog.flush(5)
    slog.close()
    files = sorted(tmp_path.glob("r.jsonl*"))
    assert len(files) > 1
    seen = sorted(
        int(e["context"]["i"])
        for f in files
        if not f.name.endswith(".lock")  # type: ignore[index]
        for e in read_lines(f)
    )
    assert seen == list(range(600))


def test_seed_logger_scrubs_secrets(tmp_path: Path) -> None:
    slog = StructuredLogger(tmp_path / "x.jsonl")
    slog.log_info("auth", "key sk-ant-api03-abcdefghijklmnopqrstuvwx", api_key="hunter2hunter2")
    slog.close()
    text = (tmp_path / "x.jsonl").read_text()
    assert "sk-ant-api03" not in text and "hunter2" not in text


def test_seed_logger_flushes_at_exit_without_an_explicit_close(tmp_path: Path) -> None:
    path = tmp_path / "exit.jsonl"
    run_python(f"""
        from clisight import StructuredLogger
        slog = StructuredLogger({str(path)!r})
        for i in range(1000):
            slog.log_info("c", "m", i=i)
    """)
    assert len(read_lines(path)) == 1000


def test_seed_logger_is_the_public_name() -> None:
    assert clisight.StructuredLogger is StructuredLogger


def test_seed_calls_with_a_positional_context_dict_still_work(tmp_path: Path) -> None:
    path = tmp_path / "ctx.jsonl"
    slog = StructuredLogger(path)
    slog.log_info("cli", "started", {"command": "chat"})
    slog.log_warning("api", "slow", {"latency": 3.2}, attempt=2)
    slog.log_error("api", "failed", ValueError("bad"), {"request": "r1"})
    slog.log_error("api", "failed without exception", {"request": "r2"})
    slog.log_performance("api", "create", 0.5, {"tokens": 10})
    slog.close()
    entries = read_lines(path)
    assert entries[0]["context"] == {"command": "chat"}
    assert entries[1]["context"] == {"latency": 3.2, "attempt": 2}
    assert entries[2]["context"] == {"request": "r1", "error_type": "ValueError", "error": "bad"}
    assert entries[3]["context"] == {"request": "r2"}
    assert entries[4]["performance_data"] == {"operation": "create", "duration": 0.5, "tokens": 10}


def test_entries_are_in_the_file_when_the_call_returns_as_in_the_seed(tmp_path: Path) -> None:
    path = tmp_path / "sync.jsonl"
    slog = StructuredLogger(path)
    slog.log_info("cli", "first")
    assert [e["message"] for e in read_lines(path)] == ["first"]  # no flush, no close
    slog.log_warning("cli", "second")
    assert [e["message"] for e in read_lines(path)] == ["first", "second"]
    slog.close()


def test_asynchronous_mode_only_queues(tmp_path: Path) -> None:
    path = tmp_path / "async.jsonl"
    slog = StructuredLogger(path, synchronous=False)
    for i in range(100):
        slog.log_info("cli", "queued", i=i)
    assert slog.flush(5)
    assert len(read_lines(path)) == 100
    slog.close()
