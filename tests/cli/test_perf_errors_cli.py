"""`clisight perf` and `clisight errors` on the demo store: readable in 80 columns, JSON, comparisons,
and the status commands."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.cli.clirun import invoke, invoke_json

NARROW = {"COLUMNS": "80", "LINES": "50", "NO_COLOR": "1"}


def _fits(text: str, width: int = 80) -> None:
    wide = [line for line in text.splitlines() if len(line) > width]
    assert not wide, "\n".join(wide)


def test_perf_reads_well_in_80_columns(demo_store: Path) -> None:
    result = invoke("perf", "--store", str(demo_store), env=NARROW)
    assert result.exit_code == 0, result.output
    _fits(result.output)
    for title in ("Operations", "Slowest recent operations", "Threshold breaches", "Resources"):
        assert title in result.output
    assert "llm.request" in result.output and "process.memory.rss" in result.output


def test_perf_json_has_percentiles_breaches_and_resource_peaks(demo_store: Path) -> None:
    doc = invoke_json("perf", "--store", str(demo_store))
    ops = {op["operation"]: op for op in doc["operations"]}
    assert {"llm.request", "conversation.turn", "tool.call"} <= set(ops)
    for op in ops.values():
        assert 0 <= op["success_rate"] <= 1
        assert op["p50"] <= op["p90"] <= op["p95"] <= op["p99"] <= op["max"] * 1.01
    assert any(op["failed"] for op in ops.values())
    assert {b["operation"] for b in doc["breaches"]} & {"llm.request", "conversation.turn", "context.compact"}
    peaks = {r["metric"]: r for r in doc["resources"]}
    assert peaks["process.memory.rss"]["max"] >= peaks["process.memory.rss"]["mean"] > 0
    assert doc["slowest"] and doc["slowest"][0]["duration"] >= doc["slowest"][-1]["duration"]


def test_perf_compares_two_ranges_row_by_row(demo_store: Path) -> None:
    doc = invoke_json("perf", "--store", str(demo_store), "--since", "3d", "--compare-to", "30d..3d")
    changes = {(c["now"] or c["before"])["operation"]: c for c in doc["changes"]}
    turn = changes["llm.request"]
    assert turn["now"] is not None and turn["before"] is not None
    assert turn["count_change"] == turn["now"]["count"] - turn["before"]["count"]
    assert turn["mean_change"] == pytest.approx(turn["now"]["mean"] / turn["before"]["mean"] - 1)
    text = invoke("perf", "--store", str(demo_store), "--since", "3d", "--compare-to", "30d..3d", env=NARROW)
    assert text.exit_code == 0 and "Change against the other range" in text.output
    _fits(text.output)
    bad = invoke("perf", "--store", str(demo_store), "--compare-to", "yesterday-ish")
    assert bad.exit_code == 2 and "--compare-to" in bad.output


def test_errors_read_well_in_80_columns_and_show_a_group(demo_store: Path) -> None:
    result = invoke("errors", "--store", str(demo_store), env=NARROW)
    assert result.exit_code == 0, result.output
    _fits(result.output)
    assert "RateLimitError: rate" in result.output and "· claude-" in result.output  # kind and model
    groups = invoke_json("errors", "--store", str(demo_store))
    assert groups == sorted(groups, key=lambda g: -g["count"])
    assert all(len(g["trend"]) == 12 and sum(g["trend"]) == g["count"] for g in groups)
    recent = invoke_json("errors", "--store", str(demo_store), "--sort", "recent")
    assert [g["last_seen_ns"] for g in recent] == sorted((g["last_seen_ns"] for g in recent), reverse=True)
    ident = groups[0]["fingerprint"][:8]
    shown = invoke("errors", "--store", str(demo_store), "show", ident, env=NARROW)
    assert shown.exit_code == 0, shown.output
    _fits(shown.output, 100)  # stack lines carry file paths; the rest fits
    assert "Latest occurrence" in shown.output and "Breadcrumbs" in shown.output
    assert "status open" in shown.output  # the word the list uses (docs/cli.md), not the query layer's
    missing = invoke("errors", "--store", str(demo_store), "show", "ffffffffffff")
    assert missing.exit_code == 1 and "no error group" in missing.output
    short = invoke("errors", "--store", str(demo_store), "show", ident[:4])  # matches, but too short
    assert short.exit_code == 1 and "at least the first 6 characters" in short.output


def test_resolve_and_ignore_change_the_status_shown(demo_store: Path, tmp_path: Path) -> None:
    db = tmp_path / "copy.db"
    # The backup API, not a file copy: the demo store's latest pages may still be in its WAL file.
    with sqlite3.connect(demo_store) as source, sqlite3.connect(db) as target:
        source.backup(target)
    groups = invoke_json("errors", "--store", str(db))
    first, second = groups[0]["fingerprint"], groups[1]["fingerprint"]
    assert invoke("errors", "resolve", first[:8], "--store", str(db)).exit_code == 0
    assert invoke("errors", "--store", str(db), "ignore", second).exit_code == 0
    status = {g["fingerprint"]: g["status"] for g in invoke_json("errors", "--store", str(db))}
    assert status[first] == "resolved" and status[second] == "ignored"
    assert invoke("errors", "reopen", first, "--store", str(db)).exit_code == 0
    status = {g["fingerprint"]: g["status"] for g in invoke_json("errors", "--store", str(db))}
    assert status[first] == "unresolved"
