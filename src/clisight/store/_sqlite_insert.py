"""How each kind of record becomes rows in the SQLite store (one batch, inside one transaction)."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

import orjson

from clisight.store._records import error_fingerprint, error_title, stack_text, to_json
from clisight.types import ERROR_LEVEL, Record, Resource, severity_name

_LOGS = (
    "logs",
    "time_ns, severity, severity_text, component, message, attributes, trace_id, span_id, session_id,"
    " resource_id",
)
_EVENTS = ("events", "time_ns, name, attributes, trace_id, span_id, session_id, resource_id")
_SPANS = (
    "spans",
    "trace_id, span_id, parent_span_id, name, kind, start_ns, end_ns, status, attributes, events,"
    " session_id, resource_id",
)
_POINTS = (
    "metric_points",
    "time_ns, name, type, unit, temporality, value, histogram, attributes, session_id, resource_id",
)
# json_each and ->> arrived in SQLite 3.38; older libraries take the executemany path.
_BULK = sqlite3.sqlite_version_info >= (3, 38, 0)
_JSON_OPTIONS = orjson.OPT_NON_STR_KEYS


def _bulk_insert(
    conn: sqlite3.Connection, table: tuple[str, str], rows: list[tuple[Any, ...]], json_cols: tuple[int, ...]
) -> None:
    """Insert ``rows`` in one statement that reads them from one JSON array.

    ``executemany`` releases and re-takes the GIL for every row; while a host thread keeps the
    interpreter busy, each re-take waits a whole switch interval (5 ms), and the writer stalls at
    a few hundred rows a second.  One statement per batch releases the GIL once.  Columns in
    ``json_cols`` hold objects; ``->>`` stores them as their JSON text, and strings as themselves.
    """
    name, columns = table
    width = len(rows[0])
    blob = _rows_json(rows, json_cols) if _BULK else b""
    if not _BULK or _NUL in blob:
        # SQLite's ->> stops a text value at its first NUL: rows with one go through bound parameters.
        fixed = [
            tuple(to_json(v) if i in json_cols and v is not None else v for i, v in enumerate(row))
            for row in rows
        ]
        marks = ", ".join("?" * width)
        conn.executemany(f"INSERT INTO {name} ({columns}) VALUES ({marks})", fixed)
        return
    picks = ", ".join(f"value->>{i}" for i in range(width))
    conn.execute(f"INSERT INTO {name} ({columns}) SELECT {picks} FROM json_each(?)", (blob,))


def _rows_json(rows: list[tuple[Any, ...]], json_cols: tuple[int, ...]) -> bytes:
    try:
        return orjson.dumps(rows, default=str, option=_JSON_OPTIONS)
    except (TypeError, ValueError):
        # One odd value (an integer beyond 64 bits, a cycle...) must not lose the batch: serialise
        # the JSON columns one by one, with to_json's fallbacks, and send them as text.  What is
        # still refused raises, and the writer isolates the record that carries it.
        return orjson.dumps(
            [
                [to_json(v) if i in json_cols and v is not None else v for i, v in enumerate(row)]
                for row in rows
            ],
            default=str,
            option=_JSON_OPTIONS,
        )


# A NUL character as orjson writes it in a JSON string (a literal backslash-u0000 in the text gives
# a false positive, which only sends the batch down the slower exact path).
_NUL = b"\\u0000"

# The fast path: logs and events of one resource, straight from the batch's JSON, no Python per row.
# Row layout of the JSON (record fields 0-5 and 7-9): kind, time_ns, name, body, severity,
# attributes, session_id, trace_id, span_id.
_ROW = itemgetter(0, 1, 2, 3, 4, 5, 7, 8, 9)
_KIND, _TIME, _SEVERITY, _RESOURCE, _SESSION = (itemgetter(i) for i in (0, 1, 4, 6, 7))
_SEVERITY_TEXT = (
    "CASE value->>4 WHEN 9 THEN 'INFO' WHEN 5 THEN 'DEBUG' WHEN 13 THEN 'WARNING' WHEN 17 THEN 'ERROR'"
    " WHEN 11 THEN 'PERFORMANCE' WHEN 21 THEN 'CRITICAL' ELSE"
    " CASE WHEN value->>4 >= 21 THEN 'CRITICAL' WHEN value->>4 >= 17 THEN 'ERROR'"
    " WHEN value->>4 >= 13 THEN 'WARNING' WHEN value->>4 >= 11 THEN 'PERFORMANCE'"
    " WHEN value->>4 >= 9 THEN 'INFO' WHEN value->>4 >= 5 THEN 'DEBUG' ELSE 'TRACE' END END"
)
_FAST_LOGS = (
    "INSERT INTO logs (time_ns, severity, severity_text, component, message, attributes, trace_id, span_id,"
    f" session_id, resource_id) SELECT value->>1, value->>4, {_SEVERITY_TEXT}, value->>2, value->>3,"
    " value->>5, value->>7, value->>8, value->>6, ?1 FROM json_each(?2) WHERE value->>0 = 'log'"
)
_FAST_EVENTS = (
    "INSERT INTO events (time_ns, name, attributes, trace_id, span_id, session_id, resource_id)"
    " SELECT value->>1, value->>2, value->>5, value->>7, value->>8, value->>6, ?1 FROM json_each(?2)"
    " WHERE value->>0 = 'event'"
)
_COUNTS = (
    "INSERT INTO sessions (id, service, resource_id, start_ns, log_count, error_count, event_count)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
    " log_count = sessions.log_count + excluded.log_count,"
    " error_count = sessions.error_count + excluded.error_count,"
    " event_count = sessions.event_count + excluded.event_count,"
    " start_ns = COALESCE(sessions.start_ns, excluded.start_ns)"
)
_FAST_KINDS = frozenset({"log", "event"})


def insert_records(
    conn: sqlite3.Connection, records: Sequence[Record], resource_id: Callable[[Resource], int]
) -> None:
    """Insert one batch, each kind into its table, inside the caller's transaction.

    Logs and events (nearly every record) of a batch from one resource take the fast path: the batch
    is serialised once by orjson and SQLite reads the rows from that JSON, one statement per table
    (so one GIL release per table, not per row), with only a light per-record pass in Python for
    the session counts.  Everything else, and batches that mix resources, take the general path.
    """
    if _BULK and _insert_fast(conn, records, resource_id):
        return
    _insert_general(conn, records, resource_id)


def _insert_fast(
    conn: sqlite3.Connection, records: Sequence[Record], resource_id: Callable[[Resource], int]
) -> bool:
    """The fast path; False (having written nothing) when the batch does not qualify.

    The checks and counts run as C-level passes (``map`` over ``itemgetter``): the writer shares the
    GIL with the host program, so every microsecond of Python per record here is one the caller loses.
    """
    kinds = Counter(map(_KIND, records))
    if not kinds.keys() <= _FAST_KINDS or len(set(map(id, map(_RESOURCE, records)))) != 1:
        return False
    try:
        blob = orjson.dumps(list(map(_ROW, records)), default=str, option=_JSON_OPTIONS)
    except (TypeError, ValueError):
        return False  # an attribute orjson refuses: the general path has per-value fallbacks
    if _NUL in blob:
        return False  # SQLite's ->> would cut a text at its NUL; the general path binds it whole
    first = records[0].resource
    rid = resource_id(first)
    n_events = kinds["event"]
    if n_events < len(records):
        conn.execute(_FAST_LOGS, (rid, blob))
    if n_events:
        conn.execute(_FAST_EVENTS, (rid, blob))
    sessions = set(map(_SESSION, records))
    if len(sessions) == 1:
        # One session (the usual batch): its counts are whole-batch counts.
        errors = (
            sum(1 for s in map(_SEVERITY, records) if s >= ERROR_LEVEL)
            if max(map(_SEVERITY, records)) >= ERROR_LEVEL
            else 0
        )
        sid = sessions.pop()
        counts = (
            {}
            if sid is None
            else {sid: [len(records) - n_events, errors, n_events, min(map(_TIME, records))]}
        )
    else:
        counts = _session_counts(records)
    if counts:
        service = first.service
        conn.executemany(_COUNTS, [(sid, service, rid, c[3], c[0], c[1], c[2]) for sid, c in counts.items()])
    return True


def _session_counts(records: Sequence[Record]) -> dict[str, list[int]]:
    """session id -> [logs, errors, events, earliest time] for logs and events."""
    counts: dict[str, list[int]] = {}
    for r in records:
        sid = r.session_id
        if sid is None:
            continue
        entry = counts.get(sid)
        if entry is None:
            entry = counts[sid] = [0, 0, 0, r.time_ns]
        elif r.time_ns < entry[3]:
            entry[3] = r.time_ns
        if r.kind == "log":
            entry[0] += 1
            entry[1] += r.severity >= ERROR_LEVEL
        else:
            entry[2] += 1
    return counts


def _insert_general(
    conn: sqlite3.Connection, records: Sequence[Record], resource_id: Callable[[Resource], int]
) -> None:
    logs: list[tuple[Any, ...]] = []
    events: list[tuple[Any, ...]] = []
    spans: list[tuple[Any, ...]] = []
    points: list[tuple[Any, ...]] = []
    sessions: list[tuple[Any, ...]] = []
    errors: list[tuple[Record, int]] = []
    # session id -> [logs, errors, events, earliest time, service, resource id]
    counts: dict[str, list[Any]] = {}
    for rec in records:
        rid = resource_id(rec.resource)
        kind = rec.kind
        if kind == "log":
            logs.append(
                (
                    rec.time_ns,
                    rec.severity,
                    severity_name(rec.severity),
                    rec.name,
                    rec.body,
                    rec.attributes,
                    rec.trace_id,
                    rec.span_id,
                    rec.session_id,
                    rid,
                )
            )
        elif kind == "event":
            events.append(
                (
                    rec.time_ns,
                    rec.name,
                    rec.attributes,
                    rec.trace_id,
                    rec.span_id,
                    rec.session_id,
                    rid,
                )
            )
        elif kind == "span":
            attrs = rec.attributes
            spans.append(
                (
                    rec.trace_id,
                    rec.span_id,
                    rec.parent_span_id,
                    rec.name,
                    str(attrs.get("span.kind", "")),
                    rec.time_ns,
                    rec.end_ns,
                    rec.severity,
                    attrs,
                    attrs.get("span.events", []),
                    rec.session_id,
                    rid,
                )
            )
        elif kind == "metric":
            attrs = rec.attributes
            histogram = attrs.get("histogram")
            points.append(
                (
                    rec.time_ns,
                    rec.name,
                    str(attrs.get("type", "gauge")),
                    str(attrs.get("unit", "")),
                    str(attrs.get("temporality", "")),
                    rec.value,
                    histogram,
                    attrs,
                    rec.session_id,
                    rid,
                )
            )
        elif kind == "error":
            errors.append((rec, rid))
        elif kind == "session":
            attrs = dict(rec.attributes)
            exit_code = attrs.pop("exit_code", None)
            command = attrs.pop("command", None)
            user_id = attrs.pop("user_id", None)
            sessions.append(
                (
                    rec.session_id or rec.name,
                    rec.resource.service,
                    rid,
                    rec.time_ns,
                    rec.end_ns,
                    exit_code if isinstance(exit_code, int) else None,
                    None if command is None else str(command),
                    None if user_id is None else str(user_id),
                    to_json(attrs),
                )
            )
            continue
        else:
            continue
        if rec.session_id is not None:
            entry = counts.get(rec.session_id)
            if entry is None:
                entry = counts[rec.session_id] = [0, 0, 0, rec.time_ns, rec.resource.service, rid]
            if kind == "log":
                entry[0] += 1
                entry[1] += rec.severity >= ERROR_LEVEL
            elif kind == "error":
                entry[1] += 1
            elif kind == "event":
                entry[2] += 1
            entry[3] = min(entry[3], rec.time_ns)

    if logs:
        _bulk_insert(conn, _LOGS, logs, (5,))
    if events:
        _bulk_insert(conn, _EVENTS, events, (2,))
    if spans:
        _bulk_insert(conn, _SPANS, spans, (8, 9))
    if points:
        _bulk_insert(conn, _POINTS, points, (6, 7))
    for rec, rid in errors:
        _insert_error(conn, rec, rid)
    if sessions:
        # A later record for the same session fills in what the earlier one did not know.
        conn.executemany(
            "INSERT INTO sessions (id, service, resource_id, start_ns, end_ns, exit_code, command, user_id,"
            " attributes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
            " service = excluded.service, resource_id = excluded.resource_id,"
            " start_ns = excluded.start_ns, end_ns = COALESCE(excluded.end_ns, sessions.end_ns),"
            " exit_code = COALESCE(excluded.exit_code, sessions.exit_code),"
            " command = COALESCE(excluded.command, sessions.command),"
            " user_id = COALESCE(excluded.user_id, sessions.user_id),"
            " attributes = json_patch(sessions.attributes, excluded.attributes)",
            sessions,
        )
    if counts:
        conn.executemany(
            "INSERT INTO sessions (id, service, resource_id, start_ns, log_count, error_count, event_count)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
            " log_count = sessions.log_count + excluded.log_count,"
            " error_count = sessions.error_count + excluded.error_count,"
            " event_count = sessions.event_count + excluded.event_count,"
            " start_ns = COALESCE(sessions.start_ns, excluded.start_ns)",
            [(sid, c[4], c[5], c[3], c[0], c[1], c[2]) for sid, c in counts.items()],
        )


def _insert_error(conn: sqlite3.Connection, rec: Record, rid: int) -> None:
    attrs = rec.attributes
    stack = stack_text(attrs.get("stack"))
    given = attrs.get("fingerprint")
    fingerprint = given if isinstance(given, str) and given else error_fingerprint(rec.name, rec.body, stack)
    row = conn.execute(
        "INSERT INTO error_groups (fingerprint, type, title, first_seen_ns, last_seen_ns, count)"
        " VALUES (?, ?, ?, ?, ?, 1) ON CONFLICT (fingerprint) DO UPDATE SET"
        " first_seen_ns = MIN(error_groups.first_seen_ns, excluded.first_seen_ns),"
        " last_seen_ns = MAX(error_groups.last_seen_ns, excluded.last_seen_ns),"
        " count = error_groups.count + 1 RETURNING id",
        (fingerprint, rec.name, error_title(rec.name, rec.body), rec.time_ns, rec.time_ns),
    ).fetchone()
    rest = {k: v for k, v in attrs.items() if k not in ("stack", "fingerprint")}
    conn.execute(
        "INSERT INTO errors (group_id, time_ns, type, message, stack, attributes, trace_id, span_id,"
        " session_id, resource_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            row[0],
            rec.time_ns,
            rec.name,
            rec.body,
            stack,
            to_json(rest),
            rec.trace_id,
            rec.span_id,
            rec.session_id,
            rid,
        ),
    )
