"""The dashboard's page data on a store of 1 million records: each page under 100 ms?

Fills (once; reused when the file and its marker exist) a SQLite store with ``bench/gen_store.py``'s
default workload (logs, PERFORMANCE logs, spans, events with LLM usage, metrics, errors and
sessions of three CLIs over 30 days, through the real pipeline), with a few alert rules evaluated
once.  Then times the data function of each dashboard page (``clisight.server.dashboard.data``:
what the page reads through the query service; median and best of 7 after one warm run), and the
whole page (data and template, over Starlette's TestClient).

The peer: the same page data with every aggregate forced to a scan of the raw rows (the store's
``source="raw"``), i.e. a dashboard without rollups (one run; its ratio is how much the rollups
save).

Usage::

    nice .venv/bin/python bench/bench_dashboard.py [STORE_PATH] [--records 1000000] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import git_rev, machine
from gen_store import fill

from clisight.query import Query
from clisight.server.dashboard import data

TARGET_MS = 100.0
DAY = 86_400 * 10**9
RULES = """
[[rule]]
name = "p95-latency"
metric = "latency_p95"
window = "5m"
above = 2.0

[[rule]]
name = "error-rate"
metric = "error_rate"
window = "15m"
above = 0.05
group_by = ["service"]
"""


class RawStore:
    """The store with every aggregate answered from raw rows: a dashboard without rollups."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def aggregate(
        self,
        kind: str,
        sel: Any,
        group_by: Sequence[str] = (),
        measures: Sequence[str] = ("count",),
        **_: Any,
    ) -> list[dict[str, Any]]:
        return self._store.aggregate(kind, sel, group_by, measures, source="raw")  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, float]:
    fn()  # warm
    runs = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - began) * 1000)
    return statistics.median(runs), min(runs)


def pages(query: Query, now: int) -> list[tuple[str, str, Callable[[], Any]]]:
    """(page, path, its data function) for every page, detail pages on real ids of the store."""
    newest = data.traces(query, limit=1)
    groups = data.errors(query, now, status="")
    trace_id = newest[0].trace_id if newest else "0" * 32
    fingerprint = groups[0].fingerprint if groups else "none"
    facts = data.StoreFacts(query)
    return [
        ("overview", "/", lambda: data.overview(query, now)),
        ("logs (newest 200, 24 h)", "/logs", lambda: data.logs(query, now, data.LogsParams())),
        (
            "logs (level error, 7 d)",
            "/logs?level=error&range=7d",
            lambda: data.logs(query, now, data.LogsParams(level="error", range="7d")),
        ),
        (
            "logs (text search, 24 h)",
            "/logs?q=timeout",
            lambda: data.logs(query, now, data.LogsParams(q="timeout")),
        ),
        ("traces (newest 50)", "/traces", lambda: data.traces(query)),
        ("trace waterfall", f"/traces/{trace_id}", lambda: data.trace(query, trace_id)),
        ("errors (7 d)", "/errors?status=", lambda: data.errors(query, now, status="")),
        ("errors (30 d)", "/errors?status=&range=30d", lambda: data.errors(query, now, "", "30d")),
        ("error occurrence", f"/errors/{fingerprint}", lambda: data.error(query, fingerprint)),
        ("usage (7 d)", "/usage", lambda: data.usage(query, now, 7)),
        (
            "anomalies (24 h, 5 min)",
            "/alerts?range=24h",
            lambda: data.anomalies(query, now, DAY, data.STEPS["24h"]),
        ),
        ("anomalies (7 d, hourly)", "/alerts", lambda: data.anomalies(query, now)),
        (
            "anomalies (30 d, daily)",
            "/alerts?range=30d",
            lambda: data.anomalies(query, now, 30 * DAY, data.STEPS["30d"]),
        ),
        (
            "health (store facts cached)",
            "/health",
            lambda: data.health(query, [], {}, time.monotonic(), facts),
        ),
        ("health (store facts counted)", "/health", lambda: data.health(query, [], {}, time.monotonic())),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("store", nargs="?", default="/tmp/clisight-bench-dashboard.db")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-raw", action="store_true", help="skip the raw-scan peer (slow)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    path = Path(args.store)
    marker = path.with_suffix(".json")
    if not path.exists() or not marker.exists():
        now = time.time_ns()
        began = time.perf_counter()
        filled = fill(str(path), args.records, days=args.days, now_ns=now, progress=True)
        rules = path.with_suffix(".alerts.toml")
        rules.write_text(RULES)
        clisight = str(Path(sys.executable).with_name("clisight"))
        cmd = [clisight, "alerts", "check", "--store", str(path), "--rules", str(rules), "--wait", "0"]
        subprocess.run(cmd, capture_output=True, timeout=600)
        info = {"now_ns": now, "records": args.records, "fill_s": round(time.perf_counter() - began, 1)}
        marker.write_text(json.dumps({**info, "ok": filled.get("ok")}))
    info = json.loads(marker.read_text())
    now = info["now_ns"]
    results: list[dict[str, Any]] = []
    with Query(path) as query:
        counts = query.doctor().row_counts
        from starlette.testclient import TestClient

        from clisight.pipeline.redact import PatternRedactor
        from clisight.server.app import create_app

        class NoQueue:
            def offer(self, records: Any) -> bool:
                return True

        app = create_app(NoQueue(), PatternRedactor(), query=query)
        raw_query = Query(RawStore(query.reader))  # type: ignore[arg-type]
        with TestClient(app, base_url="http://127.0.0.1") as client:
            for (name, url, fn), (_, _, raw_fn) in zip(pages(query, now), pages(raw_query, now), strict=True):
                median, best = timed(fn, args.repeats)
                page_median, _ = timed(lambda url=url: client.get(url).raise_for_status(), 3)
                raw_ms = None
                if not args.no_raw and "cached" not in name:  # a cache hit has no raw peer
                    began = time.perf_counter()
                    raw_fn()
                    raw_ms = (time.perf_counter() - began) * 1000
                results.append(
                    {
                        "page": name,
                        "median_ms": median,
                        "best_ms": best,
                        "html_ms": page_median,
                        "raw_ms": raw_ms,
                    }
                )
    if args.json:
        print(
            json.dumps({"machine": machine(), "rev": git_rev(), "rows": counts, "results": results}, indent=1)
        )
        return 0
    total = sum(counts.values())
    print(f"clisight dashboard page data: {machine()}, rev {git_rev()}")
    print(f"store {path}: {total:,} rows ({', '.join(f'{k} {v:,}' for k, v in sorted(counts.items()))})")
    print(f"fill: {info.get('fill_s')} s; target {TARGET_MS:.0f} ms per page's data\n")
    print(f"{'page':30} {'data median':>12} {'best':>8} {'page html':>10} {'raw scan':>10} {'x raw':>7}")
    for r in results:
        raw = f"{r['raw_ms']:10.0f}" if r["raw_ms"] is not None else f"{'-':>10}"
        ratio = f"{r['raw_ms'] / r['median_ms']:7.1f}" if r["raw_ms"] else f"{'-':>7}"
        flag = "" if r["median_ms"] < TARGET_MS else "  over target"
        times = f"{r['median_ms']:10.1f}ms {r['best_ms']:6.1f}ms {r['html_ms']:8.1f}ms"
        print(f"{r['page']:30} {times} {raw}ms {ratio}{flag}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
