"""The SQL both SQL backends run for reads: the same tables and columns (``schema.V5_TABLES``), two
dialects.  Statements use ``?`` placeholders; PostgreSQL's backend swaps them for ``%s``.

Readers never see the table layout: :func:`rows_query` returns the export schema's fields
(``base.EXPORT_FIELDS``) and :func:`to_export` turns a row into its dict.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from clisight.store._aggregate import Measure, RollupPlan, bucket_seconds, measure_column
from clisight.store._model import SERIES_CODE, USAGE_FIELDS, from_json
from clisight.store.base import EXPORT_FIELDS, Selection
from clisight.types import PERFORMANCE, WARNING, severity_name


class Dialect:
    """SQLite's spelling; :class:`PostgresDialect` overrides what PostgreSQL spells differently."""

    name = "sqlite"

    def json_str(self, col: str, key: str) -> str:
        return f"json_extract({col}, '$.{key}')"

    def json_num(self, col: str, key: str) -> str:
        return (
            f"(CASE WHEN json_type({col}, '$.{key}') IN ('integer', 'real')"
            f" THEN json_extract({col}, '$.{key}') END)"
        )

    def json_is_false(self, col: str, key: str) -> str:
        return f"(json_type({col}, '$.{key}') = 'false')"

    def json_text_only(self, col: str, key: str) -> str:
        """The attribute when it is a non-empty string, else NULL (as ``_model`` reads names)."""
        return (
            f"(CASE WHEN json_type({col}, '$.{key}') = 'text' AND json_extract({col}, '$.{key}') <> ''"
            f" THEN json_extract({col}, '$.{key}') END)"
        )

    def greatest(self, a: str, b: str) -> str:
        return f"MAX({a}, {b})"

    def as_bigint(self, expr: str) -> str:
        """A text column holding an integer (a log cell's severity) as one."""
        return f"CAST({expr} AS BIGINT)"

    def like_ci(self, expr: str) -> str:
        return f"{expr} LIKE ? ESCAPE '\\'"

    def real(self, expr: str) -> str:
        # As REAL: SQLite's SUM over large integers raises "integer overflow".
        return f"CAST(({expr}) AS REAL)"

    def as_int(self, expr: str) -> str:
        return f"({expr})"


class PostgresDialect(Dialect):
    name = "postgresql"

    def json_str(self, col: str, key: str) -> str:
        return f"({col} ->> '{key}')"

    def json_num(self, col: str, key: str) -> str:
        return f"(CASE WHEN jsonb_typeof({col} -> '{key}') = 'number' THEN ({col} ->> '{key}')::float8 END)"

    def json_is_false(self, col: str, key: str) -> str:
        return f"(({col} -> '{key}') = 'false'::jsonb)"

    def json_text_only(self, col: str, key: str) -> str:
        return (
            f"(CASE WHEN jsonb_typeof({col} -> '{key}') = 'string' AND ({col} ->> '{key}') <> ''"
            f" THEN ({col} ->> '{key}') END)"
        )

    def greatest(self, a: str, b: str) -> str:
        return f"GREATEST({a}, {b})"

    def as_bigint(self, expr: str) -> str:
        # Guarded: PostgreSQL may evaluate it before the series condition, on any key's dim.  (No
        # question mark in the pattern: `?` is the placeholder.)
        return f"(CASE WHEN {expr} ~ '^-{{0,1}}[0-9]{{1,18}}$' THEN ({expr})::bigint END)"

    def like_ci(self, expr: str) -> str:
        return f"{expr} ILIKE ? ESCAPE '\\'"

    def real(self, expr: str) -> str:
        return f"(({expr})::float8)"

    def as_int(self, expr: str) -> str:
        return f"(({expr})::int)"


SQLITE: Final = Dialect()
POSTGRES: Final = PostgresDialect()

# kind -> (table, time column, name column or None, text column or None)
TABLES: Final[dict[str, tuple[str, str, str | None, str | None]]] = {
    "log": ("logs", "time_ns", None, "message"),
    "event": ("events", "time_ns", "name_id", None),
    "span": ("spans", "start_ns", "name_id", None),
    "metric": ("metric_points", "time_ns", "name_id", None),
    "error": ("errors", "time_ns", None, "message"),
    "session": ("sessions", "start_ns", None, None),
    "error_group": ("error_groups", "last_seen_ns", None, None),
}
RECORD_TABLES: Final = ("logs", "events", "spans", "metric_points", "errors", "sessions")
_RES = "r.service, r.version, r.host, r.pid"
_SELECT: Final[dict[str, str]] = {
    "log": (f"t.id, t.time_ns, t.severity, n.value, t.message, t.attributes, {_RES}, s.id, tr.id, t.span_id"),
    "event": f"t.id, t.time_ns, n.value, t.attributes, {_RES}, s.id, tr.id, t.span_id",
    "span": (
        "t.id, tr.id, t.span_id, t.parent_span_id, n.value, t.span_kind, t.start_ns, t.end_ns,"
        f" t.status, t.attributes, t.events, {_RES}, s.id"
    ),
    "metric": (
        "t.id, t.time_ns, n.value, t.type, t.unit, t.temporality, t.value, t.histogram, t.attributes,"
        f" {_RES}, s.id"
    ),
    "error": (
        f"t.id, t.time_ns, t.type, t.message, t.stack, g.fingerprint, t.attributes, {_RES}, s.id,"
        " tr.id, t.span_id"
    ),
    "session": (
        "t.sid, t.id, t.service, t.start_ns, t.end_ns, t.exit_code, t.command, t.user_id, t.attributes,"
        " t.log_count, t.error_count, t.event_count"
    ),
    "error_group": "t.id, t.fingerprint, t.type, t.title, t.status, t.count, t.first_seen_ns, t.last_seen_ns",
}
_NAME_JOIN = {"log": "t.component_id", "event": "t.name_id", "span": "t.name_id", "metric": "t.name_id"}
_JSON_FIELDS: Final = frozenset({"attributes", "events", "histogram"})


def _from(kind: str) -> str:
    table = TABLES[kind][0]
    if kind in ("session", "error_group"):
        return f"{table} t"
    parts = [f"{table} t", "JOIN resources r ON r.id = t.resource_id"]
    if kind in _NAME_JOIN:
        parts.append(f"JOIN names n ON n.id = {_NAME_JOIN[kind]}")
    if kind == "error":
        parts.append("JOIN error_groups g ON g.id = t.group_id")
    parts.append("LEFT JOIN sessions s ON s.sid = t.session")
    parts.append("LEFT JOIN names u ON u.id = t.user_id")
    if kind != "metric":
        parts.append("LEFT JOIN traces tr ON tr.tid = t.trace")
    return " ".join(parts)


@dataclass(frozen=True, slots=True)
class SessionBounds:
    """A session (or a trace) resolved to its row number and the time span of its records."""

    sid: int
    first_ns: int
    last_ns: int


@dataclass(frozen=True, slots=True)
class Resolved:
    """The session and trace a selection names, resolved (None: not asked; MISSING: no such one)."""

    session: SessionBounds | None = None
    trace: SessionBounds | None = None


def where(
    d: Dialect, kind: str, sel: Selection, found: Resolved, time_col: str | None = None
) -> tuple[list[str], list[Any]]:
    """Conditions (over alias ``t``) and parameters for ``sel`` on ``kind``'s table."""
    _, tcol, name_col, text_col = TABLES[kind]
    tcol = time_col or f"t.{tcol}"
    clauses: list[str] = []
    params: list[Any] = []
    if sel.since_ns is not None:
        clauses.append(f"{tcol} >= ?")
        params.append(sel.since_ns)
    if sel.until_ns is not None:
        clauses.append(f"{tcol} <= ?")
        params.append(sel.until_ns)
    if kind == "error_group":
        if sel.name is not None:
            clauses.append("t.fingerprint = ?")
            params.append(sel.name)
        return clauses, params
    if sel.service is not None:
        if kind == "session":
            clauses.append("t.service = ?")
        else:
            clauses.append("t.resource_id IN (SELECT id FROM resources WHERE service = ?)")
        params.append(sel.service)
    if sel.session_id is not None:
        if kind == "session":
            clauses.append("t.id = ?")
            params.append(sel.session_id)
        elif found.session is None:
            clauses.append("1 = 0")
        else:
            # The session's time span narrows the scan to its minutes on the time index.
            clauses.append(f"t.session = ? AND {tcol} >= ? AND {tcol} <= ?")
            params += [found.session.sid, found.session.first_ns, found.session.last_ns]
    if kind == "log":
        if sel.min_severity is not None:
            clauses.append("t.severity >= ?")
            params.append(sel.min_severity)
        if sel.component is not None:
            clauses.append("t.component_id = (SELECT id FROM names WHERE value = ?)")
            params.append(sel.component)
    if sel.name is not None:
        if name_col is not None:
            clauses.append(f"t.{name_col} = (SELECT id FROM names WHERE value = ?)")
            params.append(sel.name)
        elif kind == "error":
            clauses.append("t.type = ?")
            params.append(sel.name)
    if text_col is not None and sel.text:
        clauses.append(d.like_ci(f"t.{text_col}"))
        params.append(like_pattern(sel.text))
    if sel.trace_id is not None:
        if kind not in ("log", "event", "span", "error") or found.trace is None:
            clauses.append("1 = 0")
        else:
            clauses.append(f"t.trace = ? AND {tcol} >= ? AND {tcol} <= ?")
            params += [found.trace.sid, found.trace.first_ns, found.trace.last_ns]
    return clauses, params


def like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def rows_query(
    d: Dialect,
    kind: str,
    sel: Selection,
    found: Resolved,
    cursor: str | None,
    limit: int,
    newest_first: bool,
) -> tuple[str, list[Any]]:
    """A page of ``kind``: the first column is the row id, then the export fields but ``id``."""
    if kind not in TABLES:
        raise ValueError(f"unknown record kind {kind!r}: expected one of {', '.join(TABLES)}")
    clauses, params = where(d, kind, sel, found)
    idcol = "t.sid" if kind == "session" else "t.id"
    tcol = f"t.{TABLES[kind][1]}"
    if newest_first:
        if cursor is not None:
            moment, last = _parse_cursor(cursor, 2)
            clauses.append(f"({tcol} < ? OR ({tcol} = ? AND {idcol} < ?))")
            params += [moment, moment, last]
        order = f"{tcol} DESC, {idcol} DESC"
    else:
        if cursor is not None:
            (last,) = _parse_cursor(cursor, 1)
            clauses.append(f"{idcol} > ?")
            params.append(last)
        order = idcol
    condition = " AND ".join(clauses) or "1 = 1"
    user = ", u.value" if kind in _NAME_JOIN or kind == "error" else ""
    sql = f"SELECT {_SELECT[kind]}{user} FROM {_from(kind)} WHERE {condition} ORDER BY {order} LIMIT ?"
    return sql, [*params, limit]


def _parse_cursor(cursor: str, parts: int) -> list[int]:
    try:
        values = [int(p) for p in cursor.split(":")]
    except ValueError:
        values = []
    if len(values) != parts:
        raise ValueError(f"bad cursor {cursor!r}: pass back a cursor a page of the same order returned")
    return values


def next_cursor(kind: str, row: Sequence[Any], newest_first: bool) -> str:
    """The cursor after ``row`` (as :func:`rows_query` selected it)."""
    if not newest_first:
        return str(row[0])
    time_index = {"span": 6, "session": 3, "error_group": 7}.get(kind, 1)
    moment = row[time_index] if row[time_index] is not None else 0
    return f"{moment}:{row[0]}"


def to_export(kind: str, row: Sequence[Any]) -> dict[str, Any]:
    """A selected row (without its leading row id) as its export dict."""
    fields = EXPORT_FIELDS[kind]
    if kind == "session":
        values = list(row[1:])
        item = dict(zip(fields, values, strict=True))
        item["attributes"] = from_json(item["attributes"], {})
        return item
    if kind == "error_group":
        return dict(zip(fields, row[1:], strict=True))
    values = list(row)
    user = values.pop()  # the user_id attribute, stored in a column of its own
    if kind == "log":
        values.insert(3, severity_name(values[2]))
    item = dict(zip(fields, values, strict=True))
    for key in _JSON_FIELDS:
        if key in item:
            item[key] = from_json(item[key], {} if key == "attributes" else [] if key == "events" else None)
    if user is not None:
        item["attributes"]["user_id"] = user
    if kind == "error" and isinstance(item["stack"], bytes):
        item["stack"] = zlib.decompress(item["stack"]).decode("utf-8", "surrogatepass")
    return item


# -- aggregates ---------------------------------------------------------------------------------
def _operation_source(d: Dialect, sel: Selection, found: Resolved) -> tuple[str, list[Any]]:
    """Spans and PERFORMANCE logs with a duration as one relation ``t`` of operations.

    The name is not filtered here: an operation's name is computed, and the caller filters on it.
    """
    span_where, span_params = where(d, "span", _no_name(sel), found)
    log_where, log_params = where(d, "log", _no_name(sel), found)
    duration = d.json_num("t.attributes", "duration")
    operation = d.json_text_only("t.attributes", "operation")
    spans = (
        "SELECT t.start_ns AS time, t.resource_id, n.value AS name,"
        # A span that ends before it starts lasted 0 s, as in the rollups (_model).
        f" {d.real(d.greatest('t.end_ns - t.start_ns', '0') + ' / 1e9')} AS duration,"
        f" {d.as_int('t.status = 2 OR t.status >= 17')} AS failed, t.session"
        " FROM spans t JOIN names n ON n.id = t.name_id"
        f" WHERE {' AND '.join([*span_where, 't.end_ns IS NOT NULL'])}"
    )
    logs = (
        f"SELECT t.time_ns AS time, t.resource_id, COALESCE({operation}, t.message) AS name,"
        f" {duration} AS duration, {d.as_int(d.json_is_false('t.attributes', 'success'))} AS failed,"
        " t.session FROM logs t"
        f" WHERE {' AND '.join([*log_where, 't.severity >= ?', 't.severity < ?', f'{duration} IS NOT NULL'])}"
    )
    params = [*span_params, *log_params, PERFORMANCE, WARNING]
    return f"({spans} UNION ALL {logs}) t JOIN resources r ON r.id = t.resource_id", params


def _no_name(sel: Selection) -> Selection:
    return Selection(
        sel.since_ns, sel.until_ns, sel.service, sel.session_id, None, None, None, None, sel.trace_id
    )


def _field_exprs(d: Dialect, kind: str) -> dict[str, str]:
    """SQL for each field of an aggregate kind, over the relation :func:`_agg_source` builds."""
    if kind == "log":
        return {
            "service": "r.service",
            "component": "n.value",
            "severity": "t.severity",
            "message": "t.message",
            "session_id": "s.id",
            "time": "t.time_ns",
        }
    if kind == "event":
        return {
            "service": "r.service",
            "name": "n.value",
            "model": f"COALESCE({d.json_text_only('t.attributes', 'model')}, '')",
            "session_id": "s.id",
            "time": "t.time_ns",
        } | {f: d.json_num("t.attributes", f) for f in USAGE_FIELDS}
    if kind == "operation":
        return {
            "service": "r.service",
            "name": "t.name",
            "session_id": "s.id",
            "time": "t.time",
            "duration": "t.duration",
            "failed": "t.failed",
        }
    if kind == "metric":
        return {
            "service": "r.service",
            "name": "n.value",
            "session_id": "s.id",
            "time": "t.time_ns",
            "value": "t.value",
        }
    if kind == "error":
        return {
            "service": "r.service",
            "type": "t.type",
            "fingerprint": "g.fingerprint",
            "session_id": "s.id",
            "time": "t.time_ns",
        }
    return {
        "service": "t.service",
        "command": "t.command",
        "user_id": "t.user_id",
        "time": "t.start_ns",
        "duration": d.real("(t.end_ns - t.start_ns) / 1e9"),
        "failed": d.as_int("t.exit_code IS NOT NULL AND t.exit_code <> 0"),
        "exit_code": "t.exit_code",
    }


def _agg_source(d: Dialect, kind: str, sel: Selection, found: Resolved) -> tuple[str, list[str], list[Any]]:
    """FROM clause, conditions and parameters for raw aggregation of ``kind``."""
    if kind == "operation":
        relation, params = _operation_source(d, sel, found)
        clauses = []
        if sel.name is not None:
            clauses.append("t.name = ?")
            params.append(sel.name)
        return relation + " LEFT JOIN sessions s ON s.sid = t.session", clauses, params
    clauses, params = where(d, kind, sel, found)
    return _from(kind), clauses, params


def raw_aggregate_query(
    d: Dialect,
    kind: str,
    sel: Selection,
    found: Resolved,
    group_by: Sequence[str],
    measures: Sequence[Measure],
) -> tuple[str, list[Any], bool]:
    """SQL for an aggregate over raw rows.  With ``python`` (third item) True, the query returns one
    row per record (group fields, then the fields measures need) for ``python_aggregate``."""
    exprs = _field_exprs(d, kind)
    source, clauses, params = _agg_source(d, kind, sel, found)
    groups = [_group_expr(exprs, g) for g in group_by]
    condition = " AND ".join(clauses) or "1 = 1"
    # Quantiles, and a log message's shape (computed in Python), take one row per record.
    if any(m.op == "quantiles" for m in measures) or (kind == "log" and "message" in group_by):
        cols = [*groups, *(exprs[f] for f in python_fields(measures))]
        return f"SELECT {', '.join(cols)} FROM {source} WHERE {condition}", params, True
    cols = [*groups, *(_measure_expr(d, exprs, m) for m in measures)]
    sql = f"SELECT {', '.join(cols)} FROM {source} WHERE {condition}"
    if groups:
        sql += " GROUP BY " + ", ".join(str(i + 1) for i in range(len(groups)))
    return sql, params, False


def python_fields(measures: Sequence[Measure]) -> list[str]:
    """The value fields a ``python`` raw query returns after its group fields, in order."""
    return sorted({m.field for m in measures if m.field} | ({"failed"} if _needs_failed(measures) else set()))


def _needs_failed(measures: Sequence[Measure]) -> bool:
    return any(m.op == "errors" for m in measures)


def _group_expr(exprs: dict[str, str], group: str) -> str:
    if group.startswith("bucket:"):
        width = bucket_seconds(group) * 1_000_000_000
        return f"(({exprs['time']}) / {width}) * {width}"
    return exprs[group]


def _measure_expr(d: Dialect, exprs: dict[str, str], m: Measure) -> str:
    if m.op == "count":
        return "COUNT(*)"
    if m.op == "errors":
        return f"COALESCE(SUM({exprs['failed']}), 0)"
    expr = exprs[m.field]
    if m.op == "sum":
        return f"COALESCE(SUM({d.real(expr)}), 0)"
    if m.op == "distinct":
        return f"COUNT(DISTINCT {expr})"
    return f"{m.op.upper()}({expr})"


def rollup_query(
    d: Dialect, plan: RollupPlan, group_by: Sequence[str], measures: Sequence[Measure]
) -> tuple[str, list[Any], str | None]:
    """SQL over ``rollups`` (cells) and ``rollup_keys`` (what they count) for the plan's rollup
    segments: grouped measures, and (when quantiles are asked) a second query returning each cell's
    group fields and sketch, merged in Python.  Both take the same parameters."""
    clauses = ["r.series = ?"]
    params: list[Any] = [SERIES_CODE[plan.series]]
    for column, op, value in plan.filters:
        if op == ">=int":
            clauses.append(f"{d.as_bigint('k.' + column)} >= ?")
        else:
            clauses.append(f"k.{column} = ?")
        params.append(value)
    ranges = []
    for resolution, start, end in plan.segments:
        if resolution:
            ranges.append("(r.res = ? AND r.bucket_ns >= ? AND r.bucket_ns < ?)")
            params += [resolution, start, end]
    if not ranges:
        raise ValueError("a rollup query needs at least one rollup segment in its plan")
    clauses.append("(" + " OR ".join(ranges) + ")")
    groups = []
    for g in group_by:
        column = plan.columns[g]
        if column == "bucket":
            width = bucket_seconds(g) * 1_000_000_000
            groups.append(f"(r.bucket_ns / {width}) * {width}")
        elif g == "severity":
            groups.append(d.as_bigint("k.dim"))
        else:
            groups.append(f"k.{column}")
    cols = list(groups)
    for m in measures:
        source = measure_column(plan.series, m.text)
        assert source is not None
        if source == "sketch":
            cols.append("NULL")
        elif source.startswith("sums."):
            cols.append(f"COALESCE(SUM({d.json_num('r.sums', source[5:])}), 0)")
        elif source in ("count", "errors", "sum"):
            cols.append(f"SUM(r.{source})")
        elif source in ("min", "first_ns"):
            cols.append(f"MIN(r.{source})")
        else:
            cols.append(f"MAX(r.{source})")
    cols.append("COUNT(*)")  # cells read: none means the request matched nothing here
    condition = " AND ".join(clauses)
    source_sql = "rollups r JOIN rollup_keys k ON k.id = r.key_id"
    sql = f"SELECT {', '.join(cols)} FROM {source_sql} WHERE {condition}"
    if groups:
        sql += " GROUP BY " + ", ".join(str(i + 1) for i in range(len(groups)))
    sketch_sql = None
    if any(m.op == "quantiles" for m in measures):
        sketch_sql = (
            f"SELECT {', '.join([*groups, 'r.sketch'])} FROM {source_sql}"
            f" WHERE {condition} AND r.sketch IS NOT NULL"
        )
    return sql, params, sketch_sql
