"""Every ``clisight`` command against hostile input: a clear error naming what was wrong, a
non-zero exit status, no traceback, and nothing the user stored changed.

The cases are parametrized across commands: one test per kind of bad input.  Commands run in
this process through click's runner (``invoke`` re-raises anything that is not a clean exit, so a
traceback fails the test) unless a real process is the point.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import click
import httpx
import pytest

from clisight.cli.main import cli
from tests.cli.clirun import CLISIGHT, TIMEOUT, invoke, invoke_json, run_clisight, serve_on_any_port

# Every option that takes a number of seconds, days or megabytes: (command words, option).
FLOAT_OPTIONS = [
    (("alerts", "check"), "--wait"),
    (("demo",), "--days"),
    (("detect", "series.csv"), "--threshold"),
    (("insights",), "--days"),
    (("insights", "paths"), "--days"),
    (("insights", "funnel", "a", "b"), "--days"),
    (("serve",), "--max-body-mb"),
    (("tail", "-f"), "--interval"),
    (("top", "--once"), "--interval"),
    (("vacuum",), "--max-age-days"),
    (("vacuum",), "--max-mb"),
]


def float_options(command: click.Command, path: tuple[str, ...] = ()) -> set[tuple[str, str]]:
    """(command, option) for every option read as a float, of every command and subcommand."""
    found = {
        (" ".join(path), param.opts[0])
        for param in command.params
        if isinstance(param.type, click.FloatRange | type(click.FLOAT))
    }
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            found |= float_options(sub, (*path, name))
    return found


def test_the_number_table_names_every_option_read_as_a_float() -> None:
    named = {
        (" ".join(w for w in words if not w.startswith("-") and w not in ("a", "b", "series.csv")), option)
        for words, option in FLOAT_OPTIONS
    }
    assert float_options(cli) == named


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
@pytest.mark.parametrize(
    ("words", "option"), FLOAT_OPTIONS, ids=lambda v: " ".join(v) if isinstance(v, tuple) else v
)
def test_a_number_option_refuses_nan_and_infinity_naming_the_option(
    tmp_path: Path, words: tuple[str, ...], option: str, value: str
) -> None:
    store = tmp_path / "untouched.db"
    series = tmp_path / "series.csv"
    series.write_text("timestamp,value\n1,1\n2,2\n")
    args = [str(series) if word == "series.csv" else word for word in words]
    if words[0] != "detect":  # the one command that reads a file, not the store
        args += ["--store", str(store)]
    result = invoke(*args, option, value)
    assert result.exit_code == 2, result.output
    assert option in result.stderr and "finite number" in result.stderr
    assert not store.exists()


@pytest.mark.parametrize(
    "variable",
    [
        "CLISIGHT_EXIT_TIMEOUT",
        "CLISIGHT_FLUSH_INTERVAL",
        "CLISIGHT_RETENTION_DAYS",
        "CLISIGHT_RETENTION_MAX_MB",
    ],
)
@pytest.mark.parametrize("command", [("doctor",), ("vacuum",)])
def test_an_infinite_setting_in_the_environment_is_an_invalid_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, command: tuple[str, ...]
) -> None:
    # An exit deadline of inf would hold the host program's exit forever; retention of inf days
    # crashed vacuum converting it to nanoseconds.
    monkeypatch.chdir(tmp_path)  # no pyproject.toml above
    monkeypatch.setenv(variable, "inf")
    monkeypatch.setenv("CLISIGHT_STORE", str(tmp_path / "untouched.db"))
    result = invoke(*command)
    assert result.exit_code == 2, result.output
    assert variable in result.stderr and "'inf'" in result.stderr
    assert not (tmp_path / "untouched.db").exists()


@pytest.mark.parametrize("command", [("doctor",), ("tail",), ("vacuum",), ("alerts", "list")])
def test_a_pyproject_toml_that_is_not_utf8_is_named_as_an_invalid_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...]
) -> None:
    (tmp_path / "pyproject.toml").write_bytes(b"\xff\xfe[tool.clisight]\nstore = 'x.db'\n")
    monkeypatch.chdir(tmp_path)
    result = invoke(*command)
    assert result.exit_code == 2, result.output
    assert str(tmp_path / "pyproject.toml") in result.stderr and "UTF-8" in result.stderr


NOT_UTF8 = b"caf\xe9-\xff".decode("utf-8", "surrogateescape")  # how Python hands over a Latin-1 argv byte
TEXT_ARGS = [
    ("report", "--service"),
    ("perf", "--session"),
    ("tail", "--grep"),
    ("tail", "--component"),
    ("export", "--name"),
    ("errors", "show"),
    ("traces", "--service"),
    ("usage", "--service"),
    ("insights", "--service"),
    ("insights", "funnel"),
    ("alerts", "history", "--rule"),
    ("top", "--once", "--service"),
]


@pytest.mark.parametrize("words", TEXT_ARGS, ids=" ".join)
def test_text_that_is_not_utf8_is_a_usage_error_not_a_traceback(
    demo_store: Path, words: tuple[str, ...]
) -> None:
    result = invoke(*words, NOT_UTF8, "--store", str(demo_store))
    assert result.exit_code == 2, result.output
    assert "not valid UTF-8" in result.stderr and r"caf\xe9-\xff" in result.stderr


HUGE = str(2**64)  # past SQLite's 64-bit integers


@pytest.mark.parametrize(
    ("words", "option"), [(("tail",), "-n"), (("tail",), "--level"), (("tail", "-f"), "--level")]
)
def test_a_count_or_level_too_large_for_the_store_is_a_usage_error(
    demo_store: Path, words: tuple[str, ...], option: str
) -> None:
    result = invoke(*words, option, HUGE, "--store", str(demo_store))
    assert result.exit_code == 2, result.output
    assert option in result.stderr and HUGE in result.stderr


def test_an_export_limit_past_the_store_size_exports_everything(demo_store: Path) -> None:
    everything = invoke("export", "--kind", "sessions", "--store", str(demo_store))
    result = invoke("export", "--kind", "sessions", "--limit", HUGE, "--store", str(demo_store))
    assert result.exit_code == 0 and result.stdout == everything.stdout != ""


def test_a_grep_longer_than_sqlite_can_match_is_a_usage_error_naming_the_limit(demo_store: Path) -> None:
    result = invoke("tail", "--grep", "x" * 60_000, "--store", str(demo_store))
    assert result.exit_code == 2, result.output
    assert "--grep" in result.stderr and "10,000 characters" in result.stderr
    assert "x" * 100 not in result.stderr  # the value is cut in the message


def test_a_long_grep_within_the_limit_is_searched(demo_store: Path) -> None:
    result = invoke("tail", "--grep", "é" * 10_000, "--store", str(demo_store))
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("window", ["-1d", "0", "0s", "nan", "infh", "1e400"])
def test_a_funnel_window_that_is_not_a_positive_duration_is_refused(demo_store: Path, window: str) -> None:
    result = invoke("insights", "funnel", "a", "b", "--window", window, "--store", str(demo_store))
    assert result.exit_code == 2, result.output
    assert "--window" in result.stderr and window in result.stderr


def another_programs_database(path: Path) -> str:
    """A SQLite file with another program's table and row; returns its bytes' digest."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
        conn.execute("INSERT INTO invoices (total) VALUES (12.5)")
        conn.commit()
    return hashlib.sha256(path.read_bytes()).hexdigest()


RULES = '[[rule]]\nname = "latency"\nmetric = "latency_p95"\nwindow = "10m"\nabove = "1s"\n'
WRITERS = [
    ("vacuum",),
    ("alerts", "silence", "latency", "--for", "1h"),
    ("alerts", "unsilence", "1"),
    ("alerts", "check"),
    ("errors", "resolve", "abcdef"),
    ("demo", "--sessions", "1"),
    ("usage", "import-claude-code", "transcripts"),
    ("doctor", "--repair"),
]


@pytest.mark.parametrize("words", WRITERS, ids=" ".join)
def test_a_command_that_writes_refuses_another_programs_database_and_leaves_it_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, words: tuple[str, ...]
) -> None:
    db = tmp_path / "app.db"
    digest = another_programs_database(db)
    monkeypatch.setenv("CLISIGHT_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "alerts.toml").write_text(RULES)
    (tmp_path / "transcripts").mkdir()
    args = [str(tmp_path / "transcripts") if word == "transcripts" else word for word in words]
    result = invoke(*args, "--store", str(db))
    assert result.exit_code == 1, result.output
    assert "not a clisight store" in result.stderr
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest
    with contextlib.closing(sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)) as conn:
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == [("invoices",)]


def test_serve_refuses_another_programs_database_before_it_listens(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    digest = another_programs_database(db)
    proc = run_clisight("serve", "--port", "0", "--store", str(db), timeout=30)
    assert proc.returncode == 1, proc.stderr
    assert "not a clisight store" in proc.stderr and "Traceback" not in proc.stderr
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest


READERS = [
    ("tail",),
    ("tail", "--json"),
    ("report",),
    ("report", "--full"),
    ("perf",),
    ("errors",),
    ("errors", "show", "abcdef"),
    ("insights",),
    ("insights", "paths"),
    ("insights", "funnel", "a", "b"),
    ("insights", "retention"),
    ("usage",),
    ("usage", "blocks"),
    ("traces",),
    ("traces", "show", "abcdef"),
    ("export",),
    ("alerts", "history"),
    ("alerts", "silences"),
    ("top", "--once"),
]


def broken_store(tmp_path: Path, kind: str, demo_store: Path) -> Path:
    path = tmp_path / "store.db"
    if kind == "directory":
        path.mkdir()
    elif kind == "random bytes":
        path.write_bytes(bytes((i * 7919 + 13) % 251 for i in range(8192)))
    elif kind == "truncated":  # cut in its third page: the schema stays, the tables' pages are gone
        whole = tmp_path.parent / f"{tmp_path.name}-whole.db"  # the demo's latest pages may be in its -wal
        store_copy(demo_store, whole)
        path.write_bytes(whole.read_bytes()[: 2 * 4096 + 100])
        whole.unlink()
    else:  # another program's database
        another_programs_database(path)
    return path


@pytest.mark.parametrize("kind", ["directory", "random bytes", "truncated", "another program's"])
@pytest.mark.parametrize("words", READERS, ids=" ".join)
def test_every_reader_on_a_broken_store_says_what_is_wrong_with_it_and_changes_nothing(
    tmp_path: Path, demo_store: Path, words: tuple[str, ...], kind: str
) -> None:
    store = broken_store(tmp_path, kind, demo_store)
    before = sorted(p.name for p in tmp_path.iterdir())
    digest = None if store.is_dir() else hashlib.sha256(store.read_bytes()).hexdigest()
    result = invoke(*words, "--store", str(store))
    assert result.exit_code == 1, result.output
    first = result.stderr.strip().splitlines()[0]
    assert str(store) in first and ("store" in first or "database" in first), first
    assert "Error:" in first and "StoreError" not in first and "SchemaError" not in first
    if digest is not None:
        assert hashlib.sha256(store.read_bytes()).hexdigest() == digest
    # SQLite may leave an empty -wal and a -shm beside a file it opened; nothing else appears.
    after = [
        name for name in sorted(p.name for p in tmp_path.iterdir()) if not name.endswith(("-wal", "-shm"))
    ]
    assert after == before


@pytest.mark.parametrize("workers", ["0", "2"])
def test_serve_stops_cleanly_on_ctrl_c(tmp_path: Path, workers: str) -> None:
    """Ctrl-C in a shell signals the whole foreground process group: the server and its workers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    db = tmp_path / "served.db"
    proc = subprocess.Popen(
        [str(CLISIGHT), "serve", "--port", str(port), "--store", str(db), "--workers", workers],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "CLISIGHT_HOME": str(tmp_path / "home")},
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:  # serving: it answers HTTP (it listens earlier, while it starts)
            assert proc.poll() is None, proc.communicate(timeout=10)
            try:
                httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "clisight serve did not answer in time"
                time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=10)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    assert "clisight serve: stopped" in stderr


def json_commands(command: click.Command, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and subcommand that offers --json, as its words."""
    found = [path] if any("--json" in getattr(p, "opts", ()) for p in command.params) else []
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            found += json_commands(sub, (*path, name))
    return found


# The arguments each --json command gets; a warning on stderr must not reach stdout.
JSON_ARGS: dict[tuple[str, ...], tuple[str, ...]] = {
    ("alerts", "check"): (),
    ("alerts", "history"): (),
    ("alerts", "list"): (),
    ("alerts", "silence"): ("latency", "--for", "1h"),
    ("alerts", "silences"): (),
    ("alerts", "unsilence"): ("1",),
    ("detect",): ("unsorted.csv",),  # out of time order and too short: two warnings on stderr
    ("doctor",): (),
    ("errors",): (),
    ("errors", "show"): ("ERROR_ID",),
    ("insights",): (),
    ("insights", "funnel"): ("command:chat", "command:review"),
    ("insights", "paths"): (),
    ("insights", "retention"): (),
    ("perf",): (),
    ("report",): (),
    ("tail",): (),
    ("traces",): (),
    ("traces", "show"): ("TRACE_ID",),
    ("usage",): (),
    ("usage", "blocks"): (),
    ("usage", "daily"): (),
    ("usage", "import-claude-code"): ("transcripts",),
    ("usage", "monthly"): (),
    ("usage", "session"): (),
    ("vacuum",): ("--max-age-days", "0"),
}


def test_the_json_table_names_every_command_that_offers_json() -> None:
    assert sorted(json_commands(cli)) == sorted(JSON_ARGS)


@pytest.fixture(scope="module")
def json_home(tmp_path_factory: pytest.TempPathFactory, demo_store: Path) -> Path:
    """A copy of the demo store (some --json commands write), a rules file, a CSV, transcripts."""
    home = tmp_path_factory.mktemp("json")
    src = sqlite3.connect(f"{demo_store.as_uri()}?mode=ro", uri=True)
    with contextlib.closing(src), contextlib.closing(sqlite3.connect(home / "store.db")) as dst:
        src.backup(dst)
    (home / "alerts.toml").write_text(RULES)
    (home / "unsorted.csv").write_text("timestamp,value\n3,1\n1,2\n2,2\n2,5\n")
    (home / "transcripts").mkdir()
    return home


@pytest.mark.parametrize("words", sorted(JSON_ARGS), ids=" ".join)
def test_json_output_is_valid_json_on_stdout_with_warnings_kept_on_stderr(
    json_home: Path, monkeypatch: pytest.MonkeyPatch, words: tuple[str, ...]
) -> None:
    monkeypatch.setenv("CLISIGHT_HOME", str(json_home))
    store = ["--store", str(json_home / "store.db")] if words != ("detect",) else []
    ids = {
        "ERROR_ID": lambda: invoke_json("errors", *store)[0]["fingerprint"][:8],
        "TRACE_ID": lambda: invoke_json("traces", *store)[0]["trace_id"][:8],
    }
    args = [
        ids[arg]() if arg in ids else str(json_home / arg) if (json_home / arg).exists() else arg
        for arg in JSON_ARGS[words]
    ]
    result = invoke(*words, *args, "--json", *store)
    assert result.exit_code in (0, 1), result.output  # 1: an alert fires, or no silence 1 to remove
    if words == ("tail",):
        assert all(json.loads(line) for line in result.stdout.splitlines())
    elif result.exit_code == 0 or result.stdout:
        json.loads(result.stdout)
    if words == ("detect",):
        assert "Warning:" in result.stderr


@pytest.mark.parametrize(
    "words",
    [
        ("tail", "-n", "100000"),
        ("tail", "-n", "100000", "--json"),
        ("export",),
        ("export", "--format", "csv", "--kind", "logs"),
    ],
    ids=" ".join,
)
def test_a_reader_that_closes_the_pipe_early_gets_a_quiet_exit(
    demo_store: Path, words: tuple[str, ...]
) -> None:
    """`clisight tail | head -1`: more output than a pipe holds, and the reader goes after one line."""
    proc = subprocess.Popen(
        [str(CLISIGHT), *words, "--store", str(demo_store)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline()
        proc.stdout.close()
        _, stderr = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert stderr == b"", stderr.decode(errors="replace")[-2000:]  # no BrokenPipeError, no traceback
    # Status 1 is click's quiet exit on a closed pipe: the output did outgrow the pipe.
    assert proc.returncode == 1


HOLD_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("held", flush=True)
time.sleep(float(sys.argv[2]))
print("letting go", flush=True)
conn.execute("COMMIT")
"""


def test_a_store_another_writer_holds_locked_is_read_and_then_written_when_it_lets_go(
    tmp_path: Path, demo_store: Path
) -> None:
    db = tmp_path / "locked.db"
    src = sqlite3.connect(f"{demo_store.as_uri()}?mode=ro", uri=True)
    with contextlib.closing(src), contextlib.closing(sqlite3.connect(db)) as dst:
        src.backup(dst)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(db), "3"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        # Readers see the last commit while the lock is held (the store keeps a write-ahead log).
        assert invoke("tail", "--json", "--store", str(db)).exit_code == 0
        assert invoke("report", "--json", "--store", str(db)).exit_code == 0
        # A writer waits for the lock instead of failing at once.
        result = invoke("vacuum", "--max-age-days", "0", "--store", str(db))
        assert result.exit_code == 0, result.output
        # It got the lock only after the holder let go: the holder's last words are already out.
        assert select.select([holder.stdout], [], [], 0)[0], "vacuum wrote while another writer held the lock"
        assert holder.stdout.readline() == "letting go\n"
    finally:
        holder.kill()
        holder.wait(timeout=10)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released: connecting is refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    "words", [*READERS[:6], ("doctor",), ("vacuum",), ("alerts", "silence", "x", "--for", "1h")], ids=" ".join
)
def test_a_postgresql_store_that_does_not_connect_is_a_clear_error_without_the_password(
    words: tuple[str, ...],
) -> None:
    pytest.importorskip("psycopg")
    url = f"postgresql://clisight:hunter2-secret@127.0.0.1:{closed_port()}/clisight?connect_timeout=2"
    started = time.monotonic()
    result = invoke(*words, "--store", url)
    assert time.monotonic() - started < TIMEOUT
    assert result.exit_code == 1, result.output
    assert "hunter2-secret" not in result.output
    text = " ".join(result.output.split())
    assert "127.0.0.1" in text and ("cannot read the store" in text or "cannot connect" in text)
    assert "refused" in text


@pytest.mark.parametrize(
    "prices",
    ['{"claude-sonnet-4": {"input": "cheap"}}', "{not json", "/nonexistent/prices.json"],
    ids=["bad price", "not JSON", "missing file"],
)
@pytest.mark.parametrize("kind", ["daily", "session", "blocks"])
def test_usage_with_a_broken_price_override_says_so_instead_of_using_the_shipped_prices(
    demo_store: Path, monkeypatch: pytest.MonkeyPatch, prices: str, kind: str
) -> None:
    monkeypatch.setenv("CLISIGHT_LLM_PRICES", prices)
    result = invoke("usage", kind, "--store", str(demo_store))
    assert result.exit_code == 2, result.output
    assert "llm_prices" in result.stderr and "CLISIGHT_LLM_PRICES" in result.stderr
    assert result.stdout == ""  # no costs computed with prices the user did not ask for


CONFIG_READERS = [
    ("tail",),
    ("report",),
    ("perf",),
    ("errors",),
    ("insights",),
    ("usage",),
    ("traces",),
    ("export",),
    ("doctor",),
    ("vacuum",),
    ("demo", "--sessions", "1"),
    ("alerts", "list"),
    ("alerts", "history"),
    ("alerts", "silences"),
    ("top", "--once"),
]
BROKEN_CONFIGS = {
    "not TOML": ("pyproject.toml", "[tool.clisight\nstore = 'x.db'\n", "a valid TOML file"),
    "wrong type": ("pyproject.toml", "[tool.clisight]\nqueue_size = 'lots'\n", "queue_size"),
    "unknown key": ("pyproject.toml", "[tool.clisight]\nqueue_sise = 10\n", "queue_sise"),
    "bad environment value": ("CLISIGHT_EXIT_TIMEOUT", "soon", "CLISIGHT_EXIT_TIMEOUT"),
}


@pytest.mark.parametrize("broken", sorted(BROKEN_CONFIGS))
@pytest.mark.parametrize("words", CONFIG_READERS, ids=" ".join)
def test_every_command_on_the_configured_store_exits_2_naming_a_broken_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, words: tuple[str, ...], broken: str
) -> None:
    where, text, named = BROKEN_CONFIGS[broken]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CLISIGHT_HOME", str(tmp_path / "home"))
    if where == "pyproject.toml":
        (tmp_path / where).write_text(text)
    else:
        monkeypatch.setenv(where, text)
    result = invoke(*words)
    assert result.exit_code == 2, result.output
    assert named in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "home").exists()  # nothing was created: no store, no salt


@pytest.mark.parametrize("words", [("export",), ("report", "--full")], ids=" ".join)
@pytest.mark.parametrize("path", ["", "   "], ids=["empty", "blank"])
def test_an_empty_output_path_is_a_usage_error(demo_store: Path, words: tuple[str, ...], path: str) -> None:
    result = invoke(*words, "-o", path, "--store", str(demo_store))
    assert result.exit_code == 2, result.output
    assert "-o" in result.stderr and "empty" in result.stderr


def test_doctor_names_every_broken_setting_at_once_and_as_json_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[tool.clisight]\nbatch_size = 0\n")
    monkeypatch.setenv("CLISIGHT_QUEUE_SIZE", "abc")
    monkeypatch.setenv("CLISIGHT_OVERFLOW", "explode")
    text = invoke("doctor")
    assert text.exit_code == 2, text.output
    for name in (
        "queue_size",
        "CLISIGHT_QUEUE_SIZE",
        "overflow",
        "batch_size",
        str(tmp_path / "pyproject.toml"),
    ):
        assert name in text.stderr
    assert "Traceback" not in text.stderr
    as_json = invoke("doctor", "--json")
    assert as_json.exit_code == 2
    problems = json.loads(as_json.stdout)["problems"]
    assert sorted(p["parameter"] for p in problems) == ["batch_size", "overflow", "queue_size"]
    assert {p["source"] for p in problems} >= {"environment CLISIGHT_QUEUE_SIZE"}


def unopenable(tmp_path: Path, kind: str) -> Path:
    if kind == "symlink loop":
        (tmp_path / "a.db").symlink_to(tmp_path / "b.db")
        (tmp_path / "b.db").symlink_to(tmp_path / "a.db")
        return tmp_path / "a.db"
    return tmp_path / ("n" * 300 + ".db")  # longer than a file name may be (255 bytes)


@pytest.mark.parametrize("kind", ["symlink loop", "name too long"])
@pytest.mark.parametrize(
    "words", [("tail",), ("report",), ("export",), ("vacuum",), ("demo", "--sessions", "1")], ids=" ".join
)
def test_a_store_path_the_system_cannot_open_is_named_with_the_reason(
    tmp_path: Path, words: tuple[str, ...], kind: str
) -> None:
    path = unopenable(tmp_path, kind)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = invoke(*words, "--store", str(path))
    assert result.exit_code == 1, result.output
    reason = "Symlink loop" if kind == "symlink loop" else "File name too long"
    assert "cannot open the store" in result.stderr and reason in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize("kind", ["symlink loop", "name too long"])
def test_doctor_reports_a_store_path_the_system_cannot_open_in_its_store_section(
    tmp_path: Path, kind: str
) -> None:
    result = invoke("doctor", "--json", "--store", str(unopenable(tmp_path, kind)))
    assert result.exit_code == 1, result.output
    store = json.loads(result.stdout)["store"]
    assert store["status"] == "error" and "cannot open the store" in store["message"]


def test_a_rules_file_that_is_a_device_is_refused_instead_of_read_forever() -> None:
    proc = run_clisight("alerts", "check", "--dry-run", "--rules", "/dev/zero", timeout=30)
    assert proc.returncode == 2, proc.stderr
    assert "/dev/zero" in proc.stderr and "not a regular file" in proc.stderr


def test_a_rules_file_can_be_a_fifo_read_as_a_stream(tmp_path: Path) -> None:
    """`clisight alerts check --rules <(generate-rules)` hands over a pipe."""
    fifo = tmp_path / "rules.toml"
    os.mkfifo(fifo)
    proc = subprocess.Popen(
        [str(CLISIGHT), "alerts", "check", "--dry-run", "--rules", str(fifo)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with fifo.open("w") as writer:  # opens once the command opens its end
            writer.write(RULES)
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert f"{fifo}: OK" in out


@pytest.mark.parametrize(
    "words",
    [
        ("demo", "--sessions", "1"),
        ("alerts", "silence", "latency", "--for", "1h"),
        ("usage", "import-claude-code", "transcript.jsonl"),
    ],
    ids=" ".join,
)
def test_a_new_store_under_a_file_is_refused_before_anything_is_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, words: tuple[str, ...]
) -> None:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file where a directory would have to be\\n")
    (tmp_path / "transcript.jsonl").write_text("")
    monkeypatch.setenv("CLISIGHT_HOME", str(tmp_path / "home"))
    args = [str(tmp_path / word) if word.endswith(".jsonl") else word for word in words]
    before = sorted(p.name for p in tmp_path.iterdir())
    result = invoke(*args, "--store", str(blocker / "data" / "x.db"))
    assert result.exit_code == 1, result.output
    assert (
        f"cannot create the store {blocker / 'data' / 'x.db'}: {blocker} is not a directory" in result.stderr
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def store_copy(demo_store: Path, target: Path) -> str:
    src = sqlite3.connect(f"{demo_store.as_uri()}?mode=ro", uri=True)
    with contextlib.closing(src), contextlib.closing(sqlite3.connect(target)) as dst:
        src.backup(dst)
    return hashlib.sha256(target.read_bytes()).hexdigest()


@pytest.mark.parametrize("words", [("export",), ("report", "--full")], ids=" ".join)
@pytest.mark.parametrize("alias", ["the same path", "a symlink", "a hard link", "its -wal file"])
def test_writing_the_output_over_the_store_itself_is_refused_and_the_store_kept(
    tmp_path: Path, demo_store: Path, words: tuple[str, ...], alias: str
) -> None:
    db = tmp_path / "store.db"
    digest = store_copy(demo_store, db)
    out = {
        "the same path": db,
        "a symlink": tmp_path / "link.db",
        "a hard link": tmp_path / "hard.db",
        "its -wal file": tmp_path / "store.db-wal",
    }[alias]
    if alias == "a symlink":
        out.symlink_to(db)
    elif alias == "a hard link":
        os.link(db, out)
    result = invoke(*words, "-o", str(out), "--store", str(db))
    assert result.exit_code == 2, result.output
    assert "-o" in result.stderr and "the store itself" in result.stderr
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest
    assert invoke("tail", "--store", str(db)).exit_code == 0


SINCE_COMMANDS = [
    ("tail",),
    ("report",),
    ("perf",),
    ("errors",),
    ("traces",),
    ("export",),
    ("usage",),
    ("alerts", "history"),
]


@pytest.mark.parametrize("value", ["yesterday-ish", "-1h", "nan", "9999-12-31"])
@pytest.mark.parametrize("words", SINCE_COMMANDS, ids=" ".join)
def test_a_bad_since_names_the_option_and_the_accepted_forms(
    demo_store: Path, words: tuple[str, ...], value: str
) -> None:
    result = invoke(*words, "--since", value, "--store", str(demo_store))
    assert result.exit_code == 2, result.output
    assert "'--since'" in result.stderr and value in result.stderr
    assert "15m" in result.stderr or "out of range" in result.stderr


@pytest.mark.parametrize("when", ["as soon as it prints its banner", "once it accepts connections"])
def test_serve_on_port_0_prints_the_port_it_got_and_stops_on_ctrl_c_at_any_time(
    tmp_path: Path, when: str
) -> None:
    proc, lines, reader = serve_on_any_port(tmp_path)
    try:
        endpoint = None
        while endpoint is None:
            line = lines.get(timeout=TIMEOUT)  # queue.Empty: no endpoint printed in time
            if "OTEL_EXPORTER_OTLP_ENDPOINT=" in line:
                endpoint = line.split("=", 1)[1].strip()
        port = int(endpoint.rsplit(":", 1)[1])
        assert port != 0
        if when == "once it accepts connections":
            with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT):
                pass  # the printed port is the one listening
        # A Ctrl-C while the server is still starting used to be swallowed: it ran on.
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=TIMEOUT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    reader.join(timeout=10)
    said = "".join(lines.queue)
    assert "clisight serve: stopped" in said and "Traceback" not in said
