"""One line instruments a click, typer or argparse program: command paths, options, exit codes."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clisight.client.instrument import options_used
from clisight.query import Query
from clisight.store.base import Selection
from clisight.types import ERROR_LEVEL
from tests.helpers import GENEROUS_EXIT

CLICK_APP = """
import sys
import time
import click
import clisight

clisight.init(service="tool", store=sys.argv.pop(1))

@click.group()
@click.option("--verbose", "-v", is_flag=True)
def cli(verbose):
    pass

@cli.group()
def db():
    pass

@db.command()
@click.option("--dry-run", is_flag=True)
@click.option("--target")
def migrate(dry_run, target):
    clisight.get_logger("db").info("migrating")

@cli.command()
def crash():
    raise RuntimeError("boom")

@cli.command()
@click.argument("code", type=int)
def quit(code):
    sys.exit(code)

@cli.command()
def wait():
    print("ready", flush=True)
    time.sleep(60)  # until the test's SIGTERM

clisight.instrument(cli)
cli(prog_name="tool")
"""

TYPER_APP = """
import sys
import typer
import clisight

clisight.init(service="tool", store=sys.argv.pop(1))
app = typer.Typer(pretty_exceptions_enable=False)
users = typer.Typer()
app.add_typer(users, name="users")

@users.command("add")
def add(name: str, admin: bool = typer.Option(False, "--admin")):
    pass

@app.command()
def crash():
    raise ValueError("bad input")

clisight.instrument(app)
app(prog_name="tool")
"""

ARGPARSE_APP = """
import argparse
import sys
import clisight

clisight.init(service="tool", store=sys.argv.pop(1))
parser = argparse.ArgumentParser(prog="tool")
parser.add_argument("--quiet", "-q", action="store_true")
sub = parser.add_subparsers(dest="cmd")
remote = sub.add_parser("remote").add_subparsers(dest="remote_cmd")
push = remote.add_parser("push")
push.add_argument("--force", action="store_true")
push.add_argument("branch")
crash = sub.add_parser("crash")
sub.add_parser("wait")
clisight.instrument(parser)
args = parser.parse_args()
if args.cmd == "crash":
    raise KeyError("missing")
if args.cmd == "wait":
    import time
    print("ready", flush=True)
    time.sleep(60)  # until the test's SIGTERM
"""


def _run(tmp_path: Path, source: str, db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(source))
    env = {**os.environ, "CLISIGHT_EXIT_TIMEOUT": str(GENEROUS_EXIT)}
    return subprocess.run(
        [sys.executable, str(script), str(db), *args], capture_output=True, text=True, timeout=60, env=env
    )


def _commands(db: Path) -> list[dict[str, Any]]:
    with Query(db) as q:
        spans = q.reader.rows("span", Selection(), limit=100).rows
        sessions = {s["id"]: s for s in q.reader.rows("session", Selection(), limit=100).rows}
    out = []
    for span in spans:
        if span["name"].startswith("command:"):
            session = sessions[span["session_id"]]
            out.append({**span["attributes"], "status": span["status"], "session": session})
    return out


def _errors(db: Path) -> list[dict[str, Any]]:
    with Query(db) as q:
        return q.reader.rows("error", Selection(), limit=100).rows


@pytest.mark.parametrize(
    ("args", "path", "code", "options"),
    [
        (("db", "migrate", "--dry-run", "--target=prod-secret"), "tool db migrate", 0, "--dry-run --target"),
        (("-v", "db", "migrate"), "tool db migrate", 0, "-v"),
        (("db", "--help"), "tool db", 0, "--help"),
        (("db", "migrate", "--bogus"), "tool db migrate", 2, ""),
        (("quit", "3"), "tool quit", 3, ""),
        (("crash",), "tool crash", 1, ""),
    ],
)
def test_click_app_records_command_path_options_and_exit_code(
    tmp_path: Path, args: tuple[str, ...], path: str, code: int, options: str
) -> None:
    db = tmp_path / "c.db"
    proc = _run(tmp_path, CLICK_APP, db, *args)
    assert proc.returncode == code, proc.stderr
    [command] = _commands(db)
    assert command["command"] == path
    assert command["exit_code"] == code
    assert command["options"] == options
    assert command["status"] == (0 if code == 0 else ERROR_LEVEL)
    session = command["session"]
    assert session["command"] == path and session["exit_code"] == code
    assert session["attributes"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert "prod-secret" not in str(session) and "prod-secret" not in str(command)
    assert command.get("help", False) == ("--help" in args)


def test_click_exception_is_captured_once_with_the_command(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    proc = _run(tmp_path, CLICK_APP, db, "crash")
    assert proc.returncode == 1 and "RuntimeError: boom" in proc.stderr
    [error] = _errors(db)
    assert error["type"] == "RuntimeError" and error["attributes"]["command"] == "tool crash"


def test_click_records_inside_the_command_share_its_trace(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    _run(tmp_path, CLICK_APP, db, "db", "migrate")
    with Query(db) as q:
        [log] = q.reader.rows("log", Selection(), limit=10).rows
        [span] = q.reader.rows("span", Selection(), limit=10).rows
    assert log["trace_id"] == span["trace_id"] and log["span_id"] == span["span_id"]


@pytest.mark.parametrize(
    ("args", "path", "code", "options"),
    [
        (("users", "add", "alice", "--admin"), "tool users add", 0, "--admin"),
        (("users", "add", "--help"), "tool users add", 0, "--help"),
        (("users", "add"), "tool users add", 2, ""),
        (("crash",), "tool crash", 1, ""),
    ],
)
def test_typer_app_records_command_path_options_and_exit_code(
    tmp_path: Path, args: tuple[str, ...], path: str, code: int, options: str
) -> None:
    db = tmp_path / "t.db"
    proc = _run(tmp_path, TYPER_APP, db, *args)
    assert proc.returncode == code, proc.stderr
    [command] = _commands(db)
    assert (command["command"], command["exit_code"], command["options"]) == (path, code, options)
    assert command["session"]["exit_code"] == code
    assert "alice" not in str(command)
    if code == 1:
        [error] = _errors(db)
        assert error["type"] == "ValueError"


@pytest.mark.parametrize(
    ("args", "path", "code", "options"),
    [
        (("remote", "push", "--force", "main"), "tool remote push", 0, "--force"),
        (("-q", "remote", "push", "--help"), "tool remote push", 0, "-q --help"),
        (("remote", "push"), "tool remote push", 2, ""),
        (("crash",), "tool crash", 1, ""),
        ((), "tool", 0, ""),
    ],
)
def test_argparse_app_records_command_path_options_and_exit_code(
    tmp_path: Path, args: tuple[str, ...], path: str, code: int, options: str
) -> None:
    db = tmp_path / "a.db"
    proc = _run(tmp_path, ARGPARSE_APP, db, *args)
    assert proc.returncode == code, proc.stderr
    [command] = _commands(db)
    assert (command["command"], command["exit_code"], command["options"]) == (path, code, options)
    assert command["session"]["command"] == path and command["session"]["exit_code"] == code
    if code == 1:
        [error] = _errors(db)
        assert error["type"] == "KeyError"


@pytest.mark.parametrize("source", [CLICK_APP, ARGPARSE_APP], ids=["click", "argparse"])
def test_a_command_stopped_by_sigterm_keeps_its_path_and_records_143(tmp_path: Path, source: str) -> None:
    db = tmp_path / "t.db"
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(source))
    env = {**os.environ, "CLISIGHT_EXIT_TIMEOUT": str(GENEROUS_EXIT)}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(db), "wait"], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready and proc.stdout is not None and proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == -signal.SIGTERM
    finally:
        proc.kill()
        proc.wait(timeout=60)
    [command] = _commands(db)
    assert (command["command"], command["exit_code"], command["status"]) == ("tool wait", 143, ERROR_LEVEL)
    assert command["session"]["command"] == "tool wait" and command["session"]["exit_code"] == 143


def test_do_not_track_records_no_command_and_keeps_the_exit_code(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(CLICK_APP))
    env = {**os.environ, "DO_NOT_TRACK": "1", "CLISIGHT_EXIT_TIMEOUT": str(GENEROUS_EXIT)}
    proc = subprocess.run(
        [sys.executable, str(script), str(db), "quit", "4"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert proc.returncode == 4
    assert not db.exists() or _commands(db) == []


def test_instrumenting_something_else_never_raises_into_the_program(monkeypatch: pytest.MonkeyPatch) -> None:
    import clisight
    from clisight import _safety

    monkeypatch.setattr(_safety, "_raise_internal", False)
    before = _safety.internal_errors()
    thing = object()
    assert clisight.instrument(thing) is thing
    assert _safety.internal_errors() == before + 1


@given(st.lists(st.text(max_size=12), max_size=12))
def test_options_used_are_declared_names_only(args: list[str]) -> None:
    declared = ["--force", "-f", "--out"]
    found = options_used(args, declared)
    assert set(found) <= {*declared, "--help", "-h"}
    assert len(found) == len(set(found))
    for option in found:
        assert any(a == option or a.startswith(option + "=") or a.startswith(option) for a in args)
