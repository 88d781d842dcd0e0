"""The ``llm_prices`` file: only a regular JSON file of sane size is read.  A FIFO, a directory, a
device or a huge file is refused with its path and the variable named, and the shipped prices are
used: the program neither hangs on it nor reads it into memory."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from clisight import _prices
from tests.cli.clirun import make_demo_store, run_clisight

PROGRAM = textwrap.dedent(
    """
    import warnings

    import clisight

    warnings.simplefilter("always")
    clisight.init(service="priced", store="memory://")
    print(clisight.llm.cost("claude-sonnet-4", input_tokens=1_000_000))
    """
)


def unreadable(kind: str, folder: Path) -> tuple[Path, str]:
    """A path of ``kind`` that is not a price file, and the words the refusal uses for it."""
    if kind == "fifo":
        path = folder / "prices.fifo"
        os.mkfifo(path)  # nobody ever writes to it: reading it would wait forever
        return path, "a named pipe (FIFO), not a regular file"
    if kind == "directory":
        return folder, "a directory, not a regular file"
    if kind == "device":
        return Path("/dev/zero"), "a character device, not a regular file"
    path = folder / "huge.json"
    with path.open("wb") as fh:  # sparse: no disk used
        fh.truncate(_prices.MAX_PRICE_FILE_BYTES + 1)
    return path, "over 4 MB, too large for a price table"


KINDS = ["fifo", "directory", "device", "huge file"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_program_with_a_price_path_that_is_no_regular_file_warns_and_uses_the_shipped_prices(
    tmp_path: Path, kind: str
) -> None:
    path, what = unreadable(kind, tmp_path)
    ran = subprocess.run(
        [sys.executable, "-c", PROGRAM],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CLISIGHT_HOME": str(tmp_path / "home"), "CLISIGHT_LLM_PRICES": str(path)},
    )
    assert ran.returncode == 0, ran.stderr
    shipped = _prices.shipped().cost("claude-sonnet-4", input_tokens=1_000_000)
    assert shipped is not None and float(ran.stdout) == shipped
    assert "CLISIGHT_LLM_PRICES" in ran.stderr and f"{path} is {what}" in ran.stderr
    assert "using the default" in ran.stderr and "Traceback" not in ran.stderr


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_clisight_usage_refuses_such_a_price_path_at_once_naming_it(tmp_path: Path, kind: str) -> None:
    store = make_demo_store(tmp_path, sessions=2, seed=1)
    path, what = unreadable(kind, tmp_path)
    proc = run_clisight("usage", "daily", "--store", str(store), env={"CLISIGHT_LLM_PRICES": str(path)})
    assert proc.returncode == 2, proc.stderr
    first = proc.stderr.splitlines()[0]
    assert "CLISIGHT_LLM_PRICES" in first and f"{path} is {what}" in first
    assert proc.stdout == ""  # no costs from prices the user did not ask for


def test_a_regular_price_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text('{"models": {"my-llama": {"input": 2.5}}}', encoding="utf-8")
    table = _prices.table(str(path))
    assert table.cost("my-llama", input_tokens=1_000_000) == 2.5
    assert _prices.read_price_file(path) == path.read_text(encoding="utf-8")


def test_a_price_file_that_cannot_be_read_says_why(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "prices.json"
    env = {"CLISIGHT_LLM_PRICES": str(missing), "CLISIGHT_HOME": str(tmp_path / "home")}
    proc = run_clisight("report", env=env)  # the configured store: the configuration is read first
    assert proc.returncode == 2, proc.stderr
    first = proc.stderr.splitlines()[0]
    assert "CLISIGHT_LLM_PRICES" in first and f"cannot read {missing}: No such file or directory" in first
