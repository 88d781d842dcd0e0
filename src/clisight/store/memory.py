"""The memory store: the :class:`~clisight.store.base.Store` protocol in plain Python (``memory://``).

Private to the process that opened it and gone when closed; the store the tests and
``clisight.testing.capture_store`` use.  It answers every read as the SQL stores do: a batch goes
through the same mapping (``_model.map_batch``: rows, session counters, error groups, rollup cells),
attributes are kept as the same JSON text (so they read back as a SQL store gives them back), and
aggregates use the same plan (``_aggregate.plan``): rollup cells for whole minutes, hours and days,
raw rows for the edges.

One lock guards everything, reads included: a read sees whole batches only.  A forked child keeps
a copy of the data (it is the child's own from then on) and gets a fresh lock.
"""

from __future__ import annotations

import bisect
import heapq
import math
import os
import platform
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final

from clisight.exceptions import DataError, StoreError
from clisight.store import _aggregate
from clisight.store._forkhold import ForkHold
from clisight.store._model import (
    USAGE_FIELDS,
    Acc,
    MappedBatch,
    batch_key,
    from_json,
    map_batch,
    span_failed,
    to_json,
)
from clisight.store.base import (
    EXPORT_FIELDS,
    HISTORY_STATE_PREFIXES,
    RESOLUTIONS,
    Page,
    RetentionPolicy,
    RetentionResult,
    Selection,
    StoreInfo,
)
from clisight.store.schema import LATEST_VERSION
from clisight.types import PERFORMANCE, WARNING, Deadline, Record, Resource, severity_name

# kind -> its table; every raw table's rows carry their record time in ``_Row.time``.
_TABLE_OF: Final = {
    "log": "logs",
    "event": "events",
    "span": "spans",
    "metric": "metric_points",
    "error": "errors",
}
_RAW_TABLES: Final = tuple(_TABLE_OF.values())
# What a size cap deletes from, oldest first (errors are kept, as in the SQLite store).
_SHRINKABLE: Final = ("logs", "events", "spans", "metric_points")
_JSON_DEFAULTS: Final[dict[str, Any]] = {"attributes": {}, "events": [], "histogram": None}
_ROW_OVERHEAD: Final = 64  # bytes counted per stored row on top of its text (see _estimate)
_INT64: Final = (-(2**63), 2**63 - 1)
_ASCII_LOWER: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_FORK_WAIT_S: Final = 5.0


class _Row:
    """One raw record: its export fields (JSON fields as JSON text) and what aggregates read."""

    __slots__ = ("agg", "id", "size", "time", "values")

    def __init__(self, time_ns: int, values: dict[str, Any], agg: dict[str, Any] | None) -> None:
        self.id = 0  # given under the lock, when the batch is applied
        self.time = time_ns
        self.values = values
        self.agg = agg  # event: model and usage numbers; log or span: its operation, if it is one
        self.size = _estimate(values)


class _Session:
    __slots__ = (
        "attributes",
        "command",
        "end_ns",
        "error_count",
        "event_count",
        "exit_code",
        "first_ns",
        "id",
        "last_ns",
        "log_count",
        "service",
        "sid",
        "start_ns",
        "user_id",
    )

    def __init__(self, sid: int, session_id: str, service: str) -> None:
        self.sid = sid
        self.id = session_id
        self.service = service
        self.start_ns: int | None = None
        self.end_ns: int | None = None
        self.exit_code: int | None = None
        self.command: str | None = None
        self.user_id: str | None = None
        self.attributes: str | None = None  # JSON text
        self.log_count = 0
        self.error_count = 0
        self.event_count = 0
        self.first_ns: int | None = None
        self.last_ns: int | None = None

    def match_values(self) -> dict[str, Any]:
        """What a selection tests (no attributes to decode)."""
        return {"id": self.id, "service": self.service, "start_ns": self.start_ns}

    def export(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "service": self.service,
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "exit_code": self.exit_code,
            "command": self.command,
            "user_id": self.user_id,
            "attributes": from_json(self.attributes, {}),
            "log_count": self.log_count,
            "error_count": self.error_count,
            "event_count": self.event_count,
        }


class _Group:
    __slots__ = ("count", "fingerprint", "first_seen_ns", "id", "last_seen_ns", "status", "title", "type")

    def __init__(self, id_: int, fingerprint: str, type_: str, title: str) -> None:
        self.id = id_
        self.fingerprint = fingerprint
        self.type = type_
        self.title = title
        self.status = "open"
        self.count = 0
        self.first_seen_ns = 0
        self.last_seen_ns = 0

    def match_values(self) -> dict[str, Any]:
        return {"fingerprint": self.fingerprint, "last_seen_ns": self.last_seen_ns}

    def export(self) -> dict[str, Any]:
        return {field: getattr(self, field) for field in EXPORT_FIELDS["error_group"]}


class MemoryStore:
    """A :class:`~clisight.store.base.Store` held in this process's memory.

    Thread-safe (one lock).  ``read_only`` is accepted and ignored: the store is private to its
    owner, so it is always writable.  After :meth:`close` every call raises StoreError; the data
    cannot be had back.  Sizes (``info``, retention's ``max_bytes``) are estimates: see
    :meth:`apply_retention`.
    """

    backend = "memory"

    def __init__(self, url: str = "memory://", read_only: bool = False) -> None:
        self.url: str = url
        self.read_only = False  # a private store: there is no one else to protect it from
        self._lock = threading.RLock()
        self._pid = os.getpid()
        self._closed = False
        self._tables: dict[str, list[_Row]] = {table: [] for table in _RAW_TABLES}
        self._next_id: dict[str, int] = dict.fromkeys((*_RAW_TABLES, "sessions", "error_groups"), 1)
        self._bytes = 0  # estimated size of the raw rows
        self._sessions: dict[str, _Session] = {}  # in sid order: sids only grow
        self._groups: dict[str, _Group] = {}  # by fingerprint, in id order
        # (resolution, series) -> (bucket, service, name, dim) -> cell
        self._cells: dict[tuple[int, str], dict[tuple[int, str, str, str], Acc]] = {}
        self._state: dict[str, tuple[str, int]] = {}  # key -> (JSON text, updated_ns)
        self._resources: set[Resource] = set()
        self._names: set[str] = set()
        _FORK.add(self)

    def __repr__(self) -> str:
        return f"MemoryStore({self.url!r})"

    # -- the lock -------------------------------------------------------------------------------
    def _open(self) -> threading.RLock:
        """The lock, once the store is known to be open."""
        if self._closed:
            raise StoreError(f"the store {self.url} is closed; an in-memory store cannot be reopened")
        return self._lock

    def _acquire(self, deadline: Deadline | None) -> None:
        lock = self._open()
        wait = -1.0 if deadline is None or deadline.at == math.inf else max(deadline.remaining(), 0.0)
        if not lock.acquire(timeout=wait):
            raise StoreError(
                f"cannot write to the store {self.url}: another thread held it past the deadline"
            )
        if self._closed:  # closed while this thread waited
            lock.release()
            self._open()

    # -- maintenance ----------------------------------------------------------------------------
    def migrate(self) -> int:
        """The schema version (always the latest: the layout is this module's own)."""
        with self._open():
            return LATEST_VERSION

    def schema_version(self) -> int:
        with self._open():
            return LATEST_VERSION

    def close(self) -> None:
        """Drop the data; further calls raise StoreError.  Closing twice is fine."""
        with self._lock:
            self._closed = True
            self._tables = {table: [] for table in _RAW_TABLES}
            self._sessions = {}
            self._groups = {}
            self._cells = {}
            self._state = {}
            self._bytes = 0

    def after_fork(self) -> None:
        """In a forked child: a fresh lock; the data stays (the child's own copy from now on).

        Runs automatically at fork; further calls in the same process do nothing.
        """
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        # The parent's lock may have been held by a thread that does not exist in the child.
        self._lock = threading.RLock()

    # -- writes ---------------------------------------------------------------------------------
    def write_batch(
        self,
        records: Sequence[Record],
        *,
        deadline: Deadline | None = None,
        once_key: str | None = None,
        exit_key: str = "",
    ) -> bool:
        """Store every record of the batch or none of them: DataError for a malformed record,
        StoreError when the store is closed or held past ``deadline``.  Records of an unknown kind
        are skipped.  With ``once_key`` (or ``exit_key`` while ``deadline`` is finite), a batch whose
        key was stored before is not stored again and False is returned."""
        self._open()
        if not records:
            return True
        # Everything that can fail happens before the store is touched: a batch lands whole or not at all.
        mapped = map_batch(records)  # DataError for a malformed record, as in every store
        _check_integers(mapped)
        prepared = _prepare(mapped)
        key = batch_key(once_key, exit_key, deadline)
        self._acquire(deadline)
        try:
            if key is not None:
                if key in self._state:
                    return False
                # The key's value is the batch's size, as the SQL stores keep it.
                self._state[key] = (str(len(records)), time.time_ns())
            self._apply(mapped, prepared)
            return True
        finally:
            self._lock.release()

    def _apply(self, mb: MappedBatch, prepared: dict[str, list[_Row]]) -> None:
        # Caller holds the lock.  Counters first, then session records: the order the SQL stores use.
        for session_id, (logs, errors, events, first, last, service, _res) in mb.session_counts.items():
            session = self._session_row(session_id, service)
            session.log_count += logs
            session.error_count += errors
            session.event_count += events
            if session.start_ns is None:
                session.start_ns = first
            _widen(session, first, last)
        for sid, service, _res, start, end, exit_code, command, user_id, attrs in mb.sessions:
            existed = sid in self._sessions
            session = self._session_row(sid, service)
            session.service = service
            session.start_ns = start
            session.end_ns = end if end is not None else session.end_ns
            session.exit_code = exit_code if exit_code is not None else session.exit_code
            session.command = command if command is not None else session.command
            session.user_id = user_id if user_id is not None else session.user_id
            if existed:
                # A later record for the session adds to the attributes an earlier one stored.
                patch = from_json(to_json(attrs), {})
                session.attributes = to_json(_merge_patch(from_json(session.attributes, {}), patch))
            else:
                session.attributes = to_json(attrs)
            _widen(session, start, end if end is not None else start)
        for fingerprint, (type_, title, first, last, count) in mb.error_groups.items():
            group = self._groups.get(fingerprint)
            if group is None:
                group = self._groups[fingerprint] = _Group(
                    self._take_id("error_groups"), fingerprint, type_, title
                )
                group.first_seen_ns, group.last_seen_ns = first, last
            else:
                group.first_seen_ns = min(group.first_seen_ns, first)
                group.last_seen_ns = max(group.last_seen_ns, last)
            group.count += count
        for table, rows in prepared.items():
            stored = self._tables[table]
            for row in rows:
                row.id = self._take_id(table)
                stored.append(row)
                self._bytes += row.size
        for (resolution, bucket, series, service, name, dim), acc in mb.rollups.items():
            cells = self._cells.setdefault((resolution, series), {})
            have = cells.get((bucket, service, name, dim))
            if have is None:
                # The batch's cells are fresh objects nobody else holds: keep them as they are.
                cells[(bucket, service, name, dim)] = acc
            else:
                have.merge(acc)
        self._resources.update(mb.resources())
        self._names.update(row[2] for row in mb.logs)
        self._names.update(row[1] for row in mb.events)
        self._names.update(row[3] for row in mb.spans)
        self._names.update(row[1] for row in mb.metrics)

    def _take_id(self, table: str) -> int:
        # Ids are never given twice, even after retention removed the newest rows (cursors use them).
        id_ = self._next_id[table]
        self._next_id[table] = id_ + 1
        return id_

    def _session_row(self, session_id: str, service: str) -> _Session:
        session = self._sessions.get(session_id)
        if session is None:
            session = self._sessions[session_id] = _Session(self._take_id("sessions"), session_id, service)
        return session

    # -- state ----------------------------------------------------------------------------------
    def save_state(self, key: str, value: Any) -> None:
        text = to_json(value)
        with self._open():
            self._state[key] = (text, time.time_ns())

    def claim_state(self, key: str, value: Any) -> bool:
        text = to_json(value)
        with self._open():
            if key in self._state:
                return False
            self._state[key] = (text, time.time_ns())
            return True

    def delete_state(self, keys: Sequence[str]) -> int:
        with self._open():
            return sum(self._state.pop(key, None) is not None for key in keys)

    def load_state(self, key: str) -> Any | None:
        with self._open():
            found = self._state.get(key)
        return None if found is None else from_json(found[0])

    def state_items(self, prefix: str, since_ns: int = 0) -> list[tuple[str, Any]]:
        with self._open():
            found = [
                (k, text) for k, (text, at) in self._state.items() if k.startswith(prefix) and at >= since_ns
            ]
        return [(k, from_json(text)) for k, text in sorted(found)]

    # -- reads ----------------------------------------------------------------------------------
    def rows(
        self,
        kind: str,
        sel: Selection,
        *,
        cursor: str | None = None,
        limit: int = 1000,
        newest_first: bool = False,
    ) -> Page:
        if kind not in EXPORT_FIELDS:
            raise ValueError(f"unknown record kind {kind!r}: expected one of {', '.join(EXPORT_FIELDS)}")
        after = _parse_cursor(cursor, 2 if newest_first else 1)
        limit = max(limit, 0)
        keep = _matcher(kind, sel)
        page: list[tuple[int | None, int, dict[str, Any]]]
        with self._open():
            if kind in _TABLE_OF:
                picked = self._page_of_rows(self._tables[_TABLE_OF[kind]], keep, after, limit, newest_first)
                page = [(row.time, row.id, _export(row)) for row in picked]
            elif kind == "session":
                items = ((s.start_ns, s.sid, s) for s in self._sessions.values())
                page = [
                    (t, i, s.export()) for t, i, s in _page_of_items(items, keep, after, limit, newest_first)
                ]
            else:
                groups = ((g.last_seen_ns, g.id, g) for g in self._groups.values())
                page = [
                    (t, i, g.export()) for t, i, g in _page_of_items(groups, keep, after, limit, newest_first)
                ]
        if not page:
            return Page([], cursor)
        moment, last, _ = page[-1]
        next_cursor = f"{moment if moment is not None else 0}:{last}" if newest_first else str(last)
        return Page([item for _, _, item in page], next_cursor)

    @staticmethod
    def _page_of_rows(
        stored: list[_Row],
        keep: Callable[[Mapping[str, Any]], bool],
        after: list[int] | None,
        limit: int,
        newest_first: bool,
    ) -> list[_Row]:
        if newest_first:
            candidates: Iterable[_Row] = (r for r in stored if keep(r.values))
            if after is not None:
                moment, last = after
                candidates = (r for r in candidates if r.time < moment or (r.time == moment and r.id < last))
            return heapq.nlargest(limit, candidates, key=lambda r: (r.time, r.id))
        start = 0 if after is None else bisect.bisect_right(stored, after[0], key=lambda r: r.id)
        out: list[_Row] = []
        for index in range(start, len(stored)):
            if len(out) >= limit:
                break
            row = stored[index]
            if keep(row.values):
                out.append(row)
        return out

    def aggregate(
        self,
        kind: str,
        sel: Selection,
        group_by: Sequence[str] = (),
        measures: Sequence[str] = ("count",),
        *,
        source: str = "auto",
    ) -> list[dict[str, Any]]:
        with self._open():
            return _aggregate.answer(
                kind,
                sel,
                group_by,
                measures,
                source,
                lambda plan, parsed: self._rollup_part(plan, group_by, parsed),
                lambda part, parsed: _aggregate.python_aggregate(self._fields(kind, part), group_by, parsed),
            )

    def _rollup_part(
        self, plan: _aggregate.RollupPlan, group_by: Sequence[str], measures: Sequence[_aggregate.Measure]
    ) -> list[dict[str, Any]]:
        # Caller holds the lock.  Cells are merged into fresh ones: a stored cell is never handed out.
        position = {"service": 1, "name": 2, "dim": 3}
        filters = [(position[column], op, value) for column, op, value in plan.filters]
        # Per group field: (cell position, bucket width or 0); position -1 is the dim read as an integer.
        groups: list[tuple[int, int]] = []
        for g in group_by:
            column = plan.columns[g]
            if column == "bucket":
                groups.append((0, _aggregate.bucket_seconds(g) * 1_000_000_000))
            else:
                groups.append((-1 if g == "severity" else position[column], 0))

        def wanted(cell: tuple[int, str, str, str]) -> bool:
            for at, op, value in filters:
                if op == ">=int":
                    if _as_int(cell[3]) < value:  # only the dim (a severity) is compared as a number
                        return False
                elif cell[at] != value:
                    return False
            return True

        def group_of(cell: tuple[int, str, str, str]) -> tuple[Any, ...]:
            key: list[Any] = []
            for at, width in groups:
                if width:
                    key.append(cell[0] - cell[0] % width)
                else:
                    key.append(_as_int(cell[3]) if at < 0 else cell[at])  # at is 1, 2 or 3
            return tuple(key)

        merged: dict[tuple[Any, ...], Acc] = {}
        for resolution, start, end in plan.segments:
            if not resolution:
                continue
            for cell, acc in self._cells.get((resolution, plan.series), {}).items():
                if start <= cell[0] < end and wanted(cell):
                    key = group_of(cell)
                    total = merged.get(key)
                    if total is None:
                        total = merged[key] = Acc()
                    total.merge(acc)
        out = []
        for key, total in merged.items():
            item = dict(zip(group_by, key, strict=True))
            for m in measures:
                answer = _aggregate.measure_column(plan.series, m.text)
                assert answer is not None  # plan() only picks a series that answers every measure
                item[m.text] = _aggregate.rollup_value(m, answer, total)
            out.append(item)
        return out

    def _fields(self, kind: str, sel: Selection) -> Iterator[dict[str, Any]]:
        """The records of aggregate kind ``kind`` in ``sel`` as the fields ``_aggregate`` knows."""
        if kind == "session":
            keep = _matcher("session", sel)
            for s in self._sessions.values():
                if keep(s.match_values()):
                    start, end = s.start_ns, s.end_ns
                    yield {
                        "service": s.service,
                        "command": s.command,
                        "user_id": s.user_id,
                        "time": start,
                        "duration": None if start is None or end is None else (end - start) / 1e9,
                        "failed": int(s.exit_code is not None and s.exit_code != 0),
                        "exit_code": s.exit_code,
                    }
            return
        if kind == "operation":
            # Spans and PERFORMANCE logs with a duration; the name is the operation's, not the record's.
            bare = Selection(sel.since_ns, sel.until_ns, sel.service, sel.session_id, trace_id=sel.trace_id)
            for table in ("spans", "logs"):
                keep = _matcher("span" if table == "spans" else "log", bare)
                for row in self._tables[table]:
                    op = row.agg
                    if op is None or "operation" not in op or not keep(row.values):
                        continue
                    if sel.name is not None and op["operation"] != sel.name:
                        continue
                    v = row.values
                    yield {
                        "service": v["service"],
                        "name": op["operation"],
                        "session_id": v["session_id"],
                        "time": row.time,
                        "duration": op["duration"],
                        "failed": op["failed"],
                    }
            return
        keep = _matcher(kind, sel)
        for row in self._tables[_TABLE_OF[kind]]:
            v = row.values
            if not keep(v):
                continue
            if kind == "log":
                yield {
                    "service": v["service"],
                    "component": v["component"],
                    "severity": v["severity"],
                    "message": v["message"],
                    "session_id": v["session_id"],
                    "time": row.time,
                }
            elif kind == "event":
                yield {
                    "service": v["service"],
                    "name": v["name"],
                    "session_id": v["session_id"],
                    "time": row.time,
                } | (row.agg or {})
            elif kind == "metric":
                yield {
                    "service": v["service"],
                    "name": v["name"],
                    "session_id": v["session_id"],
                    "time": row.time,
                    "value": v["value"],
                }
            else:
                yield {
                    "service": v["service"],
                    "type": v["type"],
                    "fingerprint": v["fingerprint"],
                    "session_id": v["session_id"],
                    "time": row.time,
                }

    def info(self) -> StoreInfo:
        with self._open():
            counts = {table: len(self._tables[table]) for table in _RAW_TABLES}
            counts["sessions"] = len(self._sessions)
            counts["error_groups"] = len(self._groups)
            counts["resources"] = len(self._resources)
            counts["names"] = len(self._names)
            counts["rollups"] = sum(len(cells) for cells in self._cells.values())
            counts["rollup_keys"] = len({(s, k[1:]) for (_, s), cells in self._cells.items() for k in cells})
            times = [row.time for table in _RAW_TABLES for row in self._tables[table]]
        return StoreInfo(
            self.url,
            "memory",
            f"python {platform.python_version()}",
            None,
            0,
            0,
            LATEST_VERSION,
            counts,
            min(times, default=None),
            max(times, default=None),
        )

    # -- retention ------------------------------------------------------------------------------
    def apply_retention(self, policy: RetentionPolicy) -> RetentionResult:
        """Delete raw rows older than ``policy.raw_days`` (and sessions wholly before it), rollup cells
        past their resolution's age, then, while the raw rows' estimated size exceeds ``max_bytes``,
        the oldest logs, events, spans and metric points.

        The size is an estimate: each raw row counts its text (strings and attribute JSON, in
        characters) plus a fixed 64 bytes; sessions, error groups, rollups and state are not counted.
        """
        started = time.monotonic()
        deleted = dict.fromkeys((*_RAW_TABLES, "sessions", "error_groups", "rollups"), 0)
        now = time.time_ns()
        with self._open():
            before = self._bytes
            if policy.raw_days > 0:
                cutoff = now - int(policy.raw_days * 86_400e9)
                for table in _RAW_TABLES:
                    deleted[table] += self._drop_rows(table, _older_than(cutoff))
                for session_id, s in list(self._sessions.items()):
                    start = s.start_ns
                    latest = next((t for t in (s.last_ns, s.end_ns, start) if t is not None), None)
                    if start is not None and start < cutoff and latest is not None and latest < cutoff:
                        del self._sessions[session_id]
                        deleted["sessions"] += 1
                # History kept as state goes with the records it stood for.
                for key, (_, at) in list(self._state.items()):
                    if key.startswith(HISTORY_STATE_PREFIXES) and at < cutoff:
                        del self._state[key]
            days = (policy.minute_days, policy.hour_days, policy.day_days)
            for resolution, age in zip(RESOLUTIONS, days, strict=True):
                if age > 0:
                    cutoff = now - int(age * 86_400e9)
                    for (res, _series), cells in self._cells.items():
                        if res == resolution:
                            old = [cell for cell in cells if cell[0] < cutoff]
                            for cell in old:
                                del cells[cell]
                            deleted["rollups"] += len(old)
            if policy.max_bytes > 0:
                self._shrink_to(policy.max_bytes, deleted)
            if policy.raw_days > 0 or policy.max_bytes > 0:
                # A group outlives its errors only as long as one of them is kept.
                alive = {row.values["fingerprint"] for row in self._tables["errors"]}
                for fingerprint in [f for f in self._groups if f not in alive]:
                    del self._groups[fingerprint]
                    deleted["error_groups"] += 1
            after = self._bytes
        return RetentionResult(deleted, before, after, time.monotonic() - started)

    def _drop_rows(self, table: str, doomed: Callable[[_Row], bool]) -> int:
        kept: list[_Row] = []
        gone = 0
        for row in self._tables[table]:
            if doomed(row):
                gone += 1
                self._bytes -= row.size
            else:
                kept.append(row)
        self._tables[table] = kept
        return gone

    def _shrink_to(self, max_bytes: int, deleted: dict[str, int]) -> None:
        if self._bytes <= max_bytes:
            return
        # Oldest first across the tables (ties: the earlier stored first, logs before events...).
        oldest = sorted(
            (
                (row.time, row.id, rank, row)
                for rank, table in enumerate(_SHRINKABLE)
                for row in self._tables[table]
            ),
            key=lambda item: item[:3],
        )
        doomed: dict[str, set[int]] = {table: set() for table in _SHRINKABLE}
        size = self._bytes
        for _, _, rank, row in oldest:
            table = _SHRINKABLE[rank]
            if size <= max_bytes:
                break
            doomed[table].add(row.id)
            size -= row.size
        for table, ids in doomed.items():
            if ids:
                deleted[table] += self._drop_rows(table, _one_of(ids))


# -- helpers --------------------------------------------------------------------------------------
def _older_than(cutoff: int) -> Callable[[_Row], bool]:
    return lambda row: row.time < cutoff


def _one_of(ids: set[int]) -> Callable[[_Row], bool]:
    return lambda row: row.id in ids


def _widen(session: _Session, first: int, last: int) -> None:
    session.first_ns = first if session.first_ns is None else min(session.first_ns, first)
    session.last_ns = last if session.last_ns is None else max(session.last_ns, last)


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch (what SQLite's ``json_patch`` does): null removes a key."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge_patch(out.get(key), value)
    return out


def _as_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0


def _number(value: Any) -> float | int | None:
    # A JSON number (not a boolean), as the SQL stores' json_num reads it.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return None


def _estimate(values: Mapping[str, Any]) -> int:
    size = _ROW_OVERHEAD
    for value in values.values():
        if isinstance(value, str):
            size += len(value)
        elif value is not None:
            size += 8
    return size


def _check_integers(mb: MappedBatch) -> None:
    """Refuse what no SQL store can keep (DataError): integers beyond 64 bits where the schema has an
    INTEGER column."""
    columns: list[tuple[str, Iterable[Any]]] = [
        ("log time", (r[0] for r in mb.logs)),
        ("log severity", (r[1] for r in mb.logs)),
        ("event time", (r[0] for r in mb.events)),
        ("span start", (r[5] for r in mb.spans)),
        ("span end", (r[6] for r in mb.spans)),
        ("span status", (r[7] for r in mb.spans)),
        ("metric time", (r[0] for r in mb.metrics)),
        ("error time", (r[0] for r in mb.errors)),
        ("session start", (s[3] for s in mb.sessions)),
        ("session end", (s[4] for s in mb.sessions)),
        ("session exit code", (s[5] for s in mb.sessions)),
        ("resource pid", (res.pid for res in mb.resources())),
    ]
    low, high = _INT64
    for what, values in columns:
        for value in values:
            if value is not None and not (isinstance(value, int) and low <= value <= high):
                raise DataError(
                    f"a record of the batch is malformed: its {what} is {value!r}, not a 64-bit integer"
                )


def _resource(res: Resource) -> dict[str, Any]:
    return {"service": res.service, "service_version": res.version, "host": res.host, "pid": res.pid}


def _json(value: Any) -> str | None:
    return None if value is None else to_json(value)


def _split(row: tuple[Any, ...], lead: int) -> tuple[tuple[Any, ...], str | None, str | None, Resource]:
    """A mapped raw row as (its first ``lead`` fields, user, session id, resource).

    The mapping takes a string ``user_id`` attribute out into a column of its own (SQL stores intern
    it); a memory store keeps it in the attributes, where SQL readers put it back.
    """
    user, sid, res = row[lead:]
    return row[:lead], user, sid, res


def _attrs(attrs: dict[str, Any] | None, user: str | None) -> str | None:
    """The attributes' JSON text (None when there are none), with the user put back."""
    if user is not None:
        attrs = {**(attrs or {}), "user_id": user}
    return None if attrs is None else to_json(attrs)


def _prepare(mb: MappedBatch) -> dict[str, list[_Row]]:
    """Each mapped row as a :class:`_Row` of export values (ids come later, under the lock)."""
    out: dict[str, list[_Row]] = {table: [] for table in _RAW_TABLES}
    for row in mb.logs:
        (time_ns, severity, component, message, attrs, trace_id, span_id), user, sid, res = _split(row, 7)
        text = _attrs(attrs, user)
        values = (
            {
                "time_ns": time_ns,
                "severity": severity,
                "severity_text": severity_name(severity),
                "component": component,
                "message": message,
                "attributes": text,
            }
            | _resource(res)
            | {"session_id": sid, "trace_id": trace_id, "span_id": span_id}
        )
        agg = None
        if text is not None and PERFORMANCE <= severity < WARNING:
            # Read back from the stored JSON, as the SQL stores read their column.
            stored = from_json(text, {})
            duration = _number(stored.get("duration")) if isinstance(stored, dict) else None
            if duration is not None:
                operation = stored.get("operation")
                agg = {
                    "operation": operation if isinstance(operation, str) and operation else message,
                    "duration": duration,
                    "failed": int(stored.get("success") is False),
                }
        out["logs"].append(_Row(time_ns, values, agg))
    for row in mb.events:
        (time_ns, name, attrs, trace_id, span_id), user, sid, res = _split(row, 5)
        text = _attrs(attrs, user)
        stored = from_json(text, {})
        if not isinstance(stored, dict):
            stored = {}
        model = stored.get("model")
        agg = {"model": model if isinstance(model, str) else ""}
        agg |= {field: _number(stored.get(field)) for field in USAGE_FIELDS}
        values = {"time_ns": time_ns, "name": name, "attributes": text} | _resource(res)
        values |= {"session_id": sid, "trace_id": trace_id, "span_id": span_id}
        out["events"].append(_Row(time_ns, values, agg))
    for row in mb.spans:
        (trace_id, span_id, parent, name, span_kind, start, end, status, attrs, events), user, sid, res = (
            _split(row, 10)
        )
        values = (
            {
                "trace_id": trace_id,
                "span_id": span_id,
                "parent_span_id": parent,
                "name": name,
                "span_kind": span_kind,
                "start_ns": start,
                "end_ns": end,
                "status": status,
                "attributes": _attrs(attrs, user),
                "events": _json(events),
            }
            | _resource(res)
            | {"session_id": sid}
        )
        op = None
        if end is not None:
            # A span that ends before it starts (a clock stepped back) lasted 0 s, as in the rollups.
            op = {
                "operation": name,
                "duration": max(end - start, 0) / 1e9,
                "failed": int(span_failed(status)),
            }
        out["spans"].append(_Row(start, values, op))
    for row in mb.metrics:
        (time_ns, name, type_, unit, temporality, value, histogram, attrs), user, sid, res = _split(row, 8)
        values = (
            {
                "time_ns": time_ns,
                "name": name,
                "type": type_,
                "unit": unit,
                "temporality": temporality,
                "value": _metric_value(value),
                "histogram": _json(histogram),
                "attributes": _attrs(attrs, user),
            }
            | _resource(res)
            | {"session_id": sid}
        )
        out["metric_points"].append(_Row(time_ns, values, None))
    for row in mb.errors:
        (time_ns, fingerprint, type_, message, stack, attrs, trace_id, span_id), user, sid, res = _split(
            row, 8
        )
        values = (
            {
                "time_ns": time_ns,
                "type": type_,
                "message": message,
                "stack": stack,
                "fingerprint": fingerprint,
                "attributes": _attrs(attrs, user),
            }
            | _resource(res)
            | {"session_id": sid, "trace_id": trace_id, "span_id": span_id}
        )
        out["errors"].append(_Row(time_ns, values, None))
    return out


def _metric_value(value: Any) -> float | None:
    # A float, or None for what is no finite number (the SQL stores write NULL for NaN and infinities).
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
        return number if math.isfinite(number) else None
    return None


def _export(row: _Row) -> dict[str, Any]:
    """A stored row as its export dict, in :data:`EXPORT_FIELDS` order, of fresh objects only."""
    out: dict[str, Any] = {"id": row.id}
    for key, value in row.values.items():
        out[key] = from_json(value, _JSON_DEFAULTS[key]) if key in _JSON_DEFAULTS else value
    return out


def _parse_cursor(cursor: str | None, parts: int) -> list[int] | None:
    if cursor is None:
        return None
    try:
        values = [int(p) for p in cursor.split(":")]
    except ValueError:
        values = []
    if len(values) != parts:
        raise ValueError(f"bad cursor {cursor!r}: pass back a cursor a page of the same order returned")
    return values


def _page_of_items(
    items: Iterable[tuple[int | None, int, Any]],
    keep: Callable[[Mapping[str, Any]], bool],
    after: list[int] | None,
    limit: int,
    newest_first: bool,
) -> list[tuple[int | None, int, Any]]:
    """A page of sessions or error groups: (time, id, row) in id order, or newest first."""
    chosen = [(t, i, item) for t, i, item in items if keep(item.match_values())]
    if newest_first:
        if after is not None:
            moment, last = after
            chosen = [
                c for c in chosen if c[0] is not None and (c[0] < moment or (c[0] == moment and c[1] < last))
            ]
        return heapq.nlargest(limit, chosen, key=lambda c: (c[0] if c[0] is not None else -math.inf, c[1]))
    if after is not None:
        chosen = [c for c in chosen if c[1] > after[0]]
    return chosen[:limit]


def _matcher(kind: str, sel: Selection) -> Callable[[Mapping[str, Any]], bool]:
    """A test of an export dict (JSON fields as text) against ``sel``, with the SQL stores' meaning
    of each filter for ``kind`` (filters that do not apply to a kind are ignored)."""
    time_key = {"span": "start_ns", "session": "start_ns", "error_group": "last_seen_ns"}.get(kind, "time_ns")
    checks: list[Callable[[Mapping[str, Any]], bool]] = []
    since, until = sel.since_ns, sel.until_ns
    if since is not None:
        checks.append(lambda v: v[time_key] is not None and v[time_key] >= since)
    if until is not None:
        checks.append(lambda v: v[time_key] is not None and v[time_key] <= until)
    if kind == "error_group":
        if sel.name is not None:
            checks.append(lambda v: v["fingerprint"] == sel.name)
        return _all(checks)
    if sel.service is not None:
        checks.append(lambda v: v["service"] == sel.service)
    if sel.session_id is not None:
        key = "id" if kind == "session" else "session_id"
        checks.append(lambda v: v[key] == sel.session_id)
    if kind == "log":
        if sel.min_severity is not None:
            floor = sel.min_severity
            checks.append(lambda v: v["severity"] >= floor)
        if sel.component is not None:
            checks.append(lambda v: v["component"] == sel.component)
    if sel.name is not None and kind in ("event", "span", "metric", "error"):
        key = "type" if kind == "error" else "name"
        checks.append(lambda v: v[key] == sel.name)
    if sel.text and kind in ("log", "error"):
        needle = sel.text.translate(_ASCII_LOWER)
        checks.append(lambda v: needle in v["message"].translate(_ASCII_LOWER))
    if sel.trace_id is not None and kind in ("log", "event", "span", "error"):
        checks.append(lambda v: v["trace_id"] == sel.trace_id)
    return _all(checks)


def _all(checks: list[Callable[[Mapping[str, Any]], bool]]) -> Callable[[Mapping[str, Any]], bool]:
    if not checks:
        return lambda v: True
    if len(checks) == 1:
        return checks[0]
    return lambda v: all(check(v) for check in checks)


# -- fork ------------------------------------------------------------------------------------------
# A child must not inherit a batch half applied: every store's lock is taken (bounded) for the fork.
_FORK: ForkHold[MemoryStore] = ForkHold(_FORK_WAIT_S)
