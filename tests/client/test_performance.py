"""Spans (decorator, async, nesting, context across tasks, thresholds), metric instruments, the seed's
PerformanceMonitor and the resource sampler."""

from __future__ import annotations

import asyncio
import os
import random
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import clisight
from clisight.client import context as _ctx
from clisight.client import core
from clisight.client.records import RecordBuilder
from clisight.client.resources import current as current_sampler
from clisight.query import Query
from clisight.store.base import Selection
from clisight.testing import MemorySink, capture
from clisight.types import ERROR_LEVEL, WARNING
from tests.client.test_never_raises import accounted, fields, values
from tests.helpers import run_python

# -- spans --------------------------------------------------------------------------------------------


def test_span_decorates_functions_and_coroutines_and_nests() -> None:
    @clisight.span("outer", kind="server", route="/x")
    def outer() -> int:
        return inner()

    @clisight.span("inner")
    def inner() -> int:
        clisight.get_logger("t").info("deep")
        return 7

    @clisight.span("coro", kind="client")
    async def coro() -> str:
        with clisight.span("in-coro"):
            await asyncio.sleep(0)
        return "done"

    with capture() as sink:
        assert outer() == 7
        assert asyncio.run(coro()) == "done"
        clisight.flush(5)
    spans = {s.name: s for s in sink.of_kind("span")}
    assert spans["inner"].parent_span_id == spans["outer"].span_id
    assert spans["inner"].trace_id == spans["outer"].trace_id
    assert spans["outer"].attributes["span.kind"] == "server" and spans["outer"].attributes["route"] == "/x"
    assert "span.kind" not in spans["inner"].attributes  # internal is the default
    (deep,) = sink.of_kind("log")
    assert deep.span_id == spans["inner"].span_id
    assert spans["in-coro"].parent_span_id == spans["coro"].span_id


def test_the_current_span_follows_asyncio_tasks() -> None:
    async def child(n: int) -> None:
        await asyncio.sleep(0)
        clisight.get_logger("t").info("child %d", n)

    async def main() -> str:
        async with clisight.span("parent") as span_id:
            await asyncio.gather(*(asyncio.create_task(child(n)) for n in range(3)))
        return span_id

    with capture() as sink:
        parent = asyncio.run(main())
        clisight.flush(5)
    logs = sink.of_kind("log")
    assert len(logs) == 3 and {r.span_id for r in logs} == {parent}


def test_a_failing_span_records_the_exception_and_reraises() -> None:
    @clisight.span("fails")
    async def fails() -> None:
        raise KeyError("k")

    with capture() as sink, pytest.raises(KeyError):
        asyncio.run(fails())
    clisight.flush(5)
    (span,) = sink.of_kind("span")
    assert span.severity == ERROR_LEVEL
    assert span.attributes["exception.type"] == "KeyError" and span.attributes["exception.message"] == "'k'"


@settings(max_examples=60, deadline=None)
@given(name=st.text(max_size=10), attributes=fields, session_fields=fields, fails=st.booleans())
def test_the_inlined_span_record_is_the_one_the_builder_makes(
    name: str, attributes: dict[str, Any], session_fields: dict[str, Any], fails: bool
) -> None:
    attributes.pop("kind", None)
    with capture() as sink:
        client = core.get_client()
        assert client is not None
        with clisight.session(**{k: v for k, v in session_fields.items() if k != "session_id"}):
            parent = _ctx.get()
            try:
                with clisight.span(name, **attributes):
                    if fails:
                        raise ValueError("x")
            except ValueError:
                pass
        clisight.flush(5)
        (span,) = sink.of_kind("span")
        expected_attrs = dict(attributes)
        if fails:
            expected_attrs |= {"exception.type": "ValueError", "exception.message": "x"}
        builder = RecordBuilder(client.resource, client.redactor)
        expected = builder.span(
            name,
            span.time_ns,
            span.end_ns,  # type: ignore[arg-type]
            ERROR_LEVEL if fails else 0,
            builder.merge(parent, expected_attrs),
            parent,
            span.trace_id,  # type: ignore[arg-type]
            span.span_id,  # type: ignore[arg-type]
        )
        assert span == expected


@settings(max_examples=40, deadline=None)
@given(name=values, kind=values, attributes=fields)
def test_span_never_raises_into_the_host_whatever_it_is_given(name: Any, kind: Any, attributes: Any) -> None:
    attributes.pop("kind", None)
    with accounted(calls_make=2):

        @clisight.span(name, kind=kind, **attributes)
        def work() -> None:
            clisight.get_logger("a").info("x")

        work()


def test_a_span_over_its_threshold_writes_a_warning_and_an_alert_event() -> None:
    clock = [0]
    with capture(thresholds="db.query=0.5,slow_kind=2") as sink:
        client = core.get_client()
        assert client is not None
        client.records.clock = lambda: clock[0]
        for seconds in (0.2, 0.9):
            with clisight.span("db.query"):
                clock[0] += int(seconds * 1e9)
        with clisight.span("other", operation_type="slow_kind"):
            clock[0] += int(3e9)
        with clisight.span("untracked"):
            clock[0] += int(100e9)
        clisight.flush(5)
    warnings = [r for r in sink.of_kind("log") if r.severity == WARNING]
    alerts = sink.of_kind("event")
    assert [w.attributes["operation"] for w in warnings] == ["db.query", "other"]
    assert [a.attributes["threshold"] for a in alerts] == [0.5, 2.0]
    assert alerts[0].attributes["value"] == pytest.approx(0.9)


# -- metrics ------------------------------------------------------------------------------------------
def test_counters_add_up_in_memory_and_are_written_as_delta_points_at_flush() -> None:
    with capture() as sink:
        requests = clisight.counter("http.requests", unit="1")
        assert clisight.counter("http.requests") is requests
        for status in (200, 200, 500):
            requests.add(1, status=status, route="/v1")
        requests.add(2.5)
        requests.add(-1)  # a counter only goes up: ignored
        requests.add(float("nan"))
        clisight.flush(5)
        requests.add(4, status=200, route="/v1")
        clisight.flush(5)
    points = [
        (p.value, {k: v for k, v in p.attributes.items() if k in ("status", "route")})
        for p in sink.of_kind("metric")
    ]
    assert sorted(points[:3], key=str) == sorted(
        [(2.0, {"status": 200, "route": "/v1"}), (1.0, {"status": 500, "route": "/v1"}), (2.5, {})], key=str
    )
    assert points[3:] == [(4.0, {"status": 200, "route": "/v1"})]
    assert all(
        p.attributes["type"] == "counter" and p.attributes["temporality"] == "delta"
        for p in sink.of_kind("metric")
    )


def test_exposed_instruments_mark_every_point_and_others_none() -> None:
    class Hostile:
        def __bool__(self) -> bool:
            raise RuntimeError("no truth here")

    with capture() as sink:
        clisight.counter("jobs.done").add(1)  # created before it was asked to be exposed
        jobs = clisight.counter("jobs.done", expose=True)
        jobs.add(2, queue="mail")
        clisight.gauge("queue.depth", expose=True).set(3)
        clisight.gauge("queue.depth").set(4)  # the cached gauge stays exposed
        clisight.counter("hidden").add(5)
        clisight.counter("odd", expose=Hostile()).add(6)  # never raises; not exposed
        clisight.flush(5)
    marked = {(p.name, p.value): p.attributes.get("clisight.expose") for p in sink.of_kind("metric")}
    assert marked == {
        ("jobs.done", 1.0): True,  # the counter is exposed by the time it is collected
        ("jobs.done", 2.0): True,
        ("queue.depth", 3.0): True,
        ("queue.depth", 4.0): True,
        ("hidden", 5.0): None,
        ("odd", 6.0): None,
    }


def test_gauges_and_histograms_write_points_with_their_attributes() -> None:
    with capture() as sink:
        clisight.gauge("queue.depth").set(12, queue="jobs")
        latency = clisight.histogram("llm.latency", unit="s")
        latency.record(1.5, model="m")
        latency.record("not a number")  # type: ignore[arg-type]
        clisight.flush(5)
    gauge, hist = sink.of_kind("metric")
    assert (gauge.name, gauge.value, gauge.attributes["type"], gauge.attributes["queue"]) == (
        "queue.depth",
        12.0,
        "gauge",
        "jobs",
    )
    assert (hist.value, hist.attributes["unit"], hist.attributes["model"]) == (1.5, "s", "m")


@settings(max_examples=40, deadline=None)
@given(name=values, unit=values, amount=values, attributes=fields)
@example(name="big", unit="", amount=10**400, attributes={})  # found exploring: float() overflowed
@example(name="big", unit="", amount=2**1023, attributes={})  # sums past the float range at collect
def test_metric_calls_never_raise_into_the_host(name: Any, unit: Any, amount: Any, attributes: Any) -> None:
    with accounted(calls_make=None):
        clisight.counter(name, unit=unit).add(amount, **attributes)
        clisight.gauge(name, unit=unit).set(amount, **attributes)
        clisight.histogram(name, unit=unit).record(amount, **attributes)


def test_metric_percentiles_from_the_store_merge_processes_and_minutes(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    code = """
        import sys, random, clisight
        seed = int(sys.argv[1])
        clisight.init(service="m", store=sys.argv[2], resource_sampling="off")
        client = clisight.client.core.get_client()
        rng = random.Random(seed)
        h = clisight.histogram("latency", unit="s")
        start = 1_700_000_000_000_000_000 + seed * 7_000_000_000
        for i in range(600):
            client.records.clock = lambda i=i: start + i * 1_500_000_000  # 15 minutes of points
            h.record(rng.lognormvariate(0, 1.5))
        clisight.shutdown(30)
    """
    for seed in (1, 2, 3):
        run_python(f"import sys; sys.argv=['x', '{seed}', {str(db)!r}]\n" + textwrap.dedent(code))
    exact: list[float] = []
    for seed in (1, 2, 3):
        rng = random.Random(seed)
        exact += [rng.lognormvariate(0, 1.5) for _ in range(600)]
    exact.sort()
    with Query(db) as q:
        (row,) = q.store.aggregate(
            "metric",
            Selection(name="latency"),
            (),
            ("count", "quantiles:value"),
        )
    assert row["count"] == 1800
    sketch = row["quantiles:value"]
    for q_ in (0.5, 0.9, 0.95, 0.99):
        want = exact[int(q_ * (len(exact) - 1))]
        assert abs(sketch.quantile(q_) - want) <= 0.01 * want


# -- the seed's PerformanceMonitor ---------------------------------------------------------------------
def test_performance_monitor_keeps_the_seeds_interface_and_fixes_its_bugs() -> None:
    with capture() as sink:
        monitor = clisight.PerformanceMonitor(clisight.get_logger("db"))
        assert monitor.alert_thresholds == {"query_time": 10.0, "connection_time": 5.0, "memory_usage": 500.0}
        for i, ok in enumerate((True, True, False, True)):
            monitor.start_operation(f"q{i}", "query_time")
            assert monitor.end_operation(f"q{i}", "query_time", success=ok) is not None
        assert monitor.end_operation("never-started", "query_time") is None  # the seed raised KeyError
        assert monitor.end_operation("q0", "query_time") is None  # ended twice
        stats = monitor.get_performance_stats()
        report = monitor.generate_performance_report()
        clisight.flush(5)
    query = stats["query_time"]
    assert query["count"] == 4 and query["success_rate"] == 0.75 and query["failure_count"] == 1
    assert query["min_time"] <= query["p50"] <= query["max_time"]
    assert "query_time" in report and "75.0%" in report
    perf_logs = [r for r in sink.of_kind("log") if r.attributes.get("operation") == "query_time"]
    assert [r.attributes["success"] for r in perf_logs] == [True, True, False, True]


def test_performance_monitor_alerts_over_its_threshold() -> None:
    with capture() as sink:
        monitor = clisight.PerformanceMonitor()
        monitor.alert_thresholds["connection_time"] = 0.0
        monitor.start_operation("c1", "connection_time")
        monitor.end_operation("c1", "connection_time")
        clisight.flush(5)
    (alert,) = sink.of_kind("event")
    assert alert.name == "alert" and alert.attributes["operation"] == "connection_time"
    assert any(r.severity == WARNING for r in sink.of_kind("log"))


@settings(max_examples=40, deadline=None)
@given(op_id=values, op_type=values, success=values)
def test_performance_monitor_never_raises(op_id: Any, op_type: Any, success: Any) -> None:
    with accounted(calls_make=None):
        monitor = clisight.PerformanceMonitor(op_id)
        monitor.start_operation(op_id, op_type)
        monitor.end_operation(op_id, op_type, success)
        monitor.end_operation(op_type, op_id)
        monitor.get_performance_stats()
        monitor.generate_performance_report()


# -- resources ------------------------------------------------------------------------------------------
def test_resource_sampling_writes_gauges_and_stops_at_shutdown() -> None:
    pytest.importorskip("psutil")
    sink = MemorySink()
    clisight.init(sinks=[sink], resource_sampling="on", resource_interval=3600)
    sampler = current_sampler()
    assert sampler is not None
    clisight.shutdown(5)  # stops the thread after its first sample, then flushes
    assert not sampler.thread.is_alive()
    names = {r.name: r for r in sink.records if r.kind == "metric"}
    assert {
        "process.cpu.utilization",
        "process.memory.rss",
        "process.threads",
        "system.memory.utilization",
    } <= set(names)
    assert (
        names["process.memory.rss"].value > 1_000_000
        and names["process.memory.rss"].attributes["unit"] == "By"
    )


def test_short_runs_sample_nothing_by_default_and_off_starts_no_sampler() -> None:
    sink = MemorySink()
    clisight.init(sinks=[sink], resource_sampling="auto", resource_interval=3600)
    clisight.shutdown(5)
    assert not [r for r in sink.records if r.kind == "metric"]
    clisight.init(sinks=[MemorySink()], resource_sampling="off")
    assert current_sampler() is None or current_sampler().client is not core.get_client()  # type: ignore[union-attr]


def test_a_forked_child_samples_its_own_process(tmp_path: Path) -> None:
    pytest.importorskip("psutil")
    db = tmp_path / "f.db"
    run_python(
        f"""
        import os, clisight
        from clisight.client.resources import current
        clisight.init(service="f", store={str(db)!r}, resource_sampling="on", resource_interval=3600)
        pid = os.fork()
        if pid == 0:
            sampler = current()
            assert sampler is not None and sampler.thread.is_alive()
            clisight.shutdown(30)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        assert status == 0
        """
    )
    with Query(db) as q:
        pids = {r["pid"] for r in q.export(kinds=["metric"]) if r["name"] == "process.memory.rss"}
    assert len(pids) == 2 and os.getpid() not in pids


def test_a_forked_child_reports_only_its_own_counts(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    run_python(
        f"""
        import os, clisight
        clisight.init(service="c", store={str(db)!r})
        jobs = clisight.counter("jobs")
        jobs.add(5)
        pid = os.fork()
        if pid == 0:
            jobs.add(1)
            clisight.shutdown(30)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        assert status == 0
        """
    )
    with Query(db) as q:
        points = [r for r in q.export(kinds=["metric"]) if r["name"] == "jobs"]
    assert sorted(p["value"] for p in points) == [1.0, 5.0]
    assert len({p["pid"] for p in points}) == 2
