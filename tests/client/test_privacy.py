"""What a CLI's users can rely on about their privacy: argv values, who they are, and DO_NOT_TRACK."""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
import stat
import time
from pathlib import Path
from typing import Any

import pytest

import clisight
from clisight.client import context as _ctx
from clisight.testing import capture
from tests.helpers import run_python, spawn_python


def store_bytes(db: Path) -> bytes:
    """Everything on disk for a store: the file and any WAL/journal beside it (a WAL that its last
    connection's close removed between listing and reading is skipped)."""
    data = []
    for path in db.parent.glob(db.name + "*"):
        with contextlib.suppress(FileNotFoundError):
            data.append(path.read_bytes())
    return b"".join(data)


def all_rows(db: Path) -> list[tuple[str, dict[str, Any]]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.row_factory = sqlite3.Row
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return [(t, dict(row)) for t in tables for row in conn.execute(f"SELECT * FROM {t}")]


def session_row(db: Path) -> dict[str, Any]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.row_factory = sqlite3.Row
        rows = [dict(r) for r in conn.execute("SELECT * FROM sessions")]
    assert len(rows) == 1, rows
    return rows[0]


def user_ids(db: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return {r[0] for r in conn.execute("SELECT user_id FROM sessions WHERE user_id IS NOT NULL")}


# --- argv: the command path and flag names, never values ------------------------------------------


SECRET_ARGV = [
    "mycli",
    "alice@example.com",
    "mysecretproject",
    "--token=abc123secret",
    "-pHunter2pass",
    "--out",
    "report-for-bob.txt",
    "--",
    "-rf",
    "--also=hidden",
]


def test_argv_values_never_reach_the_store(tmp_path: Path) -> None:
    db = tmp_path / "argv.db"
    run_python(f"""
        import sys, clisight
        sys.argv = {SECRET_ARGV!r}
        clisight.init(service="mycli", store={str(db)!r})
    """)
    row = session_row(db)
    assert row["command"] == "mycli"
    shape = json.loads(row["attributes"])["argv_shape"]
    assert shape == "<arg> <arg> --token -p --out <arg> -- <arg> <arg>"
    data = store_bytes(db)
    for value in (b"alice", b"mysecretproject", b"abc123secret", b"Hunter2", b"report-for-bob", b"hidden"):
        assert value not in data


def test_set_command_names_the_run_s_command_path(tmp_path: Path) -> None:
    db = tmp_path / "named.db"
    run_python(f"""
        import sys, clisight
        sys.argv = ["mycli", "db", "migrate", "--to", "v42"]
        clisight.init(service="mycli", store={str(db)!r})
        clisight.set_command("mycli db migrate")
    """)
    row = session_row(db)
    assert row["command"] == "mycli db migrate"
    assert json.loads(row["attributes"])["argv_shape"] == "<arg> <arg> --to <arg>"


def test_a_module_run_with_python_m_is_named_after_its_package(tmp_path: Path) -> None:
    package = tmp_path / "toolpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(
        "import clisight\nprint(clisight.init(store='none').resource.service)\n"
        "from clisight.client.core import _run_shape\nprint(_run_shape()['command'])\n"
    )
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "toolpkg", "secret-value"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    assert out == ["toolpkg", "toolpkg"]


# --- user pseudonyms: salted per install ------------------------------------------------------------


PSEUDONYM_PROGRAM = """
    import clisight
    clisight.init(service="mycli", store={db!r})
    with clisight.session(user="alice@example.com"):
        clisight.get_logger("a").info("hello")
"""


def test_the_same_user_has_one_pseudonym_per_install_and_another_elsewhere(tmp_path: Path) -> None:
    one, other = tmp_path / "one" / "s.db", tmp_path / "other" / "s.db"
    for db in (one, one, other):
        run_python(PSEUDONYM_PROGRAM.format(db=str(db)))
    (here,) = user_ids(one)  # two processes, one pseudonym
    (there,) = user_ids(other)
    assert here.startswith("u_") and there.startswith("u_") and here != there
    salt = one.parent / "clisight.salt"
    assert stat.S_IMODE(salt.stat().st_mode) == 0o600
    assert len(bytes.fromhex(salt.read_text())) == 32


def test_neither_the_user_nor_its_unsalted_hash_is_in_the_store(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    run_python(PSEUDONYM_PROGRAM.format(db=str(db)))
    unsalted = hashlib.sha256(b"alice@example.com").hexdigest()
    data = store_bytes(db)
    assert user_ids(db)
    for leak in (b"alice", unsalted[:16].encode(), unsalted.encode()):
        assert leak not in data


def test_processes_racing_to_create_the_salt_all_use_the_same_one(tmp_path: Path) -> None:
    go = tmp_path / "go"
    program = f"""
        import os, time
        from pathlib import Path
        from clisight.client import context
        while not os.path.exists({str(go)!r}):
            time.sleep(0.002)
        print(context.install_salt(Path({str(tmp_path / "data")!r})).hex())
    """
    procs = [spawn_python(program) for _ in range(6)]
    time.sleep(0.3)  # let them start and wait on the same moment
    go.touch()
    salts = {proc.communicate(timeout=60)[0].strip() for proc in procs}
    assert len(salts) == 1 and len(bytes.fromhex(salts.pop())) == 32
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["clisight.salt"]  # no temp files left


def test_an_existing_salt_is_kept_and_used(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    (tmp_path / "clisight.salt").write_text("ab" * 32)
    run_python(PSEUDONYM_PROGRAM.format(db=str(db)))
    import hmac

    expected = "u_" + hmac.new(bytes.fromhex("ab" * 32), b"alice@example.com", "sha256").hexdigest()[:16]
    assert user_ids(db) == {expected}
    assert (tmp_path / "clisight.salt").read_text() == "ab" * 32


def test_an_unwritable_data_dir_falls_back_to_a_per_process_salt(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    program = """
        import clisight
        from clisight.client import context
        clisight.init(service="mycli", store="memory://")
        print(context.hash_user("alice"), context.hash_user("alice"))
    """
    env = {"CLISIGHT_HOME": str(blocker / "home")}
    first = run_python(program, env=env).stdout.split()
    second = run_python(program, env=env).stdout.split()
    assert first[0] == first[1] and first[0] != second[0]  # stable in a process, not across
    assert first[0] != "u_" + hashlib.sha256(b"alice").hexdigest()[:16]


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no str for you")


@pytest.mark.parametrize("user", [12345, b"alice", Unprintable(), 0, "", object()])
def test_any_user_value_is_accepted_or_ignored_and_never_raises(user: object) -> None:
    with capture() as sink:
        with clisight.session(user=user):
            clisight.get_logger("a").info("inside")
        clisight.set_session_context(user=user)
    for record in sink.records:
        user_id = record.attributes.get("user_id")
        assert user_id is None or (isinstance(user_id, str) and user_id.startswith("u_"))


def test_an_int_user_is_the_same_user_as_its_text() -> None:
    assert _ctx.hash_user(12345) == _ctx.hash_user("12345") is not None
    assert _ctx.hash_user(Unprintable()) is None


def test_set_session_context_puts_the_user_on_the_run_s_own_session() -> None:
    with capture() as sink:
        clisight.set_session_context(user="alice")
        clisight.get_logger("a").info("later")
    client_sessions = {r.session_id for r in sink.of_kind("session")}
    assert len(client_sessions) == 1  # no second session, no session that is its own parent
    (log,) = sink.of_kind("log")
    assert log.session_id in client_sessions
    named = [r for r in sink.of_kind("session") if "user_id" in r.attributes]
    assert named and all("parent_session" not in r.attributes for r in named)
    assert named[0].attributes["user_id"] == log.attributes["user_id"]


# --- DO_NOT_TRACK: no session, no user ----------------------------------------------------------------


EVERY_SIGNAL = """
    import clisight
    clisight.init(service="mycli", store={db!r}{extra})
    log = clisight.get_logger("a")
    log.info("run starts")
    sid = clisight.set_session_context(user="alice@example.com", plan="pro")
    assert sid
    with clisight.session(user="bob@example.com") as inner:
        assert inner
        log.info("inside a session")
        with clisight.span("work"):
            log.warning("in a span")
        try:
            1 / 0
        except ZeroDivisionError as error:
            clisight.capture_exception(error)
        clisight.track("command", name="run")
    clisight.set_command("mycli run")
"""


@pytest.mark.parametrize(
    ("env", "extra"),
    [({"DO_NOT_TRACK": "1"}, ""), ({}, ", usage=False")],
    ids=["DO_NOT_TRACK", "usage=False"],
)
def test_do_not_track_stores_no_session_and_no_user(tmp_path: Path, env: dict[str, str], extra: str) -> None:
    db = tmp_path / "dnt.db"
    run_python(EVERY_SIGNAL.format(db=str(db), extra=extra), env=env)
    rows = all_rows(db)
    assert [r for t, r in rows if t == "sessions"] == []
    assert sum(1 for t, _ in rows if t == "logs") == 3  # logs stay on
    for table, row in rows:
        assert row.get("user_id") is None and row.get("session_id") is None, (table, row)
        assert "user_id" not in str(row.get("attributes") or ""), (table, row)
    data = store_bytes(db)
    assert b"alice" not in data and b"bob@" not in data
