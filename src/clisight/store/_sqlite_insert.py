"""A mapped batch (``_model.MappedBatch``) as SQLite statements, inside the caller's transaction.

Rows of each table go in with multi-row ``INSERT ... VALUES (...), (...)`` statements of a few
fixed sizes (a batch of 2,000 spans is three of 512 rows, then 256, 128, 64 and 16): ``executemany``
releases and re-takes the GIL for every row, and while a host thread keeps the interpreter busy
each re-take waits a whole switch interval (5 ms), so the writer would stall at a few hundred rows
a second.  (Reading the rows from one JSON array with ``json_each`` has the same one release, but
SQLite parses each row's JSON once per column: three times the cost of binding.)

Traces and rollup cells are upserted the same way; the cells' sketches and usage sums are merged by
two SQL functions registered on the writer's connection.
"""

from __future__ import annotations

import functools
import sqlite3
import zlib
from collections.abc import Iterable, Iterator
from typing import Any, Final

import orjson

from clisight._sketch import QuantileSketch
from clisight.store._model import SERIES_CODE, IdCache, MappedBatch, from_json, to_json
from clisight.types import Resource

_JSON_OPTIONS = orjson.OPT_NON_STR_KEYS

_LOGS = (
    "logs",
    "time_ns, severity, component_id, message, attributes, trace, span_id, user_id, session, resource_id",
)
_EVENTS = ("events", "time_ns, name_id, attributes, trace, span_id, user_id, session, resource_id")
_SPANS = (
    "spans",
    "trace, span_id, parent_span_id, name_id, span_kind, start_ns, end_ns, status, attributes, events,"
    " user_id, session, resource_id",
)
_POINTS = (
    "metric_points",
    "time_ns, name_id, type, unit, temporality, value, histogram, attributes, user_id, session, resource_id",
)
_ERRORS = (
    "errors",
    "group_id, time_ns, type, message, stack, attributes, trace, span_id, user_id, session, resource_id",
)
_COUNTS: Final = (
    "INSERT INTO sessions (id, service, resource_id, start_ns, log_count, error_count, event_count,"
    " first_ns, last_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
    " log_count = sessions.log_count + excluded.log_count,"
    " error_count = sessions.error_count + excluded.error_count,"
    " event_count = sessions.event_count + excluded.event_count,"
    " start_ns = COALESCE(sessions.start_ns, excluded.start_ns),"
    " first_ns = MIN(COALESCE(sessions.first_ns, excluded.first_ns), excluded.first_ns),"
    " last_ns = MAX(COALESCE(sessions.last_ns, excluded.last_ns), excluded.last_ns)"
    " RETURNING sid"
)
# A later record for the same session fills in what the earlier one did not know.
_SESSIONS: Final = (
    "INSERT INTO sessions (id, service, resource_id, start_ns, end_ns, exit_code, command, user_id,"
    " attributes, first_ns, last_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
    " service = excluded.service, resource_id = excluded.resource_id,"
    " start_ns = excluded.start_ns, end_ns = COALESCE(excluded.end_ns, sessions.end_ns),"
    " exit_code = COALESCE(excluded.exit_code, sessions.exit_code),"
    " command = COALESCE(excluded.command, sessions.command),"
    " user_id = COALESCE(excluded.user_id, sessions.user_id),"
    " attributes = json_patch(COALESCE(sessions.attributes, '{}'), excluded.attributes),"
    " first_ns = MIN(COALESCE(sessions.first_ns, excluded.first_ns), excluded.first_ns),"
    " last_ns = MAX(COALESCE(sessions.last_ns, excluded.last_ns), excluded.last_ns)"
)
# Every trace of the batch in one statement (per chunk of SQLite's parameter limit): {values} is
# the rows' placeholders.
_TRACES: Final = (
    "INSERT INTO traces (id, first_ns, last_ns) VALUES {values} ON CONFLICT (id) DO UPDATE SET"
    " first_ns = MIN(traces.first_ns, excluded.first_ns), last_ns = MAX(traces.last_ns, excluded.last_ns)"
    " RETURNING tid, id"
)
_GROUPS: Final = (
    "INSERT INTO error_groups (fingerprint, type, title, first_seen_ns, last_seen_ns, count)"
    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (fingerprint) DO UPDATE SET"
    " first_seen_ns = MIN(error_groups.first_seen_ns, excluded.first_seen_ns),"
    " last_seen_ns = MAX(error_groups.last_seen_ns, excluded.last_seen_ns),"
    " count = error_groups.count + excluded.count RETURNING id"
)


def _least(column: str) -> str:
    # SQLite's two-argument MIN() is NULL when either side is.
    return f"COALESCE(MIN(rollups.{column}, excluded.{column}), rollups.{column}, excluded.{column})"


def _greatest(column: str) -> str:
    return f"COALESCE(MAX(rollups.{column}, excluded.{column}), rollups.{column}, excluded.{column})"


# Every cell of the batch in one statement (per chunk of SQLite's parameter limit).
_ROLLUPS: Final = (
    "INSERT INTO rollups (res, series, bucket_ns, key_id, count, errors, sum, min, max,"
    " first_ns, last_ns, sketch, sums) VALUES {values}"
    " ON CONFLICT (res, series, bucket_ns, key_id) DO UPDATE SET"
    " count = rollups.count + excluded.count, errors = rollups.errors + excluded.errors,"
    f" sum = rollups.sum + excluded.sum, min = {_least('min')}, max = {_greatest('max')},"
    f" first_ns = {_least('first_ns')}, last_ns = {_greatest('last_ns')},"
    " sketch = clisight_sketch_merge(rollups.sketch, excluded.sketch),"
    " sums = clisight_sums_add(rollups.sums, excluded.sums)"
)


def register_functions(conn: sqlite3.Connection) -> None:
    """The two merge functions the rollup upsert calls (deterministic, so SQLite may cache them)."""
    conn.create_function("clisight_sketch_merge", 2, _sketch_merge, deterministic=True)
    conn.create_function("clisight_sums_add", 2, _sums_add, deterministic=True)


def _sketch_merge(old: bytes | None, new: bytes | None) -> bytes | None:
    if old is None or new is None:
        return new if old is None else old
    sketch = QuantileSketch.from_bytes(old)
    sketch.merge(QuantileSketch.from_bytes(new))
    return sketch.to_bytes()


def _sums_add(old: str | None, new: str | None) -> str | None:
    if old is None or new is None:
        return new if old is None else old
    total = from_json(old)
    extra = from_json(new)
    if not isinstance(total, dict) or not isinstance(extra, dict):
        return new
    for key, value in extra.items():
        total[key] = total.get(key, 0) + value
    return to_json(total)


class Interner(IdCache):
    """The ids of resources, names and rollup keys, looked up or made in SQLite."""

    def resource_ids(self, conn: sqlite3.Connection, resources: Iterable[Resource]) -> dict[Resource, int]:
        out: dict[Resource, int] = {}
        for res in resources:
            known = self.resources.get(res) or self._new_resources.get(res)
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
                known = self._new_resources[res] = int(row[0])
            out[res] = known
        return out

    def name_ids(self, conn: sqlite3.Connection, names: set[str]) -> dict[str, int]:
        known = self.names
        missing = [n for n in names if n not in known and n not in self._new_names]
        if missing:
            conn.executemany(
                "INSERT INTO names (value) VALUES (?) ON CONFLICT DO NOTHING", [(n,) for n in missing]
            )
            for start in range(0, len(missing), 500):
                chunk = missing[start : start + 500]
                marks = ", ".join("?" * len(chunk))
                for id_, value in conn.execute(
                    f"SELECT id, value FROM names WHERE value IN ({marks})", chunk
                ):
                    self._new_names[value] = int(id_)
        new = self._new_names
        return {n: known[n] if n in known else new[n] for n in names}

    def key_ids(
        self, conn: sqlite3.Connection, keys: set[tuple[str, str, str, str]]
    ) -> dict[tuple[str, str, str, str], int]:
        """Ids of rollup keys (series, service, name, dim), made on first use."""
        known, new = self.keys, self._new_keys
        missing = [k for k in keys if k not in known and k not in new]
        if missing:
            conn.executemany(
                "INSERT INTO rollup_keys (series, service, name, dim) VALUES (?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                missing,
            )
            for key in missing:
                row = conn.execute(
                    "SELECT id FROM rollup_keys WHERE series = ? AND service = ? AND name = ? AND dim = ?",
                    key,
                ).fetchone()
                new[key] = int(row[0])
        return {k: known[k] if k in known else new[k] for k in keys}


def insert_batch(conn: sqlite3.Connection, mb: MappedBatch, ids: Interner) -> None:
    """Every row, counter, error group and rollup cell of ``mb``, inside the caller's transaction."""
    rid = ids.resource_ids(conn, mb.resources())
    names: set[str | None] = {row[2] for row in mb.logs}
    names.update(row[1] for row in mb.events)
    names.update(row[3] for row in mb.spans)
    names.update(row[1] for row in mb.metrics)
    for rows in (mb.logs, mb.events, mb.spans, mb.metrics, mb.errors):
        names.update(row[-3] for row in rows)  # users
    names.discard(None)
    nid: dict[str | None, int | None] = {None: None}
    if names:
        nid.update(ids.name_ids(conn, {n for n in names if n is not None}))
    sid: dict[str, int] = {}
    for session_id, (logs, errors, events, first, last, service, res) in mb.session_counts.items():
        row = conn.execute(
            _COUNTS, (session_id, service, rid[res], first, logs, errors, events, first, last)
        ).fetchone()
        sid[session_id] = int(row[0])
    tid: dict[str | None, int | None] = {None: None}
    if mb.traces:
        flat = [v for trace_id, (first, last) in mb.traces.items() for v in (trace_id, first, last)]
        for start, count in _row_chunks(conn, len(flat) // 3, 3):
            params = flat[start * 3 : (start + count) * 3]
            sql = _TRACES.format(values=_placeholders(3, count))
            tid.update((trace_id, int(number)) for number, trace_id in conn.execute(sql, params))
    if mb.sessions:
        conn.executemany(
            _SESSIONS,
            [
                (s[0], s[1], rid[s[2]], s[3], s[4], s[5], s[6], s[7], to_json(s[8]), s[3], s[4] or s[3])
                for s in mb.sessions
            ],
        )
    if mb.logs:
        _rows(
            conn,
            _LOGS,
            [
                (r[0], r[1], nid[r[2]], r[3], r[4], tid[r[5]], r[6], nid[r[7]], _sid(sid, r[8]), rid[r[9]])
                for r in mb.logs
            ],
            (4,),
        )
    if mb.events:
        _rows(
            conn,
            _EVENTS,
            [
                (r[0], nid[r[1]], r[2], tid[r[3]], r[4], nid[r[5]], _sid(sid, r[6]), rid[r[7]])
                for r in mb.events
            ],
            (2,),
        )
    if mb.spans:
        _insert_flat(conn, _SPANS, 13, _span_params(mb.spans, tid, nid, sid, rid))
    if mb.metrics:
        _rows(
            conn,
            _POINTS,
            [(r[0], nid[r[1]], *r[2:8], nid[r[8]], _sid(sid, r[9]), rid[r[10]]) for r in mb.metrics],
            (6, 7),
        )
    if mb.errors:
        gid = {}
        for fingerprint, (type_, title, first, last, count) in mb.error_groups.items():
            gid[fingerprint] = int(
                conn.execute(_GROUPS, (fingerprint, type_, title, first, last, count)).fetchone()[0]
            )
        # Bound parameters, not the JSON path: stacks go in compressed, as bytes (errors are few).
        conn.executemany(
            f"INSERT INTO {_ERRORS[0]} ({_ERRORS[1]}) VALUES ({', '.join('?' * 11)})",
            [
                (
                    gid[r[1]],
                    r[0],
                    r[2],
                    r[3],
                    pack_stack(r[4]),
                    None if r[5] is None else to_json(r[5]),
                    tid[r[6]],
                    r[7],
                    nid[r[8]],
                    _sid(sid, r[9]),
                    rid[r[10]],
                )
                for r in mb.errors
            ],
        )
    if mb.rollups:
        kid = ids.key_ids(conn, {key[2:] for key in mb.rollups})
        flat = [
            v
            for key, acc in mb.rollups.items()
            for v in (key[0], SERIES_CODE[key[2]], key[1], kid[key[2:]], *acc.row())
        ]
        for start, count in _row_chunks(conn, len(flat) // 13, 13):
            params = flat[start * 13 : (start + count) * 13]
            conn.execute(_ROLLUPS.format(values=_placeholders(13, count)), params)


_PACK_AT: Final = 256  # stacks shorter than this stay text


def pack_stack(stack: str) -> str | bytes:
    """A long stack as zlib-compressed bytes (tracebacks shrink about fourfold), a short one as text."""
    if len(stack) < _PACK_AT:
        return stack
    return zlib.compress(stack.encode("utf-8", "surrogatepass"), 6)


def _sid(sid: dict[str, int], session_id: str | None) -> int | None:
    return None if session_id is None else sid[session_id]


def _rows(
    conn: sqlite3.Connection, table: tuple[str, str], rows: list[tuple[Any, ...]], json_cols: tuple[int, ...]
) -> None:
    """Insert ``rows``; columns in ``json_cols`` hold objects or None and go in as their JSON text."""
    flat: list[Any] = []
    for r in rows:
        flat.extend(to_json(v) if i in json_cols and v is not None else v for i, v in enumerate(r))
    _insert_flat(conn, table, len(rows[0]), flat)


def _insert_flat(conn: sqlite3.Connection, table: tuple[str, str], width: int, flat: list[Any]) -> None:
    """Insert the rows of ``width`` columns laid end to end in ``flat``, with one multi-row
    ``INSERT ... VALUES`` per chunk of :func:`_row_chunks`."""
    name, columns = table
    for start, count in _row_chunks(conn, len(flat) // width, width):
        params = flat[start * width : (start + count) * width]
        sql = _values_sql(name, columns, width, count)
        try:
            conn.execute(sql, params)
        except sqlite3.ProgrammingError:
            # A value SQLite cannot bind (an object where a number or text belongs): stored by its
            # text, so one odd value costs only itself.
            conn.execute(sql, [v if v is None or type(v) in _BINDABLE else str(v) for v in params])


_BINDABLE: Final = frozenset({int, float, str, bytes})


def _span_params(
    spans: list[Any],
    tid: dict[str | None, int | None],
    nid: dict[str | None, int | None],
    sid: dict[str, int],
    rid: dict[Resource, int],
) -> list[Any]:
    """The parameters of the span rows, in ``_SPANS`` order: the OTLP receiver's hot path, one pass."""
    dumps = orjson.dumps
    options = _JSON_OPTIONS
    flat: list[Any] = []
    extend = flat.extend
    for r in spans:
        attrs, events, session = r[8], r[9], r[11]
        if attrs is None or type(attrs) is str:
            # A received span's row (SpanRow): its worker wrote the JSON (None: no attributes, so
            # no events either).
            a, e = attrs, events
        else:
            try:
                a = dumps(attrs, option=options).decode()
                e = None if events is None else dumps(events, option=options).decode()
            except (TypeError, ValueError):  # what orjson refuses, to_json's fallbacks keep
                a, e = _json_or_none(attrs), _json_or_none(events)
        extend(
            (
                tid[r[0]],
                r[1],
                r[2],
                nid[r[3]],
                r[4],
                r[5],
                r[6],
                r[7],
                a,
                e,
                nid[r[10]],
                None if session is None else sid[session],
                rid[r[12]],
            )
        )
    return flat


def _json_or_none(value: Any) -> str | None:
    return None if value is None else to_json(value)


# Rows in one statement at most.  Every statement size is a power of two up to this, so a connection
# prepares at most about ten sizes a table: Python's sqlite3 keeps each prepared statement in its
# cache, and one of a few thousand rows weighs a megabyte or more, so statements sized by each
# batch's row count grew a host program's writer to 245 MB where 28 MB do (batches of 1 to 3,000).
MAX_STATEMENT_ROWS: Final = 512


def _row_chunks(conn: sqlite3.Connection, rows: int, width: int) -> Iterator[tuple[int, int]]:
    """(first row, row count) pieces covering ``rows`` rows of ``width`` columns, in order: full
    pieces of the largest size, then the rest as descending powers of two (at most ten more)."""
    cap = min(MAX_STATEMENT_ROWS, max(1, _max_params(conn) // width))
    cap = 1 << (cap.bit_length() - 1)
    start = 0
    while rows - start >= cap:
        yield start, cap
        start += cap
    size = cap >> 1
    while start < rows:
        if rows - start >= size:
            yield start, size
            start += size
        size >>= 1


def _max_params(conn: sqlite3.Connection) -> int:
    # SQLite's limit on bound parameters in one statement (32766 since 3.32; 999 before).
    return min(conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER), 32766)


@functools.lru_cache(maxsize=256)
def _placeholders(width: int, count: int) -> str:
    """``(?, ?), (?, ?)`` for ``count`` rows of ``width`` columns."""
    return ", ".join(["(" + ", ".join("?" * width) + ")"] * count)


def _values_sql(table: str, columns: str, width: int, count: int) -> str:
    return f"INSERT INTO {table} ({columns}) VALUES {_placeholders(width, count)}"
