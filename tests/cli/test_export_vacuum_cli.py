"""`clisight export` streams records out; `clisight vacuum` applies retention."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import pty
import select
import socket
import sqlite3
import stat
import subprocess
from collections import Counter
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from clisight.cli.export import FORMULA_STARTS, csv_cell
from clisight.store import SqliteStore
from clisight.types import INFO, Record, Resource
from tests.cli.clirun import CLISIGHT, TIMEOUT, invoke, invoke_json


def copy_store(source: Path, target: Path) -> None:
    """Copy a store with SQLite's backup API: its latest commits may still be in the -wal file."""
    src = sqlite3.connect(f"{source.as_uri()}?mode=ro", uri=True)
    with contextlib.closing(src), contextlib.closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


TABLES = {
    "session": "sessions",
    "log": "logs",
    "event": "events",
    "span": "spans",
    "error": "errors",
    "metric": "metric_points",
}


def test_export_jsonl_round_trip_counts_match_the_store(demo_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "all.jsonl"
    result = invoke("export", "--store", str(demo_store), "-o", str(out))
    assert result.exit_code == 0, result.output
    kinds = Counter(json.loads(line)["kind"] for line in out.read_text().splitlines())
    rows = invoke_json("doctor", "--store", str(demo_store))["store"]["row_counts"]
    assert {kind: kinds[kind] for kind in TABLES} == {kind: rows[table] for kind, table in TABLES.items()}
    assert kinds["metric"] > 0  # the default ("all") includes metric points
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


def test_export_kind_takes_the_rest_apis_singular_words_too(demo_store: Path) -> None:
    plural = invoke("export", "--store", str(demo_store), "--kind", "events", "--kind", "errors")
    single = invoke("export", "--store", str(demo_store), "--kind", "event", "--kind", "Error")
    assert plural.exit_code == single.exit_code == 0, single.output
    assert single.stdout == plural.stdout
    assert {json.loads(line)["kind"] for line in single.stdout.splitlines()} == {"event", "error"}
    # The help names one spelling; a wrong word lists that one.
    helped = invoke("export", "--help").stdout
    assert "[sessions|logs|events|spans|errors|metrics]" in " ".join(helped.split())
    wrong = invoke("export", "--store", str(demo_store), "--kind", "evnt")
    assert wrong.exit_code == 2 and "'evnt' is not one of 'sessions', 'logs'" in wrong.stderr


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
    copy_store(demo_store, db)
    before = invoke_json("report", "--store", str(db))["total_logs"]
    exported = len(invoke("export", "--store", str(db), "--kind", "logs").stdout.splitlines())
    result = invoke("vacuum", "--store", str(db), "--max-age-days", "2", "--max-mb", "0", "--json")
    assert result.exit_code == 0, result.output
    done = json.loads(result.stdout)
    assert done["max_age_days"] == 2 and done["total_deleted"] > 0 and done["deleted"]["logs"] > 0
    # The raw records are gone; the report still counts them from the rollups, kept longer.
    after = len(invoke("export", "--store", str(db), "--kind", "logs").stdout.splitlines())
    assert after == exported - done["deleted"]["logs"]
    assert invoke_json("report", "--store", str(db))["total_logs"] == before
    text = invoke("vacuum", "--store", str(db), "--max-age-days", "2")
    assert "Deleted: nothing" in text.stdout


def test_vacuum_uses_retention_from_the_configuration(demo_store: Path, tmp_path: Path) -> None:
    db = tmp_path / "copy.db"
    copy_store(demo_store, db)
    result = invoke("vacuum", "--store", str(db), "--json", env={"CLISIGHT_RETENTION_DAYS": "3"})
    assert json.loads(result.stdout)["max_age_days"] == 3.0


def test_vacuum_on_a_missing_store_says_no_data_yet(tmp_path: Path) -> None:
    result = invoke("vacuum", "--store", "gone.db")
    assert result.exit_code == 1 and "no data yet" in result.stderr
    assert not (tmp_path / "gone.db").exists()


# -- where the export goes -------------------------------------------------------------------------


def small_store(db: Path, *messages: str, value: float = -3.5) -> Path:
    """A store with one log line per message and one metric point of ``value``."""
    store = SqliteStore(db)
    res = Resource("export-cli")
    store.write_batch(
        [Record("log", 10**18 + i, "api", text, INFO, {}, res) for i, text in enumerate(messages)]
        + [Record("metric", 10**18, "balance", "", 0, {}, res, value=value)]
    )
    store.close()
    return db


def test_export_to_a_missing_directory_fails_naming_the_path_without_a_traceback(tmp_path: Path) -> None:
    db = small_store(tmp_path / "x.db", "hello")
    target = tmp_path / "nope" / "out.jsonl"
    result = invoke("export", "--store", str(db), "-o", str(target))
    assert result.exit_code == 1
    assert f"cannot write {target}" in result.stderr and "does not exist" in result.stderr
    assert "Traceback" not in result.output and "atomic" not in result.output
    assert not (tmp_path / "nope").exists()


def test_export_replaces_a_regular_file_atomically_keeping_its_permissions(tmp_path: Path) -> None:
    db = small_store(tmp_path / "x.db", "hello")
    target = tmp_path / "out.jsonl"
    target.write_text("old\n")
    target.chmod(0o640)
    result = invoke("export", "--store", str(db), "--kind", "logs", "-o", str(target))
    assert result.exit_code == 0, result.output
    assert json.loads(target.read_text())["message"] == "hello"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temp file left


def test_export_through_a_symlink_writes_the_file_it_points_at(tmp_path: Path) -> None:
    db = small_store(tmp_path / "x.db", "hello")
    (tmp_path / "real").mkdir()
    real = tmp_path / "real" / "out.jsonl"
    real.write_text("old\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(real)
    assert invoke("export", "--store", str(db), "--kind", "logs", "-o", str(link)).exit_code == 0
    assert link.is_symlink() and json.loads(real.read_text())["message"] == "hello"


def test_export_to_a_fifo_streams_into_it_and_leaves_the_fifo(tmp_path: Path) -> None:
    db = small_store(tmp_path / "x.db", "one", "two", "three")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    # A reader is there first (non-blocking), so the export's open never waits.
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        result = invoke("export", "--store", str(db), "--kind", "logs", "-o", str(fifo))
        assert result.exit_code == 0, result.output
        received = os.read(reader, 65536).decode()
    finally:
        os.close(reader)
    assert [json.loads(line)["message"] for line in received.splitlines()] == ["one", "two", "three"]
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert "Exported 3 records" in result.stderr


def test_export_to_a_character_device_writes_into_it_and_never_replaces_it(tmp_path: Path) -> None:
    db = small_store(tmp_path / "x.db", "hello")
    device = Path("/dev/null")
    if os.geteuid() == 0:
        # As root a regression could replace the real /dev/null: use a private null device instead.
        device = tmp_path / "null"
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    result = invoke("export", "--store", str(db), "-o", str(device))
    assert result.exit_code == 0, result.output
    assert stat.S_ISCHR(device.lstat().st_mode)


def test_export_refuses_a_socket_or_block_device_clearly(tmp_path: Path) -> None:
    db = small_store(tmp_path / "x.db", "hello")
    sock_path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        result = invoke("export", "--store", str(db), "-o", str(sock_path))
    assert result.exit_code == 1 and f"cannot write {sock_path}" in result.stderr
    assert "socket" in result.stderr and stat.S_ISSOCK(sock_path.lstat().st_mode)


# -- what a CSV cell may hold ----------------------------------------------------------------------

FORMULAS = ('=HYPERLINK("http://evil","x")', "+1+1", "-2+3", "@SUM(A1)", "\tindent", "\rreturn")


def test_csv_export_neutralises_formula_cells_but_keeps_numbers_numbers(tmp_path: Path) -> None:
    db = small_store(tmp_path / "x.db", *FORMULAS, "plain", "-3.5")
    out = tmp_path / "logs.csv"
    invoke("export", "--store", str(db), "--format", "csv", "--kind", "logs", "-o", str(out))
    with out.open(newline="", encoding="utf-8") as fh:
        messages = [row["message"] for row in csv.DictReader(fh)]
    assert messages == [f"'{text}" for text in FORMULAS] + ["plain", "'-3.5"]  # text stays text
    metrics = tmp_path / "metrics.csv"
    invoke("export", "--store", str(db), "--format", "csv", "--kind", "metrics", "-o", str(metrics))
    with metrics.open(newline="", encoding="utf-8") as fh:
        assert next(csv.DictReader(fh))["value"] == "-3.5"  # a number column is a number


@given(st.one_of(st.text(), st.integers(), st.floats(allow_nan=False), st.none(), st.booleans()))
def test_csv_cells_never_start_a_formula_and_round_trip_by_dropping_one_quote(value: object) -> None:
    cell = csv_cell(value)
    if not isinstance(value, str):
        assert cell == value
        return
    assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))
    assert cell == value or (cell == "'" + value and value[:1] in FORMULA_STARTS)


def test_csv_export_to_a_terminal_shows_control_characters_escaped(tmp_path: Path) -> None:
    db = small_store(tmp_path / "x.db", "red \x1b[31malert\x1b[0m", "two\nlines", "bell\x07")
    primary, secondary = pty.openpty()
    try:
        proc = subprocess.run(
            [str(CLISIGHT), "export", "--store", str(db), "--format", "csv", "--kind", "logs"],
            stdin=subprocess.DEVNULL,
            stdout=secondary,
            stderr=subprocess.PIPE,
            timeout=TIMEOUT,
            env={**os.environ, "CLISIGHT_HOME": str(tmp_path / "home")},
        )
        os.close(secondary)
        shown = read_all(primary)
    finally:
        os.close(primary)
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in shown and "\x07" not in shown
    assert "red \\x1b[31malert\\x1b[0m" in shown and "two\\nlines" in shown and "bell\\x07" in shown


def test_csv_export_to_a_file_keeps_text_exactly(tmp_path: Path) -> None:
    db = small_store(tmp_path / "x.db", "two\nlines", "tab\there")
    out = tmp_path / "logs.csv"
    invoke("export", "--store", str(db), "--format", "csv", "--kind", "logs", "-o", str(out))
    with out.open(newline="", encoding="utf-8") as fh:
        assert [row["message"] for row in csv.DictReader(fh)] == ["two\nlines", "tab\there"]


def read_all(fd: int) -> str:
    """Everything a pseudo-terminal received, once the writer has closed its side."""
    chunks = []
    while select.select([fd], [], [], 5)[0]:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the other side is closed and drained
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode()
