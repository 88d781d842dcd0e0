"""The seed's own test program (examples/seed_stack.py), run as a user would, on a fresh store."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from clisight.query import Query
from tests.conftest import REPO

EXAMPLE = REPO / "examples" / "seed_stack.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_seed_program_prints_the_comprehensive_report_of_its_three_steps(tmp_path: Path) -> None:
    db = tmp_path / "seed.db"
    port = free_port()
    env = {
        **os.environ,
        "CLISIGHT_STORE": str(db),
        "CLISIGHT_HOME": str(tmp_path / "home"),
        "SEED_DASHBOARD_PORT": str(port),
    }
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=90, env=env, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("clisight comprehensive report")
    for title in ("Summary", "Performance", "Errors", "Usage", "Traces", "Anomalies", "Alerts"):
        assert f"\n{title}\n{'=' * len(title)}\n" in out
    assert "service: seed_stack" in out
    assert f"Web dashboard: http://127.0.0.1:{port}/" in out
    steps = ("user_login", "send_message", "view_sessions")
    journey = out.split("User journey steps\n", 1)[1].split("\n\n", 1)[0]
    assert [line.split()[0] for line in journey.splitlines()[2:]] == sorted(steps)
    traces = out.split("Recent traces\n", 1)[1].split("\n\n", 1)[0]
    assert sorted(line.split()[1] for line in traces.splitlines()[2:]) == sorted(
        f"user_journey.{s}" for s in steps
    )
    assert "No errors." in out
    # What the report says is what the store holds: one trace per step, each with its journey event.
    with Query(db) as query:
        spans = list(query.export(kinds=("span",)))
        events = list(query.export(kinds=("event",)))
    assert len({s["trace_id"] for s in spans}) == 3
    assert sorted(e["name"] for e in events if e["name"].startswith("journey:")) == sorted(
        f"journey:{s}" for s in steps
    )
    assert {e["trace_id"] for e in events} == {s["trace_id"] for s in spans}
