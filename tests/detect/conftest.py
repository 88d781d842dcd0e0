"""Shared fixtures for the detector tests: where the NAB development subset lives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def nab_dir() -> Path | None:
    """``$CLISIGHT_NAB_DIR`` or ``../shared/datasets/nab`` next to the repository, if it holds the data."""
    env = os.environ.get("CLISIGHT_NAB_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "nab"
    return path if (path / "windows.json").is_file() else None


@pytest.fixture(scope="session")
def nab_path() -> Path:
    path = nab_dir()
    if path is None:
        pytest.skip(
            "NAB development subset not found: set CLISIGHT_NAB_DIR or put it at ../shared/datasets/nab "
            "(data/ and windows.json)"
        )
    return path
