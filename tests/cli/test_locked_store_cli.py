"""A store another process holds the write lock of: the command that must write says which file,
who likely holds it and what to do, instead of SQLite's bare "database is locked"."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clisight.cli._common import LOCK_WAIT_S
from clisight.store import _sqlite_schema
from clisight.store import sqlite as sqlite_store
from tests.cli.clirun import invoke

SHORT_WAIT_MS = 300  # instead of the store's 10 s, so the test is quick


@contextlib.contextmanager
def write_locked(db: Path) -> Iterator[None]:
    """Another connection holding the store's write lock (as a busy `clisight serve` would)."""
    other = sqlite3.connect(db, isolation_level=None, timeout=5)
    try:
        other.execute("BEGIN IMMEDIATE")
        yield
    finally:
        other.close()


@pytest.fixture
def short_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in (_sqlite_schema, sqlite_store):
        monkeypatch.setattr(module, "BUSY_TIMEOUT_MS", SHORT_WAIT_MS)


@pytest.mark.parametrize(
    "words",
    [
        ("alerts", "silence", "x", "--for", "1h"),
        ("vacuum", "--max-age-days", "1"),
        ("errors", "resolve", "ID"),
    ],
    ids=" ".join,
)
def test_a_store_locked_by_another_writer_is_a_clear_error_naming_it(
    demo_store: Path, tmp_path: Path, short_wait: None, words: tuple[str, ...]
) -> None:
    db = tmp_path / "copy.db"
    with (
        contextlib.closing(sqlite3.connect(demo_store)) as src,
        contextlib.closing(sqlite3.connect(db)) as dst,
    ):
        src.backup(dst)  # the demo's last commits may still be in its -wal file
    if "ID" in words:
        listed = invoke("errors", "--store", str(db), "--json")
        words = tuple(listed.stdout.split('"fingerprint": "')[1][:12] if w == "ID" else w for w in words)
    with write_locked(db):
        started = time.monotonic()
        result = invoke(*words, "--store", str(db))
        waited = time.monotonic() - started
    assert result.exit_code == 1, result.output
    message = " ".join(result.stderr.split())
    assert message.startswith(f"Error: the store {db} is locked: another process held its write lock")
    assert "`clisight serve`" in message and "run this command again" in message
    assert f"`fuser {db}`" in message and "Traceback" not in message
    assert waited < 30  # it waited for the lock (briefly here), then said so
    # Once the lock is gone the same command works.
    assert invoke(*words, "--store", str(db)).exit_code == 0


def test_the_wait_the_message_names_is_the_stores() -> None:
    assert LOCK_WAIT_S * 1000 == _sqlite_schema.BUSY_TIMEOUT_MS
