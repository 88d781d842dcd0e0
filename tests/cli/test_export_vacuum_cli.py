"""`clisight export` streams records out; `clisight vacuum` applies retention."""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from pathlib import Path

from tests.cli.clirun import invoke, invoke_json

TABLES = {"session": "sessions", "log": "logs", "event": "events", "span": "spans", "error": "errors"}


def test_export_jsonl_round_trip_counts_match_the_store(demo_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "all.jsonl"
    result = invoke("export", "--store", str(demo_store), "-o", str(out))
    assert result.exit_code == 0, result.output
    kinds = Counter(json.loads(line)["kind"] for line in out.read_text().splitlines())
    rows = invoke_json("doctor", "--store", str(demo_store))["store"]["row_counts"]
    assert {kind: kinds[kind] for kind in TABLES} == {kind: rows[table] for kind, table in TABLES.items()}
    assert f"Exported {sum(kinds.values()):,} records" in result.stderr


def test_export_csv_of_one_kind_has_a_header_and_one_row_per_record(demo_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "events.csv"
    result = invoke(
        "export", "--store", str(demo_store), "--format", "csv", "--kind", "events", "-o", str(out)
    )
    assert result.exit_code == 0, result.output
    with out.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == invoke_json("doctor", "--store", str(demo_store))["store"]["row_counts"]["events"]
    llm = next(row for row in rows if row["name"] == "llm.request")
    assert json.loads(llm["attributes"])["model"].startswith("claude-")


def test_export_csv_needs_exactly_one_kind(demo_store: Path) -> None:
    result = invoke("export", "--store", str(demo_store), "--format", "csv")
    assert result.exit_code == 2
    assert "--kind" in result.stderr


def test_export_applies_the_filters(demo_store: Path) -> None:
    lines = invoke(
        "export",
        "--store",
        str(demo_store),
        "--kind",
        "events",
        "--name",
        "llm.request",
        "--since",
        "2d",
        "--limit",
        "5",
    ).stdout.splitlines()
    assert 0 < len(lines) <= 5
    assert {json.loads(line)["name"] for line in lines} == {"llm.request"}


def test_vacuum_deletes_records_older_than_max_age_and_says_what(demo_store: Path, tmp_path: Path) -> None:
    db = tmp_path / "copy.db"
    shutil.copy(demo_store, db)
    before = invoke_json("report", "--store", str(db))["total_logs"]
    result = invoke("vacuum", "--store", str(db), "--max-age-days", "2", "--max-mb", "0", "--json")
    assert result.exit_code == 0, result.output
    done = json.loads(result.stdout)
    assert done["max_age_days"] == 2 and done["total_deleted"] > 0 and done["deleted"]["logs"] > 0
    after = invoke_json("report", "--store", str(db))["total_logs"]
    assert after == before - done["deleted"]["logs"]
    text = invoke("vacuum", "--store", str(db), "--max-age-days", "2")
    assert "Deleted: nothing" in text.stdout


def test_vacuum_uses_retention_from_the_configuration(demo_store: Path, tmp_path: Path) -> None:
    db = tmp_path / "copy.db"
    shutil.copy(demo_store, db)
    result = invoke("vacuum", "--store", str(db), "--json", env={"CLISIGHT_RETENTION_DAYS": "3"})
    assert json.loads(result.stdout)["max_age_days"] == 3.0


def test_vacuum_on_a_missing_store_says_no_data_yet(tmp_path: Path) -> None:
    result = invoke("vacuum", "--store", "gone.db")
    assert result.exit_code == 1 and "no data yet" in result.stderr
    assert not (tmp_path / "gone.db").exists()
