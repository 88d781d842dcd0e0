"""Sustained records/s into PostgreSQL from 4 processes: clisight end to end against a raw COPY of the
same rows, in one run, on a throw-away server this script starts (``tests/pg_cluster.Cluster``,
initdb + pg_ctl in a temp directory, the server's default durability: fsync on).

- clisight pipeline: in each of 4 processes, ``clisight.init(store=<postgresql url>,
  overflow="block")`` then N/4 ``log.info`` calls with three fields, timed from a common start until
  every process's ``flush()`` has returned (every record committed), so record building, the queue,
  the writer thread, ``map_batch`` and ``PostgresStore.write_batch`` are all in it.
- clisight write_batch: in each of 4 processes, ``PostgresStore.write_batch`` of pre-built records in
  batches of 8,192 (the store alone: mapping, interning, counters, rollups, id reservation, COPY,
  waiting for its turn to commit).
- raw COPY (floor): in each of 4 processes, ``COPY logs (id, ...) FROM STDIN`` of the same rows as
  clisight stores them (pre-built tuples with their ids, attributes as JSON text), 8,192 rows a
  transaction, into a database clisight made (same table, partitions and indexes), with
  ``synchronous_commit = off`` as the clisight writer sets it: no API, no mapping, no rollups, no
  waiting for other writers.

Each case runs R times, interleaved, each run into a fresh database; the table shows medians of
records/s (wall time) and of the CPU time spent per record by the 4 processes and the server
together (a figure other load on the machine disturbs far less than wall time).  Twice: with the
server and the writers sharing every CPU, then (with 2 CPUs or more) with the server pinned to one
CPU and the writers to the others, as when the database has a machine of its own.
Usage: python bench/bench_postgres.py [N] [R]
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(REPO))
from _common import git_rev, machine  # noqa: E402

from tests.pg_cluster import Cluster, admin_execute, database_url  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
R = int(sys.argv[2]) if len(sys.argv) > 2 else 3
PROCESSES = 4
# The batch the pipeline's writer takes under sustained load (batch_size 512 x BATCH_GROWTH 16).
BATCH = 8192
TIMEOUT = 1800  # seconds a run may take

# One process's part.  Prints its end time (time.time()) once done; waits for the go file to start.
WORKER = textwrap.dedent("""
    import os, sys, time
    url, case, n, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    BATCH = int(sys.argv[5])
    ATTRS = {"status": 200, "path": "/v1/messages", "duration_ms": 12.5}

    def wait_for_go():
        global cpu_at_go
        print("ready", flush=True)
        give_up = time.monotonic() + 600
        while not os.path.exists(go):
            if time.monotonic() > give_up:
                sys.exit("no go")
            time.sleep(0.001)
        cpu_at_go = time.process_time()

    if case == "pipeline":
        import clisight
        clisight.init(service="bench", store=url, overflow="block", queue_size=100_000)
        log = clisight.get_logger("api")
        log.info("warm up")
        assert clisight.flush(60)
        wait_for_go()
        for i in range(n):
            log.info("request done", status=200, path="/v1/messages", duration_ms=12.5)
        assert clisight.flush(1800)
        end = time.time()
        stats = clisight.pipeline_stats()["sinks"]
        assert all(v["dropped"] == 0 and v["errors"] == 0 for v in stats.values()), stats
    elif case == "write_batch":
        from clisight.store import open_store
        from clisight.types import Record, Resource
        store = open_store(url)
        res = Resource("bench", pid=os.getpid())
        now = time.time_ns()
        records = [
            Record("log", now + i, "api", "request done", 9, dict(ATTRS), res, "session-%d" % os.getpid())
            for i in range(n)
        ]
        store.write_batch(records[:1])
        wait_for_go()
        for start in range(0, n, BATCH):
            store.write_batch(records[start : start + BATCH])
        end = time.time()
        store.close()
    else:
        import orjson, psycopg
        from clisight.store._pg_insert import LOGS, copy_rows
        attrs = orjson.dumps(ATTRS).decode()
        now = time.time_ns()
        # Ids given here, as clisight gives them (the column default would take nextval() per row).
        base = os.getpid() << 32
        rows = [(base + i, now + i, 9, 1, "request done", attrs, None, None, None, 1, 1) for i in range(n)]
        conn = psycopg.connect(url, autocommit=True)
        wait_for_go()
        for start in range(0, n, BATCH):
            with conn.transaction():
                conn.execute("SET LOCAL synchronous_commit = off")
                copy_rows(conn.cursor(), "logs", "id, " + LOGS, rows[start : start + BATCH])
        end = time.time()
        conn.close()
    print("end", end, time.process_time() - cpu_at_go, flush=True)
""")

CASES = ("clisight pipeline", "clisight write_batch", "raw COPY (floor)")
_CASE_ARG = {
    "clisight pipeline": "pipeline",
    "clisight write_batch": "write_batch",
    "raw COPY (floor)": "copy",
}


def fresh_database(cluster: Cluster, name: str) -> str:
    """A new database with clisight's schema and today's partitions (made by a first write)."""
    from clisight.store import open_store
    from clisight.types import Record, Resource

    admin_execute(cluster.url, f"CREATE DATABASE {name}")
    url = database_url(cluster.url, name)
    store = open_store(url)
    store.write_batch([Record("log", time.time_ns(), "api", "first", 9, {}, Resource("bench"))])
    store.close()
    return url


def server_cpu(cluster: Cluster) -> float:
    """CPU seconds the server's processes (postmaster, backends, WAL writer...) have used so far:
    the live ones' own, and those of backends that exited (the postmaster reaped them)."""
    import psutil

    pid = int((cluster.data / "postmaster.pid").read_text().split()[0])
    main = psutil.Process(pid)
    times = main.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for proc in main.children(recursive=True):
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def run(cluster: Cluster, case: str, round_: int, tmp: Path, pin: Sequence[str] = ()) -> tuple[float, float]:
    """Records/s of one run of ``case`` over N records from PROCESSES processes, and the CPU time
    (clients and server together) per record in microseconds."""
    url = fresh_database(cluster, f"b_{_CASE_ARG[case]}_{round_}")
    script = tmp / "worker.py"
    script.write_text(WORKER)
    go = tmp / f"go-{case.split()[1]}-{round_}"
    share = N // PROCESSES
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    procs = [
        subprocess.Popen(
            [*pin, sys.executable, str(script), url, _CASE_ARG[case], str(share), str(go), str(BATCH)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(PROCESSES)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.strip() == "ready", f"{case}: {line!r} {proc.stderr.read() if proc.stderr else ''}"
        server_before = server_cpu(cluster)
        started = time.time()
        go.touch()
        ends = []
        client_cpu = 0.0
        for proc in procs:
            out, err = proc.communicate(timeout=TIMEOUT)
            assert proc.returncode == 0, f"{case}: {err}"
            ends.append(float(out.split()[-2]))
            client_cpu += float(out.split()[-1])
        server = server_cpu(cluster) - server_before
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
    admin_execute(cluster.url, f"DROP DATABASE {url.rsplit('/', 1)[1]} WITH (FORCE)")
    records = share * PROCESSES
    # From the start signal to the end: set-up (imports, building rows) is not counted.
    print(
        f"  {case}: clients {client_cpu / records * 1e6:.1f} us/record, server {server / records * 1e6:.1f}",
        file=sys.stderr,
    )
    return records / (max(ends) - started), (client_cpu + server) / records * 1e6


def measure(cluster: Cluster, title: str, pin: Sequence[str] = ()) -> None:
    """Run every case R times, interleaved, and print the table of medians under ``title``."""
    samples: dict[str, list[float]] = {case: [] for case in CASES}
    cpu: dict[str, list[float]] = {case: [] for case in CASES}
    with tempfile.TemporaryDirectory() as tmp_name:
        for round_ in range(R):
            for case in CASES:
                rate, cost = run(cluster, case, round_, Path(tmp_name), pin)
                samples[case].append(rate)
                cpu[case].append(cost)
                print(
                    f"  round {round_ + 1}: {case} {rate:,.0f}/s, {cost:.1f} us CPU/record", file=sys.stderr
                )
    floor = statistics.median(samples["raw COPY (floor)"])
    floor_cpu = statistics.median(cpu["raw COPY (floor)"])
    print(f"\n## {title}")
    print(f"{'path':24} {'records/s':>12} {'x COPY':>7} {'CPU us/rec':>11} {'x COPY':>7}   runs (records/s)")
    for case in CASES:
        rate, cost = statistics.median(samples[case]), statistics.median(cpu[case])
        runs = ", ".join(f"{s:,.0f}" for s in samples[case])
        print(f"{case:24} {rate:12,.0f} {rate / floor:7.2f} {cost:11.1f} {cost / floor_cpu:7.2f}   {runs}")


def main() -> None:
    cpus = sorted(os.sched_getaffinity(0))
    print(
        f"# sustained records/s into PostgreSQL from {PROCESSES} processes; N={N}, median of {R};"
        f" {machine()}; {time.strftime('%Y-%m-%d')}; rev {git_rev()}"
    )
    # The server's defaults (fsync and full page writes on), sharing every CPU with the writers.
    cluster = Cluster(settings={}).start()
    try:
        version = subprocess.run(
            [str(cluster.bin / "postgres"), "--version"], capture_output=True, text=True, timeout=30
        ).stdout.strip()
        print(f"# {version}")
        measure(cluster, f"server and the {PROCESSES} writer processes share all {len(cpus)} CPUs")
    finally:
        cluster.stop()
    if len(cpus) >= 2 and shutil.which("taskset"):
        # As when the database has a machine of its own: writers cannot take the server's CPU.
        server_cpu_set, writer_cpus = str(cpus[-1]), ",".join(map(str, cpus[:-1]))
        cluster = Cluster(settings={}, prefix=["taskset", "-c", server_cpu_set]).start()
        try:
            measure(
                cluster,
                f"server pinned to CPU {server_cpu_set}, writers to CPU {writer_cpus}",
                ["taskset", "-c", writer_cpus],
            )
        finally:
            cluster.stop()


if __name__ == "__main__":
    main()
