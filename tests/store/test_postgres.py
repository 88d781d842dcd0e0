"""What is particular to the PostgreSQL store: its schema kept in step with SQLite's, day partitions,
several processes writing at once, a connection dropped mid-batch, deadlines, forks and passwords.

The behaviour every backend shares is the conformance suite's (``test_conformance.py``).  Each test
gets a new, empty database on a throw-away server the tests start themselves (``tests/pg_cluster``).
"""

from __future__ import annotations

import gc
import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from clisight.exceptions import StoreError
from clisight.store import RetentionPolicy, Selection, SqliteStore, open_store
from clisight.store.schema import LATEST_VERSION
from clisight.types import Deadline, Record, Resource
from tests.pg_cluster import database_url, pg_cluster, pg_url  # noqa: F401

psycopg = pytest.importorskip("psycopg")

DAY = 86_400 * 10**9
TIMEOUT = 60  # seconds any subprocess or wait may take
RES = Resource("pg-test", version="1", host="h", pid=7)


def log(t: int, message: str = "hello", component: str = "app", **attributes: Any) -> Record:
    return Record("log", t, component, message, 9, attributes, RES)


def admin(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    """Rows of one statement run on its own autocommit connection."""
    with psycopg.connect(url, autocommit=True, connect_timeout=TIMEOUT) as conn:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description else []


@pytest.fixture
def db(request: pytest.FixtureRequest) -> str:
    """The URL of a new, empty database (``pg_url``)."""
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def admin_url(request: pytest.FixtureRequest) -> str:
    """The server's superuser URL (``pg_cluster``)."""
    url: str = request.getfixturevalue("pg_cluster")
    return url


@pytest.fixture
def store(db: str) -> Iterator[Any]:
    opened = open_store(db)
    yield opened
    opened.close()


def read_all(store: Any, kind: str = "log") -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = store.rows(kind, Selection(), cursor=cursor, limit=1000)
        if not page.rows:
            return rows
        rows += page.rows
        cursor = page.cursor


# == schema ===========================================================================================
def test_a_new_database_migrates_from_zero_and_migrating_again_changes_nothing(db: str) -> None:
    first = open_store(db)
    try:
        assert first.migrate() == LATEST_VERSION
        versions = admin(db, "SELECT version, description FROM schema_version ORDER BY version")
        assert [v for v, _ in versions] == list(range(1, LATEST_VERSION + 1))
        assert all(d == "no PostgreSQL store predates version 5" for v, d in versions if v < 5)
        first.write_batch([log(time.time_ns(), "kept")])
    finally:
        first.close()
    again = open_store(db)
    try:
        assert again.migrate() == LATEST_VERSION
        assert [row["message"] for row in read_all(again)] == ["kept"]
        assert admin(db, "SELECT COUNT(*) FROM schema_version") == [(LATEST_VERSION,)]
    finally:
        again.close()


def test_processes_migrating_one_new_database_at_once_take_turns(db: str) -> None:
    script = (
        "import sys; from clisight.store import open_store; s = open_store(sys.argv[1]); print(s.migrate())"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, db], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 0, err.decode()
        assert out.split() == [str(LATEST_VERSION).encode()]
    assert admin(db, "SELECT COUNT(*) FROM schema_version") == [(LATEST_VERSION,)]


def test_postgresql_and_sqlite_stores_have_the_same_tables_and_columns(db: str, tmp_path: Path) -> None:
    sqlite_store = SqliteStore(tmp_path / "columns.db")
    sqlite_store.migrate()
    sqlite_store.close()
    with sqlite3.connect(tmp_path / "columns.db") as conn:
        tables = [
            name
            for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if not name.startswith("sqlite_")
        ]
        in_sqlite = {t: {row[1] for row in conn.execute(f"PRAGMA table_info({t})")} for t in tables}
    store = open_store(db)
    try:
        store.migrate()
    finally:
        store.close()
    in_postgres: dict[str, set[str]] = {}
    for table, column in admin(
        db,
        "SELECT c.table_name, c.column_name FROM information_schema.columns c"
        " JOIN pg_class r ON r.relname = c.table_name AND r.relnamespace = c.table_schema::regnamespace"
        " WHERE c.table_schema = current_schema() AND NOT r.relispartition",
    ):
        in_postgres.setdefault(table, set()).add(column)
    assert in_postgres == in_sqlite


# == values PostgreSQL cannot keep as they are =====================================================
def test_texts_with_nul_and_the_escape_character_read_back_exactly() -> None:
    from clisight.store._model import from_json
    from clisight.store._pg_values import ESC, decode, decode_value, encode, json_text

    texts = ["", "plain", "a\x00b", "\x00", ESC, ESC + "0", "\x00" + ESC + "\x00", "x" + ESC + ESC + "0\x00"]
    for text in texts:
        assert "\x00" not in encode(text)
        assert decode(encode(text)) == text
        for prefix in (text[:1], text[:2], text):
            assert encode(text).startswith(encode(prefix)), "a prefix stays a prefix once encoded"
    assert len({encode(t) for t in texts}) == len(texts), "different texts stay different"
    value = {
        "nul": "be\x00fore",
        "key\x00": [ESC, {"deep": "\x00"}],
        "huge": 1.7976931348623157e308,
        "big": 1e16,
        "tiny": 5e-324,
        "wide": 2**70,
        "n": -(2**63),
        "flag": True,
    }
    text = json_text(value)
    assert text is not None and "\\u0000" not in text and "e+" not in text
    back = decode_value(from_json(text))
    assert back == {**value, "wide": str(2**70)}, "an integer beyond 64 bits keeps its digits"
    assert type(back["huge"]) is float and type(back["big"]) is float
    assert json_text({"plain": 1.5}) == '{"plain":1.5}', "the common case is orjson's text as is"


def test_stores_in_two_schemas_of_one_database_keep_to_their_own(db: str) -> None:
    admin(db, "CREATE SCHEMA team_a")
    admin(db, "CREATE SCHEMA team_b")
    stores = {name: open_store(f"{db}?options=-csearch_path%3D{name}") for name in ("team_a", "team_b")}
    try:
        now = time.time_ns()
        threads = [
            threading.Thread(
                target=lambda s=store, n=name: [s.write_batch([log(now + i, f"{n} {i}")]) for i in range(20)]
            )
            for name, store in stores.items()
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=TIMEOUT)
        for name, store in stores.items():
            assert [row["message"] for row in read_all(store)] == [f"{name} {i}" for i in range(20)]
        tables = admin(db, "SELECT table_schema, COUNT(*) FROM information_schema.tables GROUP BY 1")
        assert {schema for schema, _ in tables} >= {"team_a", "team_b"}
        assert admin(db, "SELECT to_regclass('public.logs') IS NULL") == [(True,)]
    finally:
        for store in stores.values():
            store.close()


# == partitions and retention ======================================================================
def partitions(url: str, table: str = "logs") -> set[str]:
    rows = admin(
        url,
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = %s::regclass",
        (table,),
    )
    return {name for (name,) in rows}


def test_retention_drops_the_day_partitions_past_raw_days_and_keeps_today(store: Any, db: str) -> None:
    now = time.time_ns()
    old = now - 40 * DAY
    store.write_batch(
        [log(old + i, f"old {i}") for i in range(5)] + [log(now + i, f"new {i}") for i in range(3)]
    )
    old_partition = f"logs_p{time.strftime('%Y%m%d', time.gmtime(old / 1e9))}"
    today_partition = f"logs_p{time.strftime('%Y%m%d', time.gmtime(now / 1e9))}"
    assert {old_partition, today_partition} <= partitions(db)

    result = store.apply_retention(RetentionPolicy(raw_days=30))

    assert old_partition not in partitions(db)
    assert admin(db, "SELECT COUNT(*) FROM pg_class WHERE relname = %s", (old_partition,)) == [(0,)]
    assert today_partition in partitions(db)
    assert result.deleted["logs"] == 5
    assert sorted(row["message"] for row in read_all(store)) == ["new 0", "new 1", "new 2"]
    # The day's rollups outlive its raw rows.
    since = old - old % DAY
    [found] = store.aggregate("log", Selection(since_ns=since, until_ns=since + DAY - 1))
    assert found["count"] == 5
    # A write to the dropped day makes its partition again.
    store.write_batch([log(old, "late")])
    assert old_partition in partitions(db)


def test_writers_making_the_same_new_day_at_once_all_succeed(db: str) -> None:
    day = time.time_ns() - 3 * DAY
    stores = [open_store(db) for _ in range(6)]
    stores[0].migrate()
    errors: list[BaseException] = []
    start = threading.Barrier(len(stores))

    def write(store: Any, n: int) -> None:
        try:
            start.wait(timeout=TIMEOUT)
            store.write_batch([log(day + n, f"writer {n}")])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(s, n)) for n, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=TIMEOUT)
    try:
        assert errors == []
        assert len(read_all(stores[0])) == len(stores)
    finally:
        for store in stores:
            store.close()


def test_a_batch_larger_than_one_block_of_ids_gets_increasing_ids_in_every_table(store: Any) -> None:
    from clisight.store._pg_schema import ID_BLOCK

    now = time.time_ns()
    big = [log(now + i, f"m{i}") for i in range(ID_BLOCK + 10)]
    events = [Record("event", now + i, "e", "", 0, {}, RES) for i in range(5)]
    store.write_batch(big + events)
    store.write_batch([log(now, "after")])
    logs = read_all(store)
    assert [row["message"] for row in logs] == [f"m{i}" for i in range(ID_BLOCK + 10)] + ["after"]
    ids = [row["id"] for row in logs] + [row["id"] for row in read_all(store, "event")]
    assert len(set(ids)) == len(ids), "ids are unique across the raw tables"
    assert all(a < b for a, b in itertools.pairwise(row["id"] for row in logs))


# == several processes ===============================================================================
WRITER = r"""
import os, sys, time
from clisight.store import open_store
from clisight.types import Record, Resource

url, go = sys.argv[1], sys.argv[5]
writer, batches, size = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
store = open_store(url)
store.migrate()
res = Resource("writer", pid=writer)
give_up = time.monotonic() + 30
while not os.path.exists(go) and time.monotonic() < give_up:
    time.sleep(0.005)
for b in range(batches):
    now = time.time_ns()
    attrs = {"writer": writer, "batch": b}
    store.write_batch([
        Record("log", now + i, f"w{writer}", f"w{writer} b{b} i{i}", 9, attrs, res, "shared")
        for i in range(size)
    ])
store.close()
"""


def test_four_processes_write_at_once_and_a_reader_paging_along_misses_nothing(
    store: Any, db: str, tmp_path: Path
) -> None:
    store.migrate()
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    go = tmp_path / "go"
    writers, batches, size = 4, 30, 100
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), db, str(w), str(batches), str(size), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(writers)
    ]
    seen: list[int] = []
    cursor = None
    try:
        go.touch()
        give_up = time.monotonic() + TIMEOUT
        while True:
            running = any(proc.poll() is None for proc in procs)
            page = store.rows("log", Selection(), cursor=cursor, limit=53)
            seen += [row["id"] for row in page.rows]
            cursor = page.cursor
            if not page.rows and not running:
                break
            assert time.monotonic() < give_up, "the writers did not finish in time"
            if not page.rows:
                time.sleep(0.002)
        for proc in procs:
            _, err = proc.communicate(timeout=TIMEOUT)
            assert proc.returncode == 0, err
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    everything = read_all(store)
    assert len(everything) == writers * batches * size
    assert all(a < b for a, b in itertools.pairwise(seen)), "pages come in id order, each id once"
    assert seen == [row["id"] for row in everything], "the reader paging along missed nothing"
    per_batch: dict[tuple[int, int], int] = {}
    for row in everything:
        key = (row["attributes"]["writer"], row["attributes"]["batch"])
        per_batch[key] = per_batch.get(key, 0) + 1
    assert per_batch == {(w, b): size for w in range(writers) for b in range(batches)}
    [shared] = store.rows("session", Selection(session_id="shared")).rows
    assert shared["log_count"] == writers * batches * size, "no counter increment lost between processes"


# == failures: a dropped connection, deadlines ====================================================
def writer_pid(admin_url: str, database: str) -> int | None:
    rows = admin(
        admin_url,
        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = 'clisight-writer'"
        " AND xact_start IS NOT NULL",
        (database,),
    )
    return int(rows[0][0]) if rows else None


def test_a_connection_dropped_mid_batch_stores_nothing_of_it_and_the_next_batch_reconnects(
    store: Any, db: str, admin_url: str
) -> None:
    store.write_batch([log(time.time_ns(), "before")])
    database = db.rsplit("/", 1)[1]
    now = time.time_ns()
    big = [log(now + i, f"big {i}", pad="x" * 200, i=i) for i in range(150_000)]
    failure: list[BaseException] = []

    def write() -> None:
        try:
            store.write_batch(big)
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=write)
    thread.start()
    give_up = time.monotonic() + TIMEOUT
    pid = None
    while pid is None and thread.is_alive() and time.monotonic() < give_up:
        pid = writer_pid(admin_url, database)
    assert pid is not None, "the writer's transaction was never seen"
    assert admin(admin_url, "SELECT pg_terminate_backend(%s)", (pid,)) == [(True,)]
    thread.join(timeout=TIMEOUT)
    assert not thread.is_alive()

    assert len(failure) == 1 and isinstance(failure[0], StoreError), failure
    stored = admin(db, "SELECT COUNT(*) FROM logs WHERE message LIKE 'big %%'")[0][0]
    assert stored in (0, len(big)), "a batch is stored whole or not at all"
    assert store.write_batch([log(time.time_ns(), "after")]) is True, "the next batch reconnects"
    messages = [row["message"] for row in read_all(store)]
    assert [m for m in messages if not m.startswith("big ")] == ["before", "after"]
    [counted] = store.aggregate("log", Selection(), (), ("count",))
    assert counted["count"] == 2 + stored, "the batch's rollups went (or stayed) with its rows"


def test_a_write_waiting_on_a_lock_gives_up_at_its_deadline(store: Any, db: str) -> None:
    store.write_batch([log(time.time_ns(), "first")])  # the schema, partitions and keys exist now
    order_key = store._keys[0]
    with psycopg.connect(db, autocommit=True) as blocker:
        blocker.execute("SELECT pg_advisory_lock(%s)", (order_key,))  # as a writer mid-commit would
        started = time.monotonic()
        with pytest.raises(StoreError, match="deadline"):
            store.write_batch([log(time.time_ns(), "late")], deadline=Deadline(time.monotonic() + 0.5))
        assert time.monotonic() - started < 3

        # A deadline brought forward while the write waits (the process began to exit).
        deadline = Deadline()
        failure: list[BaseException] = []

        def write() -> None:
            try:
                store.write_batch([log(time.time_ns(), "later")], deadline=deadline)
            except BaseException as exc:
                failure.append(exc)

        thread = threading.Thread(target=write)
        thread.start()
        time.sleep(0.5)
        assert thread.is_alive(), "the write waits for the lock"
        moved = time.monotonic()
        deadline.at = moved + 0.2
        thread.join(timeout=TIMEOUT)
        assert not thread.is_alive() and time.monotonic() - moved < 3
        assert len(failure) == 1 and isinstance(failure[0], StoreError)
        blocker.execute("SELECT pg_advisory_unlock(%s)", (order_key,))
    assert [row["message"] for row in read_all(store)] == ["first"]
    assert store.write_batch([log(time.time_ns(), "free again")]) is True


# == fork, read-only, passwords =====================================================================
def test_a_forked_child_exiting_never_ends_the_parents_session(store: Any, db: str) -> None:
    store.write_batch([log(time.time_ns(), "parent")])
    read_all(store)  # a pooled reader exists too
    backend = store._conn.info.backend_pid
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            store.after_fork()
            store.write_batch([log(time.time_ns(), "child")])
            from clisight.store import postgres

            postgres._ABANDONED.clear()  # what interpreter exit does: the inherited objects are freed
            gc.collect()
            code = 0
        finally:
            os._exit(code)
    give_up = time.monotonic() + TIMEOUT
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > give_up:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError("the child did not finish")
        time.sleep(0.01)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store._conn.info.backend_pid == backend
    assert store.write_batch([log(time.time_ns(), "parent again")]) is True
    assert store._conn.info.backend_pid == backend, "the parent's session survived the child"
    assert [row["message"] for row in read_all(store)] == ["parent", "child", "parent again"]


def test_a_read_only_store_never_creates_the_schema_and_refuses_writes(db: str) -> None:
    reader = open_store(db, read_only=True)
    try:
        with pytest.raises(StoreError, match="no store at"):
            reader.rows("log", Selection())
        with pytest.raises(StoreError, match="read-only"):
            reader.write_batch([log(time.time_ns())])
        assert admin(db, "SELECT to_regclass('schema_version') IS NULL") == [(True,)]
        writer = open_store(db)
        writer.write_batch([log(time.time_ns(), "written")])
        writer.close()
        assert [row["message"] for row in read_all(reader)] == ["written"]
        with pytest.raises(StoreError, match="read-only"):
            reader.save_state("k", 1)
    finally:
        reader.close()


@pytest.mark.parametrize("secret", ["p", "s3cr3t-Pa55", "a b", "$x"])
def test_a_message_masks_the_password_where_it_stands_and_nowhere_else(secret: str) -> None:
    # No server needed: the store connects on first use.  A one-letter password used to mask every
    # "p" of the message ("***ort 1 failed").
    store = open_store(f"postgresql://u:{quote(secret)}@127.0.0.1:1/x")
    try:
        said = store._say(
            RuntimeError(
                f'connection to "127.0.0.1", port 1 failed: password={secret} url '
                f"postgresql://u:{secret}@h/x accepting"
            )
        )
    finally:
        store.close()
    assert "port 1 failed" in said and "accepting" in said
    assert said.count("***") >= 2 and f"={secret} " not in said and f":{secret}@" not in said


def test_the_password_never_shows_in_the_url_info_or_errors(db: str) -> None:
    secret = "s3cr3t-Pa55"
    with_password = db.replace("://postgres@", f"://postgres:{secret}@")
    store = open_store(with_password)
    try:
        store.write_batch([log(time.time_ns())])
        assert secret not in store.url and "***" in store.url
        assert secret not in repr(store)
        info = store.info()
        assert info.backend == "postgresql" and info.server_version[:2].isdigit()
        assert secret not in info.url and info.path is None and info.file_bytes > 0
    finally:
        store.close()
    server = with_password.rsplit("/", 1)[0]  # postgresql://postgres:secret@127.0.0.1:port
    unreachable = [
        server.rsplit(":", 1)[0] + ":1/nowhere",  # nothing listens on port 1
        database_url(with_password, "no_such_database"),
        f"{db.rsplit('/', 1)[0]}/no_such_database?password={secret}&connect_timeout=5",
    ]
    for url in unreachable:
        broken = open_store(url)
        try:
            with pytest.raises(StoreError) as caught:
                broken.write_batch([log(time.time_ns())])
            assert secret not in str(caught.value) and secret not in broken.url
            with pytest.raises(StoreError) as caught:
                broken.rows("log", Selection())
            assert secret not in str(caught.value)
        finally:
            broken.close()
