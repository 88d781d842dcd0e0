"""Metric values and per-minute series from the rollups, checked against what the records say."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from clisight._sketch import QuantileSketch
from clisight.query import Query
from clisight.query.series import METRICS, grouped_series, metric_series, metric_value
from clisight.store import SqliteStore
from clisight.types import ERROR_LEVEL, INFO, PERFORMANCE, WARNING, Record, Resource

SECOND = 1_000_000_000
MINUTE = 60 * SECOND
NOW = 1_800_000_000 * SECOND + 17 * SECOND  # inside a minute: the ends are partial minutes
CLI = Resource("mycli")
OTHER = Resource("other")


def perf(at: int, seconds: float, ok: bool = True, name: str = "chat", res: Resource = CLI) -> Record:
    return Record(
        "log", at, "perf", "took", PERFORMANCE, {"operation": name, "duration": seconds, "success": ok}, res
    )


@pytest.fixture
def data(tmp_path: Path) -> Iterator[tuple[Query, list[Record]]]:
    rng = random.Random(7)
    records: list[Record] = []
    for i in range(900):  # 3 h of records, every 12 s
        at = NOW - i * 12 * SECOND
        res = CLI if i % 3 else OTHER
        records.append(
            perf(at, rng.lognormvariate(-1, 0.8), rng.random() > 0.1, "chat" if i % 2 else "ls", res)
        )
        level = ERROR_LEVEL if i % 7 == 0 else (WARNING if i % 5 == 0 else INFO)
        records.append(Record("log", at, "app" if i % 4 else "db", f"message {i % 3}", level, {}, res))
        model = "opus" if i % 4 == 0 else "sonnet"
        usage = {
            "model": model,
            "input_tokens": 100 + i,
            "output_tokens": 10 + i % 50,
            "cost_usd": 0.001 * (i % 9),
        }
        records.append(Record("event", at, "llm.request", "", 0, usage, res))
        records.append(
            Record("metric", at, "process.cpu.utilization", "", 0, {"unit": "%"}, res, value=float(i % 100))
        )
        records.append(
            Record(
                "metric",
                at,
                "process.memory.rss",
                "",
                0,
                {"unit": "By"},
                res,
                value=float((i % 10 + 1) * 2**20),
            )
        )
        if i % 11 == 0:
            records.append(
                Record("error", at, "KeyError" if i % 2 else "ValueError", "bad", 17, {"stack": ""}, res)
            )
    store = SqliteStore(tmp_path / "series.db")
    store.write_batch(records)
    with Query(store) as query:
        yield query, records
    store.close()


def within(records: list[Record], start: int, end: int, kind: str) -> list[Record]:
    return [r for r in records if r.kind == kind and start <= r.time_ns <= end]


def test_every_metric_matches_the_records_of_its_window(data: tuple[Query, list[Record]]) -> None:
    query, records = data
    start, end = NOW - 47 * MINUTE - 5 * SECOND, NOW
    logs = within(records, start, end, "log")
    chat = [r for r in logs if r.severity == PERFORMANCE and r.attributes["operation"] == "chat"]
    plain = [r for r in logs if r.severity != PERFORMANCE]
    llm = within(records, start, end, "event")
    metrics = within(records, start, end, "metric")

    def value(metric: str, where: dict[str, str] | None = None, **kw: str) -> float | None:
        return metric_value(query, metric, where or {}, start, end, **kw)[()]

    sketch = QuantileSketch()
    for r in chat:
        sketch.add(r.attributes["duration"])
    for metric, q in (("latency_p50", 0.5), ("latency_p95", 0.95), ("latency_p99", 0.99)):
        assert value(metric, {"operation": "chat"}) == pytest.approx(sketch.quantiles((q,))[0], rel=0.02)
    assert value("latency_max", {"operation": "chat"}) == max(r.attributes["duration"] for r in chat)
    failed = sum(not r.attributes["success"] for r in chat)
    assert value("error_rate", {"operation": "chat"}) == pytest.approx(failed / len(chat))
    bad = sum(r.severity >= ERROR_LEVEL for r in plain)
    all_logs = [r for r in logs]  # PERFORMANCE logs are logs too
    assert value("error_rate", of="logs") == pytest.approx(bad / len(all_logs))
    assert value("count", {"operation": "chat"}) == len(chat)
    assert value("count", {"level": "warning"}, of="logs") == sum(r.severity >= WARNING for r in logs)
    assert value("count", {"component": "db"}, of="logs") == sum(r.name == "db" for r in logs)
    assert value("count", {"type": "KeyError"}, of="errors") == sum(
        r.name == "KeyError" for r in within(records, start, end, "error")
    )
    opus = [r for r in llm if r.attributes["model"] == "opus"]
    assert value("cost", {"model": "opus"}) == pytest.approx(sum(r.attributes["cost_usd"] for r in opus))
    assert value("tokens", {"model": "opus", "service": "mycli"}) == sum(
        r.attributes["input_tokens"] + r.attributes["output_tokens"]
        for r in opus
        if r.resource.service == "mycli"
    )
    assert value("count", {"model": "sonnet"}, of="llm") == len(llm) - len(opus)
    cpu = [r.value for r in metrics if r.name == "process.cpu.utilization"]
    rss = [r.value for r in metrics if r.name == "process.memory.rss"]
    assert value("cpu") == pytest.approx(sum(cpu) / len(cpu))
    assert value("cpu", agg="max") == max(cpu)
    assert value("rss", agg="max") == max(rss) / 2**20 and value("rss") == pytest.approx(
        sum(rss) / len(rss) / 2**20
    )


def test_no_data_is_none_but_zero_for_counts_cost_and_tokens(data: tuple[Query, list[Record]]) -> None:
    query, _ = data
    future = (NOW + MINUTE, NOW + 2 * MINUTE)
    found = {m: metric_value(query, m, {}, *future)[()] for m in METRICS}
    assert found == {m: (0.0 if m in ("count", "cost", "tokens") else None) for m in METRICS}


def test_groups_are_label_sets(data: tuple[Query, list[Record]]) -> None:
    query, records = data
    found = metric_value(query, "count", {}, NOW - 10 * MINUTE, NOW, group_by=["service", "operation"])
    expected: dict[tuple[tuple[str, str], ...], float] = {}
    for r in within(records, NOW - 10 * MINUTE, NOW, "log"):
        if r.severity == PERFORMANCE:
            key = (("operation", r.attributes["operation"]), ("service", r.resource.service))
            expected[key] = expected.get(key, 0) + 1
    assert found == expected


def test_the_series_has_one_point_per_minute_from_the_rollups(data: tuple[Query, list[Record]]) -> None:
    query, records = data
    start, end = NOW - 60 * MINUTE, NOW
    series = metric_series(query, "count", {"operation": "ls"}, start, end, MINUTE)
    first = start - start % MINUTE
    assert [t for t, _ in series] == list(range(first, end + 1, MINUTE)), "every minute, empty ones as 0"
    for at, count in series:
        assert count == sum(
            1
            for r in records
            if r.kind == "log"
            and r.severity == PERFORMANCE
            and r.attributes["operation"] == "ls"
            and at <= r.time_ns < at + MINUTE
        )
    rates = metric_series(query, "error_rate", {}, NOW + MINUTE, NOW + 5 * MINUTE, MINUTE)
    assert rates == [], "minutes without operations have no error rate (not 0)"
    by = grouped_series(query, "latency_p95", {}, start, end, 5 * MINUTE, group_by=["service"])
    assert set(by) == {(("service", "mycli"),), (("service", "other"),)}
    assert all(len(points) == 13 for points in by.values())


def test_bad_requests_say_what_is_allowed(data: tuple[Query, list[Record]]) -> None:
    query, _ = data
    with pytest.raises(ValueError, match="unknown metric 'latency'"):
        metric_value(query, "latency", {}, 0, NOW)
    with pytest.raises(ValueError, match="cannot filter or group by 'model'"):
        metric_value(query, "latency_p95", {"model": "x"}, 0, NOW)
    with pytest.raises(ValueError, match="cannot be read of 'events'"):
        metric_value(query, "error_rate", {}, 0, NOW, of="events")
    with pytest.raises(ValueError, match="whole number of minutes"):
        metric_series(query, "count", {}, 0, NOW, 30 * SECOND)


@pytest.mark.parametrize(
    ("metric", "where", "of", "group_by", "agg"),
    [
        ("latency_p95", {"operation": "chat", "service": "mycli"}, None, ["operation"], None),
        ("latency_max", {}, None, ["service"], None),
        ("error_rate", {"operation": "chat"}, None, [], None),
        ("error_rate", {"component": "db"}, "logs", ["component"], None),
        ("count", {"level": "error"}, "logs", [], None),
        ("count", {"event": "command"}, "events", ["model"], None),
        ("count", {"type": "KeyError"}, "errors", ["type"], None),
        ("cost", {"model": "opus"}, None, ["service"], None),
        ("tokens", {}, None, ["model"], None),
        ("cpu", {"service": "mycli"}, None, [], "max"),
        ("rss", {}, None, ["service"], None),
    ],
)
def test_every_metric_is_answered_by_the_rollups(
    metric: str, where: dict[str, str], of: str | None, group_by: list[str], agg: str | None
) -> None:
    from clisight.query.series import _request
    from clisight.store._aggregate import parse, plan

    for bucket in (None, 60):
        req = _request(metric, where, NOW - 30 * 86_400 * SECOND, NOW, of, group_by, agg, bucket)
        found = plan(req.kind, req.sel, req.group_by, parse(req.kind, req.group_by, req.measures))
        assert found is not None, "a month's window must read rollup cells, not raw rows"
        assert all(resolution for resolution, start, end in found.segments if end - start >= MINUTE)
