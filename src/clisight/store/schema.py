"""The store schema as numbered migrations.

Migration ``N`` is ``MIGRATIONS[N - 1]``: a tuple of SQL statements applied once, in one
transaction, and recorded in ``schema_version`` with the time it was applied.  Never edit a
released migration; append a new one.  Every migration is tested from every earlier version.

The SQL is written in the subset SQLite and PostgreSQL share where that costs nothing; a
PostgreSQL backend keeps its own list with the same numbering.
"""

from __future__ import annotations

from typing import Final

# The bookkeeping table exists before any migration runs.
VERSION_TABLE: Final = (
    "CREATE TABLE IF NOT EXISTS schema_version ("
    " version INTEGER PRIMARY KEY,"
    " applied_ns INTEGER NOT NULL,"
    " description TEXT NOT NULL DEFAULT '')"
)

_V1_CORE: Final = (
    # One row per distinct producer; records point at it instead of repeating five strings.
    """CREATE TABLE resources (
        id INTEGER PRIMARY KEY,
        service TEXT NOT NULL,
        version TEXT NOT NULL DEFAULT '',
        host TEXT NOT NULL DEFAULT '',
        pid INTEGER NOT NULL DEFAULT 0,
        sdk TEXT NOT NULL DEFAULT '',
        UNIQUE (service, version, host, pid, sdk))""",
    """CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        service TEXT NOT NULL DEFAULT '',
        resource_id INTEGER REFERENCES resources (id),
        start_ns INTEGER,
        end_ns INTEGER,
        exit_code INTEGER,
        command TEXT,
        user_id TEXT,
        attributes TEXT NOT NULL DEFAULT '{}',
        log_count INTEGER NOT NULL DEFAULT 0,
        error_count INTEGER NOT NULL DEFAULT 0,
        event_count INTEGER NOT NULL DEFAULT 0)""",
    "CREATE INDEX sessions_start ON sessions (start_ns)",
    "CREATE INDEX sessions_service ON sessions (service, start_ns)",
    # AUTOINCREMENT: ids never come back after retention deletes the newest rows (live follow uses them).
    """CREATE TABLE logs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time_ns INTEGER NOT NULL,
        severity INTEGER NOT NULL,
        severity_text TEXT NOT NULL,
        component TEXT NOT NULL,
        message TEXT NOT NULL,
        attributes TEXT NOT NULL DEFAULT '{}',
        trace_id TEXT,
        span_id TEXT,
        session_id TEXT,
        resource_id INTEGER NOT NULL REFERENCES resources (id))""",
    "CREATE INDEX logs_time ON logs (time_ns)",
    "CREATE INDEX logs_session ON logs (session_id, time_ns)",
    "CREATE INDEX logs_component ON logs (component, time_ns)",
    "CREATE INDEX logs_severity ON logs (severity, time_ns)",
    """CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time_ns INTEGER NOT NULL,
        name TEXT NOT NULL,
        attributes TEXT NOT NULL DEFAULT '{}',
        trace_id TEXT,
        span_id TEXT,
        session_id TEXT,
        resource_id INTEGER NOT NULL REFERENCES resources (id))""",
    "CREATE INDEX events_time ON events (time_ns)",
    "CREATE INDEX events_name ON events (name, time_ns)",
    "CREATE INDEX events_session ON events (session_id, time_ns)",
)

_V2_TRACES_METRICS: Final = (
    """CREATE TABLE spans (
        id INTEGER PRIMARY KEY,
        trace_id TEXT,
        span_id TEXT,
        parent_span_id TEXT,
        name TEXT NOT NULL,
        kind TEXT NOT NULL DEFAULT '',
        start_ns INTEGER NOT NULL,
        end_ns INTEGER,
        status INTEGER NOT NULL DEFAULT 0,
        attributes TEXT NOT NULL DEFAULT '{}',
        events TEXT NOT NULL DEFAULT '[]',
        session_id TEXT,
        resource_id INTEGER NOT NULL REFERENCES resources (id))""",
    "CREATE INDEX spans_start ON spans (start_ns)",
    "CREATE INDEX spans_trace ON spans (trace_id)",
    "CREATE INDEX spans_name ON spans (name, start_ns)",
    "CREATE INDEX spans_session ON spans (session_id, start_ns)",
    # A series is (name, type, unit, temporality, attribute set); kept inline, one row per point.
    """CREATE TABLE metric_points (
        id INTEGER PRIMARY KEY,
        time_ns INTEGER NOT NULL,
        name TEXT NOT NULL,
        type TEXT NOT NULL DEFAULT 'gauge',
        unit TEXT NOT NULL DEFAULT '',
        temporality TEXT NOT NULL DEFAULT '',
        value REAL,
        histogram TEXT,
        attributes TEXT NOT NULL DEFAULT '{}',
        session_id TEXT,
        resource_id INTEGER NOT NULL REFERENCES resources (id))""",
    "CREATE INDEX metric_points_time ON metric_points (time_ns)",
    "CREATE INDEX metric_points_name ON metric_points (name, time_ns)",
)

_V3_ERRORS: Final = (
    """CREATE TABLE error_groups (
        id INTEGER PRIMARY KEY,
        fingerprint TEXT NOT NULL UNIQUE,
        type TEXT NOT NULL,
        title TEXT NOT NULL,
        first_seen_ns INTEGER NOT NULL,
        last_seen_ns INTEGER NOT NULL,
        count INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL DEFAULT 'open')""",
    "CREATE INDEX error_groups_last_seen ON error_groups (last_seen_ns)",
    """CREATE TABLE errors (
        id INTEGER PRIMARY KEY,
        group_id INTEGER NOT NULL REFERENCES error_groups (id),
        time_ns INTEGER NOT NULL,
        type TEXT NOT NULL,
        message TEXT NOT NULL,
        stack TEXT NOT NULL DEFAULT '',
        attributes TEXT NOT NULL DEFAULT '{}',
        trace_id TEXT,
        span_id TEXT,
        session_id TEXT,
        resource_id INTEGER NOT NULL REFERENCES resources (id))""",
    "CREATE INDEX errors_time ON errors (time_ns)",
    "CREATE INDEX errors_group ON errors (group_id, time_ns)",
    "CREATE INDEX errors_session ON errors (session_id, time_ns)",
)

_V4_ROLLUPS_STATE: Final = (
    # Filled by a later rollup job; dashboards read it instead of scanning raw rows.
    """CREATE TABLE rollups_minute (
        minute_ns INTEGER NOT NULL,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        service TEXT NOT NULL DEFAULT '',
        count INTEGER NOT NULL DEFAULT 0,
        sum REAL NOT NULL DEFAULT 0,
        min REAL,
        max REAL,
        sketch BLOB,
        PRIMARY KEY (minute_ns, kind, name, service))""",
    # Detector baselines and other small state that must survive restarts.
    """CREATE TABLE kv_state (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_ns INTEGER NOT NULL)""",
)

# Version 5: the layout every backend shares (PostgreSQL's ``_pg_schema`` has the same columns).
# Narrow rows: component and event/span/metric names interned in ``names``; sessions and traces
# referred to by integers; no severity text (derived on read); empty attributes stored as NULL; one time index
# per raw table (a session's or a trace's records are found through its time bounds), because
# every wider read is answered from ``rollups``.  The v4 tables are renamed, their rows moved by
# the store's own insert path (``sqlite._copy_v4``), then dropped.
_V4_TABLES: Final = ("sessions", "logs", "events", "spans", "metric_points", "errors")
_V4_INDEXES: Final = (
    "sessions_start",
    "sessions_service",
    "logs_time",
    "logs_session",
    "logs_component",
    "logs_severity",
    "events_time",
    "events_name",
    "events_session",
    "spans_start",
    "spans_trace",
    "spans_name",
    "spans_session",
    "metric_points_time",
    "metric_points_name",
    "errors_time",
    "errors_group",
    "errors_session",
)
V5_TABLES: Final = (
    """CREATE TABLE names (
        id INTEGER PRIMARY KEY,
        value TEXT NOT NULL UNIQUE)""",
    """CREATE TABLE sessions (
        sid INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        service TEXT NOT NULL DEFAULT '',
        resource_id INTEGER,
        start_ns INTEGER,
        end_ns INTEGER,
        exit_code INTEGER,
        command TEXT,
        user_id TEXT,
        attributes TEXT,
        log_count INTEGER NOT NULL DEFAULT 0,
        error_count INTEGER NOT NULL DEFAULT 0,
        event_count INTEGER NOT NULL DEFAULT 0,
        first_ns INTEGER,
        last_ns INTEGER)""",
    "CREATE INDEX sessions_start ON sessions (start_ns)",
    # Traces by number too, with the time span of their records (a trace's logs are found through it).
    """CREATE TABLE traces (
        tid INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        first_ns INTEGER NOT NULL,
        last_ns INTEGER NOT NULL)""",
    "CREATE INDEX traces_last ON traces (last_ns)",
    # AUTOINCREMENT: ids never come back once retention has emptied a table (cursors use them).
    """CREATE TABLE logs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time_ns INTEGER NOT NULL,
        severity INTEGER NOT NULL,
        component_id INTEGER NOT NULL,
        message TEXT NOT NULL,
        attributes TEXT,
        trace INTEGER,
        span_id TEXT,
        user_id INTEGER,
        session INTEGER,
        resource_id INTEGER NOT NULL)""",
    "CREATE INDEX logs_time ON logs (time_ns)",
    """CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time_ns INTEGER NOT NULL,
        name_id INTEGER NOT NULL,
        attributes TEXT,
        trace INTEGER,
        span_id TEXT,
        user_id INTEGER,
        session INTEGER,
        resource_id INTEGER NOT NULL)""",
    "CREATE INDEX events_time ON events (time_ns)",
    """CREATE TABLE spans (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        trace INTEGER,
        span_id TEXT,
        parent_span_id TEXT,
        name_id INTEGER NOT NULL,
        span_kind TEXT NOT NULL DEFAULT '',
        start_ns INTEGER NOT NULL,
        end_ns INTEGER,
        status INTEGER NOT NULL DEFAULT 0,
        attributes TEXT,
        events TEXT,
        user_id INTEGER,
        session INTEGER,
        resource_id INTEGER NOT NULL)""",
    "CREATE INDEX spans_start ON spans (start_ns)",
    "CREATE INDEX spans_trace ON spans (trace)",
    """CREATE TABLE metric_points (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time_ns INTEGER NOT NULL,
        name_id INTEGER NOT NULL,
        type TEXT NOT NULL DEFAULT 'gauge',
        unit TEXT NOT NULL DEFAULT '',
        temporality TEXT NOT NULL DEFAULT '',
        value REAL,
        histogram TEXT,
        attributes TEXT,
        user_id INTEGER,
        session INTEGER,
        resource_id INTEGER NOT NULL)""",
    "CREATE INDEX metric_points_time ON metric_points (time_ns)",
    """CREATE TABLE errors (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        group_id INTEGER NOT NULL,
        time_ns INTEGER NOT NULL,
        type TEXT NOT NULL,
        message TEXT NOT NULL,
        stack TEXT NOT NULL DEFAULT '',
        attributes TEXT,
        trace INTEGER,
        span_id TEXT,
        user_id INTEGER,
        session INTEGER,
        resource_id INTEGER NOT NULL)""",
    "CREATE INDEX errors_time ON errors (time_ns)",
    "CREATE INDEX errors_group ON errors (group_id, time_ns)",
    # What a rollup cell counts: one row per (series, service, name, dim), see store._model; the
    # cells refer to it by number, so a cell row is a few numbers and no text.
    """CREATE TABLE rollup_keys (
        id INTEGER PRIMARY KEY,
        series TEXT NOT NULL,
        service TEXT NOT NULL,
        name TEXT NOT NULL,
        dim TEXT NOT NULL,
        UNIQUE (series, service, name, dim))""",
    # One cell per (resolution, series, bucket, key), in that order: a time range of one series at
    # one resolution is one range of the primary key.  ``series`` is _model.SERIES_CODE's number.
    # first_ns/last_ns only where a view needs them.
    """CREATE TABLE rollups (
        res INTEGER NOT NULL,
        series INTEGER NOT NULL,
        bucket_ns INTEGER NOT NULL,
        key_id INTEGER NOT NULL,
        count INTEGER NOT NULL DEFAULT 0,
        errors INTEGER NOT NULL DEFAULT 0,
        sum REAL NOT NULL DEFAULT 0,
        min REAL,
        max REAL,
        first_ns INTEGER,
        last_ns INTEGER,
        sketch BLOB,
        sums TEXT,
        PRIMARY KEY (res, series, bucket_ns, key_id)) WITHOUT ROWID""",
)
_V5_LAYOUT: Final = (
    *(f"DROP INDEX IF EXISTS {name}" for name in _V4_INDEXES),
    *(f"ALTER TABLE {table} RENAME TO v4_{table}" for table in _V4_TABLES),
    "DROP TABLE rollups_minute",
    *V5_TABLES,
)
# Runs after the statements of the same version, in the same transaction (the SQLite store's
# ``_copy_v4`` moves the renamed tables' rows, then drops them).
PYTHON_STEPS: Final = {5: "copy_v4"}

MIGRATIONS: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    ("resources, sessions, logs, events", _V1_CORE),
    ("spans, metric points", _V2_TRACES_METRICS),
    ("error groups and errors", _V3_ERRORS),
    ("per-minute rollups, kv_state", _V4_ROLLUPS_STATE),
    ("narrow rows, interned names, rollups per minute, hour and day", _V5_LAYOUT),
)
LATEST_VERSION: Final = len(MIGRATIONS)
