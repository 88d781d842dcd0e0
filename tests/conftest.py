"""Shared fixtures.  The never-raise guard re-raises under our tests (see clisight/_safety.py)."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

os.environ["CLISIGHT_RAISE_INTERNAL"] = "1"
# Property tests draw the same examples on every `make test`, so CI never passes or fails by luck;
# CLISIGHT_EXPLORE=1 draws new ones each run (do that a few times after changing what they test).
settings.register_profile("repeatable", derandomize=True, database=None)
settings.register_profile("explore")
settings.load_profile("explore" if os.environ.get("CLISIGHT_EXPLORE") else "repeatable")
# A run longer than the sampling interval writes resource samples: tests that count records exactly
# (here and in the subprocesses they start) must not get them.  Sampling tests turn it on themselves.
os.environ["CLISIGHT_RESOURCE_SAMPLING"] = "off"
# A shell's background job starts with SIGINT ignored, and so would every child we start: a Ctrl-C
# test would then hang.  Python's own handler is what a program run from a terminal has.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

REPO = Path(__file__).resolve().parents[1]
NAB_DIR = Path(os.environ.get("CLISIGHT_NAB_DIR", REPO.parent / "shared" / "datasets" / "nab"))


@pytest.fixture(autouse=True)
def _no_leftover_client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Every test starts without a running client and with its own data dir and no user config."""
    monkeypatch.setenv("CLISIGHT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DO_NOT_TRACK", raising=False)
    monkeypatch.chdir(tmp_path)
    yield
    if "clisight.client.core" in sys.modules:
        from clisight.client import context, core

        core.shutdown(timeout=2.0)
        context.current.set(context.EMPTY)  # set_session_context() lasts for the rest of the context


@pytest.fixture
def python() -> str:
    """The interpreter that runs subprocess tests (the venv's)."""
    return sys.executable
