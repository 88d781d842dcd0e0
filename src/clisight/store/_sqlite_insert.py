"""How each kind of record becomes rows in the SQLite store (one batch, inside one transaction)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from clisight.store._records import error_fingerprint, error_title, stack_text, to_json
from clisight.types import ERROR_LEVEL, Record, Resource, severity_name


def insert_records(
    conn: sqlite3.Connection, records: Sequence[Record], resource_id: Callable[[Resource], int]
) -> None:
    """Insert one batch, each kind into its table, inside the caller's transaction."""
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
                    to_json(rec.attributes),
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
                    to_json(rec.attributes),
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
                    to_json(attrs),
                    to_json(attrs.get("span.events", [])),
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
                    None if histogram is None else to_json(histogram),
                    to_json(attrs),
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
        conn.executemany(
            "INSERT INTO logs (time_ns, severity, severity_text, component, message, attributes,"
            " trace_id, span_id, session_id, resource_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            logs,
        )
    if events:
        conn.executemany(
            "INSERT INTO events (time_ns, name, attributes, trace_id, span_id, session_id, resource_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            events,
        )
    if spans:
        conn.executemany(
            "INSERT INTO spans (trace_id, span_id, parent_span_id, name, kind, start_ns, end_ns, status,"
            " attributes, events, session_id, resource_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            spans,
        )
    if points:
        conn.executemany(
            "INSERT INTO metric_points (time_ns, name, type, unit, temporality, value, histogram,"
            " attributes, session_id, resource_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            points,
        )
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
