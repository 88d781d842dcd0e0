from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from clisight.exceptions import SchemaError
from clisight.store import Selection, SqliteStore
from clisight.store._sqlite_schema import migrate_connection, read_schema_version
from clisight.store.schema import LATEST_VERSION, MIGRATIONS


def _raw(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    return sqlite3.connect(path, isolation_level=None)


def test_new_store_is_at_the_latest_version_with_applied_times(store: SqliteStore) -> None:
    before = time.time_ns()
    assert store.migrate() == LATEST_VERSION == len(MIGRATIONS)
    assert store.schema_version() == LATEST_VERSION
    assert store.path is not None
    with sqlite3.connect(store.path) as conn:
        rows = conn.execute("SELECT version, applied_ns FROM schema_version ORDER BY version").fetchall()
    assert [v for v, _ in rows] == list(range(1, LATEST_VERSION + 1))
    assert all(applied <= time.time_ns() and applied > before - 60 * 10**9 for _, applied in rows)


def test_each_migration_is_applied_once(store: SqliteStore) -> None:
    store.migrate()
    store.close()
    reopened = SqliteStore(store.path or "")
    assert reopened.migrate() == LATEST_VERSION
    assert store.path is not None
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == LATEST_VERSION
    reopened.close()


def _seed(conn: sqlite3.Connection, version: int) -> dict[str, int]:
    """Rows written by an older clisight at ``version``: one per table that existed then."""
    conn.execute("INSERT INTO resources (service) VALUES ('old')")
    conn.execute(
        "INSERT INTO logs (time_ns, severity, severity_text, component, message, resource_id)"
        " VALUES (1, 9, 'INFO', 'old', 'kept', 1)"
    )
    conn.execute("INSERT INTO events (time_ns, name, resource_id) VALUES (2, 'command', 1)")
    conn.execute("INSERT INTO sessions (id, service, start_ns) VALUES ('s-old', 'old', 1)")
    conn.execute(
        "INSERT INTO logs (time_ns, severity, severity_text, component, message, attributes, session_id,"
        " resource_id) VALUES (2, 17, 'ERROR', 'old', 'in session', '{\"k\": [1, \"é\"]}', 's-old', 1)"
    )
    seeded = {"logs": 2, "events": 1, "sessions": 1}
    if version >= 2:
        conn.execute("INSERT INTO spans (name, start_ns, resource_id) VALUES ('op', 3, 1)")
        conn.execute(
            "INSERT INTO metric_points (time_ns, name, value, resource_id) VALUES (4, 'rss', 1.5, 1)"
        )
        seeded |= {"spans": 1, "metric_points": 1}
    if version >= 3:
        conn.execute(
            "INSERT INTO error_groups (fingerprint, type, title, first_seen_ns, last_seen_ns, count, status)"
            " VALUES ('fp', 'E', 'E: x', 5, 5, 7, 'resolved')"
        )
        conn.execute(
            "INSERT INTO errors (group_id, time_ns, type, message, resource_id) VALUES (1, 5, 'E', 'x', 1)"
        )
        seeded |= {"errors": 1}
    return seeded


@pytest.mark.parametrize("version", range(1, LATEST_VERSION))
def test_migrating_from_every_earlier_version_keeps_rows(db_path: Path, version: int, make: Any) -> None:
    conn = _raw(db_path)
    assert migrate_connection(conn, version) == version
    assert read_schema_version(conn) == version
    seeded = _seed(conn, version)
    conn.close()

    store = SqliteStore(db_path)
    assert store.migrate() == LATEST_VERSION
    counts = store.info().row_counts
    for table, count in seeded.items():
        assert counts[table] == count, table
    log, in_session = store.rows("log", Selection()).rows
    assert (log["message"], log["component"], log["service"], log["session_id"]) == (
        "kept",
        "old",
        "old",
        None,
    )
    assert in_session["session_id"] == "s-old" and in_session["attributes"] == {"k": [1, "é"]}
    [session] = store.rows("session", Selection()).rows
    assert (session["id"], session["log_count"], session["error_count"]) == ("s-old", 1, 1)
    assert [r["message"] for r in store.rows("log", Selection(session_id="s-old")).rows] == ["in session"]
    # The moved rows are in the rollups too: aggregates agree with a scan of the raw rows.
    for kind in ("log", "event", "error", "operation", "metric"):
        assert store.aggregate(kind, Selection()) == store.aggregate(kind, Selection(), source="raw"), kind
    if version >= 3:
        [group] = store.rows("error_group", Selection()).rows
        assert (group["fingerprint"], group["status"], group["count"]) == ("fp", "resolved", 7)
    # The migrated store takes every kind of record.
    store.write_batch(
        [make.log(), make.event(), make.span(), make.metric(), make.error(), make.session("s1")]
    )
    store.save_state("k", {"v": 1})
    assert store.load_state("k") == {"v": 1}
    assert store.info().row_counts["logs"] == seeded["logs"] + 1
    assert not [t for (t,) in store._read("SELECT name FROM sqlite_master") if t.startswith("v4_")]
    store.close()


def test_a_schema_newer_than_the_code_is_refused_with_a_clear_message(db_path: Path) -> None:
    conn = _raw(db_path)
    migrate_connection(conn)
    conn.execute("INSERT INTO schema_version (version, applied_ns) VALUES (?, 0)", (LATEST_VERSION + 3,))
    conn.close()
    store = SqliteStore(db_path)
    with pytest.raises(SchemaError) as info:
        store.migrate()
    message = str(info.value)
    assert str(LATEST_VERSION + 3) in message and str(LATEST_VERSION) in message
    assert "upgrade clisight" in message and str(db_path) in message


def test_migration_failure_rolls_back_completely(db_path: Path) -> None:
    conn = _raw(db_path)
    migrate_connection(conn, 1)
    # A table in the way of migration 2 makes it fail half-way; nothing of it may stay.
    conn.execute("CREATE TABLE metric_points (x INTEGER)")
    with pytest.raises(sqlite3.OperationalError):
        migrate_connection(conn, 2)
    assert read_schema_version(conn) == 1
    assert conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'spans'").fetchone()[0] == 0
    conn.close()


def test_a_new_file_gets_incremental_auto_vacuum_and_wal(store: SqliteStore) -> None:
    store.migrate()
    assert store.path is not None
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
