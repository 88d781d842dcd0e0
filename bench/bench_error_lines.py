"""The "top error lines" report over 30 days when error messages carry ids (the log_error rollup key).

Writes 200,000 ERROR logs spread over the last 30 days straight into a new SQLite store (three message
templates holding one of 50,000 user/order ids, two components), then prints how many ``log_error``
rollup keys the store holds and the fastest of 5 ``Query.errors`` over the 30 days.  Run it against
another revision's source (``PYTHONPATH=<checkout>/src``) to compare.
Usage: python bench/bench_error_lines.py [DB]
"""

from __future__ import annotations

import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from clisight.query import Filter, Query
from clisight.store import SqliteStore
from clisight.types import ERROR_LEVEL, Record, Resource

sys.path.insert(0, str(Path(__file__).parent))
from _common import git_rev, machine

DAY = 86_400 * 10**9


def main() -> None:
    db = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()) / "errors.db"
    print(f"# bench_error_lines; {machine()}; {time.strftime('%Y-%m-%d %H:%M')}; git rev {git_rev()}")
    store = SqliteStore(db)
    rng = random.Random(1)
    res = Resource("svc", "1.0", "host", 1)
    now = time.time_ns()
    batch = []
    for _ in range(200_000):
        uid = rng.randrange(50_000)
        message = rng.choice(
            [
                f"user {uid} not found",
                f"order ord_{uid:x} failed: card declined",
                f"timeout after {rng.randrange(9000)} ms calling /v1/users/{uid}",
            ]
        )
        moment = now - rng.randrange(30 * DAY)
        batch.append(Record("log", moment, rng.choice(("api", "db")), message, ERROR_LEVEL, {}, res))
        if len(batch) == 5000:
            store.write_batch(batch)
            batch = []
    store.close()
    with sqlite3.connect(db) as conn:
        keys = conn.execute("SELECT COUNT(*) FROM rollup_keys WHERE series = 'log_error'").fetchone()[0]
    with Query(db) as q:
        flt = Filter(since=now - 30 * DAY)
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            found = q.errors(flt)
            best = min(best, time.perf_counter() - start)
    print(f"log_error rollup keys: {keys:,}")
    print(f"Query.errors over 30 days: {best * 1000:.1f} ms")
    for line in found.log_errors[:3]:
        print(f"  {line.count:>7,}  {line.component}: {line.message}")


if __name__ == "__main__":
    main()
