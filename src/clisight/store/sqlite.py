"""The SQLite store: the default backend, one file shared by every process of every CLI on a machine.

Many processes may write the same file at once: each batch is one ``BEGIN IMMEDIATE`` transaction and
a busy writer waits (``busy_timeout``) instead of failing.  One connection per store object, usable
from any thread (a lock serializes it).  ``:memory:`` gives a private in-memory store with the same
schema.
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

from clisight._fork import STORES, register_fork_steps
from clisight.exceptions import SchemaError, StoreError
from clisight.store import _records
from clisight.store._sqlite_insert import insert_records
from clisight.store._sqlite_schema import (
    BUSY_TIMEOUT_MS,
    apply_pragmas,
    connect_read_only,
    migrate_connection,
    read_schema_version,
    retry_busy,
)
from clisight.store.base import (
    EXPORT_KINDS,
    RECORD_TABLES,
    Count,
    ErrorGroupCount,
    ErrorLogCount,
    LogLine,
    ModelUsage,
    RetentionResult,
    Selection,
    SessionTotals,
    StoreInfo,
)
from clisight.types import ERROR_LEVEL, PERFORMANCE, WARNING, Deadline, Record, Resource

T = TypeVar("T")

# Connections inherited across fork are parked here, never closed: closing one in the child could
# release the parent's locks, and garbage collection would close it if nothing referenced it.
_ABANDONED: list[sqlite3.Connection] = []

# Every live store, so a fork in any code path (not only the pipeline's) is made safe for them.
_LIVE_STORES: weakref.WeakSet[SqliteStore] = weakref.WeakSet()

_PAGE_ROWS: Final = 1_000  # rows per read chunk when streaming
_DELETE_CHUNK: Final = 5_000  # rows per retention transaction, so writers never wait long

# Per table: (time column, name column, text column) for building WHERE clauses; None = not filterable.
_COLUMNS: Final[dict[str, tuple[str, str | None, str | None]]] = {
    "logs": ("time_ns", None, "message"),
    "events": ("time_ns", "name", None),
    "spans": ("start_ns", "name", None),
    "metric_points": ("time_ns", "name", None),
    "errors": ("time_ns", "type", "message"),
    "sessions": ("start_ns", None, None),
}
_JSON_COLUMNS: Final = frozenset({"attributes", "events", "histogram"})


class SqliteStore:
    """A :class:`~clisight.store.base.Store` in one SQLite file (or ``:memory:``).

    ``read_only=True`` opens the file for reading only: it is never created, migrated or written,
    and neither it nor its directory needs to be writable.  A store an older clisight wrote reads
    as if upgraded (tables it lacks read as empty); a missing file raises StoreError ("no store
    at ...") on first use; writes raise StoreError.  An in-memory store is private to its owner,
    so it is always writable and ignores ``read_only``.
    """

    def __init__(self, path: str | Path, url: str | None = None, *, read_only: bool = False) -> None:
        self._memory = str(path) == ":memory:"
        self.read_only: bool = read_only and not self._memory
        self.path: Path | None = None if self._memory else Path(path).expanduser().resolve()
        self.url: str = url or ("memory://" if self.path is None else f"sqlite:///{self.path}")
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._resources: dict[Resource, int] = {}
        self._closed = False
        self._pid = os.getpid()
        _LIVE_STORES.add(self)

    def __repr__(self) -> str:
        return f"SqliteStore({self.url!r})"

    # -- connection ---------------------------------------------------------------------------
    def _locked(self) -> threading.RLock:
        """The connection lock, after letting a pending fork take it first."""
        if _FORK_PENDING.is_set():
            # A thread releasing and retaking the lock in a loop would starve the forking thread.
            deadline = time.monotonic() + 1.0
            while _FORK_PENDING.is_set() and time.monotonic() < deadline:
                time.sleep(0.0005)
        return self._lock

    def _connection(self, deadline: Deadline | None = None) -> sqlite3.Connection:
        # Caller holds self._lock.  A writer's deadline bounds the wait for a first migration too.
        if self._conn is not None:
            return self._conn
        if self._closed and self._memory:
            raise StoreError(f"the store {self.url} is closed; an in-memory store cannot be reopened")
        if self.read_only and self.path is not None:
            self._conn = connect_read_only(self.path, self.url)
            self._closed = False
            return self._conn
        target = ":memory:" if self.path is None else str(self.path)
        try:
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                target, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the store {self.url}: {exc}") from exc
        try:
            apply_pragmas(conn)
            migrate_connection(conn, where=self.url, begin=lambda: _begin_immediate(conn, deadline))
        except SchemaError:
            conn.close()
            raise
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"cannot open the store {self.url}: {exc}") from exc
        self._conn = conn
        self._closed = False
        return conn

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._locked():
            try:
                return self._connection().execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read the store {self.url}: {exc}") from exc

    def _write(self, action: Callable[[sqlite3.Connection], T], deadline: Deadline | None = None) -> T:
        """Run ``action`` in one ``BEGIN IMMEDIATE`` transaction; roll back and raise on failure."""
        with self._locked():
            conn = self._connection(deadline)
            try:
                _begin_immediate(conn, deadline)
                if deadline is not None:
                    # A long insert stops when the deadline passes (the process is exiting), so its
                    # records can still be spooled instead of dying with the process mid-transaction.
                    conn.set_progress_handler(deadline.expired, _PROGRESS_STEPS)
                try:
                    result = action(conn)
                    if deadline is not None and deadline.at != math.inf:
                        if deadline.expired():
                            raise sqlite3.OperationalError("the deadline passed before the commit")
                        # At exit, a commit must not also copy the WAL back into the file (the next
                        # writer's commit will): that copy and its fsync can outlast the deadline.
                        conn.execute("PRAGMA wal_autocheckpoint = 0")
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                finally:
                    if deadline is not None:
                        conn.set_progress_handler(None, 0)
            except sqlite3.Error as exc:
                raise StoreError(f"cannot write to the store {self.url}: {exc}") from exc
            return result

    def _execute_write(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement in its own write transaction; return the rows it changed."""
        return self._write(lambda conn: conn.execute(sql, params).rowcount)

    def migrate(self) -> int:
        """Bring the schema to the latest version; return it.  Raises SchemaError if the file is newer."""
        with self._locked():
            return migrate_connection(self._connection(), where=self.url)

    def schema_version(self) -> int:
        with self._locked():
            return read_schema_version(self._connection())

    def close(self) -> None:
        """Close the connection.  A file store reopens on next use; an in-memory store's data is gone."""
        with self._locked():
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            self._closed = True

    def after_fork(self) -> None:
        """In a forked child: abandon the inherited connection (never closed) and reopen lazily.

        Runs once per child (further calls in the same process do nothing), automatically at fork.
        """
        if self._pid == os.getpid():
            return  # already done for this process; a second reset could pull the connection from a writer
        self._pid = os.getpid()
        # The parent's lock may have been held by a thread that does not exist in the child.
        self._lock = threading.RLock()
        self._resources.clear()
        if self._memory:
            return  # the child owns a private copy of the in-memory database; keep using it
        if self._conn is not None:
            _ABANDONED.append(self._conn)
            self._conn = None

    # -- writes -------------------------------------------------------------------------------
    def write_batch(
        self,
        records: Sequence[Record],
        *,
        deadline: Deadline | None = None,
        once_key: str | None = None,
        exit_key: str = "",
    ) -> bool:
        """Store every record of the batch in one transaction, or none of them (and raise StoreError).

        Records of an unknown kind are skipped.  ``deadline`` bounds the wait for a store locked by
        other writers, even when it is brought forward while the wait is under way.  With
        ``once_key``, the key is remembered in the same transaction and a batch whose key was seen
        before is not stored again (False is returned): this is how spooled records are imported
        exactly once.  ``exit_key`` acts as ``once_key`` only while the deadline is finite (the
        process is exiting), when a copy of the batch may be spooled: no marker is kept otherwise.
        """
        if not records:
            return True
        new_resources: dict[Resource, int] = {}

        def insert(conn: sqlite3.Connection) -> bool:
            key = once_key
            if key is None and exit_key and deadline is not None and deadline.at != math.inf:
                key = exit_key
            if key is not None:
                # The key's value is the batch's size, so doctor can say how many records came in.
                seen = conn.execute(
                    "INSERT INTO kv_state (key, value, updated_ns) VALUES (?, ?, ?)"
                    " ON CONFLICT (key) DO NOTHING",
                    (key, str(len(records)), time.time_ns()),
                ).rowcount
                if not seen:
                    return False
            insert_records(conn, records, lambda res: self._resource_id(conn, res, new_resources))
            return True

        stored = self._write(insert, deadline)
        # Only after COMMIT: ids from a rolled-back transaction don't exist.
        with self._locked():
            self._resources.update(new_resources)
        return stored

    def _resource_id(self, conn: sqlite3.Connection, res: Resource, new: dict[Resource, int]) -> int:
        known = self._resources.get(res)
        if known is None:
            known = new.get(res)
        if known is None:
            key = (res.service, res.version, res.host, res.pid, res.sdk)
            conn.execute(
                "INSERT INTO resources (service, version, host, pid, sdk) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                key,
            )
            row = conn.execute(
                "SELECT id FROM resources"
                " WHERE service = ? AND version = ? AND host = ? AND pid = ? AND sdk = ?",
                key,
            ).fetchone()
            known = new[res] = int(row[0])
        return known

    # -- state --------------------------------------------------------------------------------
    def save_state(self, key: str, value: Any) -> None:
        self._execute_write(
            "INSERT INTO kv_state (key, value, updated_ns) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET"
            " value = excluded.value, updated_ns = excluded.updated_ns",
            (key, _records.to_json(value), time.time_ns()),
        )

    def load_state(self, key: str) -> Any | None:
        rows = self._read("SELECT value FROM kv_state WHERE key = ?", (key,))
        return _records.from_json(rows[0][0]) if rows else None

    def state_items(self, prefix: str, since_ns: int = 0) -> list[tuple[str, Any]]:
        # Escape LIKE's wildcards: the prefix is a literal.
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = self._read(
            "SELECT key, value FROM kv_state WHERE key LIKE ? ESCAPE '\\' AND updated_ns >= ? ORDER BY key",
            (pattern, since_ns),
        )
        return [(key, _records.from_json(value)) for key, value in rows]

    # -- reads --------------------------------------------------------------------------------
    def logs(
        self, sel: Selection, *, after_id: int | None = None, newest_first: bool = False, limit: int = 100
    ) -> list[LogLine]:
        where, params = _where("logs", sel)
        if after_id is not None:
            where += " AND t.id > ?"
            params.append(after_id)
        order = "t.time_ns DESC, t.id DESC" if newest_first else "t.id"
        rows = self._read(
            "SELECT t.id, t.time_ns, t.severity, t.severity_text, t.component, t.message, t.attributes,"
            " r.service, t.session_id, t.trace_id, t.span_id"
            " FROM logs t JOIN resources r ON r.id = t.resource_id"
            f" WHERE {where} ORDER BY {order} LIMIT ?",
            [*params, limit],
        )
        return [
            LogLine(row[0], row[1], row[2], row[3], row[4], row[5], _records.from_json(row[6]), *row[7:])
            for row in rows
        ]

    def count_logs(self, sel: Selection, by: str) -> list[Count]:
        column = {"severity": "t.severity", "component": "t.component"}.get(by)
        if column is None:
            raise ValueError(f"count_logs by {by!r}: expected 'severity' or 'component'")
        where, params = _where("logs", sel)
        rows = self._read(
            f"SELECT {column}, COUNT(*) FROM logs t JOIN resources r ON r.id = t.resource_id WHERE {where}"
            f" GROUP BY {column} ORDER BY COUNT(*) DESC, {column}",
            params,
        )
        return [Count(str(key), count) for key, count in rows]

    def error_groups(self, sel: Selection, limit: int) -> list[ErrorGroupCount]:
        where, params = _where("errors", sel)
        rows = self._read(
            "SELECT g.fingerprint, g.type, g.title, g.status, COUNT(*), g.count,"
            " g.first_seen_ns, g.last_seen_ns"
            " FROM errors t JOIN resources r ON r.id = t.resource_id JOIN error_groups g ON g.id = t.group_id"
            f" WHERE {where} GROUP BY g.id ORDER BY COUNT(*) DESC, g.last_seen_ns DESC LIMIT ?",
            [*params, limit],
        )
        return [ErrorGroupCount(*row) for row in rows]

    def error_logs(self, sel: Selection, limit: int) -> list[ErrorLogCount]:
        where, params = _where("logs", sel)
        rows = self._read(
            "SELECT t.component, t.message, MAX(t.severity), COUNT(*), MIN(t.time_ns), MAX(t.time_ns)"
            f" FROM logs t JOIN resources r ON r.id = t.resource_id WHERE {where} AND t.severity >= ?"
            " GROUP BY t.component, t.message ORDER BY COUNT(*) DESC, MAX(t.time_ns) DESC LIMIT ?",
            [*params, ERROR_LEVEL, limit],
        )
        return [ErrorLogCount(*row) for row in rows]

    def operation_durations(self, sel: Selection) -> Iterator[tuple[str, float]]:
        where, params = _where("logs", sel)
        sql = (
            "SELECT t.id, COALESCE(json_extract(t.attributes, '$.operation'), t.message),"
            " json_extract(t.attributes, '$.duration')"
            f" FROM logs t JOIN resources r ON r.id = t.resource_id WHERE {where}"
            " AND t.severity >= ? AND t.severity < ?"
            " AND json_type(t.attributes, '$.duration') IN ('integer', 'real')"
            " AND t.id > ? ORDER BY t.id LIMIT ?"
        )
        for row in self._pages(sql, [*params, PERFORMANCE, WARNING]):
            yield str(row[1]), float(row[2])

    def count_events(self, sel: Selection) -> list[Count]:
        where, params = _where("events", sel)
        rows = self._read(
            f"SELECT t.name, COUNT(*) FROM events t JOIN resources r ON r.id = t.resource_id WHERE {where}"
            " GROUP BY t.name ORDER BY COUNT(*) DESC, t.name",
            params,
        )
        return [Count(name, count) for name, count in rows]

    def session_totals(self, sel: Selection) -> SessionTotals:
        where, params = _where("sessions", sel)
        row = self._read(
            "SELECT COUNT(*), COUNT(DISTINCT t.user_id),"
            " COALESCE(SUM(t.exit_code IS NOT NULL AND t.exit_code != 0), 0)"
            f" FROM sessions t WHERE {where}",
            params,
        )[0]
        return SessionTotals(*row)

    def llm_usage(self, sel: Selection) -> list[ModelUsage]:
        where, params = _where("events", Selection(**{**_as_dict(sel), "name": "llm.request"}))

        def total(key: str, cast: str) -> str:
            return f"CAST(TOTAL(json_extract(t.attributes, '$.{key}')) AS {cast})"

        rows = self._read(
            "SELECT COALESCE(json_extract(t.attributes, '$.model'), 'unknown') AS model, COUNT(*),"
            f" {total('input_tokens', 'INTEGER')}, {total('output_tokens', 'INTEGER')},"
            f" {total('cache_read_tokens', 'INTEGER')}, {total('cost_usd', 'REAL')},"
            f" {total('duration', 'REAL')}"
            f" FROM events t JOIN resources r ON r.id = t.resource_id WHERE {where}"
            " GROUP BY model ORDER BY 6 DESC, 2 DESC, model",
            params,
        )
        return [ModelUsage(str(row[0]), *row[1:]) for row in rows]

    def iter_rows(self, kind: str, sel: Selection) -> Iterator[dict[str, Any]]:
        table = EXPORT_KINDS.get(kind)
        if table is None:
            raise ValueError(f"unknown record kind {kind!r}: expected one of {', '.join(EXPORT_KINDS)}")
        where, params = _where(table, sel)
        service = "t.service" if table == "sessions" else "r.service"
        sql = (
            f"SELECT t.rowid, t.*, {service} AS service_name FROM {table} t"
            f" LEFT JOIN resources r ON r.id = t.resource_id"
            f" WHERE {where} AND t.rowid > ? ORDER BY t.rowid LIMIT ?"
        )
        names: list[str] = []
        for row in self._pages(sql, params, names):
            item: dict[str, Any] = {"kind": kind}
            for name, value in zip(names[1:], row[1:], strict=True):
                if name == "service_name":
                    item["service"] = value
                elif name == "kind":
                    item["span_kind"] = value  # "kind" already says which record this is
                elif name != "service":
                    item[name] = _records.from_json(value) if name in _JSON_COLUMNS else value
            yield item

    def _pages(self, sql: str, params: list[Any], names: list[str] | None = None) -> Iterator[Any]:
        """Rows of ``sql`` (first column an increasing id; ends with ``id > ? ... LIMIT ?``) in chunks.

        The lock is held per chunk only, so a slow consumer never blocks writers in this process.
        """
        last = -1
        while True:
            with self._locked():
                try:
                    cursor = self._connection().execute(sql, [*params, last, _PAGE_ROWS])
                    rows = cursor.fetchall()
                except sqlite3.Error as exc:
                    raise StoreError(f"cannot read the store {self.url}: {exc}") from exc
                if names is not None and not names:
                    names.extend(d[0] for d in cursor.description)
            yield from rows
            if len(rows) < _PAGE_ROWS:
                return
            last = rows[-1][0]

    def info(self) -> StoreInfo:
        counts = {}
        for table in (*RECORD_TABLES, "error_groups", "resources"):
            counts[table] = int(self._read(f"SELECT COUNT(*) FROM {table}")[0][0])
        bounds = self._read(
            " UNION ALL ".join(
                f"SELECT MIN({col}), MAX({col}) FROM {table}"
                for table, (col, _, _) in _COLUMNS.items()
                if table != "sessions"
            )
        )
        lows = [low for low, _ in bounds if low is not None]
        highs = [high for _, high in bounds if high is not None]
        file_bytes, wal_bytes = self._file_sizes()
        return StoreInfo(
            self.url,
            None if self.path is None else str(self.path),
            file_bytes,
            wal_bytes,
            self.schema_version(),
            counts,
            min(lows, default=None),
            max(highs, default=None),
        )

    # -- retention ----------------------------------------------------------------------------
    def _file_sizes(self) -> tuple[int, int]:
        if self.path is None:
            return 0, 0
        sizes = []
        for path in (self.path, Path(f"{self.path}-wal")):
            try:
                sizes.append(os.path.getsize(path))
            except OSError:
                sizes.append(0)
        return sizes[0], sizes[1]

    def _size(self) -> int:
        if self.path is None:
            count, size = self._read("PRAGMA page_count")[0][0], self._read("PRAGMA page_size")[0][0]
            return int(count) * int(size)
        return sum(self._file_sizes())

    def _used_bytes(self) -> int:
        # Pages holding data; freed pages only leave the file at the vacuum step.
        pages = self._read("PRAGMA page_count")[0][0] - self._read("PRAGMA freelist_count")[0][0]
        return int(pages) * int(self._read("PRAGMA page_size")[0][0])

    def _delete_in_chunks(self, table: str, condition: str, params: Sequence[Any]) -> int:
        total = 0
        while True:
            sql = (
                f"DELETE FROM {table} WHERE rowid IN"
                f" (SELECT rowid FROM {table} WHERE {condition} LIMIT {_DELETE_CHUNK})"
            )
            deleted = self._execute_write(sql, params)
            total += deleted
            if deleted < _DELETE_CHUNK:
                return total

    def apply_retention(self, max_age_days: float, max_bytes: int) -> RetentionResult:
        """Delete records older than ``max_age_days``, then the oldest logs, events, spans and metric
        points until the store fits in ``max_bytes``; give the space back.  0 means no limit."""
        deleted = dict.fromkeys((*RECORD_TABLES, "error_groups"), 0)
        self._checkpoint()
        before = self._size()
        if max_age_days > 0:
            cutoff = time.time_ns() - int(max_age_days * 86_400 * 1e9)
            for table, (col, _, _) in _COLUMNS.items():
                if table == "sessions":
                    col = "COALESCE(end_ns, start_ns)"
                deleted[table] += self._delete_in_chunks(table, f"{col} < ?", (cutoff,))
            self._execute_write("DELETE FROM rollups_minute WHERE minute_ns < ?", (cutoff,))
            # Markers of imported spool batches: one per exiting process that spooled; past the
            # cutoff their records are gone too.
            self._execute_write(
                "DELETE FROM kv_state WHERE (key LIKE 'spool:%' OR key LIKE 'exit:%') AND updated_ns < ?",
                (cutoff,),
            )
        if max_age_days > 0 or max_bytes > 0:
            deleted["error_groups"] += self._delete_in_chunks(
                "error_groups", "NOT EXISTS (SELECT 1 FROM errors e WHERE e.group_id = error_groups.id)", ()
            )
        if max_bytes > 0:
            self._shrink_to(max_bytes, deleted)
        self._release_space()
        return RetentionResult(deleted, before, self._size())

    def _shrink_to(self, max_bytes: int, deleted: dict[str, int]) -> None:
        tables = ("logs", "events", "spans", "metric_points")
        while self._used_bytes() > max_bytes:
            # Delete from whichever table holds the oldest record, about 5% of it at a time.
            oldest: tuple[int, str] | None = None
            for table in tables:
                col = _COLUMNS[table][0]
                low = self._read(f"SELECT MIN({col}) FROM {table}")[0][0]
                if low is not None and (oldest is None or low < oldest[0]):
                    oldest = (low, table)
            if oldest is None:
                return
            table = oldest[1]
            col = _COLUMNS[table][0]
            span = self._read(f"SELECT MAX(id) - MIN(id) FROM {table}")[0][0] or 0
            chunk = max(500, int(span) // 20)
            sql = f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} ORDER BY {col}, id LIMIT {chunk})"
            deleted[table] += self._execute_write(sql)

    def _checkpoint(self) -> None:
        if self.path is not None:
            # TRUNCATE empties the WAL file so its size stops counting; it gives up quietly under readers.
            self._read("PRAGMA wal_checkpoint(TRUNCATE)")

    def _release_space(self) -> None:
        if self._read("PRAGMA auto_vacuum")[0][0] == 2:
            with self._locked():
                # executescript steps the pragma to the end; execute() would free a single page.
                self._connection().executescript("PRAGMA incremental_vacuum;")
        elif self._read("PRAGMA freelist_count")[0][0] > 0:
            # Files made without incremental auto-vacuum can only shrink by a full rewrite.
            self._read("VACUUM")
        self._checkpoint()


def _as_dict(sel: Selection) -> dict[str, Any]:
    return {name: getattr(sel, name) for name in Selection.__slots__}


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _where(table: str, sel: Selection) -> tuple[str, list[Any]]:
    """A WHERE clause over alias ``t`` (and ``r`` for resources) for ``sel`` on ``table``."""
    time_col, name_col, text_col = _COLUMNS[table]
    clauses = ["1 = 1"]
    params: list[Any] = []
    if sel.since_ns is not None:
        clauses.append(f"t.{time_col} >= ?")
        params.append(sel.since_ns)
    if sel.until_ns is not None:
        clauses.append(f"t.{time_col} <= ?")
        params.append(sel.until_ns)
    if sel.service is not None:
        clauses.append("t.service = ?" if table == "sessions" else "r.service = ?")
        params.append(sel.service)
    if sel.session_id is not None:
        clauses.append("t.id = ?" if table == "sessions" else "t.session_id = ?")
        params.append(sel.session_id)
    if table == "logs":
        if sel.min_severity is not None:
            clauses.append("t.severity >= ?")
            params.append(sel.min_severity)
        if sel.component is not None:
            clauses.append("t.component = ?")
            params.append(sel.component)
    if name_col is not None and sel.name is not None:
        clauses.append(f"t.{name_col} = ?")
        params.append(sel.name)
    if text_col is not None and sel.text:
        clauses.append(f"t.{text_col} LIKE ? ESCAPE '\\'")
        params.append(_like_pattern(sel.text))
    return " AND ".join(clauses), params


_HELD_FOR_FORK: list[SqliteStore] = []


_FORK_PENDING = threading.Event()


def _hold_stores_before_fork() -> None:
    # No thread may be inside SQLite at fork: its mutexes would stay locked forever in the child.
    # With the lock held, close the connection too: then the child inherits no SQLite state at all
    # (per-process lock tables, the WAL index mapping), which SQLite forbids carrying across fork.
    # The parent reopens lazily on its next call.
    _FORK_PENDING.set()
    for store in list(_LIVE_STORES):
        if store._lock.acquire(timeout=BUSY_TIMEOUT_MS / 1000 + 5):
            _HELD_FOR_FORK.append(store)
            if store._conn is not None and not store._memory:
                with contextlib.suppress(sqlite3.Error):
                    store._conn.close()
                store._conn = None


def _release_stores_in_parent() -> None:
    while _HELD_FOR_FORK:
        _HELD_FOR_FORK.pop()._lock.release()
    _FORK_PENDING.clear()


def _reset_stores_in_child() -> None:
    _HELD_FOR_FORK.clear()  # after_fork gives each store a fresh lock
    _FORK_PENDING.clear()
    for store in list(_LIVE_STORES):
        store.after_fork()


_POLL_MS: Final = 20
_PROGRESS_STEPS: Final = 50_000  # SQLite VM steps between deadline checks: well under a millisecond


def _begin_immediate(conn: sqlite3.Connection, deadline: Deadline | None) -> None:
    """Take the write lock, waiting for other writers at most ``BUSY_TIMEOUT_MS`` or until ``deadline``.

    With a deadline, SQLite's own wait is cut into short polls, so a deadline brought forward
    during the wait (the process started to exit) is seen within one poll.
    """
    if deadline is None:
        conn.execute("BEGIN IMMEDIATE")  # SQLite's busy handler waits up to BUSY_TIMEOUT_MS
        return
    conn.execute(f"PRAGMA busy_timeout = {_POLL_MS}")
    try:
        retry_busy(lambda: conn.execute("BEGIN IMMEDIATE"), deadline)
    finally:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")


register_fork_steps(
    STORES,
    before=_hold_stores_before_fork,
    after_in_parent=_release_stores_in_parent,
    after_in_child=_reset_stores_in_child,
)
