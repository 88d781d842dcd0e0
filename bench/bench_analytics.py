"""Usage-analytics queries on a store holding 1 million usage events: each under 200 ms?

Fills (once; reused when the file exists) a SQLite store with ``bench/gen_store.py``'s workload
restricted to events (``--mix event=100``: ``command.run``, ``tool.call``, ``conversation.turn`` and
``llm.request`` with tokens and cost, over 30 days, through the real pipeline), plus what
clisight's usage analytics records on top: ``command:<path>`` operations (as ``clisight.instrument``
writes them), ``conversation.*`` metrics and ``journey`` steps of a few thousand users.  Then times
each query of ``clisight.query.usage`` and ``clisight.query.analytics`` (median and best of 7 after
one warm run) and prints the plan the store used for each aggregate (rollup resolutions and raw edges, or a
raw scan).

Usage::

    nice .venv/bin/python bench/bench_analytics.py [STORE_PATH] [--events 1000000] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import git_rev, machine
from gen_store import DEFAULT_KINDS, DEFAULT_LEVELS, Mix, fill

from clisight.pipeline.store_sink import StoreSink
from clisight.pipeline.writer import Pipeline
from clisight.query import Filter, Query
from clisight.query import analytics as qa
from clisight.query import usage as uq
from clisight.store import _aggregate
from clisight.types import ERROR_LEVEL, Record, Resource

TARGET_MS = 200.0
DAY = 86_400 * 10**9
COMMANDS = ("mycli deploy run", "mycli deploy status", "mycli db migrate", "chatcli chat", "chatcli ask")
STEPS = ("install", "first_run", "login", "first_chat", "invite")


def extras(url: str, now_ns: int, days: float, seed: int = 1) -> int:
    """Command operations, conversation metrics and journey steps, through a pipeline."""
    rng = random.Random(seed)
    sink = StoreSink(url)
    pipe = Pipeline([sink], queue_size=100_000, batch_size=2000, flush_interval=0.2, overflow="block")
    resource = Resource("mycli", version="2.1.0", host="laptop-1", pid=7)
    start = now_ns - int(days * DAY)
    n = 0
    for _ in range(60_000):
        at = rng.randint(start, now_ns)
        name = rng.choice(COMMANDS)
        failed = rng.random() < (0.3 if "migrate" in name else 0.03)
        seconds = rng.lognormvariate(0, 1)
        pipe.emit(
            Record(
                "span",
                at,
                "command:" + name,
                "",
                ERROR_LEVEL if failed else 0,
                {"command": name},
                resource,
                None,
                "t" * 32,
                "s" * 16,
                end_ns=at + int(seconds * 1e9),
            )
        )
        n += 1
    for _ in range(20_000):
        at = rng.randint(start, now_ns)
        for metric, value in (("messages", rng.randint(2, 40)), ("tokens", rng.randint(500, 90_000))):
            pipe.emit(
                Record(
                    "metric", at, f"conversation.{metric}", "", 0, {"type": "gauge"}, resource, value=value
                )
            )
            n += 1
    for user in range(4000):
        at = rng.randint(start, now_ns - DAY)
        for step in STEPS:
            if rng.random() < 0.75:
                at += rng.randint(60, 40_000) * 10**9
                actor = f"u_{user:016x}"
                attrs = {"step": step, "user_id": actor, "actor": actor, "model": actor}
                pipe.emit(Record("event", at, "journey:" + step, "", 0, attrs, resource, f"j{user}"))
                n += 1
    pipe.flush(600)
    pipe.shutdown(600)
    return n


def timed(fn: Callable[[], Any], repeats: int = 7) -> tuple[float, float]:
    """(median, best) milliseconds of ``repeats`` runs after a warm one (page cache, statements)."""
    fn()
    times = []
    for _ in range(repeats):
        begin = time.perf_counter()
        fn()
        times.append((time.perf_counter() - begin) * 1000)
    return statistics.median(times), min(times)


def describe_plan(kind: str, sel: Any, group_by: tuple[str, ...], measures: tuple[str, ...]) -> str:
    parsed = _aggregate.parse(kind, group_by, measures)
    found = _aggregate.plan(kind, sel, group_by, parsed)
    if found is None:
        return "raw rows"
    parts: dict[str, int] = {}
    for resolution, _, _ in found.segments:
        label = {0: "raw edge", 60: "minute", 3600: "hour", 86_400: "day"}[resolution]
        parts[label] = parts.get(label, 0) + 1
    return f"rollups ({found.series}): " + ", ".join(f"{v} {k} range(s)" for k, v in parts.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("store", nargs="?", default="/tmp/clisight-bench-analytics.db")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    path = Path(args.store)
    marker = path.with_suffix(".json")
    if not path.exists() or not marker.exists():
        now = time.time_ns()
        began = time.perf_counter()
        mix = Mix(
            kinds={**{k: 0.0 for k in DEFAULT_KINDS}, "event": 100.0},
            levels=dict(DEFAULT_LEVELS),
            session_size=200.0,
            nonzero_exit=0.05,
            span_error=0.03,
        )
        filled = fill(str(path), args.events, days=args.days, now_ns=now, mix=mix, progress=False)
        added = extras(str(path), now, args.days)
        marker.write_text(
            json.dumps(
                {
                    "now_ns": now,
                    "events": args.events,
                    "extras": added,
                    "fill_s": round(time.perf_counter() - began, 1),
                    "ok": filled.get("ok"),
                }
            )
        )
    info = json.loads(marker.read_text())
    now = info["now_ns"]
    week = Filter(since=now - 7 * DAY, until=now).selection()
    month = Filter(since=now - 30 * DAY, until=now).selection()
    day = Filter(since=now - DAY, until=now).selection()
    results: list[dict[str, Any]] = []
    with Query(path) as query:
        store = query.reader
        counts = store.info().row_counts
        llm_measures = (
            "count",
            "sum:input_tokens",
            "sum:output_tokens",
            "sum:cache_creation_tokens",
            "sum:cache_read_tokens",
            "sum:cost_usd",
        )
        journey_plan = (
            describe_plan(
                "event",
                dataclasses.replace(
                    month,
                    name="journey:install",
                    since_ns=month.since_ns - month.since_ns % 3_600_000_000_000,
                    until_ns=month.until_ns - month.until_ns % 3_600_000_000_000 + 3_599_999_999_999,
                ),
                ("model", "bucket:3600"),
                ("count", "min:time", "max:time"),
            )
            + ", one read per step (hour cells: a 1-day window)"
        )
        cases: list[tuple[str, Callable[[], Any], str]] = [
            (
                "usage daily, 30 days",
                lambda: uq.daily(store, month),
                describe_plan("event", uq._llm(month), ("bucket:86400", "model"), llm_measures),
            ),
            (
                "usage monthly, 30 days",
                lambda: uq.monthly(store, month),
                describe_plan("event", uq._llm(month), ("bucket:86400", "model"), llm_measures),
            ),
            (
                "usage blocks, 7 days",
                lambda: uq.blocks(store, week, now),
                describe_plan(
                    "event", uq._llm(week), ("bucket:3600", "model"), (*llm_measures, "min:time", "max:time")
                ),
            ),
            (
                "usage blocks, 30 days",
                lambda: uq.blocks(store, month, now),
                describe_plan(
                    "event", uq._llm(month), ("bucket:3600", "model"), (*llm_measures, "min:time", "max:time")
                ),
            ),
            (
                "usage session, last day",
                lambda: uq.sessions(store, day),
                describe_plan("event", uq._llm(day), ("session_id", "model"), llm_measures),
            ),
            (
                "commands (most used, slowest, error rate), 7 days",
                lambda: qa.command_stats(store, week),
                describe_plan(
                    "operation", week, ("name",), ("count", "errors", "sum:duration", "quantiles:duration")
                ),
            ),
            (
                "activity by hour and weekday, 7 days",
                lambda: qa.activity(store, week),
                describe_plan("event", week, ("bucket:3600",), ("count",)),
            ),
            (
                "insights (everything, with the week before), 7 days",
                lambda: qa.insights(store, 7, now),
                "the five reads above, twice (this week and the one before)",
            ),
            (
                "funnel install>first_run>first_chat, 7 days",
                lambda: qa.funnel(
                    qa.journey_steps(
                        store, week, ["install", "first_run", "first_chat"], qa.journey_resolution(86_400)
                    ),
                    ["install", "first_run", "first_chat"],
                    86_400,
                ),
                journey_plan,
            ),
            (
                "funnel install>first_run>first_chat, 30 days",
                lambda: qa.funnel(
                    qa.journey_steps(
                        store, month, ["install", "first_run", "first_chat"], qa.journey_resolution(86_400)
                    ),
                    ["install", "first_run", "first_chat"],
                    86_400,
                ),
                journey_plan,
            ),
            (
                "retention, 8 weekly cohorts",
                lambda: qa.retention(store, month, 8),
                describe_plan("session", month, ("user_id", "bucket:86400"), ("count",)),
            ),
        ]
        for name, fn, plan_used in cases:
            ms, best = timed(fn)
            row = {"query": name, "median_ms": round(ms, 1), "best_ms": round(best, 1), "plan": plan_used}
            results.append({**row, "ok": ms < TARGET_MS})
    header = {
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "commit": git_rev(),
        "store": str(path),
        "row_counts": dict(counts),
        "fill": info,
    }
    if args.json:
        print(json.dumps({**header, "results": results}, indent=2))
        return 0
    for key, value in header.items():
        print(f"{key}: {value}")
    print(f"load average: {os.getloadavg()[0]:.1f}")
    print(f"\n{'query':58} {'median ms':>10} {'best ms':>8}  plan")
    for r in results:
        flag = "" if r["ok"] else f"  (over {TARGET_MS:.0f} ms)"
        print(f"{r['query']:58} {r['median_ms']:>10.1f} {r['best_ms']:>8.1f}  {r['plan']}{flag}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
