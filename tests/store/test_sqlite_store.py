"""What is particular to the SQLite backend: its file, its transactions, its connections, fork and
retention on disk.  What every backend must do is in test_conformance.py."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clisight.exceptions import DataError, StoreError
from clisight.store import RetentionPolicy, Selection, SqliteStore, _sqlite_insert
from clisight.types import CRITICAL, LOG, Record, Resource

NO_AGE = RetentionPolicy(raw_days=0, minute_days=0, hour_days=0, day_days=0)


def messages(store: SqliteStore, **kw: Any) -> list[str]:
    return [row["message"] for row in store.rows("log", Selection(**kw), limit=100_000).rows]


def test_a_failing_batch_stores_nothing_and_raises_store_error(store: SqliteStore, make: Any) -> None:
    broken = Record("log", make.now, "app", None, 9, {}, make.log().resource)  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="cannot write"):
        store.write_batch([make.log("first"), make.event(), make.span(), broken])
    counts = store.info().row_counts
    assert counts["logs"] == counts["events"] == counts["spans"] == counts["rollups"] == 0
    store.write_batch([make.log("after")])  # the store is still usable
    assert messages(store) == ["after"]


def test_resources_and_names_are_stored_once(store: SqliteStore, make: Any) -> None:
    other = Resource("other")
    store.write_batch([make.log() for _ in range(100)] + [make.log(resource=other) for _ in range(10)])
    store.close()
    reopened = SqliteStore(store.path or "")
    reopened.write_batch([make.log(resource=other), make.event("app")])
    info = reopened.info()
    assert info.row_counts["resources"] == 2 and info.row_counts["names"] == 1  # "app" twice: one name
    [row] = reopened.aggregate("log", Selection(service="other"), ("component",), ("count",))
    assert row == {"component": "app", "count": 11}
    reopened.close()


def test_a_malformed_record_is_a_data_error_and_stores_nothing(store: SqliteStore, make: Any) -> None:
    with pytest.raises(DataError, match="malformed"):
        store.write_batch([make.log("first"), make.log()._replace(time_ns=None)])
    assert store.info().row_counts["logs"] == 0


def test_a_rolled_back_batch_leaves_no_cached_ids_behind(store: SqliteStore, make: Any) -> None:
    new = Resource("fresh")
    broken = Record("log", make.now, "app", None, 9, {}, new)  # type: ignore[arg-type]
    with pytest.raises(StoreError):
        store.write_batch([make.log("x", "brand-new", resource=new), broken])
    store.write_batch([make.log("y", "brand-new", resource=new)])  # ids from the rollback are not reused
    [row] = store.rows("log", Selection()).rows
    assert (row["component"], row["service"]) == ("brand-new", "fresh")


def test_logs_follow_by_increasing_id_even_after_the_newest_are_deleted(
    store: SqliteStore, make: Any
) -> None:
    store.write_batch([make.log(f"m{i}") for i in range(5)])
    cursor = store.rows("log", Selection()).cursor
    assert store.path is not None
    with sqlite3.connect(store.path) as conn:
        conn.execute("DELETE FROM logs")
    store.write_batch([make.log("new")])
    page = store.rows("log", Selection(), cursor=cursor)
    assert [r["message"] for r in page.rows] == ["new"] and page.rows[0]["id"] > int(cursor or 0)


def test_readers_never_wait_for_a_writer_holding_the_lock(store: SqliteStore, make: Any) -> None:
    store.write_batch([make.log("before")])
    assert store.path is not None
    blocker = sqlite3.connect(store.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process mid-write
    blocker.execute("INSERT INTO kv_state VALUES ('k', '1', 1)")
    try:
        started = time.monotonic()
        results: list[list[str]] = []
        threads = [threading.Thread(target=lambda: results.append(messages(store))) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert results == [["before"]] * 6 and time.monotonic() - started < 5
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert store._active == 0 and len(store._idle) <= 4


def test_text_with_nul_characters_takes_the_exact_path_and_reads_back_whole(
    store: SqliteStore, make: Any
) -> None:
    store.write_batch([make.log("a\x00b", detail="x\x00y"), make.log("plain")])
    rows = store.rows("log", Selection()).rows
    assert [r["message"] for r in rows] == ["a\x00b", "plain"] and rows[0]["attributes"] == {
        "detail": "x\x00y"
    }


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
def test_fork_closes_the_connections_first_so_the_child_inherits_no_sqlite_state(
    store: SqliteStore, make: Any
) -> None:
    store.write_batch([make.log("parent")])
    assert messages(store) == ["parent"]  # a pooled read connection exists now
    inherited = store._conn
    assert inherited is not None and store._idle
    pid = os.fork()
    if pid == 0:  # child: everything in a try so pytest never runs on in the child
        code = 1
        try:
            # os.register_at_fork already ran after_fork; calling it again is harmless.
            store.after_fork()
            ok = store._conn is None and not store._idle
            store.write_batch([make.log("child")])
            code = 0 if ok and store._conn is not inherited else 2
        finally:
            os._exit(code)
    assert store._conn is None and not store._idle  # closed for the fork; reopened on the next call
    assert _wait(pid) == 0
    store.write_batch([make.log("parent again")])
    assert messages(store) == ["parent", "child", "parent again"]


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
    counts = {r["component"]: r["count"] for r in store.aggregate("log", Selection(), ("component",))}
    assert counts == {f"w{w}": total for w in range(workers)}
    raw = {
        r["component"]: r["count"] for r in store.aggregate("log", Selection(), ("component",), source="raw")
    }
    assert raw == counts
    sessions = {row["id"]: row["log_count"] for row in store.rows("session", Selection()).rows}
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
    result = store.apply_retention(RetentionPolicy(raw_days=30))
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
    assert [g["type"] for g in store.rows("error_group", Selection()).rows] == ["NewError"]
    # Rollups are kept longer than raw rows: the old records are still counted.
    old_range = Selection(until_ns=make.now - 39 * day * 10**9)
    assert store.aggregate("error", old_range, ("type",)) == [{"type": "OldError", "count": 1}]
    assert store.aggregate("error", old_range, ("type",), source="raw") == []


def test_no_limits_delete_nothing(store: SqliteStore, make: Any) -> None:
    store.write_batch([make.log(ago_s=10**8)])
    assert store.apply_retention(NO_AGE).total_deleted == 0


def test_retention_by_size_deletes_the_oldest_until_the_file_fits(store: SqliteStore, make: Any) -> None:
    padding = "x" * 400
    for chunk in range(20):
        store.write_batch(
            [make.log(f"{chunk}-{i}", ago_s=20_000 - (chunk * 500 + i), pad=padding) for i in range(500)]
        )
    assert store.path is not None
    limit = 1_500_000
    result = store.apply_retention(RetentionPolicy(0, 0, 0, 0, max_bytes=limit))
    size = os.path.getsize(store.path) + os.path.getsize(f"{store.path}-wal")
    assert result.bytes_before > 3 * limit
    assert size <= limit and result.bytes_after <= limit
    kept = store.info().row_counts["logs"]
    assert 0 < kept < 10_000 and result.deleted["logs"] == 10_000 - kept
    # The newest records are the ones kept.
    assert store.rows("log", Selection(), newest_first=True, limit=1).rows[0]["message"] == "19-499"
    oldest = store.rows("log", Selection(), limit=1).rows[0]
    assert oldest["time_ns"] == min(r["time_ns"] for r in store.rows("log", Selection(), limit=kept).rows)


def test_size_retention_on_a_file_without_auto_vacuum_falls_back_to_vacuum(db_path: Path, make: Any) -> None:
    db_path.parent.mkdir(parents=True)
    with sqlite3.connect(db_path) as conn:
        conn.execute("PRAGMA auto_vacuum = NONE")
        conn.execute("CREATE TABLE t (x)")
        conn.execute("DROP TABLE t")
    store = SqliteStore(db_path)
    store.write_batch([make.log(str(i), pad="y" * 500) for i in range(4000)])
    result = store.apply_retention(RetentionPolicy(0, 0, 0, 0, max_bytes=600_000))
    assert result.bytes_after <= 600_000 < result.bytes_before
    store.close()


def test_write_batch_of_nothing_does_nothing(store: SqliteStore) -> None:
    store.write_batch([])
    assert store.path is not None and not store.path.exists()


def test_unknown_kinds_are_skipped(store: SqliteStore, make: Any) -> None:
    store.write_batch([Record("future-kind", 1, "x", "", 0, {}, Resource("svc")), make.log()])
    assert store.info().row_counts["logs"] == 1


def test_a_trace_is_stored_once_by_number_and_its_records_are_found_through_its_time_span(
    store: SqliteStore, make: Any
) -> None:
    trace = "ab" * 16
    in_trace = [make.log(f"t{i}", ago_s=i)._replace(trace_id=trace, span_id="cd" * 8) for i in range(3)]
    store.write_batch([*in_trace, make.log("other", ago_s=1)._replace(trace_id="ef" * 16), make.log("none")])
    store.write_batch([make.log("late", ago_s=10)._replace(trace_id=trace)])  # widens the trace's span
    assert store.info().row_counts["traces"] == 2
    found = store.rows("log", Selection(trace_id=trace)).rows
    assert sorted(r["message"] for r in found) == ["late", "t0", "t1", "t2"]
    assert {r["trace_id"] for r in found} == {trace} and found[0]["span_id"] == "cd" * 8
    assert store.rows("log", Selection(trace_id="00" * 16)).rows == []
    assert store.aggregate("log", Selection(trace_id=trace)) == [{"count": 4}]


def test_the_user_attribute_is_stored_by_number_and_read_back_into_the_attributes(
    store: SqliteStore, make: Any
) -> None:
    user = "u_" + "5e" * 8
    store.write_batch(
        [make.log("a", user_id=user, n=1), make.log("b", user_id=user), make.log("c", user_id=7)]
    )
    rows = store.rows("log", Selection()).rows
    assert [r["attributes"] for r in rows] == [{"n": 1, "user_id": user}, {"user_id": user}, {"user_id": 7}]
    assert store.path is not None
    with sqlite3.connect(store.path) as conn:
        stored = conn.execute("SELECT attributes, user_id IS NOT NULL FROM logs ORDER BY id").fetchall()
    assert stored == [('{"n":1}', 1), (None, 1), ('{"user_id":7}', 0)]  # only text users move


def test_long_stacks_are_stored_compressed_and_read_back_exactly(store: SqliteStore, make: Any) -> None:
    frames = "".join(f'  File "/app/mod{i}.py", line {i}, in f{i}\n    call_{i}()\n' for i in range(60))
    long_stack = f"Traceback (most recent call last):\n{frames}ValueError: bad é \udcff"
    store.write_batch([make.error(stack=long_stack), make.error(stack="short")])
    assert [r["stack"] for r in store.rows("error", Selection()).rows] == [long_stack, "short"]
    assert store.path is not None
    with sqlite3.connect(store.path) as conn:
        sizes = conn.execute("SELECT typeof(stack), length(stack) FROM errors ORDER BY id").fetchall()
    assert sizes[0][0] == "blob" and sizes[0][1] < len(long_stack) / 3 and sizes[1] == ("text", 5)


@given(rows=st.integers(0, 5_000), width=st.integers(1, 40))
def test_statement_pieces_cover_every_row_once_in_a_few_sizes(rows: int, width: int) -> None:
    conn = sqlite3.connect(":memory:")
    pieces = list(_sqlite_insert._row_chunks(conn, rows, width))
    covered = [row for start, count in pieces for row in range(start, start + count)]
    assert covered == list(range(rows))
    sizes = {count for _, count in pieces}
    assert all(count & (count - 1) == 0 for count in sizes), "every size a power of two"
    assert all(count * width <= conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) for count in sizes)
    assert max(sizes, default=1) <= _sqlite_insert.MAX_STATEMENT_ROWS


def test_batches_of_every_size_prepare_a_bounded_set_of_statements(store: SqliteStore) -> None:
    """A long-running program's batches come in any size: the statements it prepares (each kept in
    the connection's cache, some a megabyte) must not be one per size, or its memory grows."""
    resource = Resource("svc")
    store.write_batch([Record(LOG, 0, "c", "m", 9, {}, resource)])  # opens the writer's connection
    inserts: set[int] = set()  # the row counts of the log inserts (the trace shows bound values)
    conn = store._conn
    assert conn is not None
    conn.set_trace_callback(
        lambda sql: inserts.add(sql.count("), (") + 1) if sql.startswith("INSERT INTO logs") else None
    )
    sizes = range(1, 1_200, 11)
    for n in sizes:
        store.write_batch([Record(LOG, i, "c", "m", 9, {"i": i}, resource) for i in range(n)])
    conn.set_trace_callback(None)
    assert store.path is not None
    with sqlite3.connect(store.path) as check:
        assert check.execute("SELECT COUNT(*) FROM logs").fetchone()[0] == 1 + sum(sizes)
    assert 1 < len(inserts) <= 10, f"statements of {sorted(inserts)} rows for {len(sizes)} batch sizes"
