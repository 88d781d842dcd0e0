"""`clisight detect`: anomalies in a CSV from the shell, and errors that name the line."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from clisight.cli.detect import detect

T0 = 1_700_000_000
SPIKE_AT = 700  # data row index; CSV line = index + 2
SHIFT_AT = 1200


def write_series(path: Path, *, spike: bool, shift: bool, iso: bool = False) -> Path:
    rng = random.Random(42)
    lines = ["timestamp,value,host"]
    for i in range(1600):
        v = 10.0 + rng.gauss(0.0, 0.5)
        if spike and i == SPIKE_AT:
            v = 25.0
        if shift and i >= SHIFT_AT:
            v += 5.0
        ts = datetime.fromtimestamp(T0 + 60 * i, UTC).isoformat() if iso else str(T0 + 60 * i)
        lines.append(f"{ts},{v:.4f},web-1")
    path.write_text("\n".join(lines) + "\n")
    return path


def run(*args: str):
    return CliRunner().invoke(detect, list(args))


def test_planted_spike_and_level_shift_are_both_reported(tmp_path):
    csv_path = write_series(tmp_path / "planted.csv", spike=True, shift=True)
    result = run(str(csv_path))
    assert result.exit_code == 0, result.output
    assert "2 anomalies found" in result.output
    lines = [int(n) for n in re.findall(r"^│\s*(\d+)\s*│", result.output, re.MULTILINE)]
    assert lines[0] == SPIKE_AT + 2
    assert SHIFT_AT + 2 <= lines[1] <= SHIFT_AT + 12
    assert "▲" in result.output  # the chart marks them


def test_same_series_without_them_reports_nothing(tmp_path):
    csv_path = write_series(tmp_path / "clean.csv", spike=False, shift=False)
    result = run(str(csv_path))
    assert result.exit_code == 0, result.output
    assert "no anomalies found" in result.output
    assert "▲" not in result.output


def test_json_output_lists_the_anomalies(tmp_path):
    csv_path = write_series(tmp_path / "planted.csv", spike=True, shift=True, iso=True)
    result = run(str(csv_path), "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["points"] == 1600 and payload["detector"] == "ensemble"
    lines = [a["line"] for a in payload["anomalies"]]
    assert lines[0] == SPIKE_AT + 2
    assert SHIFT_AT + 2 <= lines[1] <= SHIFT_AT + 12
    assert len(lines) == 2
    assert 0.5 <= payload["anomalies"][0]["score"] <= 1.0


def test_other_detector_and_parameters(tmp_path):
    csv_path = write_series(tmp_path / "planted.csv", spike=True, shift=False)
    result = run(str(csv_path), "--detector", "mad", "-p", "window=120", "--json")
    assert result.exit_code == 0, result.output
    assert SPIKE_AT + 2 in [a["line"] for a in json.loads(result.output)["anomalies"]]


def test_missing_column_names_the_header_line(tmp_path):
    csv_path = write_series(tmp_path / "s.csv", spike=False, shift=False)
    result = run(str(csv_path), "--column", "latency")
    assert result.exit_code != 0
    assert "line 1: no column 'latency'" in result.output
    assert "timestamp, value, host" in result.output
    assert "Traceback" not in result.output


def test_missing_timestamp_column_is_an_error_when_asked_for(tmp_path):
    csv_path = write_series(tmp_path / "s.csv", spike=False, shift=False)
    result = run(str(csv_path), "--timestamp", "time")
    assert result.exit_code != 0
    assert "line 1: no timestamp column 'time'" in result.output


def test_non_numeric_value_names_its_line(tmp_path):
    csv_path = tmp_path / "bad.csv"
    csv_path.write_text("timestamp,value\n1,1.0\n2,2.0\n3,oops\n4,4.0\n")
    result = run(str(csv_path))
    assert result.exit_code != 0
    assert "line 4: value 'oops' in column 'value' is not a number" in result.output
    assert "Traceback" not in result.output


def test_unsorted_timestamps_name_their_line(tmp_path):
    csv_path = tmp_path / "unsorted.csv"
    csv_path.write_text(
        "timestamp,value\n2024-01-01 00:00:00,1\n2024-01-01 00:05:00,2\n2024-01-01 00:03:00,3\n"
    )
    result = run(str(csv_path))
    assert result.exit_code != 0
    assert "line 4: timestamp '2024-01-01 00:03:00' is earlier than the row before it" in result.output


def test_unreadable_timestamp_names_its_line(tmp_path):
    csv_path = tmp_path / "badtime.csv"
    csv_path.write_text("timestamp,value\n2024-01-01,1\nyesterday,2\n")
    result = run(str(csv_path))
    assert result.exit_code != 0
    assert "line 3: timestamp 'yesterday'" in result.output


def test_without_a_timestamp_column_rows_are_numbered(tmp_path):
    csv_path = tmp_path / "plain.csv"
    csv_path.write_text("value\n" + "".join(f"{1.0 + (i % 3) * 0.01}\n" for i in range(50)))
    result = run(str(csv_path), "--detector", "zscore", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["anomalies"] == []


def test_bad_parameter_is_a_usage_error(tmp_path):
    csv_path = write_series(tmp_path / "s.csv", spike=False, shift=False)
    result = run(str(csv_path), "-p", "nonsense")
    assert result.exit_code == 2
    assert "NAME=VALUE" in result.output
    result = run(str(csv_path), "-p", "no_such_param=1")
    assert result.exit_code == 2 and "no_such_param" in result.output


def test_missing_file_and_empty_file(tmp_path):
    result = run(str(tmp_path / "nope.csv"))
    assert result.exit_code != 0 and "cannot read" in result.output
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    result = run(str(empty))
    assert result.exit_code != 0 and "line 1: the file is empty" in result.output


def test_help_describes_the_command():
    result = run("--help")
    assert result.exit_code == 0
    assert "Find anomalies in a time series stored in a CSV file" in result.output
    for option in ("--column", "--timestamp", "--detector", "--threshold", "--json"):
        assert option in result.output


@pytest.mark.timeout(60)
def test_real_process_prints_anomalies_and_fails_cleanly(tmp_path):
    csv_path = write_series(tmp_path / "planted.csv", spike=True, shift=True)
    code = "from clisight.cli.detect import detect; detect()"
    ok = subprocess.run(
        [sys.executable, "-c", code, str(csv_path), "--json"], capture_output=True, text=True, timeout=30
    )
    assert ok.returncode == 0, ok.stderr
    assert len(json.loads(ok.stdout)["anomalies"]) == 2
    bad = subprocess.run(
        [sys.executable, "-c", code, str(csv_path), "--column", "nope"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 1
    assert "Error:" in bad.stderr and "line 1" in bad.stderr and "Traceback" not in bad.stderr
