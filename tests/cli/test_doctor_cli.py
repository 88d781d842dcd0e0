"""`clisight doctor`: configuration with sources, the store, what is collected and what is redacted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.clirun import invoke, invoke_json, run_clisight


def test_doctor_on_a_broken_env_value_exits_2_naming_the_parameter_without_traceback() -> None:
    proc = run_clisight("doctor", env={"CLISIGHT_QUEUE_SIZE": "abc"})
    assert proc.returncode == 2
    assert "queue_size" in proc.stderr and "CLISIGHT_QUEUE_SIZE" in proc.stderr
    assert "positive integer" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_doctor_names_every_broken_setting_at_once() -> None:
    proc = run_clisight("doctor", env={"CLISIGHT_QUEUE_SIZE": "abc", "CLISIGHT_OVERFLOW": "explode"})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "CLISIGHT_QUEUE_SIZE" in proc.stderr and "CLISIGHT_OVERFLOW" in proc.stderr


def test_doctor_on_an_unknown_pyproject_key_exits_2_naming_the_key_and_file(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.clisight]\nqueue_sizee = 10\n")
    result = invoke("doctor")
    assert result.exit_code == 2
    assert "queue_sizee" in result.stderr and "pyproject.toml" in result.stderr
    assert "one of service" in result.stderr


def test_every_report_exits_2_on_a_broken_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLISIGHT_OVERFLOW", "explode")
    for command in ("report", "tail", "vacuum", "demo"):
        result = invoke(command)
        assert result.exit_code == 2, command
        assert "overflow" in result.stderr


def test_doctor_shows_where_each_value_came_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.clisight]\nservice = "fromfile"\nlevel = "WARNING"\n')
    monkeypatch.setenv("CLISIGHT_LEVEL", "ERROR")
    doc = invoke_json("doctor")
    config = {row["name"]: row for row in doc["config"]}
    assert config["service"]["value"] == "fromfile" and "[tool.clisight]" in config["service"]["source"]
    assert config["level"]["source"] == "environment CLISIGHT_LEVEL"
    assert config["queue_size"]["source"] == "default" and config["queue_size"]["doc"]
    text = invoke("doctor").stdout
    assert "environment CLISIGHT_LEVEL" in text and "fromfile" in text


def test_doctor_shows_the_files_the_defaults_resolve_to(tmp_path: Path) -> None:
    text = invoke("doctor", env={"COLUMNS": "400"}).stdout  # wide enough that no path wraps
    home = tmp_path / "home"  # CLISIGHT_HOME, set for every test
    assert f"(the data dir) {home / 'clisight.db'}" in text
    assert f"(default) {home / 'alerts.toml'}" in text


def test_doctor_reports_store_size_schema_and_row_counts(demo_store: Path) -> None:
    doc = invoke_json("doctor", "--store", str(demo_store))
    store = doc["store"]
    assert store["status"] == "ok" and store["path"] == str(demo_store)
    assert store["schema_version"] >= 1 and store["file_bytes"] > 0
    assert store["row_counts"]["logs"] > 0 and store["row_counts"]["sessions"] == 81
    assert store["backend"] == "sqlite" and store["server_version"].count(".") == 2
    text = invoke("doctor", "--store", str(demo_store)).stdout
    assert f"sqlite {store['server_version']}" in text


def test_doctor_does_not_create_a_missing_store(tmp_path: Path) -> None:
    result = invoke("doctor", "--store", "later.db")
    assert result.exit_code == 0
    assert "no data yet" in result.stdout
    assert not (tmp_path / "later.db").exists()


def test_doctor_with_an_unknown_store_scheme_reports_it_and_exits_1() -> None:
    result = invoke("doctor", "--store", "mongodb://x/y", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["store"]["status"] == "error"


def test_doctor_says_do_not_track_turns_usage_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DO_NOT_TRACK", "1")
    collected = invoke_json("doctor")["collected"]
    assert collected["usage"] is False and collected["usage_source"] == "environment DO_NOT_TRACK"
    assert collected["logs"] is True


def test_doctor_lists_redacted_key_patterns_and_value_pattern_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLISIGHT_REDACT_KEYS", "ssn,internal_id")
    redacted = invoke_json("doctor")["redacted"]
    assert redacted["enabled"] is True
    assert "cookie" in redacted["key_patterns"] and "credential" in redacted["key_patterns"]
    assert {"bearer", "anthropic_key", "aws_access_key", "jwt", "email"} <= set(redacted["value_patterns"])
    assert redacted["extra_keys"] == ["ssn", "internal_id"]
    text = invoke("doctor").stdout
    assert "anthropic_key" in text and "ssn" in text


def test_doctor_reports_what_recent_runs_dropped(tmp_path: Path) -> None:
    from tests.helpers import run_python

    db = tmp_path / "drops.db"
    program = f"""
        import json, clisight
        clisight.init(service="bursty", store={str(db)!r}, queue_size=50, batch_size=25)
        log = clisight.get_logger("burst")
        for i in range(20_000):
            log.info("burst", i=i)
        clisight.flush(30)
        print(json.dumps(clisight.pipeline_stats()["sinks"]["store"]))
    """
    first = json.loads(run_python(program).stdout)
    second = json.loads(run_python(program).stdout)
    assert first["dropped"] > 0 and second["dropped"] > 0  # a queue of 50 cannot take the burst
    runs = invoke_json("doctor", "--store", str(db))["store"]["recent_runs"]
    assert runs["runs"] == 2 and runs["runs_with_drops"] == 2
    assert runs["dropped"] == first["dropped"] + second["dropped"]
    assert runs["emitted"] == first["emitted"] + second["emitted"]
    text = " ".join(invoke("doctor", "--store", str(db)).stdout.split())  # undo the table's wrapping
    assert f"{runs['dropped']:,} dropped (2 runs)" in text


def test_doctor_shows_spooled_records_and_repair_imports_them_once(tmp_path: Path) -> None:
    from clisight.pipeline.spool import Spool, spool_dir_for
    from clisight.store.sqlite import SqliteStore
    from clisight.types import LOG, Record, Resource

    db = tmp_path / "s.db"
    SqliteStore(db).write_batch([Record(LOG, 1, "c", "before", 9, {}, Resource("t"))])
    spool = Spool(spool_dir_for(db))  # what a run left at its exit deadline
    spool.append([Record(LOG, i, "c", "spooled", 9, {"i": i}, Resource("t")) for i in range(40)])
    spool.close()
    facts = invoke_json("doctor", "--store", str(db))["store"]
    assert facts["spool"]["records"] == 40 and facts["spool"]["files"] == 1
    assert "doctor --repair" in invoke("doctor", "--store", str(db)).stdout
    repaired = invoke("doctor", "--store", str(db), "--repair")
    assert repaired.exit_code == 0 and "imported 40 spooled records from 1 file" in repaired.stdout
    again = invoke_json("doctor", "--store", str(db), "--repair")
    assert again["repaired"] == {"files": 0, "records": 0, "torn_lines": 0}
    assert again["store"]["spool"]["records"] == 0
    assert again["store"]["recent_runs"]["spooled_imported"] == 40
    report = invoke_json("report", "--store", str(db))
    assert report["total_logs"] == 41


def test_doctor_on_an_unreadable_store_still_says_what_waits_in_its_spool(tmp_path: Path) -> None:
    from clisight.pipeline.spool import Spool, spool_dir_for
    from clisight.types import LOG, Record, Resource

    db = tmp_path / "s.db"
    db.write_bytes(b"this is not an SQLite file" * 100)
    spool = Spool(spool_dir_for(db))
    spool.append([Record(LOG, i, "c", "spooled", 9, {}, Resource("t")) for i in range(7)])
    spool.close()
    proc = run_clisight("doctor", "--store", str(db), "--json")
    facts = json.loads(proc.stdout)["store"]
    assert facts["status"] == "error" and str(db) in facts["message"]
    assert facts["spool"]["records"] == 7 and facts["spool"]["files"] == 1
