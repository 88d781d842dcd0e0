"""The PostgreSQL store: one database that many processes on many machines write and read.

``postgresql://user:password@host:5432/dbname`` (psycopg 3, the ``postgres`` extra).  The tables and
columns are SQLite's (``_pg_schema``); reads run the same SQL (``_sql`` with its PostgreSQL
dialect).  How it holds the :class:`~clisight.store.base.Store` promises:

- **One transaction per batch.**  Rows go in with ``COPY`` (text format: measured faster here than
  binary COPY, and three to five times faster than multi-row ``INSERT ... SELECT unnest(...)``,
  from 4 processes),
  counters and error groups with one upsert each, rollup cells by read (``FOR UPDATE``), merge in
  Python (``Acc.merge``) and write back.  Any failure rolls the whole batch back and raises
  StoreError, including a connection the server dropped mid-batch; the next call reconnects.
- **Cursors never skip a row.**  ``rows()`` pages oldest-first by id, so ids must become visible in
  the order they are given, or a reader could pass id 200 while the transaction holding id 150 is
  still to commit.  A single lock held from the first id to the commit would make writers take
  turns for the whole insert (measured: 0.4-0.6 of the throughput of parallel COPYs from 4
  processes).  Instead each batch reserves its ids as one block (one ``nextval``) and takes a
  *ticket* (a transaction-level advisory lock named after its block) under an allocation lock held
  for a single round trip; the COPYs run in parallel; just before committing, a batch waits for the
  tickets of every smaller block still held.  So commits land in id order and only the rollup
  update and the commit itself are taken in turn (details and the deadlock argument: ``_pg_insert``).
  Ids are therefore sparse (blocks of ``ID_BLOCK``) and shared by the raw tables; they only ever
  increase.
- **Commits do not wait for the disk** (``synchronous_commit = off`` for the batch's transaction): a
  crash of the *server* can lose the last few hundred milliseconds of committed batches, never
  corrupt anything, like the SQLite store's ``synchronous = NORMAL``.  Without it every commit taken
  in turn would include a WAL flush.
- **Time-partitioned raw tables.**  Logs, events, spans, metric points and errors are partitioned
  by day (UTC); the writer creates a day's partition (and the next day's) the first time it
  needs it, in its own short transaction, under an advisory lock so concurrent writers never race;
  known partitions are cached.  Retention drops whole days: a raw row is kept until the whole UTC
  day it falls in is older than ``raw_days``.
- **Deadlines.**  Connecting waits ``connect_timeout`` (from the deadline, at most 10 s); a batch's
  transaction sets ``statement_timeout`` and ``lock_timeout`` from the time left, and a watchdog
  thread cancels the statement under way when a deadline brought forward (the process is exiting)
  passes.
- **Reads** go through a small pool of autocommit connections of their own, so they never wait for
  the writer's.  After a fork the child abandons every inherited connection without closing it
  (closing would end the parent's session) and reopens lazily.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final, TypeVar
from urllib.parse import unquote

import psycopg
from psycopg import errors as pg_errors
from psycopg.adapt import AdaptersMap, Buffer, Loader
from psycopg.types.string import TextLoader

from clisight.exceptions import DataError, SchemaError, StoreError
from clisight.store import _pg_insert, _sql, redact_url
from clisight.store._forkhold import ForkHold
from clisight.store._model import MappedBatch, batch_key, from_json, map_batch, to_json
from clisight.store._pg_schema import (
    DAY_NS,
    MIGRATIONS,
    RAW_TABLES,
    VERSION_TABLE,
    partition_statements,
    ticket_class,
)
from clisight.store._pg_values import decode, decode_value, encode, needs_decoding
from clisight.store._sqlreads import SqlReads
from clisight.store.base import (
    HISTORY_STATE_PREFIXES,
    RESOLUTIONS,
    RetentionPolicy,
    RetentionResult,
    Selection,
    StoreInfo,
)
from clisight.store.schema import LATEST_VERSION
from clisight.types import Deadline, Record

T = TypeVar("T")
Connection = psycopg.Connection[Any]

_READERS: Final = 4  # idle read connections kept per store
_CONNECT_TIMEOUT: Final = 10  # seconds, when the URL does not say
# A write without a deadline waits this long for a lock (as SQLite's busy timeout).
_LOCK_TIMEOUT_MS: Final = 10_000
_STATEMENT_TIMEOUT_MS: Final = 120_000  # and this long for a statement
_DDL_LOCK_TIMEOUT_MS: Final = 5_000  # partitions made or dropped wait at most this for the parent's lock
_DROP_TRIES: Final = 5
_SHRINKABLE: Final = ("logs", "events", "spans", "metric_points")  # what a size cap deletes from
# Advisory lock keys: "cs" in the top 16 bits, the purpose in the next 16, the ``logs`` table's oid in
# the low 32, so stores in different schemas of one database do not wait for each other (batch
# tickets likewise: ``_pg_schema.ticket_class``).
_KEY_BASE: Final = 0x6373 << 48
_ALLOC: Final = 1 << 32
_PARTITIONS: Final = 2 << 32
_MIGRATE_KEY: Final = _KEY_BASE | (3 << 32)
_RETRYABLE: Final = ("40P01", "40001")  # deadlock, serialization failure: retried once
_NO_PARTITION: Final = "23514"  # check_violation, as "no partition of relation ... found for row"

# Connections a forked child inherited: kept referenced (and their sockets pointed at /dev/null), never
# closed, because closing or collecting one sends the server a Terminate for the *parent's* session.
_ABANDONED: list[Connection] = []


class _NumberLoader(Loader):
    """``numeric`` (what SUM() of a BIGINT gives) as int or float, never Decimal."""

    def load(self, data: Buffer) -> Any:
        raw = bytes(data)
        if raw.lstrip(b"-").isdigit():
            return int(raw)
        return float(raw)


# Result types every connection of the store reads with: JSON columns as their text (``_sql``
# parses them like SQLite's), numerics as Python numbers.
_ADAPTERS = AdaptersMap(psycopg.adapters)
_ADAPTERS.register_loader("jsonb", TextLoader)
_ADAPTERS.register_loader("json", TextLoader)
_ADAPTERS.register_loader("numeric", _NumberLoader)


@functools.lru_cache(maxsize=1024)
def _placeholders(sql: str) -> str:
    """``_sql``'s ``?`` placeholders as psycopg's ``%s``; a literal ``%`` doubled first."""
    return sql.replace("%", "%%").replace("?", "%s")


def _password(url: str) -> str | None:
    found = re.search(r"://[^/:@]*:([^@/]*)@", url) or re.search(r"(?i)password=([^&\s]*)", url)
    return found.group(1) if found and found.group(1) else None


class _Watchdog:
    """Cancels the statement a write is running once its deadline passes, even a deadline brought
    forward while the statement runs (the process began to exit).  One thread per process."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.armed: dict[int, tuple[Connection, Deadline]] = {}
        self.thread: threading.Thread | None = None
        self.tokens = 0

    def arm(self, conn: Connection, deadline: Deadline) -> int:
        with self.cond:
            self.tokens += 1
            self.armed[self.tokens] = (conn, deadline)
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="clisight-pg-watchdog", daemon=True)
                self.thread.start()
            self.cond.notify_all()
            return self.tokens

    def disarm(self, token: int) -> None:
        with self.cond:
            self.armed.pop(token, None)

    def _run(self) -> None:
        with self.cond:
            while True:
                if not self.armed:
                    self.cond.wait()
                    continue
                for token, (conn, deadline) in list(self.armed.items()):
                    if deadline.expired():
                        del self.armed[token]
                        # Under the lock: a write that ends meanwhile waits in disarm() until the
                        # cancel request is delivered, so it can only stop this write's statement.
                        cancel = getattr(conn, "cancel_safe", None) or conn.cancel  # psycopg < 3.2
                        with contextlib.suppress(Exception):
                            cancel()
                nearest = min((d.remaining() for _, d in self.armed.values()), default=1.0)
                # Poll as well: a deadline object's time can be brought forward without telling us.
                self.cond.wait(max(0.001, min(nearest, 0.05)))


_watchdog = _Watchdog()


class PostgresStore(SqlReads):
    """A :class:`~clisight.store.base.Store` in a PostgreSQL database.

    ``url`` is a libpq URL (``postgresql://`` or ``postgres://``; the password is never shown: the
    store's ``url`` attribute and every message carry it as ``***``).  ``read_only=True`` never
    creates or migrates the schema, and writes raise StoreError.
    """

    backend = "postgresql"
    dialect = _sql.POSTGRES

    def __init__(self, url: str, *, read_only: bool = False) -> None:
        self._conninfo = re.sub(r"^postgres(?:ql)?(?:\+[\w-]+)?://", "postgresql://", url.strip())
        self._secret = _password(self._conninfo)
        self.url: str = redact_url(self._conninfo)
        self.read_only = read_only
        self._lock = threading.RLock()
        self._conn: Connection | None = None
        self._ids = _pg_insert.Interner()
        self._partitions: set[tuple[str, int]] = set()
        # Advisory lock keys (id allocation, partitions) and ticket class, once the tables exist.
        self._keys: tuple[int, int, int] | None = None
        self._migrated = False
        self._checked = False  # a reader has seen the schema (read-only stores)
        self._pid = os.getpid()
        self._gate = threading.Condition()
        self._idle: list[Connection] = []
        self._active = 0
        _FORK.add(self)

    def __repr__(self) -> str:
        return f"PostgresStore({self.url!r})"

    # -- connections --------------------------------------------------------------------------
    def _say(self, exc: BaseException) -> str:
        """An error's text with the password (if one slipped in) masked."""
        message = redact_url(str(exc).strip() or type(exc).__name__)
        if self._secret:
            for secret in {self._secret, unquote(self._secret)}:
                # Where it stands alone, not inside a word: a password "p" must not turn "port 1
                # failed" into "***ort 1 failed".
                message = re.sub(rf"(?<!\w){re.escape(secret)}(?!\w)", "***", message)
        return message

    def _connect(self, role: str, deadline: Deadline | None = None) -> Connection:
        given = psycopg.conninfo.conninfo_to_dict(self._conninfo)
        options: dict[str, Any] = {}
        if "application_name" not in given:
            options["application_name"] = f"clisight-{role}"
        timeout = float(given.get("connect_timeout") or _CONNECT_TIMEOUT)
        if deadline is not None:
            timeout = min(timeout, deadline.remaining())
            if timeout <= 0:
                raise StoreError(f"cannot connect to the store {self.url}: the deadline passed")
        options["connect_timeout"] = max(1, math.ceil(timeout))
        for key, value in (("keepalives", 1), ("keepalives_idle", 30), ("keepalives_interval", 10)):
            if key not in given:
                options[key] = value
        conn = psycopg.connect(self._conninfo, autocommit=True, context=_ADAPTERS, **options)
        if self.read_only:
            conn.execute("SET default_transaction_read_only = on")
        return conn

    def _locked(self) -> threading.RLock:
        """The writer's lock, after letting a pending fork take it first."""
        return _FORK.lock(self)

    def _writer(self, deadline: Deadline | None = None) -> Connection:
        # Caller holds self._lock.
        if self.read_only:
            raise StoreError(f"the store {self.url} was opened read-only; it cannot be written")
        if self._conn is not None and not self._conn.closed:
            return self._conn
        self._conn = None
        try:
            conn = self._connect("writer", deadline)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to the store {self.url}: {self._say(exc)}") from exc
        try:
            if not self._migrated:
                _migrate(conn, self.url)
                self._migrated = True
            if self._keys is None:
                oid = conn.execute("SELECT 'logs'::regclass::oid::bigint").fetchone()
                assert oid is not None
                self._keys = (
                    _KEY_BASE | _ALLOC | int(oid[0]),
                    _KEY_BASE | _PARTITIONS | int(oid[0]),
                    ticket_class(int(oid[0])),
                )
        except SchemaError:
            conn.close()
            raise
        except psycopg.Error as exc:
            conn.close()
            raise StoreError(f"cannot open the store {self.url}: {self._say(exc)}") from exc
        self._conn = conn
        return conn

    def _drop_writer(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    @contextlib.contextmanager
    def _reading(self) -> Iterator[Connection]:
        if not self.read_only and not self._migrated:
            with self._locked():
                self._writer()  # create and migrate the schema before the first read
        with self._gate:
            _FORK.wait_for_fork(self._gate)
            self._active += 1
            conn = self._idle.pop() if self._idle else None
        healthy = False
        try:
            if conn is None:
                conn = self._connect("reader")
                if not self._checked:
                    _check_schema(conn, self.url)
                    self._checked = True
            yield conn
            healthy = True
        finally:
            with self._gate:
                self._active -= 1
                if conn is not None:
                    if healthy and not conn.closed and len(self._idle) < _READERS:
                        self._idle.append(conn)
                    else:
                        with contextlib.suppress(Exception):
                            conn.close()
                self._gate.notify_all()

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Rows of one query (psycopg placeholders).  A pooled connection the server closed while
        idle is replaced once; any other failure raises StoreError."""
        for attempt in (0, 1):
            try:
                with self._reading() as conn:
                    return conn.execute(sql, params).fetchall()
            except psycopg.Error as exc:
                # A pooled connection the server closed while it sat idle: once more, on a new one.
                if attempt == 0 and _disconnected(exc):
                    continue
                raise StoreError(f"cannot read the store {self.url}: {self._say(exc)}") from exc
        raise AssertionError("unreachable")

    def _sql_read(self, sql: str, params: Sequence[Any]) -> list[Any]:
        return self._read(_placeholders(sql), params)

    def _maintain(self, action: Callable[[Connection], T]) -> T:
        """Run ``action`` on the writer's connection (autocommit; it opens its own transactions)."""
        with self._locked():
            conn = self._writer()
            try:
                return action(conn)
            except psycopg.Error as exc:
                if conn.closed or conn.broken:
                    self._drop_writer()
                raise StoreError(f"cannot write to the store {self.url}: {self._say(exc)}") from exc

    def migrate(self) -> int:
        """Bring the schema to the latest version; return it.  Raises SchemaError if it is newer."""
        if self.read_only:
            return self.schema_version()
        with self._locked():
            self._writer()
        return self.schema_version()

    def schema_version(self) -> int:
        rows = self._read("SELECT COALESCE(MAX(version), 0) FROM schema_version")
        return int(rows[0][0])

    def close(self) -> None:
        """Close the connections; the store reopens on next use."""
        with self._locked():
            self._drop_writer()
            with self._gate:
                idle, self._idle = self._idle, []
            for conn in idle:
                with contextlib.suppress(Exception):
                    conn.close()

    def after_fork(self) -> None:
        """In a forked child: abandon the inherited connections (never closed) and reopen lazily.

        Runs once per child (further calls in the same process do nothing), automatically at fork.
        """
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._lock = threading.RLock()
        self._gate = threading.Condition()
        self._active = 0
        self._ids = _pg_insert.Interner()
        inherited = [*self._idle, *([self._conn] if self._conn is not None else [])]
        self._idle, self._conn = [], None
        for conn in inherited:
            _abandon(conn)

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

        Records of an unknown kind are skipped.  ``deadline`` bounds every wait (connecting, locks,
        statements), even when it is brought forward while the write is under way.  With
        ``once_key``, the key is remembered in the same transaction and a batch whose key was seen
        before is not stored again (False is returned).  ``exit_key`` acts as ``once_key`` only
        while the deadline is finite (the process is exiting), when a copy of the batch may be
        spooled.  A value PostgreSQL refuses (a number beyond BIGINT) raises DataError.
        """
        if not records:
            return True
        if self.read_only:
            raise StoreError(f"the store {self.url} was opened read-only; it cannot be written")
        mapped = map_batch(records)
        key = batch_key(once_key, exit_key, deadline)
        days = _pg_insert.days_needed(mapped)
        with self._locked():
            for attempt in (0, 1):
                if deadline is not None and deadline.expired():
                    raise StoreError(f"cannot write to the store {self.url}: the deadline passed")
                conn = self._writer(deadline)
                token = _watchdog.arm(conn, deadline) if deadline is not None else 0
                try:
                    self._ensure_partitions(conn, days)
                    return self._transaction(conn, mapped, key, len(records), deadline)
                except psycopg.Error as exc:
                    if conn.closed or conn.broken:
                        self._drop_writer()
                    if exc.sqlstate == _NO_PARTITION:
                        self._partitions.clear()  # another process's retention dropped a day we knew
                    retry = exc.sqlstate in (*_RETRYABLE, _NO_PARTITION) and not conn.closed
                    if attempt == 0 and retry:
                        continue
                    if _timed_out(exc, deadline):
                        raise StoreError(
                            f"cannot write to the store {self.url}: the deadline passed ({self._say(exc)})"
                        ) from exc
                    if isinstance(exc, psycopg.DataError) and not conn.closed:
                        raise DataError(f"the store {self.url} refused a value: {self._say(exc)}") from exc
                    raise StoreError(f"cannot write to the store {self.url}: {self._say(exc)}") from exc
                finally:
                    if token:
                        _watchdog.disarm(token)
        raise AssertionError("unreachable")

    def _transaction(
        self,
        conn: Connection,
        mapped: MappedBatch,
        key: str | None,
        size: int,
        deadline: Deadline | None,
    ) -> bool:
        statement_ms, lock_ms = _STATEMENT_TIMEOUT_MS, _LOCK_TIMEOUT_MS
        if deadline is not None and deadline.at != math.inf:
            left = max(1, int(deadline.remaining() * 1000))
            statement_ms, lock_ms = min(statement_ms, left), min(lock_ms, left)
        try:
            return self._statements(conn, mapped, key, size, deadline, statement_ms, lock_ms)
        except BaseException:
            self._ids.rollback()
            if not conn.closed:
                try:
                    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                        conn.execute("ROLLBACK")
                    # The id-allocation lock is session-level: an error inside its round trip keeps it.
                    conn.execute("SELECT pg_advisory_unlock_all()")
                except psycopg.Error:
                    self._drop_writer()  # closing the session releases whatever it held
            raise

    def _statements(
        self,
        conn: Connection,
        mapped: MappedBatch,
        key: str | None,
        size: int,
        deadline: Deadline | None,
        statement_ms: int,
        lock_ms: int,
    ) -> bool:
        assert self._keys is not None
        known = _pg_insert.intern(conn, mapped, self._ids)
        begin = (
            "BEGIN",
            f"SELECT set_config('statement_timeout', '{int(statement_ms)}', true),"
            f" set_config('lock_timeout', '{int(lock_ms)}', true),"
            " set_config('synchronous_commit', 'off', true)",
        )
        # The key's value is the batch's size, so doctor can say how many records came in.
        marker = None if key is None else (encode(key), str(size), time.time_ns())

        def before_commit() -> None:
            if deadline is not None and deadline.expired():
                raise pg_errors.QueryCanceled("the deadline passed before the commit")

        keys = (self._keys[0], self._keys[2])
        return _pg_insert.insert_batch(conn, mapped, known, begin, marker, keys, before_commit)

    def _ensure_partitions(self, conn: Connection, days: dict[str, set[int]]) -> None:
        """Make the day partitions a batch needs that this process has not seen yet."""
        wanted = {(table, day) for table, found in days.items() for day in found} - self._partitions
        if not wanted:
            return
        today = time.time_ns() // DAY_NS
        if any(day == today for _, day in wanted):
            # Tomorrow's too, so the writers' first batches after midnight find it made.
            wanted |= {(table, today + 1) for table in RAW_TABLES} | {(table, today) for table in RAW_TABLES}
        wanted -= self._partitions
        existing = _partition_days(conn)
        self._partitions |= existing
        missing = sorted(wanted - existing)
        if not missing:
            return
        assert self._keys is not None
        with conn.transaction():
            conn.execute(f"SET LOCAL lock_timeout = {_DDL_LOCK_TIMEOUT_MS}")
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._keys[1],))
            existing = _partition_days(conn)  # another writer may have made them while we waited
            for table, day in missing:
                if (table, day) not in existing:
                    for statement in partition_statements(table, day):
                        conn.execute(statement)
        self._partitions |= set(missing) | existing

    # -- state --------------------------------------------------------------------------------
    def save_state(self, key: str, value: Any) -> None:
        def save(conn: Connection) -> None:
            conn.execute(
                "INSERT INTO kv_state (key, value, updated_ns) VALUES (%s, %s, %s)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_ns = excluded.updated_ns",
                (encode(key), to_json(value), time.time_ns()),
            )

        if self.read_only:
            raise StoreError(f"the store {self.url} was opened read-only; it cannot be written")
        self._maintain(save)

    def claim_state(self, key: str, value: Any) -> bool:
        if self.read_only:
            raise StoreError(f"the store {self.url} was opened read-only; it cannot be written")
        changed = self._execute(
            "INSERT INTO kv_state (key, value, updated_ns) VALUES (%s, %s, %s) ON CONFLICT (key) DO NOTHING",
            (encode(key), to_json(value), time.time_ns()),
        )
        return changed == 1

    def delete_state(self, keys: Sequence[str]) -> int:
        if self.read_only:
            raise StoreError(f"the store {self.url} was opened read-only; it cannot be written")
        if not keys:
            return 0
        return self._execute("DELETE FROM kv_state WHERE key = ANY(%s)", ([encode(k) for k in keys],))

    def load_state(self, key: str) -> Any | None:
        rows = self._read("SELECT value FROM kv_state WHERE key = %s", (encode(key),))
        return from_json(rows[0][0]) if rows else None

    def state_items(self, prefix: str, since_ns: int = 0) -> list[tuple[str, Any]]:
        rows = self._read(
            "SELECT key, value FROM kv_state WHERE starts_with(key, %s) AND updated_ns >= %s ORDER BY key",
            (encode(prefix), since_ns),
        )
        return [(decode(key), from_json(value)) for key, value in rows]

    # -- reads: rows() and aggregate() come from SqlReads ----------------------------------------
    def _encoded(self, sel: Selection) -> Selection:
        return _encoded(sel)

    def _decoded(self, value: Any) -> Any:
        return decode(value) if isinstance(value, str) else value

    def _export(self, kind: str, row: Sequence[Any]) -> dict[str, Any]:
        item = _sql.to_export(kind, row)
        return decode_value(item) if needs_decoding(row) else item

    def info(self) -> StoreInfo:
        tables = (
            *_sql.RECORD_TABLES,
            "error_groups",
            "resources",
            "names",
            "traces",
            "rollups",
            "rollup_keys",
        )
        counts = self._read(" UNION ALL ".join(f"SELECT '{t}', COUNT(*) FROM {t}" for t in tables))
        bounds = self._read(
            " UNION ALL ".join(
                f"(SELECT MIN({col}), MAX({col}) FROM {table})" for table, col in RAW_TABLES.items()
            )
        )
        lows = [low for low, _ in bounds if low is not None]
        highs = [high for _, high in bounds if high is not None]
        found = self._read("SELECT current_setting('server_version'), pg_database_size(current_database())")
        return StoreInfo(
            self.url,
            "postgresql",
            str(found[0][0]),
            None,
            int(found[0][1]),
            0,
            self.schema_version(),
            {table: int(count) for table, count in counts},
            min(lows, default=None),
            max(highs, default=None),
        )

    # -- retention ----------------------------------------------------------------------------
    def _size(self) -> int:
        return int(self._read("SELECT pg_database_size(current_database())")[0][0])

    def apply_retention(self, policy: RetentionPolicy) -> RetentionResult:
        """Drop the day partitions of raw rows older than ``policy.raw_days`` (whole UTC days: a row
        stays until its whole day is past the cutoff), delete rollups past their own ages and the
        sessions, traces and error groups left without records, then the oldest raw rows until the
        database fits ``policy.max_bytes``.

        ``deleted`` counts the rows of each dropped partition, counted exactly (``COUNT(*)``) just
        before it is dropped.
        """
        if self.read_only:
            raise StoreError(f"the store {self.url} was opened read-only; it cannot be written")
        started = time.monotonic()
        deleted = dict.fromkeys((*_sql.RECORD_TABLES, "error_groups", "rollups"), 0)
        before = self._size()
        now = time.time_ns()
        if policy.raw_days > 0:
            cutoff = (now - int(policy.raw_days * 86_400e9)) // DAY_NS * DAY_NS
            self._maintain(lambda conn: self._drop_days(conn, lambda high: high <= cutoff, deleted))
            deleted["sessions"] += self._execute(
                "DELETE FROM sessions WHERE start_ns < %s AND COALESCE(last_ns, end_ns, start_ns) < %s",
                (cutoff, cutoff),
            )
            self._execute("DELETE FROM traces WHERE last_ns < %s", (cutoff,))
            # History kept as state (spool and exit markers, alert transitions and claims): past the
            # cutoff the records it stood for are gone too.
            prefixes = " OR ".join("starts_with(key, %s)" for _ in HISTORY_STATE_PREFIXES)
            self._execute(
                f"DELETE FROM kv_state WHERE ({prefixes}) AND updated_ns < %s",
                (*HISTORY_STATE_PREFIXES, cutoff),
            )
        for resolution, days in zip(
            RESOLUTIONS, (policy.minute_days, policy.hour_days, policy.day_days), strict=True
        ):
            if days > 0:
                cutoff = now - int(days * 86_400e9)
                deleted["rollups"] += self._execute(
                    "DELETE FROM rollups WHERE res = %s AND bucket_ns < %s", (resolution, cutoff)
                )
        if policy.max_bytes > 0:
            self._shrink_to(policy.max_bytes, deleted)
        if policy.raw_days > 0 or policy.max_bytes > 0:
            deleted["error_groups"] += self._execute(
                "DELETE FROM error_groups g WHERE NOT EXISTS (SELECT 1 FROM errors e WHERE e.group_id = g.id)"
            )
        return RetentionResult(deleted, before, self._size(), time.monotonic() - started)

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """One statement in its own transaction; the rows it changed."""
        return self._maintain(lambda conn: conn.execute(sql, params).rowcount)

    def _drop_days(self, conn: Connection, past: Callable[[int], bool], deleted: dict[str, int]) -> None:
        """Drop every raw partition whose upper bound ``past`` accepts, counting its rows first."""
        for table, name, high in _partitions(conn):
            if past(high):
                deleted[table] += _with_lock_retries(conn, [f"DROP TABLE {name}"], count=name)
                self._partitions.discard((table, (high - 1) // DAY_NS))

    def _shrink_to(self, max_bytes: int, deleted: dict[str, int]) -> None:
        """Delete the oldest raw rows (logs, events, spans, metric points: errors are kept, as in the
        SQLite store) until the database fits ``max_bytes``.

        Each round estimates from the raw tables' size how many rows must go, finds the time below
        which that many lie, drops the partitions wholly before it and deletes the rest of the rows
        from the partition it falls in, which is then rewritten (``VACUUM FULL``: PostgreSQL does
        not give a deleted row's space back to the file system otherwise).
        """
        tables = {table: RAW_TABLES[table] for table in _SHRINKABLE}
        for _round in range(10):
            excess = self._size() - max_bytes
            if excess <= 0:
                return
            found = self._read(
                "SELECT COALESCE(SUM(pg_total_relation_size(i.inhrelid)), 0) FROM pg_inherits i"
                " WHERE i.inhparent = ANY(%s::regclass[])",
                (list(tables),),
            )
            raw_bytes = int(found[0][0])
            union = " UNION ALL ".join(f"SELECT {col} AS t FROM {table}" for table, col in tables.items())
            total = int(self._read(f"SELECT COUNT(*) FROM ({union}) u")[0][0])
            if total <= 1 or raw_bytes <= 0:
                return
            share = min(1.0, excess / raw_bytes * 1.05)
            k = min(total - 1, max(1, math.ceil(total * share)))
            [(moment, newest)] = self._read(
                f"SELECT (SELECT t FROM ({union}) u ORDER BY t OFFSET %s LIMIT 1),"
                f" (SELECT MAX(t) FROM ({union}) v)",
                (k - 1,),
            )
            # Everything up to ``moment`` goes, but never the newest record.
            last = moment if moment < newest else moment - 1
            before = sum(deleted.values())
            self._maintain(functools.partial(self._delete_until, tables=tables, last=last, deleted=deleted))
            if sum(deleted.values()) == before:
                return

    def _delete_until(
        self, conn: Connection, tables: dict[str, str], last: int, deleted: dict[str, int]
    ) -> None:
        """Raw rows of ``tables`` at or before ``last``: whole partitions dropped, the rest deleted."""
        for table, name, high in _partitions(conn):
            if table not in tables:
                continue
            if high - 1 <= last:
                deleted[table] += _with_lock_retries(conn, [f"DROP TABLE {name}"], count=name)
                self._partitions.discard((table, (high - 1) // DAY_NS))
            elif high - DAY_NS <= last:
                removed = conn.execute(
                    f"DELETE FROM {name} WHERE {tables[table]} <= %s",
                    (last,),
                ).rowcount
                deleted[table] += removed
                if removed:
                    _with_lock_retries(conn, [f"VACUUM FULL {name}"], transaction=False)


# -- schema -------------------------------------------------------------------------------------
def _migrate(conn: Connection, where: str) -> int:
    """Apply the migrations the database lacks, each once, under an advisory lock (so concurrent
    processes take turns and the later ones find the work done)."""
    current = _read_version(conn)
    _refuse_newer(current, where)
    if current >= LATEST_VERSION:
        return current
    with conn.transaction():
        conn.execute(f"SET LOCAL lock_timeout = {_STATEMENT_TIMEOUT_MS}")
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATE_KEY,))
        conn.execute(VERSION_TABLE)
        current = _read_version(conn)
        _refuse_newer(current, where)
        for version in range(current + 1, LATEST_VERSION + 1):
            description, statements = MIGRATIONS[version - 1]
            for statement in statements:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version (version, applied_ns, description) VALUES (%s, %s, %s)",
                (version, time.time_ns(), description),
            )
    return LATEST_VERSION


def _read_version(conn: Connection) -> int:
    row = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
    if row is None or not row[0]:
        return 0
    found = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
    return int(found[0]) if found else 0


def _refuse_newer(version: int, where: str) -> None:
    if version > LATEST_VERSION:
        raise SchemaError(
            f"the store {where} has schema version {version}, newer than this clisight understands "
            f"(up to {LATEST_VERSION}); upgrade clisight (pip install -U clisight) or use another store"
        )


def _check_schema(conn: Connection, where: str) -> None:
    """A reader's first look: the database holds a clisight store this version can read."""
    version = _read_version(conn)
    _refuse_newer(version, where)
    if version == 0:
        raise StoreError(
            f"no store at {where}: nothing has been recorded in that database yet "
            "(a program using clisight with this store creates it)"
        )


def _with_lock_retries(
    conn: Connection, statements: Sequence[str], count: str = "", transaction: bool = True
) -> int:
    """Run DDL that locks a raw table's parent (or the partition), waiting at most
    ``_DDL_LOCK_TIMEOUT_MS`` a try and letting writers go between tries; with ``count``, the rows of
    that table first (in the same transaction), returned."""
    for attempt in range(_DROP_TRIES):
        try:
            rows = 0
            if transaction:
                with conn.transaction():
                    conn.execute(f"SET LOCAL lock_timeout = {_DDL_LOCK_TIMEOUT_MS}")
                    if count:
                        found = conn.execute(f"SELECT COUNT(*) FROM {count}").fetchone()
                        rows = int(found[0]) if found else 0
                    for statement in statements:
                        conn.execute(statement)
            else:  # VACUUM cannot run inside a transaction block
                conn.execute(f"SET lock_timeout = {_DDL_LOCK_TIMEOUT_MS}")
                try:
                    for statement in statements:
                        conn.execute(statement)
                finally:
                    conn.execute("RESET lock_timeout")
            return rows
        except pg_errors.LockNotAvailable:
            if attempt == _DROP_TRIES - 1:
                raise
            time.sleep(0.1 * (attempt + 1))
    raise AssertionError("unreachable")


# -- partitions ---------------------------------------------------------------------------------
_BOUND = re.compile(r"TO \('?(-?\d+|MAXVALUE)'?\)")


def _partitions(conn: Connection) -> list[tuple[str, str, int]]:
    """(parent table, partition, exclusive upper bound in ns) of every raw partition, oldest first."""
    rows = conn.execute(
        "SELECT p.relname, c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
        " JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent"
        " WHERE i.inhparent = ANY(%s::regclass[])",
        (list(RAW_TABLES),),
    ).fetchall()
    out = []
    for parent, name, bound in rows:
        found = _BOUND.search(bound or "")
        if found is not None:
            high = 2**63 - 1 if found.group(1) == "MAXVALUE" else int(found.group(1))
            out.append((str(parent), str(name), high))
    return sorted(out, key=lambda item: item[2])


def _partition_days(conn: Connection) -> set[tuple[str, int]]:
    return {(table, (high - 1) // DAY_NS) for table, _, high in _partitions(conn)}


def _disconnected(exc: psycopg.Error) -> bool:
    """The error says the connection is gone (not that the statement failed)."""
    state = exc.sqlstate
    return isinstance(exc, psycopg.OperationalError) and (state is None or state.startswith(("08", "57P")))


def _timed_out(exc: psycopg.Error, deadline: Deadline | None) -> bool:
    """The statement stopped because the write's finite deadline came (a timeout or the watchdog)."""
    stopped = isinstance(exc, pg_errors.QueryCanceled | pg_errors.LockNotAvailable)
    return stopped and deadline is not None and (deadline.at != math.inf or deadline.expired())


_TEXT_FIELDS: Final = ("service", "session_id", "component", "name", "text", "trace_id")


def _encoded(sel: Selection) -> Selection:
    """``sel`` with its texts as the store keeps them (see ``_pg_values``)."""
    changes: dict[str, Any] = {}
    for field in _TEXT_FIELDS:
        value = getattr(sel, field)
        if isinstance(value, str) and encode(value) != value:
            changes[field] = encode(value)
    return dataclasses.replace(sel, **changes) if changes else sel


# -- fork safety --------------------------------------------------------------------------------
def _abandon(conn: Connection) -> None:
    """Keep a connection inherited across fork from ever talking to the server from this process.

    Its socket is replaced with /dev/null in this process (the parent's stays as it was), so even
    the Terminate message libpq sends when the object is finally collected goes nowhere.
    """
    _ABANDONED.append(conn)
    with contextlib.suppress(Exception):
        fd = conn.pgconn.socket
        null = os.open(os.devnull, os.O_RDWR)
        try:
            os.dup2(null, fd)
        finally:
            os.close(null)


def _new_watchdog() -> None:
    global _watchdog
    _watchdog = _Watchdog()  # the parent's thread does not exist in a forked child


# No thread may be inside libpq (or OpenSSL) at fork: the writer's statement and the reads under way
# finish, new ones wait until the fork is done; a child abandons what it inherited (after_fork).
_FORK: ForkHold[PostgresStore] = ForkHold(_LOCK_TIMEOUT_MS / 1000, in_child=_new_watchdog)
