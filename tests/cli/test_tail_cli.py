"""`clisight tail`: recent lines oldest first, filters, JSON, live follow, and a terminal that stays safe."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path

import clisight
from clisight.cli._text import clean
from tests.cli.clirun import CLISIGHT, invoke


def write_logs(db: Path, *lines: tuple[str, str, str], service: str = "mycli") -> None:
    """Store ``(component, level, message)`` log lines through the client, in order."""
    clisight.init(service=service, store=str(db), overflow="block")
    for component, level, message in lines:
        getattr(clisight.get_logger(component), level)(message, attempt=1)
    clisight.shutdown(timeout=10)


def test_tail_shows_the_latest_lines_oldest_first(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    write_logs(db, *[("api", "info", f"line {i}") for i in range(30)])
    result = invoke("tail", "--store", str(db), "-n", "3")
    assert result.exit_code == 0, result.output
    shown = [line for line in result.stdout.splitlines() if "line " in line]
    assert [s.split("line ")[1].split()[0] for s in shown] == ["27", "28", "29"]
    assert "INFO" in shown[0] and "api" in shown[0] and "attempt=1" in shown[0]


def test_tail_filters_by_level_component_and_text(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    write_logs(
        db,
        ("api", "info", "request ok"),
        ("api", "warning", "request slow"),
        ("db", "error", "connection lost"),
        ("api", "error", "request failed: timeout"),
    )
    assert "request ok" not in invoke("tail", "--store", str(db), "--level", "warning").stdout
    only_db = invoke("tail", "--store", str(db), "--component", "db").stdout
    assert "connection lost" in only_db and "request" not in only_db
    grep = invoke("tail", "--store", str(db), "--grep", "TIMEOUT").stdout
    assert "request failed: timeout" in grep and "request slow" not in grep


def test_tail_json_prints_one_parsable_object_per_line(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    write_logs(db, ("api", "info", "first"), ("api", "error", "second"))
    result = invoke("tail", "--store", str(db), "--json")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["message"] for r in rows] == ["first", "second"]
    assert rows[1]["severity_text"] == "ERROR" and rows[1]["attributes"] == {"attempt": 1}


def test_tail_escapes_control_characters_so_a_log_line_cannot_rewrite_the_terminal(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    write_logs(db, ("evil\x1b]0;title\x07", "info", "before\x1b[2Jafter\rOVERWRITE\x9b31m\u202eend"))
    proc = subprocess.run(
        [str(CLISIGHT), "tail", "--store", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "FORCE_COLOR": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    printed = proc.stdout
    assert "\r" not in printed and "\x9b" not in printed and "\u202e" not in printed and "\x07" not in printed
    # The only escape sequences left are the colours we render ourselves (SGR: ESC [ ... m).
    assert "\x1b[2J" not in printed and "\x1b]" not in printed
    assert "before\\x1b[2Jafter\\rOVERWRITE\\x9b31m\\u202eend" in printed
    assert "evil\\x1b]0;title\\x07" in printed


def test_clean_escapes_every_c0_and_c1_control_but_keeps_ordinary_text() -> None:
    for code in [*range(0x20), 0x7F, *range(0x80, 0xA0)]:
        assert len(clean(chr(code))) > 1, hex(code)
    assert clean("héllo wörld ✓ 日本") == "héllo wörld ✓ 日本"
    assert clean("a\nb\tc") == "a\\nb\\tc"
    assert clean("x" * 50, limit=10) == "x" * 9 + "…"


def _reader(stream: object, lines: queue.Queue[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        lines.put(line)


def _wait_for(lines: queue.Queue[str], text: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if text in lines.get(timeout=0.1):
                return True
        except queue.Empty:
            continue
    return False


def test_tail_follow_prints_a_line_written_after_it_started_and_exits_0_on_ctrl_c(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    write_logs(db, ("api", "info", "already there"))
    proc = subprocess.Popen(
        [str(CLISIGHT), "tail", "-f", "--store", str(db), "--interval", "0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True).start()
    try:
        assert _wait_for(lines, "already there", 20), "tail -f printed nothing"
        write_logs(db, ("worker", "warning", "arrived later"))
        assert _wait_for(lines, "arrived later", 20), "tail -f did not pick up the new line"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
        assert "Traceback" not in (proc.stderr.read() if proc.stderr else "")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_tail_follow_in_process_returns_new_lines_only_after_the_newest(tmp_path: Path) -> None:
    from clisight.cli.tail import follow
    from clisight.query import Filter, Query

    db = tmp_path / "t.db"
    write_logs(db, ("api", "info", "old"), ("api", "info", "new"))
    seen: list[str] = []

    def show(line: object) -> None:
        seen.append(line.message)  # type: ignore[attr-defined]
        raise KeyboardInterrupt  # stop after the first line, as Ctrl-C would

    with Query(str(db)) as query:
        first_id = query.tail(Filter(), 2)[0].id
        follow(query, Filter(), first_id, 0.05, show)
    assert seen == ["new"]
