"""The pipeline's promises across real processes, with real SQLite files.

Each scenario runs in a fresh interpreter (bounded by a timeout) and is judged by reading the
database it left behind.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from clisight.pipeline.store_sink import StoreSink
from tests.helpers import count_rows, integrity_ok, run_python, spawn_python


@pytest.mark.slow
def test_overload_keeps_emitted_equal_to_stored_plus_dropped_and_memory_bounded(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    out = run_python(f"""
        import json, os, psutil, clisight
        proc = psutil.Process()
        clisight.init(service="load", store={str(db)!r}, queue_size=2000, batch_size=256)
        log = clisight.get_logger("load")
        log.info("warm")
        clisight.flush(10)
        before = proc.memory_info().rss
        # 150x the queue in one tight loop: far beyond what the writer can keep up with.
        for i in range(300_000):
            log.info("burst", i=i, status=200, path="/x")
        grown = proc.memory_info().rss - before
        assert clisight.flush(30)
        print(json.dumps({{"stats": clisight.pipeline_stats(), "grown": grown}}))
    """)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    stats = result["stats"]["sinks"]["store"]
    assert stats["emitted"] == 300_002  # warm-up + burst + the run's session record
    assert stats["dropped_queue_full"] > 0, "the overload did not overload"
    assert stats["emitted"] == stats["stored"] + stats["dropped"]
    assert stats["queue_depth"] == 0
    # Every record counted as stored is in the file (the run's closing session record came later).
    assert count_rows(db, "logs") + count_rows(db, "sessions") == stats["stored"]
    # 300k queued records would take hundreds of MB; the bound keeps growth to the queue's size.
    assert result["grown"] < 64 * 1024 * 1024


@pytest.mark.slow
def test_eight_processes_writing_one_file_lose_nothing(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    procs = [
        spawn_python(f"""
        import clisight
        clisight.init(service="p{k}", store={str(db)!r}, overflow="block", block_timeout=120,
                      queue_size=5000, batch_size=1000)
        for i in range(50_000):
            clisight.track("load.{k}", i=i)
        clisight.flush(120)
        stats = clisight.pipeline_stats()["sinks"]["store"]
        # On a saturated machine a writer can wait out the lock's 10 s timeout: then the batch is
        # spooled for the next writer (and counted so), never dropped.
        assert stats["dropped"] == 0 and (stats["errors"] == 0) == (stats["spooled"] == 0), stats
    """)
        for k in range(8)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    sink = StoreSink(str(db))  # the next writer takes in what was spooled, if anything
    sink.import_spool()
    sink.close()
    for k in range(8):
        assert (
            count_rows(db, "events", "name_id = (SELECT id FROM names WHERE value = ?)", (f"load.{k}",))
            == 50_000
        )
    assert integrity_ok(db)


def test_kill_9_mid_burst_leaves_a_sound_database(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    proc = spawn_python(f"""
        import clisight
        clisight.init(service="victim", store={str(db)!r}, flush_interval=0.01, batch_size=200)
        log = clisight.get_logger("burst")
        i = 0
        while True:
            log.info("row", i=i)
            i += 1
    """)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.1)
            try:
                if db.exists() and count_rows(db, "logs") > 2000:
                    break
            except sqlite3.OperationalError:
                pass  # the schema is being created
        else:
            pytest.fail("the writer never wrote")
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert integrity_ok(db)
    assert count_rows(db, "logs") > 2000


ENDINGS = {
    "normal return": "",
    "sys.exit": "import sys; sys.exit(3)",
    "uncaught exception": "raise RuntimeError('boom')",
}


@pytest.mark.parametrize("ending", list(ENDINGS))
def test_exit_flushes_every_queued_record(tmp_path: Path, ending: str) -> None:
    db = tmp_path / "e.db"
    proc = run_python(
        f"""
        import clisight
        clisight.init(service="exit", store={str(db)!r}, flush_interval=60)
        log = clisight.get_logger("x")
        for i in range(5000):
            log.info("queued", i=i)
        {ENDINGS[ending]}
    """,
        check=False,
        exit_timeout=None,  # the default deadline a user gets
    )
    assert proc.returncode == {"normal return": 0, "sys.exit": 3, "uncaught exception": 1}[ending], (
        proc.stderr
    )
    assert logs_after_the_next_writer(db) == 5000
    if ending == "uncaught exception":
        assert "RuntimeError: boom" in proc.stderr  # the host's own traceback is still printed
        assert count_rows(db, "errors") == 1


def logs_after_the_next_writer(db: Path) -> int:
    """Logs in the store once the next writer took in the spool: at exit every record was written
    or (on a loaded machine, past the default deadline) spooled, never lost."""
    sink = StoreSink(str(db))  # (on a saturated machine the process may not have made the store)
    sink.import_spool()
    sink.close()
    return count_rows(db, "logs")


def test_sigterm_flushes_queued_events_within_deadline(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    proc = spawn_python(
        f"""
        import sys, time, clisight
        clisight.init(service="term", store={str(db)!r}, flush_interval=60)
        log = clisight.get_logger("x")
        for i in range(5000):
            log.info("queued", i=i)
        print("ready", flush=True)
        time.sleep(60)
    """,
        exit_timeout=None,  # the default deadline a user gets
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    assert time.monotonic() - start < 5
    assert proc.returncode == -signal.SIGTERM  # it still dies of SIGTERM, as without clisight
    assert logs_after_the_next_writer(db) == 5000


def test_exit_with_a_hanging_sink_returns_within_the_deadline() -> None:
    start = time.monotonic()
    proc = run_python(
        """
        import clisight
        from clisight.testing import MemorySink
        clisight.init(service="hang", sinks=[MemorySink(delay=120)], exit_timeout=0.5, flush_interval=0.01)
        log = clisight.get_logger("x")
        log.info("first")  # the writer takes it and hangs in the sink
        import time; time.sleep(0.1)
        for i in range(100):
            log.info("queued", i=i)
    """,
        timeout=60,
    )
    assert proc.returncode == 0
    assert time.monotonic() - start < 10  # interpreter start + 0.5 s deadline, never the 120 s hang


@pytest.mark.slow
def test_fork_in_a_loop_does_not_deadlock_and_children_are_stored(tmp_path: Path) -> None:
    db = tmp_path / "f.db"
    run_python(
        f"""
        import os, threading, clisight
        clisight.init(service="forker", store={str(db)!r}, flush_interval=0.001, batch_size=16)
        log = clisight.get_logger("parent")
        stop = False
        def chatter():
            while not stop:
                log.info("parent noise")  # keeps the writer busy while we fork
        t = threading.Thread(target=chatter); t.start()
        for n in range(25):
            pid = os.fork()
            if pid == 0:
                child = clisight.get_logger("child")
                for i in range(10):
                    child.info("from child", n=n, i=i)
                ok = clisight.flush(20)
                os._exit(0 if ok else 7)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
        stop = True; t.join()
    """,
        timeout=120,
    )
    assert count_rows(db, "logs", "component_id = (SELECT id FROM names WHERE value = 'child')") == 250
    assert integrity_ok(db)


def test_multiprocessing_children_flush_at_their_exit(tmp_path: Path) -> None:
    db = tmp_path / "mp.db"
    run_python(
        f"""
        import multiprocessing as mp, clisight
        clisight.init(service="mp", store={str(db)!r}, flush_interval=60)
        def work(k):
            log = clisight.get_logger("worker")
            for i in range(100):
                log.info("work", k=k, i=i)
        if __name__ == "__main__":
            ctx = mp.get_context("fork")
            procs = [ctx.Process(target=work, args=(k,)) for k in range(4)]
            for p in procs: p.start()
            for p in procs: p.join(60); assert p.exitcode == 0
    """,
        timeout=120,
    )
    assert count_rows(db, "logs", "component_id = (SELECT id FROM names WHERE value = 'worker')") == 400


def test_child_pid_is_recorded_on_its_records(tmp_path: Path) -> None:
    db = tmp_path / "pid.db"
    out = run_python(f"""
        import os, clisight
        clisight.init(service="pid", store={str(db)!r})
        pid = os.fork()
        if pid == 0:
            clisight.get_logger("child").info("hi"); clisight.flush(10); os._exit(0)
        os.waitpid(pid, 0)
        print(pid)
    """)
    child = int(out.stdout.strip())
    with sqlite3.connect(db) as conn:
        pids = {
            row[0]
            for row in conn.execute(
                "SELECT r.pid FROM logs l JOIN resources r ON r.id = l.resource_id"
                " JOIN names n ON n.id = l.component_id WHERE n.value = 'child'"
            )
        }
    assert pids == {child}
    assert os.getpid() not in pids
