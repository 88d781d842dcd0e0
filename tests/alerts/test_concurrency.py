"""Two evaluations at once (threads, and `clisight alerts check` processes) notify once per alert."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest

from clisight.alerts import AlertEngine, alert_history, parse_rules
from clisight.query import Query
from clisight.store import SqliteStore, Store, open_store
from tests.alerts.conftest import MINUTE, ops
from tests.alerts.receiver import webhook_receiver
from tests.cli.clirun import CLISIGHT

try:
    from tests.pg_cluster import pg_cluster, pg_url  # noqa: F401

    _NO_PG_FIXTURES = ""
except ImportError as exc:
    _NO_PG_FIXTURES = f"the PostgreSQL test fixtures (tests/pg_cluster.py) cannot be imported: {exc}"

OPERATIONS = [f"op{i}" for i in range(10)]
RULES = """
[[rule]]
name = "slow"
metric = "latency_p95"
group_by = ["operation"]
window = "10m"
above = 1.0
notify = ["hook"]

[notifier.hook]
type = "webhook"
url = "{url}"
"""


def slow_operations(store: Store, now: int) -> None:
    for i, name in enumerate(OPERATIONS):
        store.write_batch(ops(now - 5 * MINUTE, now, 10, 3.0, seed=i, name=name))


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new store of each backend that shares state between processes and machines."""
    if request.param == "sqlite":
        return str(tmp_path / "race.db")
    if _NO_PG_FIXTURES:
        pytest.skip(_NO_PG_FIXTURES)
    url: str = request.getfixturevalue("pg_url")  # skips, saying why, without PostgreSQL
    return url


def test_engines_racing_in_threads_notify_each_alert_once(store_url: str) -> None:
    url = store_url
    now = time.time_ns()
    store = open_store(url)
    slow_operations(store, now)
    store.close()
    with webhook_receiver() as hook:
        rules = parse_rules(RULES.format(url=hook.url), "alerts.toml")
        queries = [Query(url) for _ in range(6)]
        engines = [AlertEngine(q, rules, lambda: now) for q in queries]
        start = threading.Barrier(len(engines))
        firing: list[int] = []

        def run(engine: AlertEngine) -> None:
            start.wait(timeout=30)
            firing.append(sum(s.state == "firing" for s in engine.evaluate()))

        threads = [threading.Thread(target=run, args=(e,)) for e in engines]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        for engine in engines:
            assert engine.flush(10)
        bodies = hook.wait_for(len(OPERATIONS), timeout=10)
        time.sleep(0.2)  # a duplicate, if any, would be on its way by now
        assert firing == [len(OPERATIONS)] * len(engines), "every evaluation sees every alert firing"
        assert sorted(b["labels"]["operation"] for b in hook.bodies) == OPERATIONS
        assert len(bodies) == len(OPERATIONS)
        history = alert_history(queries[0])
        assert len(history) == len(OPERATIONS), "one transition recorded per alert"
        for q in queries:
            q.close()


def test_two_alerts_check_processes_at_once_notify_once(tmp_path: Path) -> None:
    db = tmp_path / "race.db"
    store = SqliteStore(db)
    slow_operations(store, time.time_ns())
    store.close()
    with webhook_receiver() as hook:
        rules = tmp_path / "alerts.toml"
        rules.write_text(RULES.format(url=hook.url))
        argv = [str(CLISIGHT), "alerts", "check", "--rules", str(rules), "--store", str(db)]
        procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)]
        codes = []
        try:
            for proc in procs:
                _, err = proc.communicate(timeout=60)
                codes.append(proc.returncode)
                assert proc.returncode == 1, err.decode()  # 1: something is firing
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(timeout=10)
        hook.wait_for(len(OPERATIONS), timeout=10)
        time.sleep(0.2)
        assert sorted(b["labels"]["operation"] for b in hook.bodies) == OPERATIONS, "each alert notified once"
    assert codes == [1, 1, 1]
