"""Opening a SQLite store's connection: its pragmas, applying the numbered migrations, and the
read-only open that readers use."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final, TypeVar

from clisight.exceptions import SchemaError, StoreError
from clisight.store.schema import LATEST_VERSION, MIGRATIONS, PYTHON_STEPS, VERSION_TABLE
from clisight.types import Deadline

T = TypeVar("T")

BUSY_TIMEOUT_MS: Final = 10_000


def apply_pragmas(conn: sqlite3.Connection) -> None:
    """Every pragma clisight relies on, in one place."""
    # Wait for another process's write lock instead of failing at once with "database is locked".
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    # Lets size-based retention hand pages back to the OS; only takes effect before the first table.
    # Set only when not set: setting it waits for the write lock, which other writers may hold.
    if conn.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    # WAL: readers never block the writer and the writer never blocks readers, across processes.
    retry_busy(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchall())
    # Under WAL, NORMAL cannot corrupt the file; a power cut loses at most the last transactions.
    conn.execute("PRAGMA synchronous = NORMAL")
    # errors must point at a real error group, records at a real resource.
    conn.execute("PRAGMA foreign_keys = ON")


def retry_busy(action: Callable[[], T], deadline: Deadline | None = None) -> T:
    """``action`` again while SQLite says the database is locked, for ``BUSY_TIMEOUT_MS`` at most, or
    until ``deadline`` when that comes first (read at every try: it may be brought forward meanwhile).

    Switching a brand-new file to WAL can report "locked" without consulting the busy handler, and
    a writer with a deadline waits in short polls of its own (see ``sqlite._begin_immediate``).
    """
    give_up = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            return action()
        except sqlite3.OperationalError as exc:
            now = time.monotonic()
            if "locked" not in str(exc) or now > give_up or (deadline is not None and now >= deadline.at):
                raise
            time.sleep(0.01)


def read_schema_version(conn: sqlite3.Connection) -> int:
    """The highest migration applied to the database behind ``conn`` (0 for a new database)."""
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'")
    if exists.fetchone() is None:
        return 0
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def refuse_foreign(conn: sqlite3.Connection, where: str) -> None:
    """A database with tables but no schema_version is another program's (clisight creates its
    tables and that one in one transaction): neither read as a store nor given clisight's tables."""
    if conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone() is not None:
        raise SchemaError(
            f"{where} is not a clisight store (it has tables but no schema_version table); "
            "pass the store a program using clisight writes (see `clisight doctor`)"
        )


def migrate_connection(
    conn: sqlite3.Connection,
    target: int = LATEST_VERSION,
    where: str = "",
    begin: Callable[[], object] | None = None,
) -> int:
    """Apply migrations up to ``target`` (each once, in one transaction); return the version reached.

    Safe to run from several processes at once: the version is re-read inside the write lock.
    ``conn`` must be in autocommit mode (``isolation_level=None``).  ``begin`` takes the write lock
    (by default ``BEGIN IMMEDIATE`` with the connection's busy timeout).
    """
    current = read_schema_version(conn)
    _refuse_newer(current, where)
    if current >= target:
        return current
    if current == 0:
        refuse_foreign(conn, where)
    if begin is None:
        conn.execute("BEGIN IMMEDIATE")
    else:
        begin()
    try:
        conn.execute(VERSION_TABLE)
        current = read_schema_version(conn)
        for version in range(current + 1, target + 1):
            description, statements = MIGRATIONS[version - 1]
            for statement in statements:
                conn.execute(statement)
            if version in PYTHON_STEPS:
                from clisight.store.sqlite import run_python_step  # the data step uses the insert path

                run_python_step(conn, version)
            conn.execute(
                "INSERT INTO schema_version (version, applied_ns, description) VALUES (?, ?, ?)",
                (version, time.time_ns(), description),
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return max(current, target)


def _refuse_newer(version: int, where: str) -> None:
    if version > LATEST_VERSION:
        raise SchemaError(
            f"the store {where or 'database'} has schema version {version}, newer than this clisight "
            f"understands (up to {LATEST_VERSION}); upgrade clisight (pip install -U clisight) "
            "or use another store"
        )


def connect_read_only(path: Path, where: str) -> sqlite3.Connection:
    """A connection that can only read the store file at ``path``: it never creates the file,
    migrates, sets a persistent pragma, or needs write access to the file or its directory.

    Tries SQLite's ``mode=ro`` first (sees the latest commits, including those still in the
    write-ahead log); when that cannot work because the shared-memory file (``-shm``) cannot be
    created, falls back to ``immutable=1`` provided no write-ahead log holds changes it would miss.
    Raises StoreError (SchemaError for a file that is newer or not a clisight store).
    """
    if not path.exists():
        raise StoreError(f"no store at {path}: nothing has been recorded there yet")
    if not path.is_file():
        raise StoreError(f"the store {path} is not a file")
    uri = path.as_uri()
    try:
        return _open_prepared(f"{uri}?mode=ro", where)
    except sqlite3.OperationalError as exc:
        # A WAL store needs its -shm file; SQLite cannot create one in a directory we cannot write.
        if "readonly" not in str(exc) and "unable to open" not in str(exc):
            raise StoreError(f"cannot read the store {where}: {exc}") from exc
        first = exc
    wal = Path(f"{path}-wal")
    if wal.exists() and wal.stat().st_size > 0:
        raise StoreError(
            f"cannot read the store {where} read-only: its write-ahead log {wal} holds changes that "
            f"SQLite can only read after creating {path}-shm, and {path.parent} is not writable "
            f"({first}); run a program using clisight on it once, or copy the store files somewhere writable"
        )
    try:
        return _open_prepared(f"{uri}?mode=ro&immutable=1", where)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read the store {where}: {exc}") from exc


def _open_prepared(uri: str, where: str) -> sqlite3.Connection:
    conn = sqlite3.connect(
        uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
    )
    try:
        # Per connection, nothing written to the file: wait for a writer's lock instead of failing.
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        shadow_missing_tables(conn, where)
        # Even a bug of ours cannot write through this connection now.
        conn.execute("PRAGMA query_only = ON")
    except sqlite3.DatabaseError as exc:
        conn.close()
        if isinstance(exc, sqlite3.OperationalError):
            raise
        raise StoreError(f"cannot read the store {where}: {exc} (is it a clisight SQLite file?)") from exc
    except BaseException:
        conn.close()
        raise
    return conn


def shadow_missing_tables(conn: sqlite3.Connection, where: str) -> int:
    """Let a read-only connection read a store an older clisight wrote, without upgrading it.

    The tables later migrations add are created empty as TEMP tables (private to this
    connection), so reads of them find nothing.  Returns the file's schema version.  Raises
    SchemaError for a newer schema, a database that is not a clisight store, or an older schema
    whose upgrade changes existing tables (then only a writer can upgrade it).
    """
    version = read_schema_version(conn)
    _refuse_newer(version, where)
    if version == LATEST_VERSION:
        return version
    if version == 0:
        refuse_foreign(conn, where)
    if version == 0:
        # An empty file: read it as an empty store of the latest layout.
        for sql in latest_tables():
            conn.execute("CREATE TEMP TABLE " + sql[len("CREATE TABLE ") :])
        return version
    statements = [sql for _, group in MIGRATIONS[version:] for sql in group]
    creates = [sql for sql in statements if sql.startswith("CREATE TABLE ")]
    if any(not sql.startswith(("CREATE TABLE ", "CREATE INDEX ")) for sql in statements):
        raise SchemaError(
            f"the store {where} has schema version {version}, older than this clisight "
            f"(version {LATEST_VERSION}), and must be upgraded before it can be read: open it once "
            "with write access from a program using clisight, or run "
            "`clisight vacuum --max-age-days 0 --max-mb 0 --store ...`"
        )
    for sql in creates:
        conn.execute("CREATE TEMP TABLE " + sql[len("CREATE TABLE ") :])
    return version


def latest_tables() -> list[str]:
    """The CREATE TABLE statements of the latest schema (read off a migrated in-memory database)."""
    scratch = sqlite3.connect(":memory:", isolation_level=None)
    try:
        migrate_connection(scratch)
        rows = scratch.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        ).fetchall()
    finally:
        scratch.close()
    return [str(sql) for (sql,) in rows]
