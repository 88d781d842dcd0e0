"""Fixtures for the terminal views: a ``clisight demo`` store, and stores written by real programs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.cli.clirun import make_demo_store


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store filled once by ``clisight demo`` in a subprocess (tests copy it before writing)."""
    return make_demo_store(tmp_path_factory.mktemp("tui-demo"), sessions=40, seed=7)


@pytest.fixture
def demo_copy(demo_db: Path, tmp_path: Path) -> Path:
    """A private copy of the demo store (SQLite's backup API: a file copy would miss the WAL)."""
    target = tmp_path / "demo.db"
    with sqlite3.connect(demo_db) as source, sqlite3.connect(target) as dest:
        source.backup(dest)
    return target
