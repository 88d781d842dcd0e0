from __future__ import annotations

import threading
from pathlib import Path

import pytest

from clisight.exceptions import StoreError, UnsupportedStoreURL
from clisight.store import BACKENDS, MemoryStore, Selection, SqliteStore, Store, backend_of, open_store
from clisight.store._sql import RECORD_TABLES


def test_sqlite_url_with_absolute_path_creates_parent_directories(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "x.db"
    store = open_store(f"sqlite:///{target}")
    assert isinstance(store, Store)
    assert store.migrate() > 0
    assert target.is_file()
    assert store.url == f"sqlite:///{target}"
    store.close()


def test_sqlite_url_with_relative_path_is_relative_to_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store("sqlite:///rel/x.db")
    store.migrate()
    assert (tmp_path / "rel" / "x.db").is_file()
    store.close()


@pytest.mark.parametrize("as_path", [True, False])
def test_plain_path_opens_a_sqlite_file(tmp_path: Path, as_path: bool) -> None:
    target = tmp_path / "plain" / "x.db"
    store = open_store(target if as_path else str(target))
    assert isinstance(store, SqliteStore)
    store.migrate()
    assert target.is_file()
    store.close()


def test_the_url_scheme_picks_the_backend_from_one_table() -> None:
    assert backend_of("sqlite:///x.db") == backend_of("x.db") == backend_of(Path("x.db")) == "sqlite"
    assert backend_of("memory://") == "memory"
    assert backend_of("postgresql://u:p@db/x") == backend_of("postgres://db/x") == "postgresql"
    assert backend_of("postgresql+psycopg://db/x") == "postgresql"
    assert set(BACKENDS) == {"sqlite", "memory", "postgresql"}
    assert isinstance(open_store("memory://"), MemoryStore)
    sqlite_memory = open_store("sqlite:///:memory:")
    assert isinstance(sqlite_memory, SqliteStore) and sqlite_memory.path is None


@pytest.mark.parametrize("url", ["memory://", "sqlite:///:memory:"])
def test_memory_stores_hold_every_kind_and_touch_no_file(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store(url)
    info = store.info()
    assert info.path is None and info.file_bytes == 0
    assert set(RECORD_TABLES) <= set(info.row_counts)
    store.close()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("url", ["memory://", "sqlite:///:memory:"])
def test_memory_store_is_shared_by_threads_of_one_process(url: str) -> None:
    from clisight.types import Record, Resource

    store = open_store(url)
    res = Resource("svc")

    def write(thread: int) -> None:
        for i in range(10):
            store.write_batch([Record("log", i, f"t{thread}", "m", 9, {}, res) for _ in range(10)])

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    counts = {r["component"]: r["count"] for r in store.aggregate("log", Selection(), ("component",))}
    assert counts == {"t0": 100, "t1": 100, "t2": 100, "t3": 100}
    store.close()


@pytest.mark.parametrize(
    "url", ["mysql://user:secret@db/x", "sqlite://host/x.db", "  ", "mongodb://a:secret@h"]
)
def test_unknown_urls_raise_naming_the_supported_ones(url: str) -> None:
    with pytest.raises(UnsupportedStoreURL) as info:
        open_store(url)
    message = str(info.value)
    assert "sqlite:///" in message and "memory://" in message and "postgresql://" in message
    assert "secret" not in message
    assert isinstance(info.value, StoreError)


@pytest.mark.parametrize("url", ["memory://", "sqlite:///:memory:"])
def test_closed_memory_store_says_it_cannot_reopen(url: str) -> None:
    store = open_store(url)
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.rows("log", Selection())


def test_threads_read_while_another_thread_writes(tmp_path: Path) -> None:
    from clisight.types import Record, Resource

    store = open_store(tmp_path / "x.db")
    res = Resource("svc")
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for i in range(50):
                store.write_batch([Record("log", i, "c", f"m{i}", 9, {}, res) for _ in range(20)])
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    def read() -> None:
        try:
            for _ in range(50):
                store.rows("log", Selection(), newest_first=True, limit=10)
                store.aggregate("log", Selection(), ("component",))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write), *(threading.Thread(target=read) for _ in range(3))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    assert store.info().row_counts["logs"] == 1000
    store.close()


def _filled(path: Path) -> None:
    from clisight.types import Record, Resource

    store = open_store(path)
    store.write_batch([Record("log", 1, "api", f"m{i}", 9, {}, Resource("svc")) for i in range(3)])
    store.close()


def test_read_only_store_reads_without_changing_the_file(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    _filled(db)
    before = db.read_bytes()
    store = open_store(f"sqlite:///{db}", read_only=True)
    assert isinstance(store, SqliteStore) and store.read_only
    assert [r["message"] for r in store.rows("log", Selection()).rows] == ["m0", "m1", "m2"]
    assert store.info().row_counts["logs"] == 3
    with pytest.raises(StoreError, match="read-only"):
        store.save_state("k", 1)
    store.close()
    assert db.read_bytes() == before


def test_read_only_store_on_a_missing_file_says_no_store_and_creates_nothing(tmp_path: Path) -> None:
    target = tmp_path / "absent" / "x.db"
    store = open_store(target, read_only=True)
    with pytest.raises(StoreError, match=f"no store at {target}"):
        store.rows("log", Selection())
    assert not (tmp_path / "absent").exists()


def test_read_only_store_of_an_older_layout_asks_for_an_upgrade_and_changes_nothing(tmp_path: Path) -> None:
    import sqlite3

    from clisight.exceptions import SchemaError
    from clisight.store.schema import MIGRATIONS, VERSION_TABLE

    db = tmp_path / "old.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute(VERSION_TABLE)
    for statement in MIGRATIONS[0][1]:
        conn.execute(statement)
    conn.execute("INSERT INTO schema_version VALUES (1, 0, 'v1')")
    conn.close()
    before = db.read_bytes()
    store = SqliteStore(db, read_only=True)
    with pytest.raises(SchemaError, match=r"schema version 1\b.*must be upgraded"):
        store.rows("log", Selection())
    store.close()
    assert db.read_bytes() == before


def test_read_only_store_refuses_a_newer_schema_and_a_foreign_database(tmp_path: Path) -> None:
    import sqlite3

    from clisight.exceptions import SchemaError
    from clisight.store.schema import LATEST_VERSION

    newer = tmp_path / "newer.db"
    _filled(newer)
    with sqlite3.connect(newer) as conn:
        conn.execute("INSERT INTO schema_version VALUES (?, 0, 'future')", (LATEST_VERSION + 1,))
    conn.close()
    with pytest.raises(SchemaError, match="newer than this clisight"):
        SqliteStore(newer, read_only=True).rows("log", Selection())
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE photos (x)")
    conn.close()
    with pytest.raises(SchemaError, match="not a clisight store"):
        SqliteStore(foreign, read_only=True).rows("log", Selection())


def test_a_writer_refuses_another_programs_database_and_leaves_it_as_it_was(tmp_path: Path) -> None:
    # clisight.init(store="app.db") on the program's own database must not add clisight's tables to it.
    import sqlite3

    from clisight.exceptions import SchemaError
    from clisight.types import Record, Resource

    foreign = tmp_path / "app.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE photos (x)")
        conn.execute("INSERT INTO photos VALUES (1)")
    conn.close()
    before = foreign.read_bytes()
    store = SqliteStore(foreign)
    with pytest.raises(SchemaError, match="not a clisight store"):
        store.migrate()
    with pytest.raises(SchemaError, match="not a clisight store"):
        store.write_batch([Record("log", 1, "api", "hello", 9, {}, Resource("svc"))])
    store.close()
    assert foreign.read_bytes() == before
    with sqlite3.connect(foreign) as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["photos"]
    conn.close()


def test_read_only_store_reads_an_empty_file_as_an_empty_store(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    store = SqliteStore(empty, read_only=True)
    assert store.rows("log", Selection()).rows == [] and store.info().schema_version == 0
    assert store.aggregate("log", Selection(), ("severity",)) == []
    store.close()
    assert empty.read_bytes() == b""


def test_read_only_flag_is_ignored_by_a_private_memory_store() -> None:
    store = open_store("sqlite:///:memory:", read_only=True)
    assert isinstance(store, SqliteStore) and not store.read_only
    store.save_state("k", 1)
    assert store.load_state("k") == 1
    store.close()


def test_read_only_store_sees_what_a_writer_commits_after_it_opened(tmp_path: Path) -> None:
    from clisight.types import Record, Resource

    db = tmp_path / "live.db"
    writer = open_store(db)
    writer.write_batch([Record("log", 1, "api", "first", 9, {}, Resource("svc"))])
    reader = open_store(db, read_only=True)
    page = reader.rows("log", Selection())
    assert [r["message"] for r in page.rows] == ["first"]
    writer.write_batch([Record("log", 2, "api", "second", 9, {}, Resource("svc"))])
    follow = reader.rows("log", Selection(), cursor=page.cursor)  # as tail -f polls
    assert [r["message"] for r in follow.rows] == ["second"]
    reader.close()
    writer.close()
