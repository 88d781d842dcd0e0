"""A mapped batch (``_model.MappedBatch``) as PostgreSQL statements, inside the caller's transaction.

Why the order below.  Readers page oldest-first by id (``rows()`` with a cursor), so ids must become
visible in the order they were given: a reader that has passed id 200 must never see id 150 commit
afterwards.  Writers of other processes therefore never commit out of id order, and everything else
they do runs side by side:

1. Before the transaction (each statement committing on its own): names, resources and rollup keys
   interned where new.
2. One round trip (libpq's pipeline mode): BEGIN and the timeouts; the once-key marker; session
   counters, traces and error groups upserted, each in one statement sorted by key (two writers
   lock shared rows in the same order); session records; then **ids reserved**
   (``clisight_reserve_ids``, a function of the schema): under a session-level advisory lock held
   only while the function runs, one ``nextval('raw_ids')`` hands the batch a block of
   ``ID_BLOCK`` ids (more blocks for a larger batch), and the batch takes its *ticket*, a
   transaction-level advisory lock named after its first block's number, held to its commit.
   Because tickets are taken under the same lock that hands out blocks, a block that was handed
   out always has its ticket held until its transaction ends.
3. Raw rows built in Python with their ids and streamed with ``COPY ... FROM STDIN`` (text format),
   one COPY per table: the bulk of the work, side by side with other writers.
4. One round trip: **the turn**, a wait (``pg_advisory_xact_lock_shared``) for every ticket of a
   smaller block still held, found in ``pg_locks`` (then every writer given smaller ids has
   committed or rolled back), and the batch's rollup cells that exist, read ``FOR UPDATE``.
5. One round trip: the cells merged in Python (``Acc.merge``) and written back, and COMMIT.  Writers
   reach steps 4-5 one at a time, in id order, so the cells are never contended.

A writer waits only for writers given smaller ids, and no writer holding a ticket waits for a row
lock another writer may hold (the upserts take theirs before the ticket, the rollup cells are taken
after every smaller writer is done), so the waits cannot form a cycle.

Every text goes in through ``_pg_values.encode`` and every JSON document through
``_pg_values.json_text``, so what PostgreSQL cannot keep as it is (NUL characters, floats JSONB would
print as integers) reads back exactly.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

import psycopg

from clisight.exceptions import DataError
from clisight.store._model import SERIES_CODE, Acc, IdCache, MappedBatch, RollupKey
from clisight.store._pg_schema import DAY_NS, ID_BLOCK
from clisight.store._pg_values import encode as text
from clisight.store._pg_values import encode_opt as _opt
from clisight.store._pg_values import json_text, real
from clisight.types import Resource

_INT64: Final = (-(2**63), 2**63 - 1)

LOGS: Final = (
    "time_ns, severity, component_id, message, attributes, trace, span_id, user_id, session, resource_id"
)
EVENTS: Final = "time_ns, name_id, attributes, trace, span_id, user_id, session, resource_id"
SPANS: Final = (
    "trace, span_id, parent_span_id, name_id, span_kind, start_ns, end_ns, status, attributes, events,"
    " user_id, session, resource_id"
)
POINTS: Final = (
    "time_ns, name_id, type, unit, temporality, value, histogram, attributes, user_id, session, resource_id"
)
ERRORS: Final = (
    "group_id, time_ns, type, message, stack, attributes, trace, span_id, user_id, session, resource_id"
)

# Session counters of the batch, one statement for all sessions (sorted by id), as SQLite's _COUNTS.
_COUNTS: Final = (
    "INSERT INTO sessions AS s (id, service, resource_id, start_ns, log_count, error_count, event_count,"
    " first_ns, last_ns)"
    " SELECT * FROM unnest(%s::text[], %s::text[], %s::int4[], %s::int8[], %s::int8[], %s::int8[],"
    " %s::int8[], %s::int8[], %s::int8[]) ORDER BY 1"
    " ON CONFLICT (id) DO UPDATE SET"
    " log_count = s.log_count + excluded.log_count,"
    " error_count = s.error_count + excluded.error_count,"
    " event_count = s.event_count + excluded.event_count,"
    " start_ns = COALESCE(s.start_ns, excluded.start_ns),"
    " first_ns = LEAST(s.first_ns, excluded.first_ns),"
    " last_ns = GREATEST(s.last_ns, excluded.last_ns)"
    " RETURNING id, sid"
)
# A later record for the same session fills in what the earlier one did not know.  ``||`` merges the
# attribute objects one level deep (SQLite's json_patch also merges nested objects).
_SESSIONS: Final = (
    "INSERT INTO sessions AS s (id, service, resource_id, start_ns, end_ns, exit_code, command, user_id,"
    " attributes, first_ns, last_ns) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s)"
    " ON CONFLICT (id) DO UPDATE SET"
    " service = excluded.service, resource_id = excluded.resource_id,"
    " start_ns = excluded.start_ns, end_ns = COALESCE(excluded.end_ns, s.end_ns),"
    " exit_code = COALESCE(excluded.exit_code, s.exit_code),"
    " command = COALESCE(excluded.command, s.command),"
    " user_id = COALESCE(excluded.user_id, s.user_id),"
    " attributes = COALESCE(s.attributes, '{}'::jsonb) || excluded.attributes,"
    " first_ns = LEAST(s.first_ns, excluded.first_ns),"
    " last_ns = GREATEST(s.last_ns, excluded.last_ns)"
)
_TRACES: Final = (
    "INSERT INTO traces AS t (id, first_ns, last_ns)"
    " SELECT * FROM unnest(%s::text[], %s::int8[], %s::int8[]) ORDER BY 1"
    " ON CONFLICT (id) DO UPDATE SET"
    " first_ns = LEAST(t.first_ns, excluded.first_ns), last_ns = GREATEST(t.last_ns, excluded.last_ns)"
    " RETURNING id, tid"
)
_GROUPS: Final = (
    "INSERT INTO error_groups AS g (fingerprint, type, title, first_seen_ns, last_seen_ns, count)"
    " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::int8[], %s::int8[], %s::int8[])"
    " ORDER BY 1 ON CONFLICT (fingerprint) DO UPDATE SET"
    " first_seen_ns = LEAST(g.first_seen_ns, excluded.first_seen_ns),"
    " last_seen_ns = GREATEST(g.last_seen_ns, excluded.last_seen_ns),"
    " count = g.count + excluded.count RETURNING fingerprint, id"
)
_RESERVE: Final = "SELECT clisight_reserve_ids(%s, %s, %s)"
_MARKER: Final = (
    "INSERT INTO kv_state (key, value, updated_ns) VALUES (%s, %s, %s) ON CONFLICT (key) DO NOTHING"
)
_NAMES_INSERT: Final = (
    "INSERT INTO names (value) SELECT v FROM unnest(%s::text[]) AS v ORDER BY v ON CONFLICT DO NOTHING"
)
_NAMES_SELECT: Final = "SELECT id, value FROM names WHERE value = ANY(%s::text[])"
_KEYS_INSERT: Final = (
    "INSERT INTO rollup_keys (series, service, name, dim)"
    " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[]) ORDER BY 1, 2, 3, 4"
    " ON CONFLICT DO NOTHING"
)
_KEYS_SELECT: Final = (
    "SELECT k.id, k.series, k.service, k.name, k.dim"
    " FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[]) AS w(series, service, name, dim)"
    " JOIN rollup_keys k USING (series, service, name, dim)"
)
# The batch's cells that exist already, locked; a LATERAL lookup per cell keeps it on the primary key.
_CELLS: Final = (
    "SELECT c.i, r.count, r.errors, r.sum, r.min, r.max, r.first_ns, r.last_ns, r.sketch, r.sums"
    " FROM unnest(%s::int4[], %s::int2[], %s::int8[], %s::int4[])"
    " WITH ORDINALITY AS c(res, series, bucket_ns, key_id, i)"
    " CROSS JOIN LATERAL (SELECT * FROM rollups r WHERE r.res = c.res AND r.series = c.series"
    " AND r.bucket_ns = c.bucket_ns AND r.key_id = c.key_id FOR UPDATE) r"
)
# Waits for every ticket of a smaller block of the store that is held (see ``_pg_schema.TICKETS``).
_TURN: Final = (
    "SELECT count(pg_advisory_xact_lock_shared(l.classid::bigint::int, l.objid::bigint::int))"
    " FROM pg_locks l WHERE l.locktype = 'advisory' AND l.objsubid = 2 AND l.mode = 'ExclusiveLock'"
    " AND l.granted AND l.pid <> pg_backend_pid()"
    " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND l.classid::bigint BETWEEN %(tickets)s AND %(tickets)s + 255"
    " AND ((l.classid::bigint - %(tickets)s) << 31 | l.objid::bigint) < %(block)s"
)
# Merged cells written back whole (only the writer whose turn it is gets here).
_ROLLUPS: Final = (
    "INSERT INTO rollups (res, series, bucket_ns, key_id, count, errors, sum, min, max, first_ns, last_ns,"
    " sketch, sums) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb)"
    " ON CONFLICT (res, series, bucket_ns, key_id) DO UPDATE SET"
    " count = excluded.count, errors = excluded.errors, sum = excluded.sum, min = excluded.min,"
    " max = excluded.max, first_ns = excluded.first_ns, last_ns = excluded.last_ns,"
    " sketch = excluded.sketch, sums = excluded.sums"
)

Cursor = psycopg.Cursor[Any]
Connection = psycopg.Connection[Any]
RollupName = tuple[str, str, str, str]  # (series, service, name, dim)


# -- values ---------------------------------------------------------------------------------------
def _columns(rows: Iterable[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows as one list per column (the arrays an ``unnest`` statement takes)."""
    out: list[list[Any]] = [[] for _ in range(width)]
    for row in rows:
        for column, value in zip(out, row, strict=True):
            column.append(value)
    return out


# -- interning ----------------------------------------------------------------------------------
class Interner(IdCache):
    """The ids of resources, names and rollup keys, looked up or made in PostgreSQL."""

    def resource_ids(self, cur: Cursor, resources: Iterable[Resource]) -> dict[Resource, int]:
        out: dict[Resource, int] = {}
        missing = []
        for res in resources:
            known = self.resources.get(res) or self._new_resources.get(res)
            if known is None:
                missing.append(res)
            else:
                out[res] = known
        for res in sorted(missing, key=_resource_key):
            key = _resource_key(res)
            cur.execute(
                "INSERT INTO resources (service, version, host, pid, sdk) VALUES (%s, %s, %s, %s, %s)"
                " ON CONFLICT DO NOTHING RETURNING id",
                key,
            )
            row = cur.fetchone()
            if row is None:
                # Another writer has it (committed by now: the insert waited for it), so look it up
                # in a statement of its own, which sees what committed before it began.
                cur.execute(
                    "SELECT id FROM resources WHERE service = %s AND version = %s AND host = %s"
                    " AND pid = %s AND sdk = %s",
                    key,
                )
                row = cur.fetchone()
                assert row is not None
            out[res] = self._new_resources[res] = int(row[0])
        return out

    def name_ids(self, cur: Cursor, names: set[str]) -> dict[str, int]:
        known, new = self.names, self._new_names
        missing = [n for n in names if n not in known and n not in new]
        if missing:
            values = sorted({text(n) for n in missing})
            cur.execute(_NAMES_INSERT, (values,))
            cur.execute(_NAMES_SELECT, (values,))
            stored = {value: int(id_) for id_, value in cur.fetchall()}
            for name in missing:
                new[name] = stored[text(name)]
        return {n: known[n] if n in known else new[n] for n in names}

    def key_ids(self, cur: Cursor, keys: set[RollupName]) -> dict[RollupName, int]:
        """Ids of rollup keys (series, service, name, dim), made on first use."""
        known, new = self.keys, self._new_keys
        missing = [k for k in keys if k not in known and k not in new]
        if missing:
            clean = sorted({_clean_key(k) for k in missing})
            columns = _columns(clean, 4)
            cur.execute(_KEYS_INSERT, columns)
            cur.execute(_KEYS_SELECT, columns)
            stored = {tuple(row[1:]): int(row[0]) for row in cur.fetchall()}
            for key in missing:
                new[key] = stored[_clean_key(key)]
        return {k: known[k] if k in known else new[k] for k in keys}


def _resource_key(res: Resource) -> tuple[str, str, str, int, str]:
    return (text(res.service), text(res.version), text(res.host), int(res.pid), text(res.sdk))


def _clean_key(key: RollupName) -> RollupName:
    return (text(key[0]), text(key[1]), text(key[2]), text(key[3]))


# -- the batch ----------------------------------------------------------------------------------
def days_needed(mb: MappedBatch) -> dict[str, set[int]]:
    """The UTC days (since the epoch) each raw table of the batch writes into.  Raises DataError for
    a time no BIGINT holds (before a partition for it is looked for)."""
    out: dict[str, set[int]] = {}
    low, high = _INT64
    for table, rows, index in (
        ("logs", mb.logs, 0),
        ("events", mb.events, 0),
        ("spans", mb.spans, 5),
        ("metric_points", mb.metrics, 0),
        ("errors", mb.errors, 0),
    ):
        if rows:
            days = {row[index] // DAY_NS for row in rows}
            if min(days) * DAY_NS < low or max(days) * DAY_NS > high:
                raise DataError(f"a record of the batch is malformed: a {table} time is not a 64-bit integer")
            out[table] = days
    return out


def intern(conn: Connection, mb: MappedBatch, ids: Interner) -> Interned:
    """Ids of the batch's resources, names and rollup keys, made where new.

    Runs before the batch's transaction, each statement committing on its own: an id made for a
    batch that then fails is an unused dictionary entry, and writers making the same new name wait
    for each other for one statement only, never for a whole batch."""
    cur = conn.cursor()
    rid = ids.resource_ids(cur, mb.resources())
    names = {row[2] for row in mb.logs}
    names.update(row[1] for row in mb.events)
    names.update(row[3] for row in mb.spans)
    names.update(row[1] for row in mb.metrics)
    for raw in (mb.logs, mb.events, mb.spans, mb.metrics, mb.errors):
        names.update(row[-3] for row in raw if row[-3] is not None)  # users
    nid: dict[str | None, int | None] = {None: None}
    if names:
        nid.update(ids.name_ids(cur, names))
    kid = ids.key_ids(cur, {key[2:] for key in mb.rollups}) if mb.rollups else {}
    ids.commit()
    return Interned(rid, nid, kid)


@dataclass(slots=True)
class Interned:
    resources: dict[Resource, int]
    names: dict[str | None, int | None]
    keys: dict[RollupName, int]


def insert_batch(
    conn: Connection,
    mb: MappedBatch,
    known: Interned,
    begin: Sequence[str],
    marker: tuple[Any, ...] | None,
    keys: tuple[int, int],
    before_commit: Callable[[], None],
) -> bool:
    """Every row, counter, error group and rollup cell of ``mb`` in one transaction, from ``begin``
    (its BEGIN and SET LOCAL statements) to the commit, which follows ``before_commit()`` (it may
    raise to stop it).  With ``marker`` (key, value, time), the batch is stored only if that
    kv_state key is new (False otherwise, nothing stored).

    ``keys`` are the store's id-allocation advisory lock and ticket class (``_pg_schema``).  On an
    error the caller rolls back and
    releases the session's advisory locks (``pg_advisory_unlock_all``) or drops the connection."""
    rid, nid = known.resources, known.names
    counts = _session_counts(mb, rid)
    traces = _traces(mb)
    groups = _error_groups(mb)
    # The statements that need no id from each other: one round trip.
    with _pipeline(conn):
        for statement in begin:
            conn.execute(statement)
        seen = None if marker is None else conn.execute(_MARKER, marker)
        found_sessions = None if counts is None else conn.execute(_COUNTS, counts[1])
        found_traces = None if traces is None else conn.execute(_TRACES, traces[1])
        found_groups = None if groups is None else conn.execute(_GROUPS, groups[1])
        if mb.sessions:
            conn.cursor().executemany(
                _SESSIONS,
                [
                    (
                        text(s[0]),
                        text(s[1]),
                        rid[s[2]],
                        s[3],
                        s[4],
                        s[5],
                        _opt(s[6]),
                        _opt(s[7]),
                        json_text(s[8]),
                        s[3],
                        s[4] or s[3],
                    )
                    for s in mb.sessions
                ],
            )
        total = len(mb.logs) + len(mb.events) + len(mb.spans) + len(mb.metrics) + len(mb.errors)
        # After every upsert's row locks, never before them (see the module doc).
        reserved = conn.execute(_RESERVE, (-(-total // ID_BLOCK), *keys)) if total else None
    if seen is not None and seen.rowcount == 0:
        conn.execute("ROLLBACK")
        return False
    sid: dict[str | None, int | None] = {None: None}
    if counts is not None and found_sessions is not None:
        sid.update(_ids_of(found_sessions, counts[0]))
    tid: dict[str | None, int | None] = {None: None}
    if traces is not None and found_traces is not None:
        tid.update(_ids_of(found_traces, traces[0]))
    gid = {} if groups is None or found_groups is None else _ids_of(found_groups, groups[0])
    cells = _cells(mb.rollups, known.keys)
    if reserved is not None:
        cur = conn.cursor()
        found = reserved.fetchone()
        assert found is not None
        blocks = [int(first) for first in found[0]]
        new_ids = itertools.chain.from_iterable(range(block, block + ID_BLOCK) for block in blocks)
        for table, columns, rows in _raw_rows(mb, new_ids, nid, rid, sid, tid, gid):
            copy_rows(cur, table, f"id, {columns}", rows)
        # Wait for the writers given smaller ids: from here on this batch's commit comes after theirs.
        with _pipeline(conn):
            conn.execute(_TURN, {"tickets": keys[1], "block": blocks[0] // ID_BLOCK})
            found_cells = conn.execute(_CELLS, _columns(sorted(cells), 4)) if cells else None
        merged = _merged(cells, found_cells.fetchall()) if found_cells is not None else []
    else:
        merged = []
    before_commit()
    with _pipeline(conn):
        if merged:
            conn.cursor().executemany(_ROLLUPS, merged)
        conn.execute("COMMIT")
    return True


def _pipeline(conn: Connection) -> contextlib.AbstractContextManager[Any]:
    """Statements sent together and answered together (libpq's pipeline mode), where available."""
    return conn.pipeline() if psycopg.Pipeline.is_supported() else contextlib.nullcontext()


def _ids_of(cur: Cursor, originals: dict[str, str]) -> dict[str, int]:
    """(stored key, id) rows of an upsert as a map from the batch's own keys."""
    stored = {row[0]: int(row[1]) for row in cur.fetchall()}
    return {original: stored[key] for original, key in originals.items()}


def _raw_rows(
    mb: MappedBatch,
    new_ids: Iterator[int],
    nid: dict[str | None, int | None],
    rid: dict[Resource, int],
    sid: dict[str | None, int | None],
    tid: dict[str | None, int | None],
    gid: dict[str, int],
) -> list[tuple[str, str, list[tuple[Any, ...]]]]:
    """(table, columns, rows) of every raw table the batch writes, rows in column order after their
    id (taken from ``new_ids``; each ``zip`` takes the row first, so it stops without using an id)."""
    tables: list[tuple[str, str, list[tuple[Any, ...]]]] = []
    # Each raw row ends with (user, session id, resource).
    rows: list[tuple[Any, ...]]
    if mb.logs:
        rows = [
            (
                i,
                r[0],
                r[1],
                nid[r[2]],
                text(r[3]),
                json_text(r[4]),
                tid[r[5]],
                _opt(r[6]),
                nid[r[-3]],
                sid[r[-2]],
                rid[r[-1]],
            )
            for r, i in zip(mb.logs, new_ids, strict=False)
        ]
        tables.append(("logs", LOGS, rows))
    if mb.events:
        rows = [
            (i, r[0], nid[r[1]], json_text(r[2]), tid[r[3]], _opt(r[4]), nid[r[-3]], sid[r[-2]], rid[r[-1]])
            for r, i in zip(mb.events, new_ids, strict=False)
        ]
        tables.append(("events", EVENTS, rows))
    if mb.spans:
        rows = [
            (
                i,
                tid[r[0]],
                _opt(r[1]),
                _opt(r[2]),
                nid[r[3]],
                text(r[4]),
                r[5],
                r[6],
                r[7],
                json_text(r[8]),
                json_text(r[9]),
                nid[r[-3]],
                sid[r[-2]],
                rid[r[-1]],
            )
            for r, i in zip(mb.spans, new_ids, strict=False)
        ]
        tables.append(("spans", SPANS, rows))
    if mb.metrics:
        rows = [
            (
                i,
                r[0],
                nid[r[1]],
                text(r[2]),
                text(r[3]),
                text(r[4]),
                real(r[5]),
                json_text(r[6]),
                json_text(r[7]),
                nid[r[-3]],
                sid[r[-2]],
                rid[r[-1]],
            )
            for r, i in zip(mb.metrics, new_ids, strict=False)
        ]
        tables.append(("metric_points", POINTS, rows))
    if mb.errors:
        rows = [
            (
                i,
                gid[r[1]],
                r[0],
                text(r[2]),
                text(r[3]),
                text(r[4]),
                json_text(r[5]),
                tid[r[6]],
                _opt(r[7]),
                nid[r[-3]],
                sid[r[-2]],
                rid[r[-1]],
            )
            for r, i in zip(mb.errors, new_ids, strict=False)
        ]
        tables.append(("errors", ERRORS, rows))
    return tables


def copy_rows(cur: Cursor, table: str, columns: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """``rows`` into ``table`` by ``COPY ... FROM STDIN`` (the benchmark's floor uses it too)."""
    with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


# An upsert's parameters (one array per column, rows sorted by key) and the batch's keys by the
# stored key they became.
Upsert = tuple[dict[str, str], list[list[Any]]]


def _session_counts(mb: MappedBatch, rid: dict[Resource, int]) -> Upsert | None:
    if not mb.session_counts:
        return None
    merged: dict[str, list[Any]] = {}
    for session_id, (logs, errors, events, first, last, service, res) in mb.session_counts.items():
        key = text(session_id)
        have = merged.get(key)
        if have is None:
            merged[key] = [key, text(service), rid[res], first, logs, errors, events, first, last]
        else:  # ids that differed only by a NUL character
            have[4], have[5], have[6] = have[4] + logs, have[5] + errors, have[6] + events
            have[3] = have[7] = min(have[7], first)
            have[8] = max(have[8], last)
    originals = {k: text(k) for k in mb.session_counts}
    return originals, _columns((merged[k] for k in sorted(merged)), 9)


def _traces(mb: MappedBatch) -> Upsert | None:
    if not mb.traces:
        return None
    merged: dict[str, list[Any]] = {}
    for trace_id, (first, last) in mb.traces.items():
        key = text(trace_id)
        have = merged.get(key)
        if have is None:
            merged[key] = [key, first, last]
        else:
            have[1], have[2] = min(have[1], first), max(have[2], last)
    originals = {k: text(k) for k in mb.traces}
    return originals, _columns((merged[k] for k in sorted(merged)), 3)


def _error_groups(mb: MappedBatch) -> Upsert | None:
    if not mb.error_groups:
        return None
    merged: dict[str, list[Any]] = {}
    for fingerprint, (type_, title, first, last, count) in mb.error_groups.items():
        key = text(fingerprint)
        have = merged.get(key)
        if have is None:
            merged[key] = [key, text(type_), text(title), first, last, count]
        else:
            have[3], have[4], have[5] = min(have[3], first), max(have[4], last), have[5] + count
    originals = {k: text(k) for k in mb.error_groups}
    return originals, _columns((merged[k] for k in sorted(merged)), 6)


# A rollup cell in primary-key order: (res, series, bucket_ns, key_id).
_Cell = tuple[int, int, int, int]


def _cells(rollups: dict[RollupKey, Acc], kid: dict[RollupName, int]) -> dict[_Cell, Acc]:
    out: dict[_Cell, Acc] = {}
    for key, acc in rollups.items():
        cell = (key[0], SERIES_CODE[key[2]], key[1], kid[key[2:]])
        have = out.get(cell)
        if have is None:
            out[cell] = acc
        else:  # keys that differed only by a NUL character
            merged = Acc()
            merged.merge(have)
            merged.merge(acc)
            out[cell] = merged
    return out


def _merged(cells: dict[_Cell, Acc], found: list[Any]) -> list[tuple[Any, ...]]:
    """The batch's cells merged with those that exist (``found``: ordinal in sorted key order, then
    the cell's measures), as rows of the rollup upsert."""
    keys = sorted(cells)
    merged: dict[_Cell, Acc] = {}
    for row in found:
        key = keys[int(row[0]) - 1]
        acc = Acc.from_row(row[1:])
        acc.merge(cells[key])
        merged[key] = acc
    rows = []
    for key in keys:
        acc = merged.get(key, cells[key])
        rows.append((*key, *acc.row()[:8], json_text(acc.sums) if acc.sums else None))
    return rows
