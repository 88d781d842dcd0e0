"""``clisight usage``: Claude Code transcripts with duplicated entries give exact ccusage-style
totals per day, session and 5-hour block; the import is incremental and names malformed lines."""

from __future__ import annotations

import contextlib
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clisight.cli._claude_code import Malformed, parse_line
from clisight.query import Filter, Query
from clisight.query import usage as usage_query
from tests.cli.clirun import invoke, run_clisight

SONNET, OPUS, HAIKU = "claude-sonnet-4-5-20250929", "claude-opus-4-1-20250805", "claude-haiku-4-5-20251001"


def entry(
    ts: str, session: str, model: str, tokens: tuple[int, int, int, int], msg: str | None, req: str | None
) -> str:
    message: dict[str, Any] = {
        "model": model,
        "role": "assistant",
        "type": "message",
        "content": [{"type": "text", "text": "secret plans"}],
        "usage": {
            "input_tokens": tokens[0],
            "output_tokens": tokens[1],
            "cache_creation_input_tokens": tokens[2],
            "cache_read_input_tokens": tokens[3],
            "service_tier": "standard",
        },
    }
    if msg:
        message["id"] = msg
    line: dict[str, Any] = {
        "parentUuid": None,
        "isSidechain": False,
        "userType": "external",
        "cwd": "/home/someone/project",
        "sessionId": session,
        "version": "2.0.14",
        "type": "assistant",
        "message": message,
        "uuid": f"u-{ts}",
        "timestamp": ts,
    }
    if req:
        line["requestId"] = req
    return json.dumps(line)


E1 = entry("2025-06-01T09:10:00.000Z", "s1", SONNET, (100, 50, 1000, 0), "msg_1", "req_1")
E2 = entry("2025-06-01T09:40:00.500Z", "s1", SONNET, (10, 200, 0, 1000), "msg_2", "req_2")
E3 = entry("2025-06-01T16:20:00.000Z", "s1", OPUS, (5, 100, 0, 2000), "msg_3", "req_3")
E4 = entry("2025-06-02T01:00:00.000Z", "s2", HAIKU, (1000, 1000, 0, 0), "msg_4", "req_4")
E5 = entry("2025-06-02T03:30:00.000Z", "s2", "my-model", (1, 1, 0, 0), "msg_5", "req_5")
E6 = entry("2025-06-02T03:31:00.000Z", "s2", SONNET, (1, 1, 0, 0), "msg_6", None)
SYNTHETIC = entry("2025-06-02T03:32:00.000Z", "s2", "<synthetic>", (0, 0, 0, 0), "msg_7", "req_7")
USER = json.dumps(
    {
        "type": "user",
        "sessionId": "s1",
        "timestamp": "2025-06-01T09:09:00Z",
        "message": {"role": "user", "content": "hi"},
    }
)
SUMMARY = json.dumps({"type": "summary", "summary": "Refactor", "leafUuid": "x"})

C1, C2, C3 = 0.0048, 0.00333, 0.010575  # sonnet, sonnet, opus (per the shipped table)
C4, C6 = 0.006, 0.000018  # haiku, sonnet; E5's model has no price


def write_transcripts(root: Path) -> tuple[Path, Path]:
    a = root / "projects" / "-home-someone-project"
    b = root / "projects" / "-home-someone-other"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    first = a / "s1.jsonl"
    first.write_text("\n".join([SUMMARY, USER, E1, E2, E2, "{not json", E3]) + "\n")
    second = b / "s2.jsonl"
    second.write_text("\n".join([E2, E4, E5, SYNTHETIC, E6]) + "\n")
    return first, second


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


def _import(db: Path, *paths: Path) -> dict[str, Any]:
    result = invoke("usage", "import-claude-code", *map(str, paths), "--store", str(db), "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _report(db: Path, kind: str, *more: str) -> dict[str, Any]:
    result = invoke("usage", kind, "--store", str(db), "--json", *more)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_import_dedupes_and_daily_totals_are_exact(tmp_path: Path, utc: None) -> None:
    first, _ = write_transcripts(tmp_path / "claude")
    db = tmp_path / "s.db"
    done = _import(db, tmp_path / "claude")
    assert (done["entries"], done["duplicates"], done["sessions"], done["files"]) == (6, 2, 2, 2)
    assert done["malformed"] == [{"file": str(first), "line": 6, "problem": done["malformed"][0]["problem"]}]
    daily = _report(db, "daily")
    day1, day2 = daily["rows"]
    assert day1["key"] == "2025-06-01" and day2["key"] == "2025-06-02"
    assert [
        day1[k] for k in ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens")
    ] == [
        115,
        350,
        1000,
        3000,
    ]
    assert day1["requests"] == 3 and day1["total_tokens"] == 4465
    assert round(day1["cost_usd"], 9) == round(C1 + C2 + C3, 9)
    assert [
        day2[k] for k in ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens")
    ] == [
        1002,
        1002,
        0,
        0,
    ]
    assert round(day2["cost_usd"], 9) == round(C4 + C6, 9) and day2["unpriced_models"] == ["my-model"]
    assert daily["totals"]["requests"] == 6 and daily["totals"]["unpriced_requests"] == 1
    by_model = day1["models"]
    assert by_model[SONNET]["requests"] == 2 and round(by_model[OPUS]["cost_usd"], 9) == C3
    monthly = _report(db, "monthly")
    [june] = monthly["rows"]
    assert june["key"] == "2025-06" and june["total_tokens"] == 4465 + 2004
    since = _report(db, "daily", "--since", "2025-06-02")
    assert [r["key"] for r in since["rows"]] == ["2025-06-02"]


def test_session_and_block_totals_are_exact(tmp_path: Path, utc: None) -> None:
    write_transcripts(tmp_path / "claude")
    db = tmp_path / "s.db"
    _import(db, tmp_path / "claude")
    sessions = {r["key"]: r for r in _report(db, "session")["rows"]}
    assert set(sessions) == {"s1", "s2"}
    assert sessions["s1"]["requests"] == 3 and round(sessions["s1"]["cost_usd"], 9) == round(C1 + C2 + C3, 9)
    assert sessions["s2"]["total_tokens"] == 2004 and sessions["s2"]["project"] == "-home-someone-other"
    blocks = _report(db, "blocks")["rows"]
    starts = [datetime.fromtimestamp(b["start_ns"] / 1e9, UTC).strftime("%m-%d %H:%M") for b in blocks]
    assert starts == ["06-01 09:00", "06-01 16:00", "06-02 01:00"]
    assert [b["requests"] for b in blocks] == [2, 1, 3]
    assert round(blocks[0]["cost_usd"], 9) == round(C1 + C2, 9)
    assert not any(b["active"] for b in blocks)


def test_active_block_has_burn_rate_and_projection(tmp_path: Path, utc: None) -> None:
    write_transcripts(tmp_path / "claude")
    db = tmp_path / "s.db"
    _import(db, tmp_path / "claude")
    now = int(datetime(2025, 6, 2, 4, 1, tzinfo=UTC).timestamp()) * 10**9
    with Query(db) as q:
        rows = usage_query.blocks(q.reader, Filter().selection(), now)
    active = rows[-1]
    assert active.extra["active"] and not rows[0].extra["active"]
    elapsed = 151.0  # 01:00 to 03:31
    rate = active.extra["burn_rate"]
    assert rate["tokens_per_minute"] == round(2004 / elapsed, 3)
    assert rate["cost_per_hour"] == round((C4 + C6) / elapsed * 60, 6)
    assert active.extra["remaining_minutes"] == 119.0
    assert active.extra["projection"]["total_tokens"] == round(2004 + 2004 / elapsed * 119)


def test_reimport_reads_only_new_lines_and_waits_for_a_line_being_written(tmp_path: Path, utc: None) -> None:
    _, second = write_transcripts(tmp_path / "claude")
    db = tmp_path / "s.db"
    _import(db, tmp_path / "claude")
    again = _import(db, tmp_path / "claude")
    assert (again["entries"], again["files_read"], again["bytes_read"]) == (0, 0, 0)
    late = entry("2025-06-02T05:00:00.000Z", "s2", SONNET, (7, 0, 0, 0), "msg_8", "req_8")
    with second.open("a") as file:
        file.write(E4 + "\n" + late[:40])  # a repeated entry, and half a line still being written
    partial = _import(db, tmp_path / "claude")
    assert (partial["entries"], partial["duplicates"], partial["lines"]) == (0, 1, 1)
    with second.open("a") as file:
        file.write(late[40:] + "\n")
    rest = _import(db, tmp_path / "claude")
    assert (rest["entries"], rest["lines"]) == (1, 1)
    assert _report(db, "daily")["totals"]["requests"] == 7


def test_tables_print_totals_and_name_unknown_costs(tmp_path: Path, utc: None) -> None:
    write_transcripts(tmp_path / "claude")
    db = tmp_path / "s.db"
    _import(db, tmp_path / "claude")
    result = invoke("usage", "daily", "--store", str(db), "--breakdown", env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert "2025-06-01" in result.output and "Total" in result.output and "my-model" in result.output
    assert "Cost unknown for my-model" in result.output


def test_import_from_claude_config_dir_in_a_real_subprocess(tmp_path: Path) -> None:
    write_transcripts(tmp_path / "claude")
    db = tmp_path / "s.db"
    env = {"CLAUDE_CONFIG_DIR": str(tmp_path / "claude"), "HOME": str(tmp_path / "home"), "TZ": "UTC"}
    proc = run_clisight("usage", "import-claude-code", "--store", str(db), env=env)
    assert proc.returncode == 0, proc.stderr
    assert "Imported 6 requests in 2 sessions" in proc.stdout
    assert "s1.jsonl:6" in proc.stderr
    blocks = run_clisight("usage", "blocks", "--store", str(db), env=env)
    assert blocks.returncode == 0 and "Block start" in blocks.stdout


@given(st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
def test_parse_line_returns_an_entry_none_or_malformed_for_any_bytes(line: bytes) -> None:
    with contextlib.suppress(Malformed):
        parse_line(line)


@given(
    st.dictionaries(
        st.sampled_from(
            ["input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"]
        ),
        st.one_of(st.integers(-5, 10**12), st.floats(), st.text(max_size=3), st.none(), st.booleans()),
    ),
    st.one_of(st.text(max_size=30), st.just("2025-06-01T10:00:00Z"), st.integers()),
)
def test_parse_line_reads_usage_or_says_what_is_wrong(usage: dict[str, Any], timestamp: Any) -> None:
    line = json.dumps({"sessionId": "s", "timestamp": timestamp, "message": {"model": "m", "usage": usage}})
    try:
        found = parse_line(line)
    except Malformed as problem:
        assert str(problem)
        return
    assert found is not None and found.time_ns > 0
    assert found.input_tokens == (usage.get("input_tokens") or 0)


def test_an_interrupted_import_rerun_after_the_file_grew_stores_nothing_twice(
    tmp_path: Path, utc: None
) -> None:
    from clisight.cli._claude_code import ClaudeCodeImport, store_writer, transcript_files

    _, second = write_transcripts(tmp_path / "claude")
    db = tmp_path / "s.db"
    write, close = store_writer(str(db))
    query = Query(db)

    def save_state_then_die(key: str, value: Any) -> None:
        if not key.endswith(":claim"):
            raise KeyboardInterrupt  # killed after its records were stored, before its offsets were
        query.save_state(key, value)

    files = transcript_files([tmp_path / "claude"])
    with pytest.raises(KeyboardInterrupt):
        ClaudeCodeImport(query.load_state, save_state_then_die, write).run(files)
    close()
    query.close()
    with second.open("a") as file:
        file.write(entry("2025-06-02T05:00:00.000Z", "s2", SONNET, (7, 0, 0, 0), "msg_8", "req_8") + "\n")
    _import(db, tmp_path / "claude")
    totals = _report(db, "daily")["totals"]
    assert totals["requests"] == 7 and totals["input_tokens"] == 115 + 1002 + 7
