"""Sustained records/s stored in SQLite: clisight end to end vs raw ``executemany``, in one run.

- clisight: ``clisight.init(store=file, overflow="block")`` then N ``log.info`` calls with three fields,
  timed from the first call until ``flush()`` returns (every record committed).
- raw executemany: the same rows, pre-built as tuples with their JSON text, inserted by ``executemany``
  in batches of 512 (one transaction each) into a table with clisight's own ``logs`` schema and indexes
  (copied from the clisight file), with the same pragmas. It is the floor: no API, no redaction,
  no record building, no queue.
- clisight JSONL sink: the same calls with ``store="none", jsonl_path=...``.

Every case runs R times, interleaved (so drift in machine load hits every case alike), each clisight
run into a fresh file; the table shows medians.  ``CLISIGHT_BASELINE_SRC=/path/to/old/src`` adds the
SQLite case run from another source tree (an older revision), side by side in the same run.
Usage: python bench/bench_sqlite.py [N] [R]
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).parent))
from _common import git_rev, machine

N = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
R = int(sys.argv[2]) if len(sys.argv) > 2 else 3
BASELINE = os.environ.get("CLISIGHT_BASELINE_SRC")


def run_clisight(kwargs: str, pythonpath: str | None = None) -> float:
    # A fresh interpreter per run, so one run's writer thread cannot slow another.
    code = textwrap.dedent(f"""
        import time, clisight
        clisight.init(service="bench", overflow="block", queue_size=100_000, {kwargs})
        log = clisight.get_logger("api")
        log.info("warm up"); clisight.flush(30)
        start = time.perf_counter()
        for i in range({N}):
            log.info("request done", status=200, path="/v1/messages", duration_ms=12.5)
        assert clisight.flush(600)
        print(time.perf_counter() - start)
        s = clisight.pipeline_stats()["sinks"]
        assert all(v["dropped"] == 0 for v in s.values()), s
    """)
    env = dict(os.environ, PYTHONPATH=pythonpath) if pythonpath else None
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=900, check=True, env=env
    )
    return float(out.stdout.split()[0])


def run_raw(schema_source: Path, target: Path) -> float:
    with sqlite3.connect(schema_source) as src:
        ddl = [
            row[0]
            for row in src.execute(
                "SELECT sql FROM sqlite_master WHERE tbl_name = 'logs' AND sql IS NOT NULL ORDER BY type DESC"
            )
        ]
        cols = [row[1] for row in src.execute("PRAGMA table_info(logs)") if row[1] != "id"]
    conn = sqlite3.connect(target, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    for stmt in ddl:
        conn.execute(stmt.replace("REFERENCES resources(id)", ""))
    values = {
        "time_ns": 0,
        "severity": 9,
        "severity_text": "INFO",
        "component": "api",
        "message": "request done",
        "attributes": orjson.dumps({"status": 200, "path": "/v1/messages", "duration_ms": 12.5}).decode(),
        "session_id": "0123456789abcdef0123456789abcdef",
        "resource_id": 1,
        # schema 5: the component and the session by number
        "component_id": 1,
        "session": 1,
    }
    now = time.time_ns()
    rows = [tuple(now + i if c == "time_ns" else values.get(c) for c in cols) for i in range(N)]
    sql = f"INSERT INTO logs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
    start = time.perf_counter()
    for i in range(0, N, 512):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(sql, rows[i : i + 512])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def run_case(name: str, tmp: Path, r: int) -> float:
    """Seconds for N records on path ``name``; each run writes a fresh file."""
    db = tmp / f"clisight-{r}.db"
    if name == "clisight -> sqlite":
        return run_clisight(f"store={str(db)!r}")
    if name == "raw executemany (floor)":
        return run_raw(db, tmp / f"raw-{r}.db")  # the schema comes from this round's clisight file
    if name == "clisight -> jsonl":
        return run_clisight(f"store='none', jsonl_path={str(tmp / f'x-{r}.jsonl')!r}")
    return run_clisight(f"store={str(tmp / f'base-{r}.db')!r}", BASELINE)


def main() -> None:
    print(
        f"# sustained records/s into SQLite and JSONL; N={N}, median of {R}; {machine()}; "
        f"{time.strftime('%Y-%m-%d')}; rev {git_rev()}"
    )
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        samples: dict[str, list[float]] = {}
        names = ["clisight -> sqlite", "raw executemany (floor)", "clisight -> jsonl"]
        names += ["clisight -> sqlite [baseline]"] if BASELINE else []
        for r in range(R):
            for name in names:
                samples.setdefault(name, []).append(run_case(name, tmp, r))
    results = {name: statistics.median(times) for name, times in samples.items()}
    raw = N / results["raw executemany (floor)"]
    print(f"{'path':32} {'records/s':>12} {'x raw':>7}")
    for name, seconds in results.items():
        rate = N / seconds
        print(f"{name:32} {rate:12,.0f} {rate / raw:7.2f}")


if __name__ == "__main__":
    main()
