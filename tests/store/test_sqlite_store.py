from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from clisight.exceptions import StoreError
from clisight.store import Selection, SqliteStore
from clisight.types import CRITICAL, ERROR_LEVEL, WARNING, Record, Resource

STACK_A = (
    'Traceback (most recent call last):\n  File "/app/cli.py", line 10, in main\n'
    '  File "/app/db.py", line 42, in query\nValueError: bad'
)


def test_every_kind_lands_in_its_table(store: SqliteStore, make: Any) -> None:
    store.write_batch(
        [make.log(), make.event(), make.span(), make.metric(), make.error(), make.session("s1")]
    )
    counts = store.info().row_counts
    assert {t: counts[t] for t in ("logs", "events", "spans", "metric_points", "errors", "sessions")} == {
        "logs": 1,
        "events": 1,
        "spans": 1,
        "metric_points": 1,
        "errors": 1,
        "sessions": 1,
    }
    [span] = store.iter_rows("span", Selection())
    assert span["span_kind"] == "internal" and span["end_ns"] - span["start_ns"] == 1000
    [point] = store.iter_rows("metric", Selection())
    assert point["value"] == 1.0 and point["unit"] == "By"


def test_log_columns_and_attributes_round_trip(store: SqliteStore, make: Any) -> None:
    store.write_batch([make.log("disk full", "storage", WARNING, session="s1", path="/tmp", n=3)])
    [line] = store.logs(Selection())
    assert (line.message, line.component, line.severity, line.severity_text) == (
        "disk full",
        "storage",
        13,
        "WARNING",
    )
    assert line.attributes == {"path": "/tmp", "n": 3}
    assert line.service == "svc" and line.session_id == "s1"


def test_odd_attribute_values_never_break_a_batch(store: SqliteStore, make: Any) -> None:
    odd = {
        "obj": object(),
        "bytes": b"\x00\xff",
        3: "int key",
        "big": 2**80,
        "set": {1},
        "nested": {"t": (1, 2)},
    }
    store.write_batch(
        [make.log(**{"ok": 1}), make.log().__class__(**{**make.log()._asdict(), "attributes": odd})]
    )
    lines = store.logs(Selection())
    assert len(lines) == 2
    assert isinstance(lines[1].attributes, dict)


def test_a_failing_batch_stores_nothing_and_raises_store_error(store: SqliteStore, make: Any) -> None:
    broken = make.log()._replace(time_ns=None)  # NOT NULL violation half-way through the batch
    with pytest.raises(StoreError, match="cannot write"):
        store.write_batch([make.log("first"), make.event(), broken])
    assert store.info().row_counts["logs"] == 0
    assert store.info().row_counts["events"] == 0
    store.write_batch([make.log("after")])  # the store is still usable
    assert [line.message for line in store.logs(Selection())] == ["after"]


def test_resources_are_stored_once_per_distinct_producer(store: SqliteStore, make: Any) -> None:
    other = Resource("other")
    store.write_batch([make.log() for _ in range(100)] + [make.log(resource=other) for _ in range(10)])
    store.close()
    reopened = SqliteStore(store.path or "")
    reopened.write_batch([make.log(resource=other)])
    assert reopened.info().row_counts["resources"] == 2
    assert reopened.count_logs(Selection(service="other"), by="component")[0].count == 11
    reopened.close()


def test_a_later_session_record_completes_the_session(store: SqliteStore, make: Any) -> None:
    store.write_batch([make.session("s1", user_id="u-hash", command="deploy", tty=True)])
    store.write_batch(
        [
            make.log(session="s1"),
            make.log(severity=ERROR_LEVEL, session="s1"),
            make.event(session="s1"),
            make.error(session="s1"),
        ]
    )
    store.write_batch([make.session("s1", end=True, exit_code=3)])
    [row] = store.iter_rows("session", Selection())
    assert row["command"] == "deploy" and row["user_id"] == "u-hash" and row["exit_code"] == 3
    assert row["end_ns"] is not None and row["start_ns"] == make.now
    assert row["attributes"] == {"tty": True}
    assert (row["log_count"], row["error_count"], row["event_count"]) == (2, 2, 1)
    assert row["service"] == "svc"


def test_records_of_an_unseen_session_still_count_toward_it(store: SqliteStore, make: Any) -> None:
    store.write_batch([make.log(session="late", ago_s=5), make.log(session="late")])
    store.write_batch([make.session("late", ago_s=10, command="x")])
    [row] = store.iter_rows("session", Selection())
    assert row["log_count"] == 2 and row["command"] == "x" and row["start_ns"] == make.now - 10 * 10**9


def test_errors_group_by_type_and_top_frames_not_line_numbers(store: SqliteStore, make: Any) -> None:
    moved = STACK_A.replace("line 42", "line 57")
    store.write_batch(
        [
            make.error(stack=STACK_A, message="bad 1"),
            make.error(stack=moved, message="bad 2"),
            make.error("KeyError", stack=STACK_A),
        ]
    )
    groups = store.error_groups(Selection(), 10)
    assert [(g.type, g.count, g.total_count) for g in groups] == [("ValueError", 2, 2), ("KeyError", 1, 1)]
    assert groups[0].title == "ValueError: bad 1" and groups[0].status == "open"


def test_errors_without_stack_group_by_message_shape(store: SqliteStore, make: Any) -> None:
    store.write_batch(
        [
            make.error(message="user 41 not found", ago_s=2),
            make.error(message="user 97 not found"),
            make.error(message="timeout"),
        ]
    )
    groups = store.error_groups(Selection(), 10)
    assert [g.count for g in groups] == [2, 1]
    assert groups[0].first_seen_ns == make.now - 2 * 10**9 and groups[0].last_seen_ns == make.now
    assert store.error_groups(Selection(since_ns=make.now - 10**9), 10)[0].count == 1


def test_state_round_trips_and_is_replaced(store: SqliteStore) -> None:
    assert store.load_state("zscore:latency") is None
    store.save_state("zscore:latency", {"mean": 1.5, "n": 10})
    store.save_state("zscore:latency", {"mean": 2.5, "n": 11})
    assert store.load_state("zscore:latency") == {"mean": 2.5, "n": 11}


def test_logs_follow_by_increasing_id_even_after_the_newest_are_deleted(
    store: SqliteStore, make: Any
) -> None:
    store.write_batch([make.log(f"m{i}") for i in range(5)])
    last = store.logs(Selection())[-1].id
    assert store.path is not None
    with sqlite3.connect(store.path) as conn:
        conn.execute("DELETE FROM logs")
    store.write_batch([make.log("new")])
    [line] = store.logs(Selection(), after_id=last)
    assert line.message == "new" and line.id > last


def _wait(pid: int, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    raise AssertionError("forked child did not finish in time")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fork_closes_the_connection_first_so_the_child_inherits_no_sqlite_state(
    store: SqliteStore, make: Any
) -> None:
    store.write_batch([make.log("parent")])
    inherited = store._conn
    assert inherited is not None
    pid = os.fork()
    if pid == 0:  # child: everything in a try so pytest never runs on in the child
        code = 1
        try:
            # os.register_at_fork already ran after_fork; calling it again is harmless.
            store.after_fork()
            ok = store._conn is None
            store.write_batch([make.log("child")])
            code = 0 if ok and store._conn is not inherited else 2
        finally:
            os._exit(code)
    assert store._conn is None  # closed for the fork; the parent reopens on its next call
    assert _wait(pid) == 0
    store.write_batch([make.log("parent again")])
    assert [line.message for line in store.logs(Selection())] == ["parent", "child", "parent again"]


WRITER = """
import sys, time
from clisight.store import open_store
from clisight.types import Record, Resource
url, worker, total, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
store = open_store(url)
res = Resource("svc", pid=worker)
for start in range(0, total, batch):
    store.write_batch([Record("log", time.time_ns(), f"w{worker}", str(start + i), 9, {"i": start + i}, res,
                              session_id=f"s{worker}") for i in range(batch)])
store.close()
"""


@pytest.mark.slow
def test_many_processes_write_one_file_without_losing_a_record(tmp_path: Path) -> None:
    import subprocess
    import sys

    db = tmp_path / "shared" / "clisight.db"  # not created yet: the writers race to create and migrate it
    workers, total, batch = 4, 20_000, 500
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, f"sqlite:///{db}", str(w), str(total), str(batch)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for w in range(workers)
    ]
    for proc in procs:
        try:
            _, err = proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            for other in procs:
                other.kill()
            raise
        assert proc.returncode == 0, err.decode()
    store = SqliteStore(db)
    counts = {c.key: c.count for c in store.count_logs(Selection(), by="component")}
    assert counts == {f"w{w}": total for w in range(workers)}
    sessions = {row["id"]: row["log_count"] for row in store.iter_rows("session", Selection())}
    assert sessions == {f"s{w}": total for w in range(workers)}
    assert store.info().row_counts["resources"] == workers
    store.close()


def test_retention_by_age_deletes_old_rows_in_every_table(store: SqliteStore, make: Any) -> None:
    day = 86_400
    old = [
        make.log(ago_s=40 * day, severity=CRITICAL),
        make.event(ago_s=40 * day),
        make.span(ago_s=40 * day),
        make.metric(ago_s=40 * day),
        make.error("OldError", ago_s=40 * day),
        make.session("old", ago_s=40 * day),
    ]
    new = [make.log(), make.event(), make.span(), make.metric(), make.error("NewError"), make.session("new")]
    store.write_batch(old + new)
    result = store.apply_retention(max_age_days=30, max_bytes=0)
    assert {t: n for t, n in result.deleted.items() if n} == {
        "logs": 1,
        "events": 1,
        "spans": 1,
        "metric_points": 1,
        "errors": 1,
        "sessions": 1,
        "error_groups": 1,
    }
    assert result.total_deleted == 7
    counts = store.info().row_counts
    assert all(counts[t] == 1 for t in ("logs", "events", "spans", "metric_points", "errors", "sessions"))
    assert [g.type for g in store.error_groups(Selection(), 10)] == ["NewError"]


def test_no_limits_delete_nothing(store: SqliteStore, make: Any) -> None:
    store.write_batch([make.log(ago_s=10**8)])
    assert store.apply_retention(0, 0).total_deleted == 0


def test_retention_by_size_deletes_the_oldest_until_the_file_fits(store: SqliteStore, make: Any) -> None:
    padding = "x" * 400
    for chunk in range(20):
        store.write_batch(
            [make.log(f"{chunk}-{i}", ago_s=20_000 - (chunk * 500 + i), pad=padding) for i in range(500)]
        )
    assert store.path is not None
    limit = 1_500_000
    result = store.apply_retention(max_age_days=0, max_bytes=limit)
    size = os.path.getsize(store.path) + os.path.getsize(f"{store.path}-wal")
    assert result.bytes_before > 3 * limit
    assert size <= limit and result.bytes_after <= limit
    kept = store.info().row_counts["logs"]
    assert 0 < kept < 10_000 and result.deleted["logs"] == 10_000 - kept
    # The newest records are the ones kept.
    assert store.logs(Selection(), newest_first=True, limit=1)[0].message == "19-499"
    oldest = store.logs(Selection(), limit=1)[0]
    assert oldest.time_ns == min(line.time_ns for line in store.logs(Selection(), limit=kept))


def test_size_retention_on_a_file_without_auto_vacuum_falls_back_to_vacuum(db_path: Path, make: Any) -> None:
    db_path.parent.mkdir(parents=True)
    with sqlite3.connect(db_path) as conn:
        conn.execute("PRAGMA auto_vacuum = NONE")
        conn.execute("CREATE TABLE t (x)")
        conn.execute("DROP TABLE t")
    store = SqliteStore(db_path)
    store.write_batch([make.log(str(i), pad="y" * 500) for i in range(4000)])
    result = store.apply_retention(0, 600_000)
    assert result.bytes_after <= 600_000 < result.bytes_before
    store.close()


def test_write_batch_of_nothing_does_nothing(store: SqliteStore) -> None:
    store.write_batch([])
    assert store.path is not None and not store.path.exists()


def test_unknown_kinds_are_skipped(store: SqliteStore, make: Any) -> None:
    store.write_batch([Record("future-kind", 1, "x", "", 0, {}, Resource("svc")), make.log()])
    assert store.info().row_counts["logs"] == 1


@pytest.mark.parametrize("n_sessions", [1, 4])
def test_fast_and_general_insert_paths_store_the_same_rows(tmp_path: Path, n_sessions: int) -> None:
    def batch(resources: list[Resource]) -> list[Record]:
        out = []
        for i in range(60):
            res = resources[i % len(resources)]
            if i % 3 == 0:
                out.append(
                    Record(
                        "event",
                        1_000 + i,
                        "llm.request",
                        "",
                        0,
                        {"tokens": i, "m": "x"},
                        res,
                        f"s{i % n_sessions}",
                    )
                )
            else:
                sev = (5, 9, 11, 13, 17, 21)[i % 6]
                out.append(
                    Record(
                        "log",
                        1_000 + i,
                        "api",
                        f"m{i} é",
                        sev,
                        {"i": i, "f": 0.1 * i, "n": None},
                        res,
                        f"s{i % n_sessions}" if i % 5 or n_sessions == 1 else None,
                        "t" * 32 if i % 2 else None,
                        "s" * 16,
                    )
                )
        return out

    one = Resource("svc", host="h", pid=1)
    fast, general = SqliteStore(tmp_path / "fast.db"), SqliteStore(tmp_path / "general.db")
    fast.write_batch(batch([one]))  # one resource object: the JSON fast path
    general.write_batch(batch([one, Resource("svc", host="h", pid=1)]))  # equal, not identical: general
    queries = [
        "SELECT time_ns, severity, severity_text, component, message, attributes, trace_id, span_id,"
        " session_id FROM logs ORDER BY time_ns",
        "SELECT time_ns, name, attributes, session_id FROM events ORDER BY time_ns",
        "SELECT id, log_count, error_count, event_count, start_ns FROM sessions ORDER BY id",
    ]
    for sql in queries:
        with sqlite3.connect(tmp_path / "fast.db") as a, sqlite3.connect(tmp_path / "general.db") as b:
            rows_a, rows_b = a.execute(sql).fetchall(), b.execute(sql).fetchall()
        assert rows_a == rows_b and rows_a, sql
    fast.close()
    general.close()
