"""The writer's warm-up: the store's code is imported in the writer thread, in one warm-up a fork waits for.

Each scenario runs in a fresh interpreter (the imports under test happen once per process), bounded
by a timeout: a deadlocked child shows up as a timeout, never as a hung test run.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import count_rows, integrity_ok, run_python

# Records every import the import system is asked for (modules not loaded yet), with the thread
# that asked and whether that thread was inside a warm-up at the time.
_IMPORT_LOG = """
import sys, threading
from clisight import _fork
IMPORTS = []
class Log:
    def find_spec(self, name, path=None, target=None):
        IMPORTS.append((threading.current_thread().name, name, _fork._warm_ups.active > 0))
        return None
sys.meta_path.insert(0, Log())
"""


def test_init_and_first_log_leave_the_store_code_to_the_writer_thread(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    out = run_python(
        _IMPORT_LOG
        + f"""
import json, clisight
clisight.init(service="cli", store={str(db)!r})
clisight.get_logger("a").info("first", n=1)
caller = sorted(name for thread, name, _ in IMPORTS if thread == "MainThread")
assert clisight.flush(20)
writer = sorted(name for thread, name, _ in IMPORTS if thread.startswith("clisight-writer"))
print(json.dumps({{"caller": caller, "writer": writer}}))
"""
    )
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    heavy = {"sqlite3", "orjson", "dataclasses", "hashlib", "clisight.store.sqlite"}
    heavy |= {"clisight.pipeline.serialize"}
    assert not heavy & set(seen["caller"]), seen["caller"]
    assert {"sqlite3", "orjson", "clisight.store.sqlite"} <= set(seen["writer"]), seen["writer"]
    assert count_rows(db, "logs", "message = 'first'") == 1


def test_the_writer_imports_only_inside_its_warm_up(tmp_path: Path) -> None:
    """Every path of the writer thread: writes, a refused batch, the spool at the exit deadline."""
    db = tmp_path / "w.db"
    out = run_python(
        _IMPORT_LOG
        + f"""
import json, clisight
clisight.init(service="cli", store={str(db)!r}, batch_size=8, flush_interval=0.01)
log = clisight.get_logger("a")
for i in range(200):
    log.info("row", i=i, nested={{"a": [1, 2.5, None]}}, raw=b"\\x00bytes", big=2**80)
with clisight.span("work"):
    try:
        1 / 0
    except ZeroDivisionError:
        log.exception("failed")
clisight.track("command", name="x")
assert clisight.flush(20)
import sqlite3
lock = sqlite3.connect({str(db)!r}, isolation_level=None)
lock.execute("BEGIN IMMEDIATE")  # the store is busy until after the exit deadline: records spool
for i in range(50):
    log.info("late", i=i)
clisight.shutdown(0.3)
lock.execute("ROLLBACK")
outside = [(t, n) for t, n, warm in IMPORTS if t.startswith("clisight-") and not warm]
print(json.dumps(outside))
"""
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_a_fork_waits_for_a_warm_up_under_way() -> None:
    out = run_python(
        """
        import os, threading, time
        from clisight import _fork
        inside = threading.Event()
        def warm():
            with _fork.warming_up():
                inside.set()
                time.sleep(0.3)
        t = threading.Thread(target=warm); t.start()
        inside.wait(5)
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        waited = time.monotonic() - start
        os.waitpid(pid, 0); t.join()
        print(waited)
        """,
        timeout=60,
    )
    assert float(out.stdout.split()[-1]) >= 0.15


def test_forks_right_after_init_while_the_writer_warms_up_do_not_deadlock(tmp_path: Path) -> None:
    """Fresh processes fork repeatedly while their writer is inside a (slowed) warm-up import;
    every child imports and uses clisight and exits in time, and its records are stored."""
    db = tmp_path / "f.db"
    code = f"""
        import os, sys, threading, time
        entered = threading.Event()
        class SlowImports:  # the writer's warm-up imports take long enough to fork inside them
            def find_spec(self, name, path=None, target=None):
                if threading.current_thread().name.startswith("clisight-writer") and name in (
                    "orjson", "sqlite3", "clisight.store.sqlite", "clisight.pipeline.serialize"
                ):
                    entered.set()
                    time.sleep(0.05)
                return None
        sys.meta_path.insert(0, SlowImports())
        import clisight
        clisight.init(service="forker", store={str(db)!r}, flush_interval=0.01)
        assert entered.wait(10), "the writer never imported"
        children = []
        for n in range(5):
            pid = os.fork()
            if pid == 0:
                import orjson, sqlite3, clisight.store.sqlite  # the locks of the parent's imports are free
                log = clisight.get_logger("child")
                for i in range(10):
                    log.info("from child", n=n, i=i)
                os._exit(0 if clisight.flush(20) else 7)
            children.append(pid)
        deadline = time.monotonic() + 30
        while children and time.monotonic() < deadline:
            for pid in list(children):
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    assert os.waitstatus_to_exitcode(status) == 0, status
                    children.remove(pid)
            time.sleep(0.01)
        for pid in children:
            os.kill(pid, 9)
        assert not children, f"{{len(children)}} children deadlocked"
        assert clisight.flush(20)
    """
    for _ in range(3):
        run_python(code, timeout=90)
    assert count_rows(db, "logs", "component_id = (SELECT id FROM names WHERE value = 'child')") == 3 * 5 * 10
    assert integrity_ok(db)
