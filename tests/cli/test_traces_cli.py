"""``clisight traces`` and ``clisight traces show``: a listing and a waterfall in 80 columns."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from clisight.store import SqliteStore
from clisight.types import ERROR_LEVEL, Record, Resource
from tests.cli.clirun import CLISIGHT, TIMEOUT, run_clisight

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def fill(db: Path) -> None:
    now, app, worker = time.time_ns(), Resource("mycli", pid=10), Resource("worker", pid=11)
    ms = 1_000_000
    store = SqliteStore(db)
    try:
        store.write_batch(
            [
                Record(
                    "span",
                    now,
                    "cli main",
                    "",
                    0,
                    {},
                    app,
                    None,
                    TRACE,
                    "00f067aa0ba902b7",
                    None,
                    now + 900 * ms,
                ),
                Record(
                    "span",
                    now + 50 * ms,
                    "llm.request",
                    "",
                    0,
                    {},
                    app,
                    None,
                    TRACE,
                    "00f067aa0ba902b8",
                    "00f067aa0ba902b7",
                    now + 700 * ms,
                ),
                Record(
                    "span",
                    now + 100 * ms,
                    "subprocess tool",
                    "",
                    ERROR_LEVEL,
                    {},
                    worker,
                    None,
                    TRACE,
                    "00f067aa0ba902b9",
                    "00f067aa0ba902b8",
                    now + 300 * ms,
                ),
                Record(
                    "span",
                    now - 10**12,
                    "earlier",
                    "",
                    0,
                    {},
                    app,
                    None,
                    "1" * 32,
                    "1111111111111111",
                    None,
                    now - 10**12 + ms,
                ),
            ]
        )
    finally:
        store.close()


def test_traces_lists_recent_traces_and_show_draws_the_waterfall(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    fill(db)
    env = {"COLUMNS": "80", "CLISIGHT_HOME": str(tmp_path / "home")}
    listing = run_clisight("traces", "--store", str(db), env=env)
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert lines.index(next(row for row in lines if "4bf92f35" in row)) < lines.index(
        next(row for row in lines if "11111111" in row)
    )  # newest first
    assert "cli main" in listing.stdout and "3" in listing.stdout

    shown = run_clisight("traces", "show", TRACE[:8], "--store", str(db), env=env)
    assert shown.returncode == 0, shown.stderr
    body = shown.stdout.splitlines()
    assert max(len(line) for line in body) <= 80
    names = [
        next(row for row in body if name in row) for name in ("cli main", "llm.request", "subprocess tool")
    ]
    indents = [len(row) - len(row.lstrip()) for row in names]
    assert indents[0] < indents[1] < indents[2]  # nested by depth
    assert "█" in names[0] and "900 ms" in names[0] and "650 ms" in names[1]

    document = json.loads(run_clisight("traces", "show", TRACE, "--store", str(db), "--json", env=env).stdout)
    assert [s["name"] for s in document["spans"]] == ["cli main", "llm.request", "subprocess tool"]
    assert [s["depth"] for s in document["spans"]] == [0, 1, 2]
    assert document["spans"][2]["service"] == "worker"


def test_show_explains_a_bad_or_unknown_id(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    fill(db)
    bad = run_clisight("traces", "show", "xyz", "--store", str(db))
    assert bad.returncode == 2 and "32 hex characters" in bad.stderr
    unknown = run_clisight("traces", "show", "ffffffff", "--store", str(db))
    assert unknown.returncode == 1 and "no recent trace starts with" in unknown.stderr
    assert "Traceback" not in bad.stderr + unknown.stderr


def test_show_into_a_pipe_keeps_span_names_whole(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    fill(db)
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    shown = subprocess.run(
        [str(CLISIGHT), "traces", "show", TRACE[:8], "--store", str(db)],
        capture_output=True,  # a pipe, as with `| less`: no terminal to ask for its width
        text=True,
        timeout=TIMEOUT,
        env={**env, "CLISIGHT_HOME": str(tmp_path / "home")},
    )
    assert shown.returncode == 0, shown.stderr
    body = shown.stdout.splitlines()
    assert max(len(line) for line in body) <= 80
    assert any("subprocess tool" in row and "█" in row for row in body), shown.stdout
