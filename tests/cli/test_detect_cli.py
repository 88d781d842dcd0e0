"""`clisight detect`: anomalies in a CSV from the shell, and errors that name the line."""

from __future__ import annotations

import csv
import json
import math
import random
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clisight.cli.detect import SNIFFED_DELIMITERS, _parse_time, detect, read_series, shown_time
from tests.cli.clirun import run_clisight

T0 = 1_700_000_000
SPIKE_AT = 700  # data row index; CSV line = index + 2
SHIFT_AT = 1200


def write_series(
    path: Path,
    *,
    spike: bool,
    shift: bool,
    iso: bool = False,
    delimiter: str = ",",
    shuffle: bool = False,
    points: int = 1600,
) -> Path:
    rng = random.Random(42)
    rows = []
    for i in range(points):
        v = 10.0 + rng.gauss(0.0, 0.5)
        if spike and i == SPIKE_AT:
            v = 25.0
        if shift and i >= SHIFT_AT:
            v += 5.0
        ts = datetime.fromtimestamp(T0 + 60 * i, UTC).isoformat() if iso else str(T0 + 60 * i)
        rows.append(delimiter.join([ts, f"{v:.4f}", "web-1"]))
    if shuffle:
        random.Random(7).shuffle(rows)
    path.write_text("\n".join([delimiter.join(["timestamp", "value", "host"]), *rows]) + "\n")
    return path


def run(*args: str):
    return CliRunner().invoke(detect, list(args))


# The tests below that count the anomalies in the 1-minute series above name the ensemble: they are
# about the command's output.  The default detector learns from 15 % of such a 1,600-point series
# (240 points) and gives this noise a few false alarms at its shipped threshold; its own story is
# test_the_default_finds_one_level_shift_in_an_hourly_series_once (and tests/detect).
ENSEMBLE = ("--detector", "ensemble")


def test_planted_spike_and_level_shift_are_both_reported(tmp_path):
    csv_path = write_series(tmp_path / "planted.csv", spike=True, shift=True)
    result = run(str(csv_path), *ENSEMBLE)
    assert result.exit_code == 0, result.output
    assert "2 anomalies found" in result.output
    lines = [int(n) for n in re.findall(r"^│\s*(\d+)\s*│", result.output, re.MULTILINE)]
    assert lines[0] == SPIKE_AT + 2
    assert SHIFT_AT + 2 <= lines[1] <= SHIFT_AT + 12
    assert "▲" in result.output  # the chart marks them


def test_same_series_without_them_reports_nothing(tmp_path):
    csv_path = write_series(tmp_path / "clean.csv", spike=False, shift=False)
    result = run(str(csv_path), *ENSEMBLE)
    assert result.exit_code == 0, result.output
    assert "no anomalies found" in result.output
    assert "▲" not in result.output


def test_json_output_lists_the_anomalies(tmp_path):
    csv_path = write_series(tmp_path / "planted.csv", spike=True, shift=True, iso=True)
    result = run(str(csv_path), "--json", *ENSEMBLE)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["points"] == 1600 and payload["detector"] == "ensemble" and payload["threshold"] == 0.5
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


def test_rows_out_of_time_order_are_read_in_file_order_with_a_warning_naming_the_first(tmp_path):
    csv_path = tmp_path / "unsorted.csv"
    csv_path.write_text(
        "timestamp,value\n2024-01-01 00:00:00,1\n2024-01-01 00:05:00,2\n2024-01-01 00:03:00,3\n"
        "2024-01-01 00:06:00,4\n2024-01-01 00:04:00,5\n"
    )
    result = run(str(csv_path), "--detector", "zscore", "--json")
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("Warning: ")
    assert (
        "line 4: timestamp '2024-01-01 00:03:00' is earlier than '2024-01-01 00:05:00' on line 3; "
        "2 rows out of time order, read in file order (--sort sorts the rows by time)"
    ) in result.stderr
    payload = json.loads(result.stdout)  # the warning never spoils the JSON
    assert payload["points"] == 5
    assert "line 4" in payload["warnings"][0]


def test_sort_flag_orders_a_shuffled_file_by_time_and_finds_the_same_anomalies(tmp_path):
    in_order = write_series(tmp_path / "in_order.csv", spike=True, shift=True)
    shuffled = write_series(tmp_path / "shuffled.csv", spike=True, shift=True, shuffle=True)
    expected = json.loads(run(str(in_order), "--json").stdout)["anomalies"]
    result = run(str(shuffled), "--sort", "--json")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""  # asked for, so no warning
    found = json.loads(result.stdout)["anomalies"]
    assert [a["timestamp"] for a in found] == [a["timestamp"] for a in expected]
    # each anomaly still names its line in the shuffled file
    rows = shuffled.read_text().splitlines()
    for anomaly in found:
        assert rows[anomaly["line"] - 1].startswith(anomaly["timestamp"] + ",")


def test_repeated_timestamps_warn_and_keep_file_order(tmp_path):
    csv_path = tmp_path / "repeats.csv"
    csv_path.write_text("timestamp,value\n100,1\n160,2\n160,9\n220,4\n100,5\n")
    result = run(str(csv_path), "--detector", "zscore", "--sort", "--json")
    assert result.exit_code == 0, result.output
    assert (
        "line 4: timestamp '160' repeats line 3; 2 rows share a timestamp with an earlier row, "
        "kept in file order"
    ) in result.stderr
    assert "out of time order" not in result.stderr  # --sort was asked for
    payload = json.loads(result.stdout)
    assert payload["points"] == 5


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_the_delimiter_is_sniffed(tmp_path, delimiter):
    plain = write_series(tmp_path / "comma.csv", spike=True, shift=True)
    other = write_series(tmp_path / "other.csv", spike=True, shift=True, delimiter=delimiter)
    expected = json.loads(run(str(plain), "--json").stdout)["anomalies"]
    result = run(str(other), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["anomalies"] == expected


def test_delimiter_option_names_the_character_or_tab(tmp_path):
    tsv = write_series(tmp_path / "s.tsv", spike=True, shift=False, delimiter="\t")
    for spelling in ("tab", "\\t", "\t"):
        result = run(str(tsv), "--delimiter", spelling, "--json")
        assert result.exit_code == 0, (spelling, result.output)
        assert SPIKE_AT + 2 in [a["line"] for a in json.loads(result.stdout)["anomalies"]]
    result = run(str(tsv), "--delimiter", ";")  # the wrong one: the header is a single column
    assert result.exit_code == 1
    assert "line 1: no column 'value'" in result.output
    assert "one column with delimiter semicolon" in result.output and "--delimiter" in result.output
    result = run(str(tsv), "--delimiter", "ab")
    assert result.exit_code == 2 and "--delimiter" in result.output


def test_semicolon_file_with_decimal_commas_is_read_as_semicolons(tmp_path):
    csv_path = tmp_path / "eu.csv"
    csv_path.write_text("timestamp;value\n2024-01-01 00:00;1,5\n2024-01-01 00:01;2,5\n")
    result = run(str(csv_path))
    assert result.exit_code == 1
    assert "line 2: value '1,5' in column 'value' is not a number" in result.output


def test_a_space_separated_file_says_the_delimiter_may_be_wrong(tmp_path):
    csv_path = tmp_path / "spaces.txt"
    csv_path.write_text("time value\n1 2\n2 3\n")
    result = run(str(csv_path))
    assert result.exit_code == 1
    assert f"{csv_path}: line 1: no column 'value'" in result.output
    assert "columns: time value" in result.output and "--delimiter" in result.output
    assert run(str(csv_path), "--delimiter", " ", "--timestamp", "time").exit_code == 0


def test_rows_wider_than_the_header_are_warned_about(tmp_path):
    csv_path = tmp_path / "ragged.csv"
    csv_path.write_text("value\n1\n2,5\n3\n4,5\n")
    result = run(str(csv_path), "--detector", "zscore")
    assert result.exit_code == 0, result.output
    assert "line 3: 2 cells, the header has 1; 2 rows with more cells than the header" in result.stderr


def test_header_without_rows_and_a_file_that_is_not_text(tmp_path):
    header_only = tmp_path / "header.csv"
    header_only.write_text("timestamp,value\n")
    result = run(str(header_only))
    assert result.exit_code == 1 and f"{header_only}: line 2: no data rows after the header" in result.output
    binary = tmp_path / "data.bin"
    binary.write_bytes(b"timestamp,value\n\xff\xfe\x00\x81,1\n")
    result = run(str(binary))
    assert result.exit_code == 1 and "is not UTF-8 text" in result.output
    assert "Traceback" not in result.output


def test_series_shorter_than_the_warm_up_says_nothing_could_be_judged(tmp_path):
    csv_path = write_series(tmp_path / "short.csv", spike=False, shift=False, points=25)
    result = run(str(csv_path))
    assert result.exit_code == 0, result.output
    assert (
        "series has 25 points; the novelty detector needs at least 31 to warm up "
        "(it only learns from the first 30); nothing could be judged"
    ) in result.stdout
    assert "-p probation=N" in result.stdout
    assert "no anomalies found" not in result.output
    result = run(str(csv_path), "--json")
    payload = json.loads(result.stdout)
    assert (payload["points"], payload["warmup"], payload["judged"]) == (25, 30, 0)
    assert "nothing could be judged" in result.stderr
    result = run(str(csv_path), "-p", "probation=10", "--json")  # a shorter warm-up judges the rest
    assert json.loads(result.stdout)["judged"] == 15 and result.stderr == ""
    result = run(str(csv_path), "--detector", "mad", "-p", "warmup=10")
    assert "found" in result.stdout and "nothing could be judged" not in result.output


def test_the_default_finds_one_level_shift_in_an_hourly_series_once(tmp_path):
    rows = []
    for i in range(3000):  # 125 days of hourly values with a daily cycle; the level rises at row 2000
        value = 200.0 + 30.0 * math.sin(2 * math.pi * i / 24) + (80.0 if i >= 2000 else 0.0)
        stamp = datetime.fromtimestamp(T0 + 3600 * i, UTC).strftime("%Y-%m-%d %H:%M:%S")
        rows.append(f"{stamp},{value:.3f}")
    csv_path = tmp_path / "hourly.csv"
    csv_path.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    result = run(str(csv_path), "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["detector"] == "novelty" and payload["warmup"] == 450  # 15 % of the rows, as in NAB
    assert [(a["line"], a["points"]) for a in payload["anomalies"]] == [(2000 + 2, 1)]
    result = run(str(csv_path))
    assert "1 anomaly found" in result.output


_NOTES = st.text(alphabet=",;\t|\"' ab\n\r", max_size=6)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    delimiter=st.sampled_from(SNIFFED_DELIMITERS),
    given_delimiter=st.booleans(),
    columns=st.permutations(["timestamp", "value", "note"]),
    rows=st.lists(
        st.tuples(
            st.integers(0, 4_000_000_000),
            st.floats(allow_nan=False, allow_infinity=False),
            _NOTES,
        ),
        min_size=1,
        max_size=30,
        unique_by=lambda row: row[0],
    ),
    iso=st.booleans(),
)
def test_any_supported_delimiter_and_any_row_order_parse_to_the_same_points(
    tmp_path, delimiter, given_delimiter, columns, rows, iso
):
    path = tmp_path / "property.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter=delimiter)
        writer.writerow(columns)
        for t, v, note in rows:
            cells = {
                "timestamp": datetime.fromtimestamp(t, UTC).isoformat() if iso else str(t),
                "value": repr(v),
                "note": note,
            }
            writer.writerow([cells[c] for c in columns])
    explicit = delimiter if given_delimiter else None
    in_file_order = read_series(path, "value", None, delimiter=explicit)
    assert in_file_order.timestamps == [float(t) for t, _, _ in rows]
    assert in_file_order.values == [v for _, v, _ in rows]
    by_time = read_series(path, "value", None, delimiter=explicit, sort=True)
    ordered = sorted(rows)
    assert by_time.timestamps == [float(t) for t, _, _ in ordered]
    assert by_time.values == [v for _, v, _ in ordered]
    assert by_time.warnings == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=30))
def test_a_single_column_file_is_read_whatever_its_numbers(tmp_path, values):
    path = tmp_path / "single.csv"
    path.write_text("value\n" + "".join(f"{v!r}\n" for v in values))
    series = read_series(path, "value", None)
    assert series.values == values
    assert series.lines == list(range(2, len(values) + 2))


def test_unreadable_timestamp_names_its_line(tmp_path):
    csv_path = tmp_path / "badtime.csv"
    csv_path.write_text("timestamp,value\n2024-01-01,1\nyesterday,2\n")
    result = run(str(csv_path))
    assert result.exit_code != 0
    assert "line 3: timestamp 'yesterday'" in result.output


@pytest.mark.parametrize("cell", ["1e30", "-99999999999"])
def test_timestamp_beyond_the_calendar_names_its_line_instead_of_crashing_a_detector(tmp_path, cell):
    csv_path = tmp_path / "far.csv"
    csv_path.write_text(f"timestamp,value\n1700000000,1\n{cell},2\n")
    result = CliRunner().invoke(detect, [str(csv_path), "--detector", "seasonal"], catch_exceptions=False)
    assert result.exit_code == 1
    assert f"line 3: timestamp {cell!r} is outside the years 1 to 9999" in result.output


@pytest.mark.parametrize("scale", [1, 1_000, 1_000_000, 1_000_000_000])
def test_epoch_seconds_milli_micro_and_nanoseconds_read_as_the_same_times(tmp_path, scale):
    csv_path = tmp_path / "epoch.csv"
    csv_path.write_text("t,value\n" + "".join(f"{(T0 + 300 * i) * scale},{i % 7}\n" for i in range(50)))
    series = read_series(csv_path, "value", "t")
    assert series.timestamps == pytest.approx([T0 + 300 * i for i in range(50)], abs=1e-6)


def test_reads_the_time_ns_column_of_clisights_own_csv_export(tmp_path):
    from tests.cli.clirun import invoke, make_demo_store

    store = make_demo_store(tmp_path, sessions=20, seed=5)
    exported = tmp_path / "metrics.csv"
    out = invoke("export", "--store", str(store), "--format", "csv", "--kind", "metrics", "-o", str(exported))
    assert out.exit_code == 0, out.output
    result = run(str(exported), "--timestamp", "time_ns", "--column", "value", "--json", "--sort")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["points"] > 100 and payload["judged"] > 0


def test_without_a_timestamp_column_rows_are_numbered(tmp_path):
    csv_path = tmp_path / "plain.csv"
    csv_path.write_text("value\n" + "".join(f"{1.0 + (i % 3) * 0.01}\n" for i in range(50)))
    result = run(str(csv_path), "--detector", "zscore", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["anomalies"] == []


@pytest.mark.parametrize("detector", ["novelty", "mad"])
def test_an_unknown_parameter_is_named_with_the_ones_the_detector_takes(tmp_path, detector):
    csv_path = write_series(tmp_path / "s.csv", spike=False, shift=False, points=100)
    result = run(str(csv_path), "--detector", detector, "-p", "bogus=1")
    assert result.exit_code == 2
    assert f"the {detector} detector has no parameter 'bogus'" in result.output
    assert "warmup" in result.output or "probation" in result.output
    assert "__init__" not in result.output


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
    for option in ("--column", "--timestamp", "--delimiter", "--sort", "--detector", "--threshold", "--json"):
        assert option in result.output


@pytest.mark.timeout(60)
def test_real_process_prints_anomalies_and_fails_cleanly(tmp_path):
    csv_path = write_series(tmp_path / "planted.csv", spike=True, shift=True)
    code = "from clisight.cli.detect import detect; detect()"
    ok = subprocess.run(
        [sys.executable, "-c", code, str(csv_path), "--json", *ENSEMBLE],
        capture_output=True,
        text=True,
        timeout=30,
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


@pytest.mark.timeout(60)
def test_installed_command_warns_on_stderr_and_keeps_json_on_stdout(tmp_path):
    csv_path = write_series(tmp_path / "planted.csv", spike=True, shift=True, shuffle=True, delimiter=";")
    proc = run_clisight("detect", str(csv_path), "--json", timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith("Warning: ") and "out of time order, read in file order" in proc.stderr
    json.loads(proc.stdout)
    proc = run_clisight("detect", str(csv_path), "--sort", "--json", *ENSEMBLE, timeout=30)
    assert proc.returncode == 0 and proc.stderr == ""
    assert len(json.loads(proc.stdout)["anomalies"]) == 2


@pytest.mark.parametrize(("unit", "scale"), [("s", 1), ("ms", 10**3), ("us", 10**6), ("ns", 10**9)])
def test_an_epoch_time_column_in_any_unit_shows_as_a_date_time_in_the_table(tmp_path, unit, scale):
    rows = [f"{(T0 + 60 * i) * scale},{25.0 if i == SPIKE_AT else 10.0 + (i % 7) / 10}" for i in range(1000)]
    csv_path = tmp_path / f"epoch_{unit}.csv"
    csv_path.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    result = run(str(csv_path), *ENSEMBLE)
    assert result.exit_code == 0, result.output
    spike = datetime.fromtimestamp(T0 + 60 * SPIKE_AT, UTC).strftime("%Y-%m-%d %H:%M:%S")
    [row] = [line for line in result.output.splitlines() if re.match(rf"│\s*{SPIKE_AT + 2} │", line)]
    assert f"{spike}Z" in row and str((T0 + 60 * SPIKE_AT) * scale) not in row
    # JSON keeps the cell as written and adds the date-time.
    [found] = [
        a
        for a in json.loads(run(str(csv_path), "--json", *ENSEMBLE).output)["anomalies"]
        if a["line"] == SPIKE_AT + 2
    ]
    assert found["timestamp"] == str((T0 + 60 * SPIKE_AT) * scale) and found["time"] == f"{spike}Z"


def test_small_numbers_and_iso_cells_show_as_written():
    assert shown_time("151", 151.0) == "151"  # a counter or elapsed seconds, not 1970
    assert shown_time("2024-05-01T12:00:00+02:00", 1714557600.0) == "2024-05-01T12:00:00+02:00"


@given(
    seconds=st.integers(10**8 + 1, 10**11 - 1),
    micros=st.integers(0, 999_999),
    scale=st.sampled_from([1, 10**3, 10**6, 10**9]),
)
def test_an_epoch_cell_shown_as_a_date_time_is_the_moment_it_was_read_as(seconds, micros, scale):
    cell = str(seconds * scale + micros * scale // 10**6)
    t = _parse_time(cell)
    assert t is not None
    shown = shown_time(cell, t)
    assert shown.endswith("Z") and "T" not in shown
    back = datetime.fromisoformat(shown.replace("Z", "+00:00")).timestamp()
    assert abs(back - t) <= 1e-6 + 4e-16 * t  # microseconds shown; a float's precision at t
