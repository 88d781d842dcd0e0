"""Helpers for tests that run real subprocesses and read real SQLite files."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

TIMEOUT = 120
# A loaded machine can need more than the default 1 s exit deadline to open a new store at exit; what
# the deadline cannot write is spooled, not stored.  Tests of the deadline itself pass exit_timeout=None.
GENEROUS_EXIT = 30.0


def _env(env: dict[str, str] | None, exit_timeout: float | None) -> dict[str, str]:
    full = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if exit_timeout is not None:
        full["CLISIGHT_EXIT_TIMEOUT"] = str(exit_timeout)
    return {**full, **(env or {})}


def run_python(
    code: str,
    *,
    timeout: float = TIMEOUT,
    env: dict[str, str] | None = None,
    check: bool = True,
    exit_timeout: float | None = GENEROUS_EXIT,
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (the test venv's) with a hard timeout."""
    full_env = _env(env, exit_timeout)
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"subprocess failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def spawn_python(
    code: str, env: dict[str, str] | None = None, exit_timeout: float | None = GENEROUS_EXIT
) -> subprocess.Popen[str]:
    full_env = _env(env, exit_timeout)
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
    )


def count_rows(db: Path, table: str, where: str = "1=1", params: tuple[object, ...] = ()) -> int:
    with sqlite3.connect(db, timeout=30) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table} WHERE {where}", params).fetchone()[0])


def integrity_ok(db: Path) -> bool:
    with sqlite3.connect(db, timeout=30) as conn:
        return bool(conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok")
