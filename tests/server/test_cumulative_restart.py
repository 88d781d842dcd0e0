"""Cumulative OTLP series survive a ``clisight serve`` restart: the stored increases of a counter,
a histogram and a summary sum to their true totals across a stop and start on the same store (a
real serve process, stopped by SIGINT), and a kill -9 between saves counts at most the growth since
the last save twice.  The mapping itself: a property test restarts a mapper at any point."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clisight.pipeline.redact import PatternRedactor
from clisight.query import Filter, Query
from clisight.server.cumulative import PREFIX, CumulativeState
from clisight.server.otlp import Mapper
from clisight.store import MemoryStore
from tests.cli.clirun import serve_on_any_port

JS = {"content-type": "application/json"}
SECOND = 1_000_000_000
T0 = (time.time_ns() // SECOND - 3600) * SECOND  # recent: older records go by retention


def kv(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "value": {"stringValue": value}}


def request(points: list[tuple[str, str, int, float]]) -> bytes:
    """One metrics request: (metric kind, attribute value, start, total) cumulative points, at T0 + total
    seconds (any increasing time)."""
    metrics = []
    for kind, who, start, total in points:
        point: dict[str, Any] = {
            "attributes": [kv("who", who)],
            "startTimeUnixNano": str(start),
            "timeUnixNano": str(T0 + int(total * SECOND) + 1),
        }
        if kind == "sum":
            data = {
                "sum": {
                    "aggregationTemporality": 2,
                    "isMonotonic": True,
                    "dataPoints": [point | {"asDouble": total}],
                }
            }
        elif kind == "histogram":
            point |= {
                "count": str(int(total)),
                "sum": total,
                "bucketCounts": [str(int(total))],
                "explicitBounds": [],
            }
            data = {"histogram": {"aggregationTemporality": 2, "dataPoints": [point]}}
        else:
            data = {"summary": {"dataPoints": [point | {"count": str(int(total)), "sum": total}]}}
        metrics.append({"name": f"app.{kind}", "unit": "1", **data})
    resource = {"attributes": [kv("service.name", "restarted")]}
    return orjson.dumps({"resourceMetrics": [{"resource": resource, "scopeMetrics": [{"metrics": metrics}]}]})


@contextmanager
def running_serve(folder: Path) -> Iterator[tuple[subprocess.Popen[str], str, list[str]]]:
    """``clisight serve`` on the store in ``folder``; yields the process, its URL and its stderr lines
    so far (filled in when it has stopped).  Stopped by SIGINT unless the test killed it."""
    proc, lines, reader = serve_on_any_port(folder)
    seen: list[str] = []
    try:
        while not seen or not seen[-1].startswith("REST API:"):
            seen.append(lines.get(timeout=60))  # the banner comes once the port is bound
        url = seen[-1].split()[-1].removesuffix("/api/v1/")
        deadline = time.monotonic() + 30
        while httpx.get(f"{url}/health", timeout=5).status_code != 200:  # serving, not just listening
            assert time.monotonic() < deadline
            time.sleep(0.05)
        yield proc, url, seen
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        reader.join(timeout=10)
        seen.extend(lines.queue)


def send(url: str, points: list[tuple[str, str, int, float]]) -> None:
    answer = httpx.post(f"{url}/v1/metrics", content=request(points), headers=JS, timeout=10)
    assert answer.status_code == 200, answer.text


def stored(db: Path) -> dict[tuple[str, str], float]:
    """The stored increases summed per metric and attribute value."""
    out: dict[tuple[str, str], float] = {}
    with Query(f"sqlite:///{db}") as query:
        for row in query.export(Filter(), kinds=("metric",)):
            key = (row["name"], row["attributes"]["who"])
            out[key] = out.get(key, 0.0) + row["value"]
    return out


def wait_until(check: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.05)


def test_after_a_restart_stored_increases_sum_to_the_true_totals(tmp_path: Path) -> None:
    start, later = T0 - 100 * SECOND, T0 - 10 * SECOND
    kinds = ("sum", "histogram", "summary")
    with running_serve(tmp_path) as (_, url, _lines):
        send(url, [(k, w, start, 10.0) for k in kinds for w in ("a", "b")])
        send(url, [(k, w, start, 25.0) for k in kinds for w in ("a", "b")])
    with running_serve(tmp_path) as (_, url, lines):
        # "a" goes on (same start time); "b" restarted (a later start): its total is all new.
        send(url, [(k, "a", start, 40.0) for k in kinds] + [(k, "b", later, 7.0) for k in kinds])
    assert not any("did not stop cleanly" in line for line in lines)
    totals = stored(tmp_path / "served.db")
    for kind in kinds:
        assert totals[(f"app.{kind}", "a")] == 40.0, "10 + 15 + 15: nothing counted twice"
        assert totals[(f"app.{kind}", "b")] == 25.0 + 7.0, "a new stream counts from its start"


def test_the_opentelemetry_sdk_exporting_across_a_restart_is_counted_once(tmp_path: Path) -> None:
    pytest.importorskip(
        "opentelemetry.exporter.otlp.proto.http", reason="opentelemetry-exporter-otlp-proto-http"
    )
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricExportResult
    from opentelemetry.sdk.resources import Resource

    # The program keeps running (its counters keep their start time) while serve restarts.
    reader = InMemoryMetricReader()
    provider = MeterProvider(resource=Resource({"service.name": "long-running"}), metric_readers=[reader])
    meter = provider.get_meter("restart")
    tokens = meter.create_counter("tokens", unit="1")
    latency = meter.create_histogram("latency", unit="s")

    def export(url: str) -> None:
        exporter = OTLPMetricExporter(endpoint=f"{url}/v1/metrics", timeout=10)
        data = reader.get_metrics_data()
        assert data is not None and exporter.export(data) is MetricExportResult.SUCCESS
        exporter.shutdown()

    with running_serve(tmp_path) as (_, url, _lines):
        tokens.add(100, {"model": "m"})
        latency.record(1.5)
        export(url)
        tokens.add(50, {"model": "m"})
        export(url)
    with running_serve(tmp_path) as (_, url, _lines):
        tokens.add(25, {"model": "m"})
        latency.record(0.5)
        export(url)
    provider.shutdown()
    with Query(f"sqlite:///{tmp_path / 'served.db'}") as query:
        rows = list(query.export(Filter(), kinds=("metric",)))
    assert sum(r["value"] for r in rows if r["name"] == "tokens") == 175.0, "100 + 50 + 25, once each"
    assert sum(r["value"] for r in rows if r["name"] == "latency") == 2.0, "the histogram's sum, once"


def test_a_kill_between_saves_counts_at_most_the_growth_since_the_last_save_twice(tmp_path: Path) -> None:
    start = T0 - 100 * SECOND
    db = tmp_path / "served.db"
    with running_serve(tmp_path) as (proc, url, _):
        send(url, [("sum", "a", start, 10.0)])
        with Query(f"sqlite:///{db}") as query:  # the periodic save (every 5 s) has the 10
            wait_until(lambda: 10.0 in _saved_totals(query), timeout=60)
        send(url, [("sum", "a", start, 25.0)])
        wait_until(lambda: stored(db).get(("app.sum", "a")) == 25.0)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    with running_serve(tmp_path) as (_, url, lines):
        send(url, [("sum", "a", start, 40.0)])
    assert any("did not stop cleanly" in line for line in lines), lines
    total = stored(db)[("app.sum", "a")]
    # 10 + 15, then 40 - 10 from the saved 10: the 15 since that save counted twice; 40 if another
    # save came before the kill.  Never the whole 40 again (55 + 25 = 65).
    assert total in (40.0, 55.0), total


def _saved(query: Query) -> list[Any]:
    return [query.load_state(f"{PREFIX}{i:02x}") for i in range(256)]


def _saved_totals(query: Query) -> list[float]:
    return [total for bucket in _saved(query) if bucket for _, total in bucket["series"].values()]


# -- the mapping, restarted at any point -----------------------------------------------------------

point = st.tuples(
    st.sampled_from(["sum", "histogram", "summary"]),
    st.sampled_from(["a", "b", "c"]),
    st.sampled_from([T0 - 100 * SECOND, T0 - 50 * SECOND]),  # two streams per series
    st.integers(0, 1_000).map(float),
)


def mapped(mapper: Mapper, points: list[tuple[str, str, int, float]]) -> list[float]:
    from clisight.server.otlp import decode

    out: list[float] = []
    for p in points:
        records = mapper.map("metrics", decode("metrics", "application/json", request([p]))).records
        out += [r.value for r in records]
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(point, max_size=20), st.integers(0, 20), st.integers(1, 4))
def test_a_restart_anywhere_maps_as_one_mapper_would(
    points: list[tuple[str, str, int, float]], cut: int, max_series: int
) -> None:
    """Save at stop, load at start: the increases are the ones a mapper that never stopped gives,
    even when the table is smaller than the series (dropped ones leave the store too)."""
    expected = mapped(Mapper(PatternRedactor(), max_series), points)
    with Query(MemoryStore()) as query:
        first = Mapper(PatternRedactor(), max_series)
        kept = CumulativeState(first, query)
        kept.load()
        got = mapped(first, points[:cut])
        assert kept.stop()
        saved = sum(len(v["series"]) for v in _saved(query) if v)
        assert saved == len(first._cumulative) <= max_series, "the store holds the table, no more"
        second = Mapper(PatternRedactor(), max_series)
        again = CumulativeState(second, query)
        assert again.load() == saved and not again.unclean
        got += mapped(second, points[cut:])
    assert got == expected


def test_saved_state_that_is_not_ours_is_skipped() -> None:
    with Query(MemoryStore()) as query:
        query.save_state(f"{PREFIX}00", {"format": 1, "series": {"00" + "f" * 30: [1, "x"], "bad": [1, 2.0]}})
        query.save_state(f"{PREFIX}01", {"format": 99, "series": {"01" + "0" * 30: [1, 2.0]}})
        query.save_state(f"{PREFIX}02", ["not", "a", "bucket"])
        query.save_state(f"{PREFIX}03", {"format": 1, "series": {"03" + "0" * 30: [5, 2.5]}})
        state = CumulativeState(Mapper(PatternRedactor()), query)
        assert state.load() == 1
