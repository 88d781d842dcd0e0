"""Opening a SQLite store's connection: its pragmas, and applying the numbered migrations."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import Final, TypeVar

from clisight.exceptions import SchemaError
from clisight.store.schema import LATEST_VERSION, MIGRATIONS, VERSION_TABLE

T = TypeVar("T")

BUSY_TIMEOUT_MS: Final = 10_000


def apply_pragmas(conn: sqlite3.Connection) -> None:
    """Every pragma clisight relies on, in one place."""
    # Wait for another process's write lock instead of failing at once with "database is locked".
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    # Lets size-based retention hand pages back to the OS; only takes effect before the first table.
    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    # WAL: readers never block the writer and the writer never blocks readers, across processes.
    retry_busy(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchall())
    # Under WAL, NORMAL cannot corrupt the file; a power cut loses at most the last transactions.
    conn.execute("PRAGMA synchronous = NORMAL")
    # errors must point at a real error group, records at a real resource.
    conn.execute("PRAGMA foreign_keys = ON")


def retry_busy(action: Callable[[], T]) -> T:
    # Switching a brand-new file to WAL can report "locked" without consulting the busy handler.
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            return action()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def read_schema_version(conn: sqlite3.Connection) -> int:
    """The highest migration applied to the database behind ``conn`` (0 for a new database)."""
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'")
    if exists.fetchone() is None:
        return 0
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def migrate_connection(conn: sqlite3.Connection, target: int = LATEST_VERSION, where: str = "") -> int:
    """Apply migrations up to ``target`` (each once, in one transaction); return the version reached.

    Safe to run from several processes at once: the version is re-read inside the write lock.
    ``conn`` must be in autocommit mode (``isolation_level=None``).
    """
    current = read_schema_version(conn)
    if current > LATEST_VERSION:
        raise SchemaError(
            f"the store {where or 'database'} has schema version {current}, newer than this clisight "
            f"understands (up to {LATEST_VERSION}); upgrade clisight (pip install -U clisight) "
            "or use another store"
        )
    if current >= target:
        return current
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(VERSION_TABLE)
        current = read_schema_version(conn)
        for version in range(current + 1, target + 1):
            description, statements = MIGRATIONS[version - 1]
            for statement in statements:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version (version, applied_ns, description) VALUES (?, ?, ?)",
                (version, time.time_ns(), description),
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return max(current, target)
