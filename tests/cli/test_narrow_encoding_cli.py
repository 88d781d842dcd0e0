"""Output to a stream that cannot hold Unicode (``PYTHONIOENCODING=ascii``, a Latin-1 locale): the
commands draw ASCII boxes and print ``?`` for the bars, ``µs`` and the like, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.cli.clirun import CLISIGHT, TIMEOUT, run_clisight

# The commands whose text views hold box lines, bars, sparklines, µ, · or …, each with its arguments.
COMMANDS = [
    ("report",),
    ("perf",),
    ("errors",),
    ("insights",),
    ("usage", "daily"),
    ("traces",),
    ("traces", "show", "TRACE"),
    ("detect", "SERIES"),
]


def series(folder: Path) -> Path:
    path = folder / "series.csv"
    rows = [f"{1_700_000_000 + 60 * i},{40.0 if i == 150 else 10 + i % 5}" for i in range(200)]
    path.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
@pytest.mark.parametrize("words", COMMANDS, ids=" ".join)
def test_a_command_printing_to_a_narrow_encoding_degrades_instead_of_crashing(
    demo_store: Path, tmp_path: Path, words: tuple[str, ...], encoding: str
) -> None:
    if "TRACE" in words:
        listed = run_clisight("traces", "--store", str(demo_store), "--json")
        trace = json.loads(listed.stdout)[0]["trace_id"]
        words = tuple(trace if w == "TRACE" else w for w in words)
    store = () if words[0] == "detect" else ("--store", str(demo_store))
    words = tuple(str(series(tmp_path)) if w == "SERIES" else w for w in words)
    proc = subprocess.run(
        [str(CLISIGHT), *words, *store],
        capture_output=True,
        timeout=TIMEOUT,
        env={**os.environ, "PYTHONIOENCODING": encoding, "COLUMNS": "100"},
    )
    stdout, stderr = proc.stdout.decode(encoding), proc.stderr.decode(encoding)  # strict: it is that
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr and "UnicodeEncodeError" not in stderr
    assert stdout.strip()
    if encoding == "ascii":
        assert "?" in stdout or "+-" in stdout or "--" in stdout  # what stood for the rest
