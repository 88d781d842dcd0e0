"""How long one refresh of ``clisight top`` and one comprehensive report take on a large store.

    .venv/bin/python bench/bench_top.py [--records 1000000] [--store PATH]

Fills a store through the real write path (``bench/gen_store.py``: N records over 7 days, three
services) unless ``--store`` names one, then times, best of 3:

- one ``clisight top`` refresh (``clisight.tui._data.load``: the live snapshot, services, alerts)
  over a 15-minute, 1-day and 7-day window;
- the comprehensive report (``clisight.stack.report.build_report``) over the whole store.

The peer is the same code with every aggregate forced to scan raw rows (``source="raw"``), which is
what a dashboard without rollups pays: the ratio is what the rollups save.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import git_rev, machine
from gen_store import fill

from clisight.query import Filter, Query
from clisight.stack.report import build_report
from clisight.store import SqliteStore
from clisight.tui._data import load


class RawScans:
    """A store whose aggregates all scan raw rows (the rollups ignored); everything else delegated."""

    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    def aggregate(
        self,
        kind: str,
        sel: Any,
        group_by: Sequence[str] = (),
        measures: Sequence[str] = ("count",),
        **_: Any,
    ) -> list[dict[str, Any]]:
        return self._store.aggregate(kind, sel, group_by, measures, source="raw")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def best_ms(fn: Callable[[], object], repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--store", type=Path, default=None, help="An existing store (skips the fill).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.store
        if path is None:
            path = Path(tmp) / "bench.db"
            print(f"filling {args.records:,} records over 7 days...", file=sys.stderr)
            fill(str(path), args.records, days=7.0, seed=0, progress=False)
        store = SqliteStore(path, read_only=True)
        rollups, raw = Query(store), Query(RawScans(store))  # type: ignore[arg-type,unused-ignore]
        counts = store.info().row_counts
        records = sum(
            counts.get(t, 0) for t in ("logs", "events", "spans", "metric_points", "errors", "sessions")
        )
        print(f"clisight top and the comprehensive report, {records:,} records ({machine()}, {git_rev()})")
        print(f"{'what':<34} {'rollups ms':>11} {'raw scan ms':>12} {'ratio':>7}")
        cases: list[tuple[str, Callable[[Query], object]]] = [
            (f"top refresh, last {label}", lambda q, w=window: load(q, None, w, None))
            for label, window in (("15 min", 900.0), ("1 day", 86_400.0), ("7 days", 7 * 86_400.0))
        ]
        cases.append(("comprehensive report, all", lambda q: build_report(q, Filter())))
        for label, run in cases:
            fast = best_ms(lambda run=run: run(rollups))
            slow = best_ms(lambda run=run: run(raw))
            print(f"{label:<34} {fast:>11.1f} {slow:>12.1f} {slow / fast:>6.1f}x")
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
