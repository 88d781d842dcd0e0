"""The SQLite store: the default backend, one file shared by every process of every CLI on a machine.

Many processes may write the same file at once: each batch is one ``BEGIN IMMEDIATE`` transaction and
a busy writer waits (``busy_timeout``) instead of failing.  Writes go through one connection per
store object (a lock serialises it); reads go through a small pool of their own connections, so
under WAL readers never wait for the writer or for each other.  ``:memory:`` gives a private
in-memory store with the same schema (one connection for everything).
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

from clisight.exceptions import DataError, SchemaError, StoreError
from clisight.store import _sql
from clisight.store._forkhold import ForkHold
from clisight.store._model import SERIES_CODE, batch_key, from_json, map_batch, to_json
from clisight.store._sqlite_insert import Interner, insert_batch, register_functions
from clisight.store._sqlite_schema import (
    BUSY_TIMEOUT_MS,
    apply_pragmas,
    connect_read_only,
    migrate_connection,
    read_schema_version,
    refuse_foreign,
    retry_busy,
)
from clisight.store._sqlreads import SqlReads
from clisight.store.base import (
    HISTORY_STATE_PREFIXES,
    RESOLUTIONS,
    RetentionPolicy,
    RetentionResult,
    StoreInfo,
)
from clisight.types import Deadline, Record

T = TypeVar("T")

# Connections inherited across fork are parked here, never closed: closing one in the child could
# release the parent's locks, and garbage collection would close it if nothing referenced it.
_ABANDONED: list[sqlite3.Connection] = []


_READERS: Final = 4  # pooled read connections kept per store
_DELETE_CHUNK: Final = 5_000  # rows per retention transaction, so writers never wait long
_RAW_TABLES: Final = (
    ("logs", "time_ns"),
    ("events", "time_ns"),
    ("spans", "start_ns"),
    ("metric_points", "time_ns"),
    ("errors", "time_ns"),
)


class SqliteStore(SqlReads):
    """A :class:`~clisight.store.base.Store` in one SQLite file (or ``:memory:``).

    ``read_only=True`` opens the file for reading only: it is never created, migrated or written,
    and neither it nor its directory needs to be writable.  A store an older clisight wrote reads
    as if upgraded where it can; a missing file raises StoreError ("no store at ...") on first
    use; writes raise StoreError.  An in-memory store is private to its owner, so it is always
    writable and ignores ``read_only``.
    """

    backend = "sqlite"
    dialect = _sql.SQLITE

    def __init__(self, path: str | Path, url: str | None = None, *, read_only: bool = False) -> None:
        self._memory = str(path) == ":memory:"
        self.read_only: bool = read_only and not self._memory
        self.path: Path | None = None if self._memory else Path(path).expanduser().resolve()
        self.url: str = url or ("sqlite:///:memory:" if self.path is None else f"sqlite:///{self.path}")
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._ids = Interner()
        self._closed = False
        self._migrated = False
        self._pid = os.getpid()
        # The read pool: idle connections, and how many reads are under way (a fork waits for 0).
        self._gate = threading.Condition()
        self._idle: list[sqlite3.Connection] = []
        self._active = 0
        _FORK.add(self)

    def __repr__(self) -> str:
        return f"SqliteStore({self.url!r})"

    # -- connections --------------------------------------------------------------------------
    def _locked(self) -> threading.RLock:
        """The writer's lock, after letting a pending fork take it first."""
        return _FORK.lock(self)

    def _connection(self, deadline: Deadline | None = None) -> sqlite3.Connection:
        # Caller holds self._lock.  A writer's deadline bounds the wait for a first migration too.
        if self._conn is not None:
            return self._conn
        if self._closed and self._memory:
            raise StoreError(f"the store {self.url} is closed; an in-memory store cannot be reopened")
        if self.read_only:
            raise StoreError(f"the store {self.url} was opened read-only; it cannot be written")
        assert not (self.read_only and self.path is not None)
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
            if read_schema_version(conn) == 0:
                refuse_foreign(conn, self.url)  # before a pragma makes the other program's file WAL
            apply_pragmas(conn)
            register_functions(conn)
            migrate_connection(
                conn,
                where=self.url,
                begin=lambda: _begin_immediate(conn, deadline),
            )
        except SchemaError:
            conn.close()
            raise
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"cannot open the store {self.url}: {exc}") from exc
        self._conn = conn
        self._closed = False
        self._migrated = True
        return conn

    def _reader(self) -> sqlite3.Connection:
        """A pooled read connection (caller counted in ``_active``)."""
        with self._gate:
            if self._idle:
                return self._idle.pop()
        if self.path is None:
            raise AssertionError("an in-memory store reads through its one connection")
        return connect_read_only(self.path, self.url)

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        if self._memory:
            with self._locked():
                yield self._connection()
            return
        if not self.read_only and not self._migrated:
            with self._locked():
                self._connection()  # create and migrate the file before the first read
        with self._gate:
            _FORK.wait_for_fork(self._gate)
            self._active += 1
        conn: sqlite3.Connection | None = None
        try:
            conn = self._reader()
            yield conn
        finally:
            with self._gate:
                self._active -= 1
                if conn is not None:
                    if len(self._idle) < _READERS:
                        self._idle.append(conn)
                    else:
                        conn.close()
                self._gate.notify_all()

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            with self._reading() as conn:
                return conn.execute(sql, params).fetchall()
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
                    self._ids.commit()
                except BaseException:
                    self._ids.rollback()
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
            if self.read_only:
                return self.schema_version()
            return read_schema_version(self._connection())

    def schema_version(self) -> int:
        if self.read_only:
            return int(self._read("SELECT COALESCE(MAX(version), 0) FROM schema_version")[0][0])
        with self._locked():
            return read_schema_version(self._connection())

    def close(self) -> None:
        """Close the connections.  A file store reopens on next use; an in-memory store's data is gone."""
        with self._locked():
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            self._closed = True
            with self._gate:
                idle, self._idle = self._idle, []
            for conn in idle:
                conn.close()

    def after_fork(self) -> None:
        """In a forked child: abandon the inherited connections (never closed) and reopen lazily.

        Runs once per child (further calls in the same process do nothing), automatically at fork.
        """
        if self._pid == os.getpid():
            return  # already done for this process; a second reset could pull the connection from a writer
        self._pid = os.getpid()
        # The parent's locks may have been held by a thread that does not exist in the child.
        self._lock = threading.RLock()
        self._gate = threading.Condition()
        self._active = 0
        self._ids = Interner()
        _ABANDONED.extend(self._idle)
        self._idle = []
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
        # Received spans (SpanRow) carry their attributes as JSON text already: bound as they are.
        mapped = map_batch(records, json_rows=True)

        def insert(conn: sqlite3.Connection) -> bool:
            key = batch_key(once_key, exit_key, deadline)
            if key is not None:
                # The key's value is the batch's size, so doctor can say how many records came in.
                seen = conn.execute(
                    "INSERT INTO kv_state (key, value, updated_ns) VALUES (?, ?, ?)"
                    " ON CONFLICT (key) DO NOTHING",
                    (key, str(len(records)), time.time_ns()),
                ).rowcount
                if not seen:
                    return False
            insert_batch(conn, mapped, self._ids)
            return True

        try:
            return self._write(insert, deadline)
        except OverflowError as exc:  # a number SQLite cannot hold (beyond 64 bits): the data's fault
            raise DataError(f"a record of the batch has a number beyond 64 bits: {exc}") from exc

    # -- state --------------------------------------------------------------------------------
    def save_state(self, key: str, value: Any) -> None:
        self._execute_write(
            "INSERT INTO kv_state (key, value, updated_ns) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET"
            " value = excluded.value, updated_ns = excluded.updated_ns",
            (key, to_json(value), time.time_ns()),
        )

    def claim_state(self, key: str, value: Any) -> bool:
        changed = self._execute_write(
            "INSERT INTO kv_state (key, value, updated_ns) VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING",
            (key, to_json(value), time.time_ns()),
        )
        return changed == 1

    def delete_state(self, keys: Sequence[str]) -> int:
        deleted = 0
        for start in range(0, len(keys), 500):  # under SQLite's limit of bound parameters
            chunk = list(keys[start : start + 500])
            marks = ",".join("?" * len(chunk))
            deleted += self._execute_write(f"DELETE FROM kv_state WHERE key IN ({marks})", chunk)
        return deleted

    def load_state(self, key: str) -> Any | None:
        rows = self._read("SELECT value FROM kv_state WHERE key = ?", (key,))
        return from_json(rows[0][0]) if rows else None

    def state_items(self, prefix: str, since_ns: int = 0) -> list[tuple[str, Any]]:
        # The prefix is literal and case-sensitive (LIKE would ignore ASCII case).
        rows = self._read(
            "SELECT key, value FROM kv_state WHERE substr(key, 1, ?) = ? AND updated_ns >= ? ORDER BY key",
            (len(prefix), prefix, since_ns),
        )
        return [(key, from_json(value)) for key, value in rows]

    # -- reads: rows() and aggregate() come from SqlReads ----------------------------------------
    def _sql_read(self, sql: str, params: Sequence[Any]) -> list[Any]:
        return self._read(sql, params)

    def info(self) -> StoreInfo:
        counts = {}
        for table in (
            *_sql.RECORD_TABLES,
            "error_groups",
            "resources",
            "names",
            "traces",
            "rollups",
            "rollup_keys",
        ):
            counts[table] = int(self._read(f"SELECT COUNT(*) FROM {table}")[0][0])
        bounds = self._read(
            " UNION ALL ".join(f"SELECT MIN({col}), MAX({col}) FROM {table}" for table, col in _RAW_TABLES)
        )
        lows = [low for low, _ in bounds if low is not None]
        highs = [high for _, high in bounds if high is not None]
        file_bytes, wal_bytes = self._file_sizes()
        return StoreInfo(
            self.url,
            "sqlite",
            sqlite3.sqlite_version,
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
        with self._locked():
            conn = self._connection()
            pages = (
                conn.execute("PRAGMA page_count").fetchone()[0]
                - conn.execute("PRAGMA freelist_count").fetchone()[0]
            )
            return int(pages) * int(conn.execute("PRAGMA page_size").fetchone()[0])

    def _delete_in_chunks(self, table: str, key: str, condition: str, params: Sequence[Any]) -> int:
        """Delete in transactions of ``_DELETE_CHUNK`` rows, each found through an index, so a writer
        never waits for more than one chunk."""
        total = 0
        while True:
            sql = (
                f"DELETE FROM {table} WHERE {key} IN"
                f" (SELECT {key} FROM {table} WHERE {condition} LIMIT {_DELETE_CHUNK})"
            )
            deleted = self._execute_write(sql, params)
            total += deleted
            if deleted < _DELETE_CHUNK:
                return total

    def apply_retention(self, policy: RetentionPolicy) -> RetentionResult:
        """Delete raw rows older than ``policy.raw_days``, rollups past their own ages, then the oldest
        raw rows until the store fits ``policy.max_bytes``; give the space back."""
        started = time.monotonic()
        deleted = dict.fromkeys((*_sql.RECORD_TABLES, "error_groups", "rollups"), 0)
        self._checkpoint()
        before = self._size()
        now = time.time_ns()
        if policy.raw_days > 0:
            cutoff = now - int(policy.raw_days * 86_400e9)
            for table, col in _RAW_TABLES:
                deleted[table] += self._delete_in_chunks(table, "id", f"{col} < ?", (cutoff,))
            deleted["sessions"] += self._delete_in_chunks(
                "sessions",
                "sid",
                "start_ns < ? AND COALESCE(last_ns, end_ns, start_ns) < ?",
                (cutoff, cutoff),
            )
            # History kept as state (spool and exit markers, alert transitions and claims): past the
            # cutoff the records it stood for are gone too.
            prefixes = " OR ".join("substr(key, 1, ?) = ?" for _ in HISTORY_STATE_PREFIXES)
            self._execute_write(
                f"DELETE FROM kv_state WHERE ({prefixes}) AND updated_ns < ?",
                (*(v for p in HISTORY_STATE_PREFIXES for v in (len(p), p)), cutoff),
            )
        for resolution, days in zip(
            RESOLUTIONS, (policy.minute_days, policy.hour_days, policy.day_days), strict=True
        ):
            if days > 0:
                cutoff = now - int(days * 86_400e9)
                deleted["rollups"] += self._delete_rollups(resolution, cutoff)
        if policy.raw_days > 0 or policy.max_bytes > 0:
            deleted["error_groups"] += self._delete_in_chunks(
                "error_groups",
                "id",
                "NOT EXISTS (SELECT 1 FROM errors e WHERE e.group_id = error_groups.id)",
                (),
            )
        if policy.max_bytes > 0:
            self._shrink_to(policy.max_bytes, deleted)
        self._release_space()
        return RetentionResult(deleted, before, self._size(), time.monotonic() - started)

    def _delete_rollups(self, resolution: int, cutoff: int) -> int:
        """Cells of one resolution older than ``cutoff``, series by series and a bounded stretch of
        time per transaction (one range of the primary key each), so writers never wait long."""
        total = 0
        step = resolution * 10**9 * 360  # 6 hours of minute cells, 15 days of hour cells...
        for code in SERIES_CODE.values():
            low = self._read(
                "SELECT MIN(bucket_ns) FROM rollups WHERE res = ? AND series = ?", (resolution, code)
            )[0][0]
            while low is not None and low < cutoff:
                low = min(low + step, cutoff)
                total += self._execute_write(
                    "DELETE FROM rollups WHERE res = ? AND series = ? AND bucket_ns < ?",
                    (resolution, code, low),
                )
        return total

    def _shrink_to(self, max_bytes: int, deleted: dict[str, int]) -> None:
        tables = dict(_RAW_TABLES[:4])
        while self._used_bytes() > max_bytes:
            # Delete from whichever table holds the oldest record, about 5% of it at a time.
            oldest: tuple[int, str] | None = None
            for table, col in tables.items():
                low = self._read(f"SELECT MIN({col}) FROM {table}")[0][0]
                if low is not None and (oldest is None or low < oldest[0]):
                    oldest = (low, table)
            if oldest is None:
                return
            table = oldest[1]
            col = tables[table]
            span = self._read(f"SELECT MAX(id) - MIN(id) FROM {table}")[0][0] or 0
            chunk = max(500, int(span) // 20)
            sql = f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} ORDER BY {col}, id LIMIT {chunk})"
            deleted[table] += self._execute_write(sql)

    def _checkpoint(self) -> None:
        if self.path is not None and not self.read_only:
            # TRUNCATE empties the WAL file so its size stops counting; it gives up quietly under readers.
            with self._locked():
                self._connection().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    def _release_space(self) -> None:
        with self._locked():
            conn = self._connection()
            if conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2:
                # executescript steps the pragma to the end; execute() would free a single page.
                conn.executescript("PRAGMA incremental_vacuum;")
            elif conn.execute("PRAGMA freelist_count").fetchone()[0] > 0:
                # Files made without incremental auto-vacuum can only shrink by a full rewrite.
                conn.execute("VACUUM")
        self._checkpoint()


def _copy_v4(conn: sqlite3.Connection, ids: Interner) -> None:
    """Schema 5's data step: move the rows of the renamed v4 tables through the v5 insert path (so
    names are interned and rollups filled), then drop them.  Error groups keep their status."""
    from clisight.types import Resource

    resources = {
        row[0]: Resource(row[1], row[2], row[3], row[4], row[5])
        for row in conn.execute("SELECT id, service, version, host, pid, sdk FROM resources")
    }
    fallback = Resource("unknown")
    fingerprints = dict(conn.execute("SELECT id, fingerprint FROM error_groups").fetchall())
    # Moving the occurrences counts them again: the groups' all-time counts are put back afterwards.
    totals = conn.execute("SELECT count, id FROM error_groups").fetchall()
    queries = (
        "SELECT 'session', start_ns, service, '', 0, attributes, resource_id, id, NULL, NULL, NULL, end_ns,"
        " NULL, exit_code, command, user_id FROM v4_sessions",
        "SELECT 'log', time_ns, component, message, severity, attributes, resource_id, session_id, trace_id,"
        " span_id, NULL, NULL, NULL, NULL, NULL, NULL FROM v4_logs",
        "SELECT 'event', time_ns, name, '', 0, attributes, resource_id, session_id, trace_id, span_id, NULL,"
        " NULL, NULL, NULL, NULL, NULL FROM v4_events",
        "SELECT 'span', start_ns, name, '', status, attributes, resource_id, session_id, trace_id, span_id,"
        " parent_span_id, end_ns, NULL, kind, events, NULL FROM v4_spans",
        "SELECT 'metric', time_ns, name, '', 0, attributes, resource_id, session_id, NULL, NULL, NULL, NULL,"
        " value, type, unit, temporality FROM v4_metric_points",
        "SELECT 'error', time_ns, type, message, 17, attributes, resource_id, session_id, trace_id, span_id,"
        " NULL, NULL, group_id, stack, NULL, NULL FROM v4_errors",
    )
    for sql in queries:
        cursor = conn.execute(sql)
        while True:
            chunk = cursor.fetchmany(5000)
            if not chunk:
                break
            records = [_v4_record(row, resources.get(row[6], fallback), fingerprints) for row in chunk]
            insert_batch(conn, map_batch(records), ids)
    conn.executemany("UPDATE error_groups SET count = ? WHERE id = ?", totals)
    for table in ("v4_errors", "v4_metric_points", "v4_spans", "v4_events", "v4_logs", "v4_sessions"):
        conn.execute(f"DROP TABLE {table}")


def run_python_step(conn: sqlite3.Connection, version: int) -> None:
    """A migration's data step on a bare connection (``migrate_connection``'s default)."""
    if version == 5:
        _copy_v4(conn, Interner())


def _v4_record(row: Sequence[Any], resource: Any, fingerprints: dict[int, str]) -> Record:
    kind = row[0]
    attrs = from_json(row[5], {})
    if not isinstance(attrs, dict):
        attrs = {}
    if kind == "session":
        attrs |= {
            k: v
            for k, v in (("exit_code", row[13]), ("command", row[14]), ("user_id", row[15]))
            if v is not None
        }
        return Record("session", row[1] or 0, row[2] or "", "", 0, attrs, resource, row[7], end_ns=row[11])
    if kind == "span":
        attrs.setdefault("span.kind", row[13] or "")
        events = from_json(row[14], [])
        if events:
            attrs.setdefault("span.events", events)
    elif kind == "metric":
        attrs.update(type=row[13], unit=row[14], temporality=row[15])
    elif kind == "error":
        attrs["stack"] = row[13] or ""
        if row[12] in fingerprints:
            attrs["fingerprint"] = fingerprints[row[12]]
    return Record(
        kind,
        row[1],
        row[2] or "",
        row[3] or "",
        row[4] or 0,
        attrs,
        resource,
        row[7],
        row[8],
        row[9],
        row[10],
        row[11],
        row[12] if kind == "metric" else None,
    )


def _close_for_fork(store: SqliteStore) -> None:
    # With the locks held and the reads finished, close the connections too: then the child
    # inherits no SQLite state at all (per-process lock tables, the WAL index mapping), which SQLite
    # forbids carrying across fork.  The parent reopens lazily on its next call.
    if store._conn is not None and not store._memory:
        with contextlib.suppress(sqlite3.Error):
            store._conn.close()
        store._conn = None
    idle, store._idle = store._idle, []
    for conn in idle:
        with contextlib.suppress(sqlite3.Error):
            conn.close()


# Every live store, so a fork in any code path (not only the pipeline's) is made safe for them.
_FORK: ForkHold[SqliteStore] = ForkHold(BUSY_TIMEOUT_MS / 1000 + 5, prepare=_close_for_fork)


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
