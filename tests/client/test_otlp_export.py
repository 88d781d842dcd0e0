"""A program configured with ``otlp_endpoint`` sends its records to an OTLP/HTTP endpoint (here a
live ``clisight serve`` receiver on 127.0.0.1) and has sent them all when it exits."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("uvicorn", reason="the server extra is not installed")

from tests.helpers import GENEROUS_EXIT
from tests.server.conftest import Served, serve

PROGRAM = textwrap.dedent(
    """
    import clisight

    clisight.init(service="exported-cli", version="1.4", store="none")
    log = clisight.get_logger("main")
    with clisight.span("work", step="parse"):
        log.warning("disk nearly full", free_mb=12, password="hunter2")
    clisight.track("command", name="build")
    """
)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    yield from serve(tmp_path / "receiver")


def test_a_program_with_otlp_endpoint_exports_everything_by_exit(served: Served, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CLISIGHT_OTLP_ENDPOINT": served.url,
        "CLISIGHT_HOME": str(tmp_path / "home"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        # What this test checks is that everything is sent, not the 1 s default exit deadline (the
        # exit tests in tests/pipeline do): a loaded machine must not turn a send into a spool.
        "CLISIGHT_EXIT_TIMEOUT": str(GENEROUS_EXIT),
    }
    env.pop("DO_NOT_TRACK", None)
    proc = subprocess.run(
        [sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    [log] = served.stored("log")
    assert (log["message"], log["component"], log["service"]) == ("disk nearly full", "main", "exported-cli")
    assert log["attributes"]["free_mb"] == 12 and log["attributes"]["password"] != "hunter2"
    [span] = served.stored("span")
    assert span["name"] == "work" and (log["trace_id"], log["span_id"]) == (span["trace_id"], span["span_id"])
    assert [e["name"] for e in served.stored("event")] == ["command"]
    sessions = served.stored("session")
    assert [s["id"] for s in sessions] == [log["session_id"]]
