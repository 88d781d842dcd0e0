"""Running the ``clisight`` command in tests: the installed console script, or click's runner."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from clisight.cli.main import cli

CLISIGHT = Path(sys.executable).with_name("clisight")  # the console script installed in the venv
TIMEOUT = 60


def run_clisight(
    *args: str, env: dict[str, str] | None = None, timeout: float = TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``clisight`` in a subprocess with a hard timeout."""
    return subprocess.run(
        [str(CLISIGHT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def make_demo_store(folder: Path, sessions: int, seed: int) -> Path:
    """A store in ``folder`` filled by ``clisight demo`` in a subprocess (its own CLISIGHT_HOME)."""
    db = folder / "demo.db"
    proc = run_clisight(
        "demo",
        "--store",
        str(db),
        "--sessions",
        str(sessions),
        "--seed",
        str(seed),
        env={"CLISIGHT_HOME": str(folder / "home")},
    )
    assert proc.returncode == 0, proc.stderr
    return db


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    """Run ``clisight`` in this process (click's runner); exceptions other than exits are re-raised."""
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    return result


def invoke_json(*args: str) -> Any:
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def serve_on_any_port(
    folder: Path,
    *more: str,
    workers: int = 0,
    env: dict[str, str] | None = None,
    own_group: bool = False,
) -> tuple[subprocess.Popen[str], queue.Queue[str], threading.Thread]:
    """``clisight serve --port 0 --workers 0`` (and ``more`` options) on a new store in ``folder``,
    its stderr lines as they come (the banner names the port the system picked), and the thread
    reading them, which ends when the process does.  ``own_group``: in a process group of its own
    (which a Ctrl-C signals whole).  The caller stops the process, waits for it and joins the
    thread."""
    proc = subprocess.Popen(
        [
            *(str(CLISIGHT), "serve", "--port", "0", "--workers", str(workers)),
            *("--store", str(folder / "served.db"), *more),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "CLISIGHT_HOME": str(folder / "home"), **(env or {})},
        start_new_session=own_group,
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr or ()], daemon=True)
    reader.start()
    return proc, lines, reader
