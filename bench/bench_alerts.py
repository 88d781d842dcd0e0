"""Evaluating 100 alert rules over a store of 1 M records: the engine (rollups) against the same rules
answered from raw rows, in one run.

The store is built by ``bench/gen_store.py`` (its realistic mix over 30 days, through the real
pipeline), or reused with ``--store PATH`` when that file exists.  The 100 rules mix every metric
(latency p50/p95/p99/max per operation and service, error rates of operations and logs, counts of
logs, events and errors, LLM cost and tokens per model, cpu and rss, and anomaly rules over
per-minute series of 4 h), windows from 5 minutes to 7 days, some grouped by service or model.

Printed: seconds per evaluation of the 100 rules by :class:`clisight.alerts.AlertEngine` (the first,
which also writes every alert's state, and the median of 5 after it), the same rules read from raw
rows (``aggregate(..., source="raw")``, what evaluation without rollups would cost; one round), the
ratio, and whether the target (100 rules under 1 s) is met.

Usage: python bench/bench_alerts.py [N] [--store PATH]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _common import git_rev, machine

TARGET_S = 1.0

OPERATIONS = ("http.request", "db.query", "llm.request", "tool.exec", "cache.lookup", "fs.scan", "startup")
SERVICES = ("mycli", "chatcli", "deploytool")
MODELS = ("claude-sonnet-4", "claude-haiku-3.5", "claude-opus-4", "gpt-4o", "gpt-4o-mini")
WINDOWS = ("5m", "15m", "1h", "6h", "1d", "7d")


def rules_text(count: int = 100) -> str:
    """``count`` rules cycling through every metric, operation, service, model and window."""
    kinds: list[str] = []
    i = 0
    while len(kinds) < count:
        window = WINDOWS[i % len(WINDOWS)]
        op = OPERATIONS[i % len(OPERATIONS)]
        svc = SERVICES[i % len(SERVICES)]
        model = MODELS[i % len(MODELS)]
        pick = i % 14
        if pick < 4:
            metric = ("latency_p50", "latency_p95", "latency_p99", "latency_max")[pick]
            body = f'metric = "{metric}"\nwhere = {{ operation = "{op}", service = "{svc}" }}\nabove = 5'
        elif pick == 4:
            body = (
                f'metric = "latency_p95"\nwhere = {{ operation = "{op}" }}\ngroup_by = ["service"]\nabove = 2'
            )
        elif pick == 5:
            body = f'metric = "error_rate"\nwhere = {{ operation = "{op}" }}\nabove = 0.2'
        elif pick == 6:
            body = f'metric = "error_rate"\nof = "logs"\nwhere = {{ service = "{svc}" }}\nabove = 0.05'
        elif pick == 7:
            where = f'where = {{ level = "error", service = "{svc}" }}'
            body = f'metric = "count"\nof = "logs"\n{where}\nabove = 100'
        elif pick == 8:
            body = 'metric = "count"\nof = "errors"\ngroup_by = ["type"]\nabove = 50'
        elif pick == 9:
            body = f'metric = "cost"\nwhere = {{ model = "{model}" }}\nabove = 10'
        elif pick == 10:
            body = 'metric = "tokens"\ngroup_by = ["model"]\nabove = 1e6'
        elif pick == 11:
            resource = ("cpu", "rss")[i % 2]
            body = f'metric = "{resource}"\nagg = "max"\nwhere = {{ service = "{svc}" }}\nabove = 90'
        elif pick == 12:
            body = 'metric = "count"\nof = "events"\nwhere = { event = "command.run" }\nbelow = 1'
        else:
            over = ("error_rate", "latency_p95", "count")[i % 3]
            body = f'metric = "anomaly"\nover = "{over}"\nwhere = {{ operation = "{op}" }}\nwindow = "5m"'
            window = ""
        head = f'[[rule]]\nname = "rule {len(kinds):03d}"\n'
        kinds.append(head + body + (f'\nwindow = "{window}"' if window else "") + "\n")
        i += 1
    return "\n".join(kinds)


class RawReads:
    """A store whose aggregates are answered from raw rows only (the peer: no rollups)."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.url = store.url

    def aggregate(self, kind: str, sel: Any, group_by: Any = (), measures: Any = ("count",), **_: Any) -> Any:
        return self._store.aggregate(kind, sel, group_by, measures, source="raw")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("n", nargs="?", type=int, default=1_000_000)
    parser.add_argument("--store", type=Path, default=None, help="Reuse (or build) the store at this path.")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    from clisight.alerts import AlertEngine, parse_rules
    from clisight.query import Query
    from clisight.store import SqliteStore

    tmp = tempfile.TemporaryDirectory(prefix="bench-alerts-")
    path = args.store or Path(tmp.name) / "alerts.db"
    if not path.exists():
        import gen_store

        print(f"building a store of {args.n:,} records at {path} ...", file=sys.stderr)
        filled = gen_store.fill(str(path), args.n, days=30, seed=0, progress=True)
        if not filled.get("ok"):
            print(f"the store was not filled: {filled}", file=sys.stderr)
            return 1
    rules = parse_rules(rules_text(100), "bench.toml")
    assert len(rules.enabled) == 100
    store = SqliteStore(path)
    records = sum(
        store.info().row_counts.get(t, 0) for t in ("logs", "spans", "events", "metric_points", "errors")
    )
    now = time.time_ns()

    with Query(path) as query:
        engine = AlertEngine(query, rules, lambda: now, notifiers={})
        started = time.perf_counter()
        statuses = engine.evaluate()
        first = time.perf_counter() - started
        rounds = []
        for _ in range(args.rounds):
            started = time.perf_counter()
            engine.evaluate()
            rounds.append(time.perf_counter() - started)
    fast = statistics.median(rounds)

    raw_engine = AlertEngine(Query(RawReads(store)), rules, lambda: now, notifiers={})  # type: ignore[arg-type]
    started = time.perf_counter()
    raw_statuses = raw_engine.evaluate()
    raw = time.perf_counter() - started
    store.close()

    same = sum(
        a.state == b.state
        and (
            a.value == b.value
            or (
                a.value is not None
                and b.value is not None
                and abs(a.value - b.value) <= 0.02 * abs(b.value) + 1e-9
            )
        )
        for a, b in zip(statuses, raw_statuses, strict=True)
    )
    print(f"machine: {machine()}; git rev {git_rev()}; {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"store: {records:,} records over 30 days ({path.stat().st_size / 2**20:,.0f} MB)")
    print(f"rules: {len(rules.enabled)} ({len(statuses)} alerts: rule x label set)")
    print(f"{'evaluation of 100 rules':<44} {'seconds':>10}")
    print(f"{'engine, first (writes every state)':<44} {first:>10.3f}")
    print(f"{'engine, median of ' + str(args.rounds):<44} {fast:>10.3f}")
    print(f"{'same rules from raw rows (no rollups)':<44} {raw:>10.3f}")
    print(f"rollups vs raw rows: {raw / fast:,.1f}x faster; answers agree for {same}/{len(statuses)} alerts")
    print(f"target: 100 rules under {TARGET_S:g} s: {'met' if max(fast, first) < TARGET_S else 'MISSED'}")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
