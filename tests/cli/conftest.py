"""Fixtures for the ``clisight`` command tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.clirun import run_clisight


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store filled once by ``clisight demo`` (read-only for the tests that share it)."""
    folder = tmp_path_factory.mktemp("demo")
    db = folder / "demo.db"
    proc = run_clisight(
        "demo",
        "--store",
        str(db),
        "--sessions",
        "80",
        "--seed",
        "7",
        env={"CLISIGHT_HOME": str(folder / "home")},
    )
    assert proc.returncode == 0, proc.stderr
    return db
