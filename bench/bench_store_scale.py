"""Reads at scale: one SQLite store grown through 1 M, 3 M and 10 M records, every report and page
query timed at each size, the SQL it runs and SQLite's plan for it, and DuckDB beside it.

Needs: ``pip install duckdb`` (the ``bench`` needs: ``duckdb>=1.0``); without it the DuckDB side is
skipped.

Usage::

    python bench/bench_store_scale.py                      # 1M 3M 10M (fill ~10-15 min at 10M)
    python bench/bench_store_scale.py --sizes 100k 300k    # a quick run
    python bench/bench_store_scale.py --dir /tmp/scale --repeats 5 --no-duckdb

What it does, in one run, on one store (``--dir``, default ``/tmp/clisight-scale``, emptied first):

- Fills the store with ``bench/gen_store.fill`` up to the first size (records spread over the 30
  days before one fixed ``now``, the same for the whole run, so time windows are stable), a new
  seed for each increment, then measures; fills on to the next size, measures again, and so on.
- At each size, the median of ``--repeats`` runs after one warm-up of: ``Query.report`` over the last
  24 hours and the last 30 days (one open :class:`clisight.query.Query`, in this process), each
  part of the report on its own (levels, components, errors, slow_operations, usage, llm_usage),
  ``clisight report --json --since 24h`` / ``--since 30d`` as subprocesses (wall time: start-up
  included; ``clisight --help`` is timed as the start-up floor), ``Query.tail(n=50)``, the first
  page (1,000 logs) of an export of one day and the whole export of that day (rows/s).
- Bytes per record (store file + WAL over N) and per table and index (SQLite's ``dbstat``).
- At the largest size: the SQL each main query runs (captured by wrapping the store's read-only
  connections from the outside) with its time, rows and ``EXPLAIN QUERY PLAN``.
- DuckDB beside it: the same raw rows copied into a DuckDB file, names resolved (its ``sqlite``
  extension is tried first, ``INSTALL sqlite`` with a 20 s timeout, and then scans the store's
  tables itself; offline, or for a table it fails on, rows go through CSV files of 500,000 rows,
  about 50,000 rows/s where ``executemany`` manages hundreds), the report's
  aggregates in DuckDB SQL over raw rows, timed the same way, ours / DuckDB per part and in total,
  DuckDB's bytes per record, and every answer checked against ours (counts and sums exactly, floats
  to 1e-9, percentiles within 2 %).  Any disagreement is printed as ``DISAGREE``.
- Last, at the largest size: ``Query.vacuum(RetentionPolicy(raw_days=D))`` with D chosen so that the
  oldest of the 30 days goes (about 1/30 of the raw rows).

Everything goes to stdout (progress of the fills to stderr); a Markdown summary and the raw figures
(JSON) are written to ``--dir`` at the end.
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import os
import platform
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import gen_store
from _common import git_rev, machine

import clisight
import clisight.store.sqlite as sqlite_store
from clisight.query import Filter, Query
from clisight.store.base import RetentionPolicy
from clisight.types import severity_name

DAY = 86_400 * 10**9
TARGET_S = 0.100
WINDOWS = {"24h": DAY, "30d": 30 * DAY}
PARTS = ("levels", "components", "errors", "slow_operations", "usage", "llm_usage")
RAW_TABLES = ("logs", "events", "spans", "metric_points", "errors", "sessions")


# -- small helpers ---------------------------------------------------------------------------------
def parse_size(text: str) -> int:
    word = text.strip().lower().replace("_", "")
    scale = {"k": 1_000, "m": 1_000_000, "g": 1_000_000_000}.get(word[-1:], 1)
    number = word[:-1] if word[-1:] in "kmg" else word
    return int(float(number) * scale)


def size_label(n: int) -> str:
    if n >= 1_000_000 and n % 100_000 == 0:
        return f"{n / 1_000_000:g}M"
    if n >= 1_000 and n % 100 == 0:
        return f"{n / 1_000:g}k"
    return str(n)


def median_time(fn: Callable[[], Any], repeats: int, budget: float | None = None) -> tuple[float, Any]:
    """Median seconds of ``repeats`` calls after one warm-up, and the warm-up's result.  With a
    ``budget`` (seconds), fewer calls (at least one) when the warm-up says they would not fit."""
    start = time.perf_counter()
    result = fn()
    warm = time.perf_counter() - start
    if budget is not None:
        repeats = max(1, min(repeats, int(budget / max(warm, 1e-9))))
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    value = seconds * 1000
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def marked(seconds: float | None, target: bool) -> str:
    if seconds is None:
        return "-"
    if not target:
        return ms(seconds)
    return f"{ms(seconds)} ✓" if seconds <= TARGET_S else f"**{ms(seconds)}** ✗"


def say(text: str = "") -> None:
    print(text, flush=True)


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]], right_from: int = 1) -> list[str]:
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---" if i < right_from else "---:" for i in range(len(header))) + "|")
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


# -- capturing the SQL the store runs ---------------------------------------------------------------
class Recorder:
    """Statements run on the store's read-only connections while ``label`` is set."""

    def __init__(self) -> None:
        self.label: str | None = None
        # sql -> {"params": first params, "labels": [..], "calls": n, "seconds": s, "rows": n}
        self.statements: dict[str, dict[str, Any]] = {}

    def add(self, sql: str, params: Sequence[Any], seconds: float, rows: int) -> None:
        entry = self.statements.get(sql)
        if entry is None:
            entry = self.statements[sql] = {
                "params": list(params),
                "labels": [],
                "calls": 0,
                "seconds": 0.0,
                "rows": 0,
                "by_label": {},
            }
        if self.label not in entry["labels"]:
            entry["labels"].append(self.label)
        entry["calls"] += 1
        entry["seconds"] += seconds
        entry["rows"] += rows
        mine = entry["by_label"].setdefault(self.label, [0, 0.0])
        mine[0] += 1
        mine[1] += seconds


RECORDER = Recorder()


class _Fetched:
    def __init__(self, rows: list[Any]) -> None:
        self._rows = rows

    def fetchall(self) -> list[Any]:
        return self._rows

    def fetchone(self) -> Any:
        return self._rows[0] if self._rows else None

    def __iter__(self) -> Any:
        return iter(self._rows)


class TracedConnection:
    """A read-only connection of the store that records (sql, params, time, rows) when asked."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        if RECORDER.label is None:
            return self._conn.execute(sql, params)
        start = time.perf_counter()
        rows = self._conn.execute(sql, params).fetchall()
        RECORDER.add(sql, params, time.perf_counter() - start, len(rows))
        return _Fetched(rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def install_tracing() -> None:
    """Wrap every read-only connection the SQLite store opens from now on (the bench only)."""
    original = sqlite_store.connect_read_only

    def traced(path: Path, where: str) -> Any:
        return TracedConnection(original(path, where))

    sqlite_store.connect_read_only = traced  # type: ignore[assignment]


def explain(db: Path, sql: str, params: Sequence[Any]) -> list[str]:
    conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
    try:
        rows = conn.execute(f"EXPLAIN QUERY PLAN {sql}", list(params)).fetchall()
    finally:
        conn.close()
    depth: dict[int, int] = {0: -1}
    lines = []
    for node, parent, _, detail in rows:
        depth[node] = depth.get(parent, -1) + 1
        lines.append("  " * depth[node] + detail)
    return lines


# -- the store ----------------------------------------------------------------------------------------
def table_sizes(db: Path) -> list[tuple[str, str, int, int]]:
    """(object, table it belongs to, bytes, pages) from dbstat, largest first."""
    conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
    try:
        owners = dict(
            conn.execute("SELECT name, tbl_name FROM sqlite_master WHERE type IN ('table', 'index')")
        )
        rows = conn.execute(
            "SELECT name, SUM(pgsize), COUNT(*) FROM dbstat GROUP BY name ORDER BY 2 DESC"
        ).fetchall()
    except sqlite3.Error as exc:
        say(f"  dbstat unavailable: {exc}")
        return []
    finally:
        conn.close()
    return [(name, owners.get(name, name), int(size), int(pages)) for name, size, pages in rows]


def row_counts(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
    try:
        tables = [*RAW_TABLES, "rollups", "rollup_keys", "names", "resources", "error_groups"]
        return {t: int(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]) for t in tables}
    finally:
        conn.close()


# -- DuckDB -------------------------------------------------------------------------------------------
NULL = "\\N"


def _nz(col: str) -> str:
    return f"COALESCE({col}, '{NULL}')"


# DuckDB table -> (columns with types, SQLite select of the same rows with names resolved, id column).
# The SELECT takes (last id copied, chunk size).
DUCK_TABLES: dict[str, tuple[str, str, str]] = {
    "logs": (
        "id BIGINT, time_ns BIGINT, severity INTEGER, component VARCHAR, message VARCHAR, attributes VARCHAR,"
        " trace_id VARCHAR, span_id VARCHAR, user_id VARCHAR, session BIGINT, resource_id INTEGER,"
        " service VARCHAR",
        "SELECT t.id, t.time_ns, t.severity, n.value, t.message, "
        + ", ".join(_nz(c) for c in ("t.attributes", "tr.id", "t.span_id", "@USER@", "t.session"))
        + ", t.resource_id, r.service FROM logs t JOIN names n ON n.id = t.component_id"
        " JOIN resources r ON r.id = t.resource_id LEFT JOIN traces tr ON tr.tid = t.trace"
        " @UJOIN@ WHERE t.id > ? ORDER BY t.id LIMIT ?",
        "id",
    ),
    "events": (
        "id BIGINT, time_ns BIGINT, name VARCHAR, attributes VARCHAR, trace_id VARCHAR, span_id VARCHAR,"
        " user_id VARCHAR, session BIGINT, resource_id INTEGER, service VARCHAR",
        "SELECT t.id, t.time_ns, n.value, "
        + ", ".join(_nz(c) for c in ("t.attributes", "tr.id", "t.span_id", "@USER@", "t.session"))
        + ", t.resource_id, r.service FROM events t JOIN names n ON n.id = t.name_id"
        " JOIN resources r ON r.id = t.resource_id LEFT JOIN traces tr ON tr.tid = t.trace"
        " @UJOIN@ WHERE t.id > ? ORDER BY t.id LIMIT ?",
        "id",
    ),
    "spans": (
        "id BIGINT, trace_id VARCHAR, span_id VARCHAR, parent_span_id VARCHAR, name VARCHAR,"
        " span_kind VARCHAR, start_ns BIGINT, end_ns BIGINT, status INTEGER, attributes VARCHAR,"
        " events VARCHAR, user_id VARCHAR, session BIGINT, resource_id INTEGER, service VARCHAR",
        "SELECT t.id, "
        + ", ".join(_nz(c) for c in ("tr.id", "t.span_id", "t.parent_span_id"))
        + ", n.value, t.span_kind, t.start_ns, "
        + ", ".join(_nz(c) for c in ("t.end_ns",))
        + ", t.status, "
        + ", ".join(_nz(c) for c in ("t.attributes", "t.events", "@USER@", "t.session"))
        + ", t.resource_id, r.service FROM spans t JOIN names n ON n.id = t.name_id"
        " JOIN resources r ON r.id = t.resource_id LEFT JOIN traces tr ON tr.tid = t.trace"
        " @UJOIN@ WHERE t.id > ? ORDER BY t.id LIMIT ?",
        "id",
    ),
    "metric_points": (
        "id BIGINT, time_ns BIGINT, name VARCHAR, type VARCHAR, unit VARCHAR, temporality VARCHAR,"
        " value DOUBLE, histogram VARCHAR, attributes VARCHAR, user_id VARCHAR, session BIGINT,"
        " resource_id INTEGER,"
        " service VARCHAR",
        "SELECT t.id, t.time_ns, n.value, t.type, t.unit, t.temporality, "
        + ", ".join(_nz(c) for c in ("t.value", "t.histogram", "t.attributes", "@USER@", "t.session"))
        + ", t.resource_id, r.service FROM metric_points t JOIN names n ON n.id = t.name_id"
        " JOIN resources r ON r.id = t.resource_id @UJOIN@ WHERE t.id > ? ORDER BY t.id LIMIT ?",
        "id",
    ),
    "errors": (
        "id BIGINT, group_id INTEGER, fingerprint VARCHAR, time_ns BIGINT, type VARCHAR, message VARCHAR,"
        " stack VARCHAR, attributes VARCHAR, trace_id VARCHAR, span_id VARCHAR, user_id VARCHAR,"
        " session BIGINT, resource_id INTEGER, service VARCHAR",
        "SELECT t.id, t.group_id, g.fingerprint, t.time_ns, t.type, t.message, t.stack, "
        + ", ".join(_nz(c) for c in ("t.attributes", "tr.id", "t.span_id", "@USER@", "t.session"))
        + ", t.resource_id, r.service FROM errors t JOIN error_groups g ON g.id = t.group_id"
        " JOIN resources r ON r.id = t.resource_id LEFT JOIN traces tr ON tr.tid = t.trace"
        " @UJOIN@ WHERE t.id > ? ORDER BY t.id LIMIT ?",
        "id",
    ),
    "sessions": (
        "sid BIGINT, id VARCHAR, service VARCHAR, resource_id INTEGER, start_ns BIGINT, end_ns BIGINT,"
        " exit_code INTEGER, command VARCHAR, user_id VARCHAR, attributes VARCHAR, log_count INTEGER,"
        " error_count INTEGER, event_count INTEGER, first_ns BIGINT, last_ns BIGINT",
        "SELECT sid, id, service, "
        + ", ".join(
            _nz(c)
            for c in ("resource_id", "start_ns", "end_ns", "exit_code", "command", "user_id", "attributes")
        )
        + ", log_count, error_count, event_count, "
        + ", ".join(_nz(c) for c in ("first_ns", "last_ns"))
        + " FROM sessions WHERE sid > ? ORDER BY sid LIMIT ?",
        "sid",
    ),
    "resources": (
        "id INTEGER, service VARCHAR, version VARCHAR, host VARCHAR, pid INTEGER, sdk VARCHAR",
        "SELECT id, service, version, host, pid, sdk FROM resources WHERE id > ? ORDER BY id LIMIT ?",
        "id",
    ),
}
# Small tables whose rows change (all-time counts): copied whole each time.
DUCK_RELOAD: dict[str, tuple[str, str]] = {
    "error_groups": (
        "id INTEGER, fingerprint VARCHAR, type VARCHAR, title VARCHAR, first_seen_ns BIGINT,"
        " last_seen_ns BIGINT, count BIGINT, status VARCHAR",
        "SELECT id, fingerprint, type, title, first_seen_ns, last_seen_ns, count, status FROM error_groups",
    ),
}
CHUNK_ROWS = 500_000


def _duck_columns(spec: str) -> str:
    pairs = [part.strip().rsplit(" ", 1) for part in spec.split(",")]
    return "{" + ", ".join(f"'{name}': '{kind}'" for name, kind in pairs) + "}"


class DuckSide:
    """A DuckDB file holding a copy of the store's raw rows, names resolved (no joins needed)."""

    def __init__(self, path: Path, scratch: Path) -> None:
        import duckdb

        self.duckdb = duckdb
        for p in (path, Path(f"{path}.wal")):
            p.unlink(missing_ok=True)
        self.path = path
        self.scratch = scratch
        self.conn = duckdb.connect(str(path))
        self.version = duckdb.__version__
        self.threads = self.conn.execute("SELECT current_setting('threads')").fetchone()[0]
        self.last: dict[str, int] = dict.fromkeys(DUCK_TABLES, 0)
        for table, (spec, _, _) in DUCK_TABLES.items():
            self.conn.execute(f"CREATE TABLE {table} ({spec})")
        for table, (spec, _) in DUCK_RELOAD.items():
            self.conn.execute(f"CREATE TABLE {table} ({spec})")
        # Tables DuckDB reads straight from the store through its sqlite extension (when it loads);
        # the rest, and any table the scanner fails on, go through CSV files.  Error stacks may be
        # zlib-compressed blobs, which only Python turns back into text.
        self.scan = {t for t in DUCK_TABLES if t != "errors"} if self._sqlite_extension() else set()
        self.method = "sqlite scanner + csv" if self.scan else "csv"

    def _sqlite_extension(self) -> bool:
        """True when DuckDB's sqlite extension loads (INSTALL needs the network: tried in a
        subprocess with a short timeout so an offline machine does not hang)."""
        probe = "import duckdb; c = duckdb.connect(); c.execute('INSTALL sqlite'); c.execute('LOAD sqlite')"
        try:
            done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=20)
        except subprocess.TimeoutExpired:
            say("  duckdb: INSTALL sqlite timed out (offline?): copying rows through CSV files")
            return False
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or ["?"])[-1][:160]
            say(f"  duckdb: INSTALL sqlite failed ({reason}): copying rows through CSV files")
            return False
        try:
            self.conn.execute("LOAD sqlite")
        except self.duckdb.Error as exc:
            say(f"  duckdb: LOAD sqlite failed ({exc}): copying rows through CSV files")
            return False
        return True

    def load(self, db: Path) -> dict[str, Any]:
        """Copy the rows stored since the last load; return rows per table and seconds."""
        start = time.perf_counter()
        copied: dict[str, int] = {}
        src = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
        try:
            # Schema differences between revisions: user ids in a column of their own (interned).
            has_user = any(row[1] == "user_id" for row in src.execute("PRAGMA table_info(logs)"))
            user, join = ("u.value", "LEFT JOIN names u ON u.id = t.user_id") if has_user else ("NULL", "")
            if self.scan:
                self.conn.execute(f"ATTACH '{db}' AS src (TYPE sqlite, READ_ONLY)")
            for table, (spec, select, idcol) in DUCK_TABLES.items():
                select = select.replace("@USER@", user).replace("@UJOIN@", join)
                if table in self.scan:
                    try:
                        copied[table] = self._scan(table, select, idcol)
                        continue
                    except self.duckdb.Error as exc:
                        say(f"  duckdb: sqlite scanner failed on {table} ({exc}): CSV from now on")
                        self.scan.discard(table)
                copied[table] = self._copy(src, table, spec, select)
            attached = self.conn.execute("SELECT database_name FROM duckdb_databases()").fetchall()
            if ("src",) in attached:
                self.conn.execute("DETACH src")
            for table, (spec, select) in DUCK_RELOAD.items():
                self.conn.execute(f"DELETE FROM {table}")
                copied[table] = self._copy_all(src, table, spec, select)
        finally:
            src.close()
        self.conn.execute("CHECKPOINT")
        return {"rows": copied, "seconds": time.perf_counter() - start, "method": self.method}

    def _scan(self, table: str, select: str, idcol: str) -> int:
        """Copy new rows with DuckDB's sqlite scanner (the same SELECT, read by DuckDB)."""
        before = self.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        self.conn.execute(f"INSERT INTO {table} {scan_select(select)}", [self.last[table]])
        found = self.conn.execute(f"SELECT COUNT(*), MAX({idcol}) FROM {table}").fetchone()
        self.last[table] = found[1] or self.last[table]
        return int(found[0] - before)

    def _copy(self, src: sqlite3.Connection, table: str, spec: str, select: str) -> int:
        total = 0
        while True:
            cursor = src.execute(select, (self.last[table], CHUNK_ROWS))
            n, last_id = self._insert_csv(cursor, table, spec)
            if not n:
                return total
            total += n
            self.last[table] = last_id

    def _copy_all(self, src: sqlite3.Connection, table: str, spec: str, select: str) -> int:
        n, _ = self._insert_csv(src.execute(select), table, spec)
        return n

    def _insert_csv(self, cursor: sqlite3.Cursor, table: str, spec: str) -> tuple[int, int]:
        path = self.scratch / f"{table}.csv"
        rows: Iterable[tuple[Any, ...]] = cursor
        if table == "errors":
            rows = map(_plain_stack, cursor)
        counter = _Counting(rows)
        with open(path, "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh, lineterminator="\n").writerows(counter)
        if counter.n:
            self.conn.execute(
                f"INSERT INTO {table} SELECT * FROM read_csv(?, header = false, delim = ',', quote = '\"',"
                f" escape = '\"', nullstr = '{NULL}', allow_quoted_nulls = false, auto_detect = false,"
                f" columns = {_duck_columns(spec)})",
                [str(path)],
            )
        path.unlink(missing_ok=True)
        return counter.n, counter.last_id

    def bytes(self) -> int:
        return file_size(self.path) + file_size(Path(f"{self.path}.wal"))

    def counts(self) -> dict[str, int]:
        return {t: int(self.conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]) for t in RAW_TABLES}

    def query(self, sql: str, since: int) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, {"since": since}).fetchall()

    def close(self) -> None:
        self.conn.close()


def scan_select(select: str) -> str:
    """A copy SELECT of :data:`DUCK_TABLES` for DuckDB's sqlite scanner: the store's tables in
    schema ``src``, NULLs as NULLs (no CSV marker), no chunking (one parameter: the last id)."""
    sql = re.sub(r"COALESCE\(([^()]*), '\\N'\)", r"\1", select)
    sql = re.sub(r"\b(FROM|JOIN) (\w+) ", r"\1 src.\2 ", sql)
    return re.sub(r" ORDER BY [\w.]+ LIMIT \?$", "", sql)


def _plain_stack(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """An errors row with its stack as text (some revisions store long stacks zlib-compressed)."""
    stack = row[6]
    if isinstance(stack, bytes):
        return (*row[:6], zlib.decompress(stack).decode("utf-8", "surrogatepass"), *row[7:])
    return row


class _Counting:
    """Iterates a cursor, counting rows and keeping the first column of the last one (its id)."""

    def __init__(self, rows: Iterable[tuple[Any, ...]]) -> None:
        self._rows = iter(rows)
        self.n = 0
        self.last_id = 0

    def __iter__(self) -> _Counting:
        return self

    def __next__(self) -> tuple[Any, ...]:
        row = next(self._rows)
        self.n += 1
        self.last_id = row[0]
        return row


_OPS_SOURCE = """
    SELECT name, (end_ns - start_ns) / 1e9 AS duration, (status = 2 OR status >= 17) AS failed
    FROM spans WHERE start_ns >= $since AND end_ns IS NOT NULL
    UNION ALL
    SELECT COALESCE(NULLIF(json_extract_string(attributes, '$.operation'), ''), message),
           CAST(json_extract(attributes, '$.duration') AS DOUBLE),
           COALESCE(json_type(attributes, '$.success') = 'BOOLEAN'
                    AND json_extract_string(attributes, '$.success') = 'false', false)
    FROM logs WHERE time_ns >= $since AND severity >= 11 AND severity < 13
      AND json_type(attributes, '$.duration') IN ('BIGINT', 'UBIGINT', 'DOUBLE')
"""
_NUM = "CASE WHEN json_type(attributes, '$.{f}') IN ('BIGINT', 'UBIGINT', 'DOUBLE') THEN CAST(json_extract(attributes, '$.{f}') AS DOUBLE) END"  # noqa: E501
# The aggregates the report computes, over raw rows; grouped by the report part they stand for.
DUCK_QUERIES: dict[str, tuple[str, str]] = {
    "levels": ("levels", "SELECT severity, COUNT(*) FROM logs WHERE time_ns >= $since GROUP BY severity"),
    "components": (
        "components",
        "SELECT component, COUNT(*) FROM logs WHERE time_ns >= $since GROUP BY component",
    ),
    "error_groups": (
        "errors",
        "SELECT fingerprint, COUNT(*), MAX(time_ns) FROM errors WHERE time_ns >= $since GROUP BY fingerprint",
    ),
    "error_logs": (
        "errors",
        "SELECT component, message, COUNT(*), MAX(severity), MIN(time_ns), MAX(time_ns) FROM logs"
        " WHERE time_ns >= $since AND severity >= 17 GROUP BY component, message",
    ),
    "operations": (
        "slow_operations",
        f"SELECT name, COUNT(*), SUM(failed::INTEGER), SUM(duration), MAX(duration),"
        f" quantile_cont(duration, [0.5, 0.95, 0.99]) FROM ({_OPS_SOURCE}) GROUP BY name",
    ),
    "events": ("usage", "SELECT name, COUNT(*) FROM events WHERE time_ns >= $since GROUP BY name"),
    "sessions": (
        "usage",
        "SELECT COUNT(*), COUNT(DISTINCT user_id), COALESCE(SUM((exit_code IS NOT NULL AND exit_code <> 0)"
        "::INTEGER), 0) FROM sessions WHERE start_ns >= $since",
    ),
    "llm": (
        "usage",
        "SELECT COALESCE(json_extract_string(attributes, '$.model'), '') AS model, COUNT(*), "
        + ", ".join(
            f"COALESCE(SUM({_NUM.format(f=f)}), 0)"
            for f in ("input_tokens", "output_tokens", "cache_read_tokens", "cost_usd", "duration")
        )
        + " FROM events WHERE time_ns >= $since AND name = 'llm.request' GROUP BY 1",
    ),
}
# For the checks only (not timed): the exact order statistic at 0-based rank floor(q (n - 1)), the
# definition the store's sketch approximates (numpy's method="lower"); quantile_cont interpolates.
DUCK_OPS_EXACT = (
    "SELECT name, "
    + ", ".join(f"l[CAST(floor({q} * (len(l) - 1)) AS BIGINT) + 1]" for q in (0.5, 0.95, 0.99))
    + f" FROM (SELECT name, list_sort(list(duration)) AS l FROM ({_OPS_SOURCE}) GROUP BY name)"
)


# -- agreement ----------------------------------------------------------------------------------------
def _close(a: float, b: float, rel: float) -> bool:
    return abs(a - b) <= rel * max(abs(a), abs(b)) + 1e-12


def _compare_counts(what: str, ours: dict[Any, Any], theirs: dict[Any, Any], out: list[str]) -> None:
    for key in sorted(set(ours) | set(theirs), key=repr):
        a, b = ours.get(key), theirs.get(key)
        if a != b:
            out.append(f"{what} {key!r}: ours {a!r}, duckdb {b!r}")


def _rel(ours: float, theirs: float) -> float:
    return 0.0 if ours == theirs else (ours - theirs) / max(abs(theirs), 1e-300)


def check(q: Query, duck: DuckSide, since: int) -> tuple[list[str], int, dict[str, list[Any]]]:
    """Every report answer of ours against DuckDB's over the raw rows: (disagreements, groups compared,
    percentile deviations: ``vs_exact`` (the same rank definition) and ``vs_cont`` (interpolated))."""
    flt = Filter(since=since)
    out: list[str] = []
    compared = 0
    pct: dict[str, list[Any]] = {"vs_exact": [], "vs_cont": []}

    ours_levels = {lc.level: lc.count for lc in q.levels(flt)}
    theirs_levels: dict[str, int] = {}
    for severity, count in duck.query(DUCK_QUERIES["levels"][1], since):
        name = severity_name(int(severity))
        theirs_levels[name] = theirs_levels.get(name, 0) + count
    _compare_counts("level", ours_levels, theirs_levels, out)
    compared += len(theirs_levels)

    ours_components = {c.key: c.count for c in q.components(flt)}
    theirs_components = dict(duck.query(DUCK_QUERIES["components"][1], since))
    _compare_counts("component", ours_components, theirs_components, out)
    compared += len(theirs_components)

    summary = q.errors(flt, top=1_000_000)
    ours_groups = {g.fingerprint: g.count for g in summary.groups}
    theirs_groups = {fp: count for fp, count, _ in duck.query(DUCK_QUERIES["error_groups"][1], since)}
    _compare_counts("error group", ours_groups, theirs_groups, out)
    compared += len(theirs_groups)
    ours_logs = {
        (e.component, e.message): (e.count, e.severity, e.first_seen_ns, e.last_seen_ns)
        for e in summary.log_errors
    }
    theirs_logs = {
        (c, m): (n, sev, first, last)
        for c, m, n, sev, first, last in duck.query(DUCK_QUERIES["error_logs"][1], since)
    }
    _compare_counts("error log (count, max severity, first, last)", ours_logs, theirs_logs, out)
    compared += len(theirs_logs)

    ours_ops = {s.operation: s for s in q.slow_operations(flt, top=1_000_000)}
    theirs_ops = {row[0]: row for row in duck.query(DUCK_QUERIES["operations"][1], since)}
    exact = {row[0]: row[1:] for row in duck.query(DUCK_OPS_EXACT, since)}
    for name in sorted(set(ours_ops) | set(theirs_ops)):
        mine, row = ours_ops.get(name), theirs_ops.get(name)
        if mine is None or row is None:
            out.append(f"operation {name!r}: only in {'duckdb' if mine is None else 'ours'}")
            continue
        _, count, failed, total, biggest, cont = row
        compared += 1
        if (mine.count, mine.failed) != (count, failed):
            out.append(
                f"operation {name!r} (count, failed): ours {(mine.count, mine.failed)},"
                f" duckdb {(count, failed)}"
            )
        if not _close(mine.total, total, 1e-9) or not _close(mine.max, biggest, 1e-9):
            out.append(
                f"operation {name!r} (total, max): ours {(mine.total, mine.max)}, duckdb {(total, biggest)}"
            )
        for label, value, e_value, c_value in zip(
            ("p50", "p95", "p99"), (mine.p50, mine.p95, mine.p99), exact[name], cont, strict=True
        ):
            off = _rel(value, e_value)
            pct["vs_exact"].append((off, name, label, count))
            pct["vs_cont"].append((_rel(value, c_value), name, label, count))
            if abs(off) > 0.02:
                out.append(
                    f"operation {name!r} {label} (n={count}): ours {value:.6g}, exact (rank floor(q(n-1)))"
                    f" {e_value:.6g} ({off:+.2%}); quantile_cont {c_value:.6g}"
                )

    usage = q.usage(flt)
    ours_events = {c.key: c.count for c in usage.events}
    theirs_events = dict(duck.query(DUCK_QUERIES["events"][1], since))
    _compare_counts("event", ours_events, theirs_events, out)
    compared += len(theirs_events)
    [(sessions, users, failed)] = duck.query(DUCK_QUERIES["sessions"][1], since)
    mine_sessions = (usage.sessions.sessions, usage.sessions.users, usage.sessions.failed)
    if mine_sessions != (sessions, users, failed):
        out.append(
            f"sessions (count, users, failed): ours {mine_sessions}, duckdb {(sessions, users, failed)}"
        )
    compared += 1
    ours_llm = {m.model: m for m in q.llm_usage(flt)}
    theirs_llm = {row[0] or "unknown": row for row in duck.query(DUCK_QUERIES["llm"][1], since)}
    for model in sorted(set(ours_llm) | set(theirs_llm)):
        mine_m, row = ours_llm.get(model), theirs_llm.get(model)
        if mine_m is None or row is None:
            out.append(f"llm model {model!r}: only in {'duckdb' if mine_m is None else 'ours'}")
            continue
        compared += 1
        _, requests, tin, tout, tcache, cost, duration = row
        ints_ours = (mine_m.requests, mine_m.input_tokens, mine_m.output_tokens, mine_m.cache_read_tokens)
        ints_theirs = (requests, int(tin), int(tout), int(tcache))
        if ints_ours != ints_theirs:
            out.append(
                f"llm {model!r} (requests, in, out, cache_read): ours {ints_ours}, duckdb {ints_theirs}"
            )
        if not _close(mine_m.cost_usd, cost, 1e-9) or not _close(mine_m.duration_s, duration, 1e-9):
            out.append(
                f"llm {model!r} (cost, duration): ours {(mine_m.cost_usd, mine_m.duration_s)},"
                f" duckdb {(cost, duration)}"
            )
    return out, compared, pct


# -- measuring one size -------------------------------------------------------------------------------
def cli_command() -> list[str]:
    script = Path(sys.executable).parent / "clisight"
    return [str(script)] if script.exists() else [sys.executable, "-m", "clisight.cli"]


def time_cli(args: Sequence[str], repeats: int) -> tuple[float, dict[str, Any] | None]:
    def run() -> str:
        done = subprocess.run([*cli_command(), *args], capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"clisight {' '.join(args)} failed ({done.returncode}): {done.stderr[-500:]}")
        return done.stdout

    seconds, out = median_time(run, repeats)
    try:
        return seconds, json.loads(out)
    except ValueError:
        return seconds, None


def measure(
    db: Path, url: str, now_ns: int, n: int, repeats: int, capture: bool, duck: DuckSide | None
) -> dict[str, Any]:
    res: dict[str, Any] = {"n": n, "times": {}, "load": os.getloadavg()}
    say(f"  load average {', '.join(f'{x:.1f}' for x in res['load'])}")
    times = res["times"]
    q = Query(url)
    try:
        for window, width in WINDOWS.items():
            flt = Filter(since=now_ns - width)
            times[f"report {window}"], report = median_time(lambda flt=flt: q.report(flt), repeats)
            say(f"  report {window}: {ms(times[f'report {window}'])} ms ({report.total_logs:,} logs)")
            for part in PARTS:
                method = getattr(q, part)
                times[f"{part} {window}"], _ = median_time(lambda m=method, f=flt: m(f), repeats)
            say("    parts: " + ", ".join(f"{p} {ms(times[f'{p} {window}'])}" for p in PARTS) + " ms")
        times["tail -n 50"], lines = median_time(lambda: q.tail(n=50), repeats)
        say(f"  tail -n 50: {ms(times['tail -n 50'])} ms ({len(lines)} lines)")
        day = Filter(since=now_ns - 2 * DAY, until=now_ns - DAY - 1)
        times["export 1 day, first page (1,000 logs)"], page = median_time(
            lambda: list(islice(q.export(day, kinds=("log",)), 1000)), repeats
        )
        say(
            f"  export first page: {ms(times['export 1 day, first page (1,000 logs)'])} ms ({len(page)} rows)"
        )

        def export_day() -> dict[str, int]:
            kinds: dict[str, int] = {}
            for row in q.export(day):
                kinds[row["kind"]] = kinds.get(row["kind"], 0) + 1
            return kinds

        # A slow export gets fewer runs (at least one after the warm-up): about 3 minutes in all.
        times["export 1 day (all kinds)"], kinds = median_time(export_day, repeats, budget=180.0)
        rows = sum(kinds.values())
        res["export"] = {"rows": rows, "by_kind": kinds}
        res["export"]["rows_per_s"] = rows / times["export 1 day (all kinds)"]
        say(
            f"  export 1 day: {rows:,} rows in {times['export 1 day (all kinds)']:.2f} s"
            f" ({res['export']['rows_per_s']:,.0f} rows/s) {kinds}"
        )
        if capture:
            res["statements"] = capture_statements(q, db, now_ns)
    finally:
        q.close()

    times["clisight --help (start-up floor)"], _ = time_cli(["--help"], repeats)
    for window in WINDOWS:
        key = f"clisight report --json --since {window}"
        times[key], doc = time_cli(["report", "--json", "--since", window, "--store", url], repeats)
        say(f"  {key}: {ms(times[key])} ms wall ({(doc or {}).get('total_logs', '?'):,} logs)")
    say(f"  CLI start-up floor (clisight --help): {ms(times['clisight --help (start-up floor)'])} ms")

    wal = Path(f"{db}-wal")
    res["bytes"] = {"file": file_size(db), "wal": file_size(wal)}
    res["bytes"]["per_record"] = (res["bytes"]["file"] + res["bytes"]["wal"]) / n
    res["tables"] = table_sizes(db)
    res["rows"] = row_counts(db)
    say(
        f"  store: {res['bytes']['file'] / 1e6:,.1f} MB file + {res['bytes']['wal'] / 1e6:,.1f} MB WAL"
        f" = {res['bytes']['per_record']:.1f} B/record"
    )
    say("  rows: " + ", ".join(f"{t} {c:,}" for t, c in res["rows"].items()))
    for name, owner, size, _ in res["tables"][:14]:
        say(f"    {name:<28} ({owner:<14}) {size / 1e6:9.1f} MB  {size / n:7.1f} B/record")

    if duck is not None:
        res["duck"] = measure_duck(duck, db, url, now_ns, n, repeats, times)
    return res


def measure_duck(
    duck: DuckSide, db: Path, url: str, now_ns: int, n: int, repeats: int, ours: dict[str, float]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    loaded = duck.load(db)
    out["load"] = loaded
    copied = sum(loaded["rows"].values())
    say(
        f"  duckdb load ({loaded['method']}): {copied:,} new rows in {loaded['seconds']:.1f} s"
        f" ({copied / max(loaded['seconds'], 1e-9):,.0f} rows/s)"
    )
    counts_sqlite = row_counts(db)
    counts_duck = duck.counts()
    out["row_mismatch"] = {
        t: (counts_sqlite[t], counts_duck[t]) for t in RAW_TABLES if counts_sqlite[t] != counts_duck[t]
    }
    if out["row_mismatch"]:
        say(f"  DISAGREE duckdb copy row counts (sqlite, duckdb): {out['row_mismatch']}")
    out["bytes"] = duck.bytes()
    out["per_record"] = out["bytes"] / n
    say(f"  duckdb file: {out['bytes'] / 1e6:,.1f} MB = {out['per_record']:.1f} B/record")
    out["times"] = {}
    out["disagreements"] = {}
    q = Query(url)
    try:
        for window, width in WINDOWS.items():
            since = now_ns - width
            for name, (_, sql) in DUCK_QUERIES.items():
                out["times"][f"{name} {window}"], _ = median_time(
                    lambda s=sql, t=since: duck.query(s, t), repeats
                )
            found, compared, pct = check(q, duck, since)
            out["disagreements"][window] = found
            out.setdefault("compared", {})[window] = compared
            out.setdefault("percentiles", {})[window] = summarise_percentiles(pct)
            say(f"  percentiles {window}: {out['percentiles'][window]['text']}")
            if found:
                say(f"  DISAGREE ({window}): {len(found)} of {compared} values differ")
                for line in found[:50]:
                    say(f"    DISAGREE {window}: {line}")
            else:
                say(f"  duckdb agrees with ours on all {compared} groups ({window})")
    finally:
        q.close()
    for window in WINDOWS:
        parts: dict[str, float] = {}
        for name, (part, _) in DUCK_QUERIES.items():
            parts[part] = parts.get(part, 0.0) + out["times"][f"{name} {window}"]
        usage_parts = ("events", "sessions", "llm")
        parts["llm_usage"] = out["times"][f"llm {window}"]
        assert all(f"{p} {window}" in out["times"] for p in usage_parts)
        total = sum(out["times"][f"{name} {window}"] for name in DUCK_QUERIES)
        out.setdefault("parts", {})[window] = parts
        out.setdefault("total", {})[window] = total
        line = ", ".join(
            f"{p} {ms(ours[f'{p} {window}'])}/{ms(parts[p])} = {ours[f'{p} {window}'] / parts[p]:.2f}x"
            for p in PARTS
        )
        say(f"  ours/duckdb ms {window}: {line}")
        say(
            f"  ours/duckdb ms {window}: report {ms(ours[f'report {window}'])} / all aggregates {ms(total)}"
            f" = {ours[f'report {window}'] / total:.2f}x"
        )
    return out


def summarise_percentiles(pct: dict[str, list[Any]]) -> dict[str, Any]:
    """Largest deviation of our p50/p95/p99 from the exact value (same definition), and from DuckDB's
    interpolated quantile_cont, by how many values the operation had."""
    exact = max((abs(e[0]) for e in pct["vs_exact"]), default=0.0)
    worst = max(pct["vs_exact"], key=lambda e: abs(e[0]), default=None)
    cont: dict[str, float] = {}
    for off, _, _, n in pct["vs_cont"]:
        band = "n<100" if n < 100 else "n<1000" if n < 1000 else "n>=1000"
        cont[band] = max(cont.get(band, 0.0), abs(off))
    text = f"ours vs exact (same rank definition) max {exact:.2%}"
    if worst is not None:
        text += f" ({worst[1]} {worst[2]}, n={worst[3]})"
    text += "; vs quantile_cont max " + ", ".join(f"{b} {v:.1%}" for b, v in sorted(cont.items()))
    return {"vs_exact_max": exact, "vs_cont_max": cont, "text": text}


def capture_statements(q: Query, db: Path, now_ns: int) -> list[dict[str, Any]]:
    """Run each main query once with the SQL recorded; EXPLAIN QUERY PLAN each distinct statement."""
    RECORDER.statements.clear()
    day = Filter(since=now_ns - 2 * DAY, until=now_ns - DAY - 1)
    jobs: list[tuple[str, Callable[[], Any]]] = []
    for window, width in WINDOWS.items():
        flt = Filter(since=now_ns - width)
        for part in PARTS[:-1]:
            method = getattr(q, part)
            jobs.append((f"{part} {window}", lambda m=method, f=flt: m(f)))
    jobs.append(("tail -n 50", lambda: q.tail(n=50)))
    jobs.append(("export 1 day", lambda: sum(1 for _ in q.export(day))))
    for label, job in jobs:
        RECORDER.label = label
        try:
            job()
        finally:
            RECORDER.label = None
    found = []
    for sql, entry in RECORDER.statements.items():
        try:
            plan = explain(db, sql, entry["params"])
        except sqlite3.Error as exc:
            plan = [f"(EXPLAIN failed: {exc})"]
        found.append({"sql": sql, **entry, "plan": plan})
    found.sort(key=lambda e: -e["seconds"])
    return found


def print_statements(statements: list[dict[str, Any]]) -> None:
    say(
        f"\nSQL run by the main queries at the largest size ({len(statements)} distinct statements,"
        " slowest first; time and rows summed over the calls of one run of each query):"
    )
    for i, st in enumerate(statements, 1):
        labels = ", ".join(f"{label} x{calls} {ms(sec)} ms" for label, (calls, sec) in st["by_label"].items())
        say(f"\n[{i}] {ms(st['seconds'])} ms in {st['calls']} calls, {st['rows']:,} rows; by {labels}")
        say(f"    {st['sql']}")
        say(f"    params (first call): {st['params']}")
        for line in st["plan"]:
            say(f"      {line}")


# -- the run ------------------------------------------------------------------------------------------
def growth_rows(results: list[dict[str, Any]]) -> list[tuple[str, bool]]:
    names: list[tuple[str, bool]] = []
    for window in WINDOWS:
        names.append((f"report {window}", True))
    for window in WINDOWS:
        names.append((f"clisight report --json --since {window}", True))
    names.append(("clisight --help (start-up floor)", False))
    names.append(("tail -n 50", True))
    names.append(("export 1 day, first page (1,000 logs)", True))
    names.append(("export 1 day (all kinds)", False))
    for window in WINDOWS:
        for part in PARTS:
            names.append((f"{part} {window}", True))
    return names


def growth_table(results: list[dict[str, Any]]) -> list[str]:
    header = ["query (ms, median)", *(size_label(r["n"]) for r in results), "target 100 ms"]
    rows = []
    for name, target in growth_rows(results):
        cells = [marked(r["times"].get(name), target) for r in results]
        verdict = "-"
        if target:
            last = results[-1]["times"].get(name)
            verdict = "met" if last is not None and last <= TARGET_S else "**missed**"
        rows.append([name, *cells, verdict])
    export = [
        "export 1 day: rows; rows/s",
        *(f"{r['export']['rows']:,}; {r['export']['rows_per_s']:,.0f}/s" for r in results),
        "-",
    ]
    rows.append(export)
    return markdown_table(header, rows)


def duck_table(res: dict[str, Any]) -> list[str]:
    duck = res["duck"]
    header = [
        "report part",
        "ours 24h ms",
        "DuckDB 24h ms",
        "ours/DuckDB 24h",
        "ours 30d ms",
        "DuckDB 30d ms",
        "ours/DuckDB 30d",
    ]
    rows = []
    for part in (*PARTS, "report"):
        cells = [part if part != "report" else "**whole report** (DuckDB: all its queries)"]
        for window in WINDOWS:
            mine = res["times"][f"{part} {window}"]
            theirs = duck["total"][window] if part == "report" else duck["parts"][window][part]
            cells += [ms(mine), ms(theirs), f"{mine / theirs:.2f}x"]
        rows.append(cells)
    return markdown_table(header, rows)


def duck_query_table(res: dict[str, Any]) -> list[str]:
    duck = res["duck"]
    header = ["DuckDB query (over raw rows)", "stands for", "24h ms", "30d ms"]
    rows = [
        [name, part, ms(duck["times"][f"{name} 24h"]), ms(duck["times"][f"{name} 30d"])]
        for name, (part, _) in DUCK_QUERIES.items()
    ]
    return markdown_table(header, rows, right_from=2)


def bytes_table(results: list[dict[str, Any]]) -> list[str]:
    header = ["", *(size_label(r["n"]) for r in results)]
    rows = [
        [
            "store file + WAL (MB)",
            *(f"{(r['bytes']['file'] + r['bytes']['wal']) / 1e6:,.0f}" for r in results),
        ],
        ["**bytes/record (ours)**", *(f"**{r['bytes']['per_record']:.1f}**" for r in results)],
    ]
    if all("duck" in r for r in results):
        rows.append(["DuckDB file (MB)", *(f"{r['duck']['bytes'] / 1e6:,.0f}" for r in results)])
        rows.append(["bytes/record (DuckDB copy)", *(f"{r['duck']['per_record']:.1f}" for r in results)])
        rows.append(
            [
                "ours/DuckDB bytes",
                *(f"{r['bytes']['per_record'] / r['duck']['per_record']:.2f}x" for r in results),
            ]
        )
    return markdown_table(header, rows)


def object_table(res: dict[str, Any]) -> list[str]:
    n = res["n"]
    header = ["table or index", "of table", "MB", "B/record", "share"]
    total = sum(size for _, _, size, _ in res["tables"]) or 1
    rows = [
        [name, owner, f"{size / 1e6:,.1f}", f"{size / n:.1f}", f"{size / total:.1%}"]
        for name, owner, size, _ in res["tables"]
        if size / total >= 0.001
    ]
    return markdown_table(header, rows, right_from=2)


def retention(url: str, db: Path, now_ns: int) -> dict[str, Any]:
    """Delete the oldest of the 30 days: RetentionPolicy.raw_days is counted from the clock."""
    cutoff = now_ns - 29 * DAY
    conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
    try:
        older = {
            t: int(conn.execute(f"SELECT COUNT(*) FROM {t} WHERE {c} < ?", (cutoff,)).fetchone()[0])
            for t, c in (
                ("logs", "time_ns"),
                ("events", "time_ns"),
                ("spans", "start_ns"),
                ("metric_points", "time_ns"),
                ("errors", "time_ns"),
            )
        }
        raw = sum(int(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]) for t in older)
    finally:
        conn.close()
    q = Query(url)
    try:
        raw_days = (time.time_ns() - cutoff) / DAY
        start = time.perf_counter()
        result = q.vacuum(RetentionPolicy(raw_days=raw_days))
        seconds = time.perf_counter() - start
    finally:
        q.close()
    return {
        "raw_days": raw_days,
        "seconds": seconds,
        "deleted": dict(result.deleted),
        "total_deleted": result.total_deleted,
        "expected_raw": sum(older.values()),
        "raw_rows_before": raw,
        "bytes_before": result.bytes_before,
        "bytes_after": result.bytes_after,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["1M", "3M", "10M"], help="store sizes in records")
    parser.add_argument("--dir", default="/tmp/clisight-scale", help="where the store and DuckDB file go")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--now-ns", type=int, default=None, help="end of the records' window (default: now)")
    parser.add_argument("--no-duckdb", action="store_true")
    parser.add_argument("--no-retention", action="store_true")
    args = parser.parse_args(argv)
    sizes = sorted(parse_size(s) for s in args.sizes)
    work = Path(args.dir)
    work.mkdir(parents=True, exist_ok=True)
    db = work / "store.db"
    for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        p.unlink(missing_ok=True)
    url = f"sqlite:///{db}"
    now_ns = args.now_ns or time.time_ns()
    install_tracing()

    duck: DuckSide | None = None
    if not args.no_duckdb:
        try:
            duck = DuckSide(work / "duck.db", work)
        except ImportError:
            say("duckdb is not installed (pip install duckdb): the DuckDB side is skipped")

    started = datetime.now(UTC)
    header = (
        f"Machine: {machine()}, SQLite {sqlite3.sqlite_version}"
        + (f", DuckDB {duck.version} ({duck.threads} threads)" if duck else "")
        + f"; load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    say(f"bench_store_scale: sizes {[size_label(s) for s in sizes]}, store {db}")
    say(header)
    rev = git_rev()  # once: the checkout may move on during a long run
    say(f"Date: {started:%Y-%m-%d %H:%M} UTC, git rev {rev}, {platform.platform()}")
    say(f"clisight imported from {Path(clisight.__file__).parent}")
    end = datetime.fromtimestamp(now_ns / 1e9, UTC)
    say(f"now_ns = {now_ns} ({end:%Y-%m-%d %H:%M:%S} UTC), window {args.days:g} days")
    free = shutil.disk_usage(work).free
    say(f"free space in {work}: {free / 1e9:,.1f} GB")

    results: list[dict[str, Any]] = []
    fills: list[dict[str, Any]] = []
    have = 0
    for step, size in enumerate(sizes):
        more = size - have
        say(f"\n== filling {size_label(have)} -> {size_label(size)}: {more:,} records, seed {step} ==")
        filled = gen_store.fill(url, more, days=args.days, seed=step, now_ns=now_ns, progress=True)
        fills.append(filled)
        say(
            f"  fill: {filled['records']:,} records in {filled['seconds']:.1f} s ="
            f" {filled['records_per_s']:,} records/s, ok={filled['ok']}, by kind {filled['by_kind']}"
        )
        if not filled["ok"]:
            say(f"  fill failed: {filled}")
            return 1
        have = size
        say(f"\n== measuring at {size_label(size)} records ==")
        is_last = step == len(sizes) - 1
        res = measure(db, url, now_ns, size, args.repeats, is_last, duck)
        res["fill"] = filled
        results.append(res)

    last = results[-1]
    if "statements" in last:
        print_statements(last["statements"])

    say(f"\n== growth (ms, median of {args.repeats} after a warm-up; ✗ over the 100 ms target) ==\n")
    lines = growth_table(results)
    say("\n".join(lines))
    say(
        "\nfill records/s: "
        + ", ".join(f"{size_label(r['n'])}: {r['fill']['records_per_s']:,}" for r in results)
    )
    say("\n" + "\n".join(bytes_table(results)))
    say("\n" + "\n".join(object_table(last)))
    if duck is not None:
        for r in results:
            say(f"\nDuckDB side by side at {size_label(r['n'])}:\n")
            say("\n".join(duck_table(r)))
        say("\n" + "\n".join(duck_query_table(last)))
        bad = {size_label(r["n"]): r["duck"]["disagreements"] for r in results}
        if any(v for d in bad.values() for v in d.values()):
            say("\nDISAGREEMENTS between ours and DuckDB:")
            for size, windows in bad.items():
                for window, found in windows.items():
                    for line in found:
                        say(f"  {size} {window}: {line}")
        else:
            say("\nours and DuckDB agree on every compared value at every size")

    kept: dict[str, Any] | None = None
    if not args.no_retention:
        say(f"\n== retention at {size_label(last['n'])}: drop the oldest day ==")
        if duck is not None:
            duck.close()
        kept = retention(url, db, now_ns)
        say(
            f"  vacuum(RetentionPolicy(raw_days={kept['raw_days']:.4f})): {kept['seconds']:.1f} s,"
            f" {kept['total_deleted']:,} rows deleted ({kept['deleted']}); raw rows older than the"
            f" cutoff before: {kept['expected_raw']:,} of {kept['raw_rows_before']:,}"
            f" ({kept['expected_raw'] / max(kept['raw_rows_before'], 1):.1%});"
            f" store {kept['bytes_before'] / 1e6:,.0f} -> {kept['bytes_after'] / 1e6:,.0f} MB"
        )
    elif duck is not None:
        duck.close()

    # A Markdown summary for bench/RESULTS.md, and every figure as JSON.
    md = [f"{header}.", f"Date: {started:%Y-%m-%d}, git rev {rev}.", ""]
    md += [*lines, "", *bytes_table(results), "", *object_table(last)]
    if duck is not None:
        for r in results:
            md += ["", f"DuckDB at {size_label(r['n'])}:", "", *duck_table(r)]
            for window, summary in r["duck"]["percentiles"].items():
                md.append(f"- percentiles {window}: {summary['text']}")
        md += ["", *duck_query_table(last)]
    if kept is not None:
        md += ["", f"Retention: {kept}"]
    (work / "scale_results.md").write_text("\n".join(md) + "\n")
    (work / "scale_results.json").write_text(
        json.dumps(
            {"header": header, "now_ns": now_ns, "results": results, "retention": kept}, indent=1, default=str
        )
    )
    say(f"\nwrote {work / 'scale_results.md'} and {work / 'scale_results.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
