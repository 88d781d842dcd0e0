"""Fixtures for the terminal views: a ``clisight demo`` store, and stores written by real programs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.cli.clirun import run_clisight


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store filled once by ``clisight demo`` in a subprocess (tests copy it before writing)."""
    folder = tmp_path_factory.mktemp("tui-demo")
    db = folder / "demo.db"
    proc = run_clisight(
        "demo",
        "--store",
        str(db),
        "--sessions",
        "40",
        "--seed",
        "7",
        env={"CLISIGHT_HOME": str(folder / "home")},
    )
    assert proc.returncode == 0, proc.stderr
    return db


@pytest.fixture
def demo_copy(demo_db: Path, tmp_path: Path) -> Path:
    """A private copy of the demo store (SQLite's backup API: a file copy would miss the WAL)."""
    target = tmp_path / "demo.db"
    with sqlite3.connect(demo_db) as source, sqlite3.connect(target) as dest:
        source.backup(dest)
    return target
