"""Fixtures for the ``clisight`` command tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.clirun import make_demo_store


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store filled once by ``clisight demo`` (read-only for the tests that share it)."""
    return make_demo_store(tmp_path_factory.mktemp("demo"), sessions=80, seed=7)
