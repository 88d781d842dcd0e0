"""Reading a store you cannot write: `report`, `tail`, `export` and `doctor` open it read-only.

A store in a directory the user cannot write (another user's data dir, a read-only mount, a copy
someone sent) must still be readable, and reading must never change it.  chmod stops no one when
the tests run as root, so then the readers run as ``nobody`` (through ``setpriv``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from clisight.store import Selection, SqliteStore
from clisight.store.schema import LATEST_VERSION, MIGRATIONS
from clisight.types import ERROR_LEVEL, INFO, Record, Resource
from tests.cli.clirun import CLISIGHT, TIMEOUT, invoke

NOBODY = 65534
SETPRIV = shutil.which("setpriv")
READERS = (("report", "--json"), ("tail", "--json"), ("export",), ("doctor", "--json"))


def reader_prefix() -> list[str]:
    """How to run a command as a user for whom chmod 555/444 really means read-only."""
    if os.geteuid() != 0:
        return []
    if SETPRIV is None:
        pytest.skip("running as root without setpriv: chmod cannot make a store unwritable for root")
    return [SETPRIV, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


def run_reader(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CLISIGHT_HOME": str(cwd / "no-home"), "HOME": str(cwd)}
    return subprocess.run(
        [*reader_prefix(), str(CLISIGHT), *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
        cwd=cwd,
    )


def fill(db: Path, keep_wal: bool = False) -> None:
    """A store with a few logs and an error; with ``keep_wal`` the last writes stay in the -wal file."""
    store = SqliteStore(db)
    res = Resource("ro-cli")
    store.write_batch(
        [Record("log", 10**18 + i, "api", f"line {i}", INFO, {"n": i}, res) for i in range(5)]
        + [Record("log", 10**18 + 9, "db", "connection lost", ERROR_LEVEL, {}, res)]
    )
    if not keep_wal:
        store.close()  # the last connection checkpoints and removes -wal and -shm
        return
    # A writer still running (or killed) leaves its -wal and -shm; copy them as they are now.
    store.write_batch([Record("log", 10**18 + 20, "api", "only in the wal", INFO, {}, res)])
    shots = {suffix: Path(f"{db}{suffix}").read_bytes() for suffix in ("", "-wal", "-shm")}
    store.close()
    for suffix, data in shots.items():
        Path(f"{db}{suffix}").write_bytes(data)


def snapshot(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory ``nobody`` can reach (pytest's tmp_path is private to the user running the tests)."""
    top = Path(tempfile.mkdtemp(prefix="clisight-ro-"))
    top.chmod(0o755)
    (top / "cwd").mkdir(mode=0o777)
    (top / "cwd").chmod(0o777)
    yield top
    for path in top.rglob("*"):
        if path.is_dir():
            path.chmod(0o755)
    shutil.rmtree(top)


def lock(folder: Path) -> None:
    for path in folder.iterdir():
        path.chmod(0o444)
    folder.chmod(0o555)


@pytest.mark.parametrize("keep_wal", [False, True], ids=["checkpointed", "wal-left-behind"])
def test_readers_work_on_a_store_in_a_directory_the_user_cannot_write(
    shared_dir: Path, keep_wal: bool
) -> None:
    folder = shared_dir / "data"
    folder.mkdir()
    db = folder / "x.db"
    fill(db, keep_wal=keep_wal)
    lock(folder)
    before = snapshot(folder)
    cwd = shared_dir / "cwd"

    report = run_reader("report", "--store", str(db), "--json", cwd=cwd)
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["total_logs"] == (7 if keep_wal else 6)
    tail = run_reader("tail", "--store", str(db), "-n", "2", cwd=cwd)
    assert tail.returncode == 0, tail.stderr
    assert ("only in the wal" if keep_wal else "connection lost") in tail.stdout
    export = run_reader("export", "--store", str(db), "--kind", "logs", cwd=cwd)
    assert export.returncode == 0, export.stderr
    assert len(export.stdout.splitlines()) == (7 if keep_wal else 6)
    doctor = run_reader("doctor", "--store", str(db), "--json", cwd=cwd)
    assert doctor.returncode == 0, doctor.stderr
    assert json.loads(doctor.stdout)["store"]["status"] == "ok"

    assert snapshot(folder) == before  # no migration, no pragma write, no -wal or -shm created


def test_vacuum_on_a_store_the_user_cannot_write_fails_with_a_clear_message(shared_dir: Path) -> None:
    folder = shared_dir / "data"
    folder.mkdir()
    fill(folder / "x.db")
    lock(folder)
    result = run_reader("vacuum", "--store", str(folder / "x.db"), cwd=shared_dir / "cwd")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "cannot" in result.stderr and "readonly" in result.stderr.replace("read-only", "readonly")


def test_readers_leave_the_store_file_of_a_writable_store_byte_for_byte_unchanged(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    fill(db)
    before = db.read_bytes()
    for args in READERS:
        result = invoke(*args[:1], "--store", str(db), *args[1:])
        assert result.exit_code == 0, result.output
    assert db.read_bytes() == before
    # SQLite's own shared-memory index may appear; the next writer that closes removes it.
    extra = {p.name for p in tmp_path.iterdir()} - {"x.db", "home"}
    assert extra <= {"x.db-wal", "x.db-shm"} and Path(f"{db}-wal").stat().st_size == 0


def test_readers_of_a_store_an_older_clisight_wrote_say_how_to_upgrade_it_and_change_nothing(
    tmp_path: Path,
) -> None:
    """Schema 5 moved every table to a new layout, which only a writer can do: readers say so."""
    db = tmp_path / "old.db"
    with sqlite3.connect(db, isolation_level=None) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(
            "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_ns INTEGER, description TEXT)"
        )
        for version, (_, statements) in enumerate(MIGRATIONS[:2], start=1):
            for statement in statements:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version VALUES (?, 0, '')", (version,))
        conn.execute("INSERT INTO resources (service) VALUES ('old')")
        conn.execute(
            "INSERT INTO logs (time_ns, severity, severity_text, component, message, resource_id)"
            " VALUES (1, 17, 'ERROR', 'old', 'kept', 1)"
        )
    conn.close()
    before = db.read_bytes()
    for command in ("report", "tail", "export"):
        result = invoke(command, "--store", str(db))
        assert result.exit_code == 1, command
        assert "schema version 2" in result.stderr and "upgraded" in result.stderr, result.stderr
        assert "Traceback" not in result.output
    assert db.read_bytes() == before
    # A writer upgrades it, keeping the old rows.
    store = SqliteStore(db)
    assert store.migrate() == LATEST_VERSION
    [row] = store.rows("log", Selection()).rows
    assert (row["component"], row["message"], row["severity_text"], row["service"]) == (
        "old",
        "kept",
        "ERROR",
        "old",
    )
    store.close()


@pytest.mark.parametrize("args", READERS[:3], ids=lambda a: a[0])
def test_readers_on_a_missing_store_say_no_store_at_the_path_and_create_nothing(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    target = tmp_path / "nowhere" / "x.db"
    result = invoke(*args[:1], "--store", str(target), *args[1:])
    assert result.exit_code == 1
    assert f"no store at {target}" in result.stderr
    assert not (tmp_path / "nowhere").exists()


def test_a_file_that_is_not_a_clisight_store_is_named_as_such(tmp_path: Path) -> None:
    db = tmp_path / "other.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE mine (x)")
    conn.close()
    result = invoke("report", "--store", str(db))
    assert result.exit_code == 1 and "not a clisight store" in result.stderr
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite at all" * 100)
    result = invoke("tail", "--store", str(garbage))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert stat.S_ISREG(garbage.stat().st_mode) and garbage.read_bytes().startswith(b"this is not")


def test_export_into_a_directory_the_user_cannot_write_fails_naming_the_path(shared_dir: Path) -> None:
    folder = shared_dir / "data"
    folder.mkdir()
    fill(folder / "x.db")
    lock(folder)
    target = folder / "out.jsonl"
    result = run_reader("export", "--store", str(folder / "x.db"), "-o", str(target), cwd=shared_dir / "cwd")
    assert result.returncode == 1
    assert f"cannot write {target}: permission denied" in result.stderr
    assert "Traceback" not in result.stderr and not target.exists()


def test_error_messages_show_control_characters_of_a_path_escaped(tmp_path: Path) -> None:
    hostile = tmp_path / "\x1b[2J\x1b]0;owned\x07.db"
    for args in (("report",), ("export", "-o", str(tmp_path / "\x1b[2J" / "x"))):
        result = invoke(*args[:1], "--store", str(hostile), *args[1:])
        assert result.exit_code == 1
        assert "\x1b" not in result.output and "\x07" not in result.output
        assert "\\x1b[2J" in result.stderr
    db = tmp_path / "x.db"
    fill(db)
    result = invoke("export", "--store", str(db), "-o", str(tmp_path / "\x1b[2J" / "x"))
    assert result.exit_code == 1 and "\x1b" not in result.output and "\\x1b[2J" in result.stderr


def test_a_wal_without_its_shm_in_an_unwritable_directory_is_explained_not_read_stale(
    shared_dir: Path,
) -> None:
    folder = shared_dir / "data"
    folder.mkdir()
    db = folder / "x.db"
    fill(db, keep_wal=True)
    Path(f"{db}-shm").unlink()  # a killed writer, then someone tidied up the wrong file
    lock(folder)
    result = run_reader("report", "--store", str(db), cwd=shared_dir / "cwd")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "write-ahead log" in result.stderr and "not writable" in result.stderr


WRITERS = (
    ("vacuum",),
    ("errors", "resolve", "abcdef"),
    ("alerts", "silence", "latency", "--for", "1h"),
    ("demo", "--sessions", "1"),
    ("usage", "import-claude-code", "transcript.jsonl"),
)


@pytest.mark.parametrize("args", WRITERS, ids=" ".join)
def test_a_command_that_writes_refuses_a_read_only_store_file_up_front_and_leaves_nothing_behind(
    shared_dir: Path, args: tuple[str, ...]
) -> None:
    folder = shared_dir / "cwd"  # a directory the reader can write; only the store file is read-only
    db = folder / "x.db"
    fill(db)
    db.chmod(0o444)
    (folder / "transcript.jsonl").write_text("")
    before = snapshot(folder)
    words = [str(folder / word) if word.endswith(".jsonl") else word for word in args]
    result = run_reader(*words, "--store", str(db), cwd=folder)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert f"cannot write to the store {db}: the file is read-only for you" in result.stderr
    assert snapshot(folder) == before  # no spool, no salt, no -wal or -shm: nothing was started
