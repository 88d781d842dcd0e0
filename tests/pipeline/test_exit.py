"""At exit nothing vanishes: what the deadline cannot write is spooled and imported by the next writer,
exit costs no more than the writing, and the session records how the process ended."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

import pytest

import clisight
from clisight.pipeline import spool as spool_module
from clisight.pipeline.spool import Spool, import_spool, pending, spool_dir_for
from clisight.pipeline.store_sink import StoreSink
from clisight.pipeline.writer import Pipeline
from clisight.store.base import RetentionPolicy
from clisight.store.sqlite import SqliteStore
from clisight.testing import MemorySink
from clisight.types import LOG, Deadline, Record, Resource
from tests.helpers import count_rows, run_python, spawn_python

RES = Resource("exit-test")


def rec(i: int, body: str = "m") -> Record:
    return Record(LOG, i, "c", body, 9, {"i": i}, RES)


# --- flush and shutdown answer at once ------------------------------------------------------------


def test_shutdown_with_an_empty_queue_returns_at_once_every_time() -> None:
    """A flush request made after the writer's last look at its requests used to wait the whole deadline."""
    durations = []
    for _ in range(50):
        sink = MemorySink()
        pipe = Pipeline([sink], batch_size=512, flush_interval=0.5)
        for i in range(1500):
            pipe.emit(rec(i))
        assert pipe.flush(10.0)  # the writing itself
        start = time.monotonic()
        assert pipe.shutdown(10.0)
        durations.append(time.monotonic() - start)
        assert len(sink.records) == 1500
    assert statistics.median(durations) < 0.05
    assert max(durations) < 1.0, f"a shutdown waited for nothing: {max(durations):.2f} s"


def test_shutdown_with_records_queued_writes_them_and_returns_when_done() -> None:
    durations = []
    for _ in range(50):
        sink = MemorySink()
        pipe = Pipeline([sink], batch_size=512, flush_interval=0.5)
        for i in range(1500):
            pipe.emit(rec(i))
        start = time.monotonic()
        assert pipe.shutdown(10.0)
        durations.append(time.monotonic() - start)
        assert len(sink.records) == 1500
    assert statistics.median(durations) < 0.05
    assert max(durations) < 1.0


@pytest.mark.slow
def test_a_process_that_logs_and_exits_never_waits_its_whole_exit_timeout(tmp_path: Path) -> None:
    code = f"""
        import time, clisight
        clisight.init(store={str(tmp_path / "s.db")!r}, exit_timeout=10)
        log = clisight.get_logger("run")
        for i in range(1500):
            log.info("line", i=i)
        start = time.monotonic()
        ok = clisight.shutdown()
        print(ok, time.monotonic() - start)
    """
    for _ in range(10):
        start = time.monotonic()
        out = run_python(code, timeout=60).stdout.split()
        assert out[0] == "True"
        assert float(out[1]) < 2.0
        assert time.monotonic() - start < 8.0


# --- the spool -----------------------------------------------------------------------------------


def test_a_store_locked_past_the_exit_deadline_spools_and_the_next_writer_imports_once(
    tmp_path: Path,
) -> None:
    db = tmp_path / "s.db"
    SqliteStore(db).write_batch([rec(0, "before")])
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock through our exit
    try:
        sink = StoreSink(str(db))
        pipe = Pipeline([sink], batch_size=100, flush_interval=0.05)
        for i in range(1000):
            pipe.emit(rec(i, "late"))
        start = time.monotonic()
        assert not pipe.shutdown(1.0)
        assert time.monotonic() - start < 1.5
        (stats,) = pipe.stats()
        assert stats.spooled == 1000 and stats.dropped == 0 and stats.stored == 0
        assert stats.emitted == stats.stored + stats.dropped + stats.spooled + stats.queue_depth
        assert pending(spool_dir_for(db)) == (1, 1000)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    # The next writer of the store, whoever it is, takes the spool in with its first batch.
    next_sink = StoreSink(str(db))
    next_sink.write([rec(1, "next")])
    assert next_sink.spool_imported == 1000
    next_sink.close()
    assert count_rows(db, "logs", "message = 'late'") == 1000
    assert pending(spool_dir_for(db)) == (0, 0)
    again = StoreSink(str(db))
    again.write([rec(2, "again")])
    assert again.spool_imported == 0
    again.close()
    assert count_rows(db, "logs") == 3 + 1000


def test_a_store_that_fails_fast_during_the_exit_flush_spools_the_batch_instead_of_dropping_it(
    tmp_path: Path,
) -> None:
    """A store that refuses a batch for its own sake before the write deadline (it fails at once,
    not by waiting for its lock) leaves the writer no later turn to retry in: the exit spools the
    batch.  It used to count every record of the process as dropped, and shutdown() said True."""
    db = tmp_path / "s.db"
    db.write_bytes(b"not a store yet " * 256)  # fails at once: "file is not a database"
    sink = StoreSink(str(db))
    pipe = Pipeline([sink], batch_size=10_000, flush_interval=60)  # nothing is written before exit
    for i in range(3000):
        pipe.emit(rec(i, "late"))
    start = time.monotonic()
    assert not pipe.shutdown(5.0)
    assert time.monotonic() - start < 4.0  # a refusal, not a wait for the deadline
    (stats,) = pipe.stats()
    assert "not a database" in (stats.last_error or ""), stats
    assert stats.dropped == 0 and stats.spooled == 3000 and stats.stored == 0, stats
    assert stats.emitted == stats.stored + stats.dropped + stats.spooled + stats.queue_depth + stats.in_flight
    assert pending(spool_dir_for(db)) == (1, 3000)
    # Once the store can be written, its next writer takes the records in.
    db.unlink()
    next_sink = StoreSink(str(db))
    next_sink.write([rec(1, "next")])
    assert next_sink.spool_imported == 3000
    next_sink.close()
    assert count_rows(db, "logs", "message = 'late'") == 3000
    assert pending(spool_dir_for(db)) == (0, 0)


def test_an_importer_that_dies_half_way_leaves_no_duplicate(tmp_path: Path, monkeypatch: Any) -> None:
    db = tmp_path / "s.db"
    directory = spool_dir_for(db)
    spool = Spool(directory)
    spool.append([rec(i, "spooled") for i in range(12_000)])
    spool.close()  # as its process's exit would
    # Pretend the spool was written by another process (a process never imports its own).
    (path,) = directory.iterdir()
    path.rename(directory / ("1" + path.name[path.name.index("-") :]))
    store = SqliteStore(db)
    calls = [0]

    def dies_after_the_first_chunk(records: Any, key: str) -> bool:
        calls[0] += 1
        if calls[0] == 2:
            raise KeyboardInterrupt  # the process is killed between two chunks
        return store.write_batch(records, once_key=key)

    monkeypatch.setattr(spool_module, "CHUNK", 5_000)
    with pytest.raises(KeyboardInterrupt):
        import_spool(directory, dies_after_the_first_chunk)
    assert count_rows(db, "logs") == 5_000
    done = import_spool(directory, lambda r, k: store.write_batch(r, once_key=k))
    assert done.files == 1
    assert count_rows(db, "logs") == 12_000
    store.close()


def test_a_torn_last_line_is_skipped_and_the_rest_imported(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    directory = spool_dir_for(db)
    directory.mkdir()
    whole = Spool(directory)
    whole.append([rec(i) for i in range(10)])
    assert whole.path is not None
    with whole.path.open("ab") as handle:
        handle.write(b'{"kind": "log", "time_ns": 5, "mess')  # the process died mid-append
    whole.close()  # and its death closed the file
    other = directory / ("1" + whole.path.name[whole.path.name.index("-") :])
    whole.path.rename(other)
    store = SqliteStore(db)
    done = import_spool(directory, lambda r, k: store.write_batch(r, once_key=k))
    assert (done.records, done.torn_lines) == (10, 1)
    store.close()


def _write_once(store: SqliteStore, records: Any, key: str) -> bool:
    return store.write_batch(records, once_key=key)


def test_two_importers_at_once_store_each_spooled_record_once(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    directory = spool_dir_for(db)
    for n in range(6):
        spool = Spool(directory)
        spool.append([rec(i, f"file{n}") for i in range(500)])
        spool.close()  # as its process's exit would
        assert spool.path is not None
        spool.path.rename(directory / f"1{n}{spool.path.name[spool.path.name.index('-') :]}")
    stores = [SqliteStore(db), SqliteStore(db)]
    threads = [
        threading.Thread(
            target=import_spool, args=(directory, lambda r, k, s=s: s.write_batch(r, once_key=k))
        )
        for s in stores
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert count_rows(db, "logs") == 3000
    for store in stores:
        store.close()


@pytest.mark.slow
def test_sixteen_processes_exiting_at_once_lose_nothing(tmp_path: Path) -> None:
    """16 x 3,000 records into one store with the default exit_timeout: every record is stored or
    spooled at exit, each process's counters add up, and after the next run all 48,000 are stored."""
    db = tmp_path / "shared.db"
    code = f"""
        import json, clisight
        client = clisight.init(store={str(db)!r})
        log = clisight.get_logger("storm")
        for i in range(3000):
            log.info("storm", i=i)
        clisight.shutdown()
        if client.pipeline.stats()[0].in_flight:  # say where the writer is stuck
            import faulthandler, sys
            faulthandler.dump_traceback(sys.stderr, all_threads=True)
        # A writer that opens late may take in what others spooled first (the next writer imports).
        imported = client.pipeline.channels[0].sink.spool_imported
        print(json.dumps([[s._asdict() for s in client.pipeline.stats()], imported]))
    """
    procs = [spawn_python(code, exit_timeout=None) for _ in range(16)]  # the default deadline
    totals = {"stored": 0, "spooled": 0, "dropped": 0}
    imported = 0
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        (stats,), taken_in = json.loads(out)
        imported += taken_in
        assert stats["emitted"] == (
            stats["stored"] + stats["dropped"] + stats["spooled"] + stats["queue_depth"] + stats["in_flight"]
        )
        assert stats["dropped"] == 0, f"{json.dumps(stats)}\n{err}"
        assert stats["in_flight"] == 0, err
        for key in totals:
            totals[key] += stats[key]
    # Each run also wrote its session's start and end.
    assert totals["stored"] + totals["spooled"] == 48_000 + 2 * 16, totals
    waiting = pending(spool_dir_for(db))[1]
    # What waits is what was spooled, less what other runs imported at their start; a batch in flight
    # at a deadline may wait twice, or be skipped by the import when its own write landed after all:
    # both under one key, so the rows below are exact either way.
    assert waiting <= 2 * totals["spooled"]
    # doctor says what waits, and --repair (or the next writer of the store) imports it.
    doctor = [str(Path(sys.executable).with_name("clisight")), "doctor", "--store", str(db)]
    report = subprocess.run([*doctor, "--json"], capture_output=True, text=True, timeout=60, check=True)
    facts = json.loads(report.stdout)["store"]
    assert facts["spool"]["records"] == waiting, facts
    subprocess.run([*doctor, "--repair"], capture_output=True, text=True, timeout=120, check=True)
    assert count_rows(db, "logs", "message = 'storm'") == 48_000
    assert count_rows(db, "sessions") == 16
    assert pending(spool_dir_for(db)) == (0, 0)


# --- how the process ended -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ending", "code"),
    [
        ("pass", 0),
        ("import sys; sys.exit(3)", 3),
        ("import sys; sys.exit('bye')", 1),
        ("raise ValueError('boom')", 1),
        ("raise KeyboardInterrupt", 130),
    ],
)
def test_the_session_records_the_exit_code_the_shell_sees(tmp_path: Path, ending: str, code: int) -> None:
    db = tmp_path / "s.db"
    # The program works a moment first.  (Any module imported for the first time after an uncaught
    # KeyboardInterrupt, by any thread, makes CPython exit 1 instead of dying of SIGINT.)
    program = f"import clisight\nclisight.init(store={str(db)!r})\nclisight.flush(30)\n{ending}"
    proc = run_python(program, check=False)
    if code == 130 and proc.returncode == 1:
        code = 1  # SIGINT was ignored when the interpreter started: it exits 1, not by the signal
    assert proc.returncode == (-signal.SIGINT if code == 130 else code), proc.stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT exit_code FROM sessions").fetchall() == [(code,)]


def test_sys_exit_keeps_its_behaviour_in_threads_and_its_docstring() -> None:
    import sys

    clisight.init(sinks=[MemorySink()])
    assert sys.exit.__doc__ and "Exit" in sys.exit.__doc__
    caught: list[BaseException] = []

    def worker() -> None:
        try:
            sys.exit(4)
        except SystemExit as exc:
            caught.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(5)
    assert isinstance(caught[0], SystemExit) and caught[0].code == 4
    client = clisight.get_client() if hasattr(clisight, "get_client") else None
    from clisight.client import core

    assert (client or core.get_client()).exit_code is None  # type: ignore[union-attr]


def test_sigterm_records_143(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    proc = spawn_python(
        f"""
        import os, signal, time, clisight
        clisight.init(store={str(db)!r})
        print("ready", flush=True)
        time.sleep(30)
        """
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    os.kill(proc.pid, signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGTERM
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT exit_code FROM sessions").fetchall() == [(143,)]


def test_retention_forgets_old_spool_markers_with_their_records(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    store.write_batch([rec(1, "spooled")], once_key="spool:old:0")
    with sqlite3.connect(tmp_path / "s.db") as conn:
        conn.execute("UPDATE kv_state SET updated_ns = 1 WHERE key = 'spool:old:0'")
    store.write_batch([rec(time.time_ns(), "spooled")], once_key="spool:new:0")
    store.apply_retention(RetentionPolicy(raw_days=1))
    assert [key for key, _ in store.state_items("spool:")] == ["spool:new:0"]
    store.close()


def test_a_batch_in_flight_at_the_deadline_is_spooled_under_its_key_and_stored_once(tmp_path: Path) -> None:
    """The exiting thread spools a copy of the batch a slow sink still holds; whether the sink's
    own write then lands or not, the store ends with the records once."""
    db = tmp_path / "s.db"
    batch = [rec(i, "inflight") for i in range(50)]
    exiting = Deadline(time.monotonic() + 60)  # finite: the process is exiting
    store = SqliteStore(db)
    # The original write landed (during the exit, so with its key); the copy is then skipped.
    assert store.write_batch(batch, deadline=exiting, exit_key="exit:a:1")
    spool = Spool(spool_dir_for(db))
    spool.append(batch, key="exit:a:1")
    spool.append(batch, key="exit:b:1")  # this one's original never landed
    spool.append([rec(7, "plain")])
    spool.close()
    done = import_spool(spool_dir_for(db), partial(_write_once, store))
    assert (done.records, done.torn_lines) == (50 + 1, 0)
    assert count_rows(db, "logs", "message = 'inflight'") == 100  # 50 landed + 50 of batch b
    assert count_rows(db, "logs", "message = 'plain'") == 1
    # Outside an exit, a batch's key costs nothing: no marker is kept.
    store.write_batch(batch, exit_key="exit:c:1")
    assert [k for k, _ in store.state_items("exit:")] == ["exit:a:1", "exit:b:1"]
    store.close()


def test_a_sink_stuck_past_the_deadline_has_its_batch_spooled_and_counted_once(tmp_path: Path) -> None:
    db = tmp_path / "s.db"

    class StuckSink(StoreSink):
        def write(self, batch: Any, deadline: Any = None, key: str = "") -> None:
            time.sleep(1.5)  # Python-level work the deadline cannot interrupt
            super().write(batch, deadline, key)

    pipe = Pipeline([StuckSink(str(db))], batch_size=100, flush_interval=0.01)
    for i in range(100):
        pipe.emit(rec(i, "stuck"))
    time.sleep(0.1)  # the writer holds the batch
    assert not pipe.shutdown(1.0)
    (stats,) = pipe.stats()
    assert (stats.spooled, stats.in_flight, stats.stored, stats.dropped) == (100, 0, 0, 0)
    time.sleep(1.0)  # the stuck write finishes (refused: its deadline passed) and counts nothing more
    (later,) = pipe.stats()
    assert later[1:6] + later[7:9] == stats[1:6] + stats[7:9]  # the counts; errors may grow
    spool = pipe.channels[0].spool
    assert spool is not None
    spool.close()  # a real exit ends the process here, and with it the spool file's writer
    sink = StoreSink(str(db))
    sink.import_spool()
    sink.close()
    assert count_rows(db, "logs", "message = 'stuck'") == 100


def test_a_spool_line_that_is_json_but_not_a_record_is_skipped(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    directory = spool_dir_for(db)
    directory.mkdir()
    (directory / "1-1-ab.jsonl").write_bytes(
        b'[1, 2]\n"text"\n{"kind": "log", "time_ns": 1, "message": "ok"}\n'
    )
    store = SqliteStore(db)
    done = import_spool(directory, partial(_write_once, store))
    assert (done.records, done.torn_lines) == (1, 2)
    store.close()


def test_a_spool_append_survives_an_importer_removing_the_empty_spool_folder(tmp_path: Path) -> None:
    """An importer removes the spool folder once it has emptied it; a run that spools at that moment
    (its folder made, its file not yet created) must still spool, not drop: 16 processes exiting at
    once into a new store once lost all 3,002 records of one of them so.  The racer is the real
    importer, passing again and again; at the end every record appended was imported or is waiting."""
    folder = tmp_path / "spool"
    record = Record(LOG, 1, "c", "spooled", 9, {}, Resource("t"))
    stop = threading.Event()
    imported: list[int] = []

    def take(records: Any, key: str) -> bool:
        imported.append(len(records))
        return True

    def importer() -> None:
        while not stop.is_set():
            import_spool(folder, take)
            time.sleep(0.0001)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # hand the GIL over between the append's system calls too
    racer = threading.Thread(target=importer, daemon=True)
    racer.start()
    refused, errors = 0, set()
    try:
        for _ in range(3_000):
            spool = Spool(folder)
            if not spool.append([record]):
                refused += 1
                errors.add(repr(spool.last_error))
            spool.close()
    finally:
        stop.set()
        racer.join(timeout=10)
        sys.setswitchinterval(old)
    assert refused == 0, f"{refused} of 3,000 appends refused: {errors}"
    assert sum(imported) + pending(folder)[1] == 3_000
    assert sum(imported) > 0  # the racer did import (and so removed the folder) while we appended


def test_a_spool_file_is_never_imported_while_another_process_appends_to_it(tmp_path: Path) -> None:
    """A writer in one process appends to its spool file now and then while an importer in another
    imports again and again: the live file is skipped (its writer holds a lock on it), so no append
    lands in a file already claimed and deleted; every record is imported once, none lost."""
    folder = tmp_path / "spool"
    code = f"""
import time
from pathlib import Path
from clisight.pipeline.spool import Spool
from clisight.types import LOG, Record, Resource
spool = Spool(Path({str(folder)!r}))
for i in range(40):
    assert spool.append([Record(LOG, i, "c", "m", 9, {{}}, Resource("t"))] * 25)
    if i == 0:
        print("first", flush=True)
    time.sleep(0.01)
spool.close()
print("done", flush=True)
"""
    child = spawn_python(code)
    imported: list[int] = []

    def take(records: Any, key: str) -> bool:
        imported.append(len(records))
        return True

    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "first"
        while child.poll() is None:
            import_spool(folder, take)
            time.sleep(0.002)
        assert child.returncode == 0
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=30)
    import_spool(folder, take)
    # Claimed while open, the file would have lost every append after the claim.
    assert sum(imported) == 40 * 25
    assert not folder.exists()


def test_a_spool_file_never_grows_past_its_limit_and_what_it_refuses_is_counted_dropped(
    tmp_path: Path,
) -> None:
    """A destination down for long must not fill the disk: appends that would take the spool file
    past ``spool_max_bytes`` are refused whole (nothing half-written), with the reason, and the
    pipeline counts their records as dropped: emitted = stored + spooled + dropped still holds."""
    db = tmp_path / "s.db"
    db.write_bytes(b"not a store yet " * 256)  # every write fails at once: "file is not a database"
    limit = 64 * 1024
    pipe = Pipeline([StoreSink(str(db))], batch_size=10_000, flush_interval=60, spool_max_bytes=limit)
    for i in range(3000):  # ~100 bytes each as JSON: far more than the limit in one batch
        pipe.emit(rec(i, "late"))
    assert not pipe.shutdown(5.0)
    (stats,) = pipe.stats()
    assert stats.emitted == 3000
    assert stats.stored + stats.spooled + stats.dropped == 3000, stats
    assert stats.dropped > 0, stats
    files = list(spool_dir_for(db).glob("*.jsonl"))
    assert all(path.stat().st_size <= limit for path in files)
    assert pending(spool_dir_for(db))[1] == stats.spooled

    spool = Spool(tmp_path / "alone", max_bytes=limit)
    accepted = 0
    while spool.append([rec(accepted, "x" * 200)]):
        accepted += 1
    assert spool.path is not None and spool.path.stat().st_size <= limit
    assert isinstance(spool.last_error, OSError) and "spool_max_bytes" in str(spool.last_error)
    spool.close()
    assert pending(tmp_path / "alone") == (1, accepted)
    assert accepted > 0


def test_a_store_that_refuses_batches_while_the_program_runs_gets_them_spooled_not_dropped(
    tmp_path: Path,
) -> None:
    """Not only at exit: a batch the store refuses for its own sake mid-run (here a file that is not
    a database; in life also a lock held past its timeout) goes to the spool, and the next writer of
    a working store imports it."""
    db = tmp_path / "s.db"
    db.write_bytes(b"not a store yet " * 256)
    pipe = Pipeline([StoreSink(str(db))], batch_size=100, flush_interval=0.01)
    for i in range(1000):
        pipe.emit(rec(i, "mid-run"))
    assert pipe.flush(10.0)
    (running,) = pipe.stats()
    assert (running.spooled, running.dropped, running.stored) == (1000, 0, 0), running
    assert running.errors >= 1 and "not a database" in (running.last_error or "")
    db.unlink()  # the store can be written again: the next batch lands, and the spool is imported
    pipe.emit(rec(0, "after"))
    assert pipe.flush(10.0)
    assert pipe.shutdown(5.0) is False  # some were spooled in this run
    (done,) = pipe.stats()
    assert (done.stored, done.spooled, done.dropped) == (1, 1000, 0), done
    assert count_rows(db, "logs", "message = 'mid-run'") == 1000  # imported in the same run
    assert pending(spool_dir_for(db)) == (0, 0)
