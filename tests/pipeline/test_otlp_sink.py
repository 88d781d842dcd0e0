"""The OTLP/HTTP exporter: into our own receiver (every kind round-trips), and against a scripted
fake collector on 127.0.0.1 that answers each status code (the spec's retry matrix)."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("httpx", reason="the otlp extra (httpx) is not installed")
pytest.importorskip("opentelemetry.proto", reason="the otlp extra (opentelemetry-proto) is not installed")

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from clisight.pipeline.otlp import OtlpHttpSink, backoff, parse_headers, retry_after
from clisight.pipeline.writer import Pipeline
from clisight.types import ERROR_LEVEL, WARNING, Record, Resource
from tests.server.conftest import Served, serve

APP = Resource("exporting-app", version="3.2", host="devbox", pid=4242)
NOW = time.time_ns()
TRACE, ROOT, CHILD = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "b7ad6b7169203331"


def records() -> list[Record]:
    return [
        Record(
            "span",
            NOW,
            "root",
            "",
            0,
            {"span.kind": "server", "route": "/x"},
            APP,
            "sess-1",
            TRACE,
            ROOT,
            None,
            NOW + 2_000_000,
        ),
        Record(
            "span",
            NOW + 10,
            "child",
            "",
            ERROR_LEVEL,
            {"attempt": 2},
            APP,
            "sess-1",
            TRACE,
            CHILD,
            ROOT,
            NOW + 1_000_000,
        ),
        Record("log", NOW, "api", "quota low", WARNING, {"left": 3}, APP, "sess-1", TRACE, CHILD),
        Record("event", NOW, "llm.request", "", 0, {"model": "m1", "input_tokens": 120}, APP, "sess-1"),
        Record(
            "error",
            NOW,
            "TimeoutError",
            "read timed out",
            ERROR_LEVEL,
            {"stack": 'File "app.py", line 3, in main', "component": "api"},
            APP,
            "sess-1",
        ),
        Record(
            "metric", NOW, "queue.depth", "", 0, {"type": "gauge", "unit": "1", "shard": "a"}, APP, value=7.0
        ),
        Record("metric", NOW, "requests", "", 0, {"type": "counter", "unit": "1"}, APP, value=3.0),
        Record(
            "session",
            NOW - 5_000,
            "exporting-app",
            "",
            0,
            {"command": "run", "exit_code": 0},
            APP,
            "sess-1",
            end_ns=NOW + 9_000_000,
        ),
    ]


def test_every_kind_sent_to_our_receiver_is_stored_as_it_was(served: Served, tmp_path: Path) -> None:
    pipeline = Pipeline([OtlpHttpSink(served.url, env={})])
    for record in records():
        pipeline.emit(record)
    assert pipeline.shutdown(timeout=20)
    [stats] = pipeline.stats()
    assert (stats.stored, stats.dropped) == (len(records()), 0)

    spans = {row["name"]: row for row in served.stored("span")}
    assert (spans["root"]["trace_id"], spans["root"]["span_id"], spans["root"]["parent_span_id"]) == (
        TRACE,
        ROOT,
        None,
    )
    assert (spans["child"]["parent_span_id"], spans["child"]["status"]) == (ROOT, ERROR_LEVEL)
    assert spans["root"]["span_kind"] == "server" and spans["root"]["attributes"]["route"] == "/x"
    assert spans["root"]["end_ns"] == NOW + 2_000_000 and spans["root"]["session_id"] == "sess-1"
    assert spans["root"]["service"] == "exporting-app" and spans["root"]["service_version"] == "3.2"
    [log] = served.stored("log")
    assert (log["message"], log["severity"], log["component"], log["attributes"]["left"]) == (
        "quota low",
        WARNING,
        "api",
        3,
    )
    assert (log["trace_id"], log["span_id"]) == (TRACE, CHILD)
    [event] = served.stored("event")
    assert (event["name"], event["attributes"]["input_tokens"], event["session_id"]) == (
        "llm.request",
        120,
        "sess-1",
    )
    [error] = served.stored("error")
    assert (error["type"], error["message"]) == ("TimeoutError", "read timed out")
    assert "app.py" in error["stack"]
    metrics = {row["name"]: row for row in served.stored("metric")}
    assert (metrics["queue.depth"]["value"], metrics["queue.depth"]["type"]) == (7.0, "gauge")
    assert metrics["queue.depth"]["attributes"]["shard"] == "a"
    assert (metrics["requests"]["value"], metrics["requests"]["type"]) == (3.0, "counter")
    [session] = served.stored("session")
    assert (session["id"], session["command"], session["end_ns"]) == ("sess-1", "run", NOW + 9_000_000)


# -- the fake collector ----------------------------------------------------------------------------


class Collector:
    """Answers POSTs from a script of (status, headers, body); the last entry repeats."""

    def __init__(self, script: list[tuple[int, dict[str, str], bytes]]) -> None:
        self.script = script
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                collector.requests.append((self.path, dict(self.headers), body))
                status, headers, content = collector.script[
                    min(len(collector.requests), len(collector.script)) - 1
                ]
                self.send_response(status)
                for key, value in {"Content-Type": "application/x-protobuf", **headers}.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Collector:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def spans(n: int) -> list[Record]:
    return [
        Record("span", NOW + i, f"op{i}", "", 0, {}, APP, None, TRACE, f"{i + 1:016x}", None, NOW + i + 5)
        for i in range(n)
    ]


def send(collector: Collector, batch: list[Record], **options: Any) -> tuple[Any, OtlpHttpSink]:
    sleeps: list[float] = []
    sink = OtlpHttpSink(collector.url, env={}, sleep=sleeps.append, **options)
    pipeline = Pipeline([sink], batch_size=len(batch))
    for record in batch:
        pipeline.emit(record)
    pipeline.shutdown(timeout=20)
    sink.sleeps = sleeps  # type: ignore[attr-defined]
    return pipeline.stats()[0], sink


OK: tuple[int, dict[str, str], bytes] = (200, {}, b"")


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_retryable_statuses_are_retried_until_accepted(status: int) -> None:
    with Collector([(status, {}, b""), (status, {}, b""), OK]) as collector:
        stats, sink = send(collector, spans(4))
    assert len(collector.requests) == 3
    assert (stats.stored, stats.dropped) == (4, 0)
    assert len(sink.sleeps) == 2  # type: ignore[attr-defined]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 500, 501])
def test_other_statuses_are_never_retried_and_count_the_batch_dropped(status: int) -> None:
    with Collector([(status, {}, b"no")]) as collector:
        stats, _ = send(collector, spans(5))
    assert len(collector.requests) == 1
    assert (stats.stored, stats.dropped) == (0, 5)
    assert str(status) in (stats.last_error or "")


def test_retry_after_is_honoured() -> None:
    with Collector([(503, {"Retry-After": "2"}, b""), OK]) as collector:
        _, sink = send(collector, spans(1))
    assert sink.sleeps == [2.0]  # type: ignore[attr-defined]


def test_partial_success_counts_the_rejected_items_dropped_and_the_rest_stored() -> None:
    response = ExportTraceServiceResponse()
    response.partial_success.rejected_spans = 2
    response.partial_success.error_message = "2 spans had no name"
    with Collector([(200, {}, response.SerializeToString())]) as collector:
        stats, sink = send(collector, spans(6))
    assert len(collector.requests) == 1
    assert (stats.stored, stats.dropped) == (4, 2)
    assert sink.partial_rejected == 2 and "no name" in (stats.last_error or "")


def test_requests_are_gzipped_protobuf_with_the_configured_headers() -> None:
    with Collector([OK]) as collector:
        send(collector, spans(3), headers={"Authorization": "Bearer t0ken"})
    [(path, headers, body)] = collector.requests
    assert path == "/v1/traces"
    assert headers["Content-Type"] == "application/x-protobuf" and headers["Content-Encoding"] == "gzip"
    assert headers["Authorization"] == "Bearer t0ken"
    request = ExportTraceServiceRequest.FromString(gzip.decompress(body))
    assert [s.name for s in request.resource_spans[0].scope_spans[0].spans] == ["op0", "op1", "op2"]


def test_a_collector_that_stays_down_spools_and_the_next_run_sends_it(tmp_path: Path) -> None:
    spool = tmp_path / "otlp.spool"
    with Collector([(503, {}, b"")]) as down:
        stats, _ = send(down, spans(3), spool_dir=spool, max_attempts=3)
    assert len(down.requests) == 3
    assert (stats.stored, stats.dropped, stats.spooled) == (0, 0, 3)
    for served in serve(tmp_path):
        sink = OtlpHttpSink(served.url, env={}, spool_dir=spool)
        pipeline = Pipeline([sink])
        pipeline.emit(spans(4)[3])  # the next run's own record; opening the sink replays the spool
        assert pipeline.shutdown(timeout=20)
        assert sink.replayed == 3
        assert sorted(r["name"] for r in served.stored("span")) == ["op0", "op1", "op2", "op3"]


def test_what_was_spooled_while_the_collector_was_down_is_sent_by_the_same_process_once_it_is_back(
    tmp_path: Path,
) -> None:
    spool = tmp_path / "otlp.spool"
    down = (503, {}, b"")
    # Two attempts of the first batch fail (spooled), then the collector is back for good.
    with Collector([down, down, OK]) as collector:
        sink = OtlpHttpSink(collector.url, env={}, spool_dir=spool, max_attempts=2, sleep=lambda s: None)
        pipeline = Pipeline([sink], batch_size=3)
        first, later = spans(5)[:3], spans(5)[3:]
        for record in first:
            pipeline.emit(record)
        assert pipeline.flush(timeout=20)
        [stats] = pipeline.stats()
        assert (stats.stored, stats.spooled, sink.replayed) == (0, 3, 0)
        for record in later:
            pipeline.emit(record)
        assert pipeline.flush(timeout=20)  # this batch gets through, then the spool is sent
        assert sink.replayed == 3
        sent = [
            span.name
            for _, _, body in collector.requests[2:]
            for span in ExportTraceServiceRequest.FromString(gzip.decompress(body))
            .resource_spans[0]
            .scope_spans[0]
            .spans
        ]
        assert sorted(sent) == ["op0", "op1", "op2", "op3", "op4"]
        started = time.monotonic()
        pipeline.shutdown(timeout=20)  # False: not every record was stored by this sink's writes
        assert time.monotonic() - started < 5
    [stats] = pipeline.stats()
    # The spooled records stay counted as spooled (emitted = stored + dropped + spooled); the
    # sink counts them replayed, as the next process would.
    assert (stats.emitted, stats.stored, stats.dropped, stats.spooled) == (5, 2, 0, 3)
    assert not spool.exists() or not any(spool.iterdir())


def test_an_unreachable_endpoint_is_a_counted_loss_within_the_deadline() -> None:
    with Collector([OK]) as collector:
        url = collector.url
    sink = OtlpHttpSink(url, env={}, max_attempts=2, sleep=lambda s: None)  # nothing listens there now
    pipeline = Pipeline([sink])
    pipeline.emit(spans(1)[0])
    pipeline.shutdown(timeout=10)
    [stats] = pipeline.stats()
    assert (stats.stored, stats.dropped) == (0, 1)
    assert "ConnectError" in (stats.last_error or "")


def test_the_standard_variables_configure_endpoints_headers_timeout_and_compression() -> None:
    sink = OtlpHttpSink(
        env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces.example/custom",
            "OTEL_EXPORTER_OTLP_HEADERS": "api-key=a%20b,x-team=obs",
            "OTEL_EXPORTER_OTLP_LOGS_HEADERS": "api-key=logs-only",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
            "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION": "none",
        }
    )
    assert sink.urls == {
        "traces": "http://traces.example/custom",
        "logs": "http://collector:4318/v1/logs",
        "metrics": "http://collector:4318/v1/metrics",
    }
    assert sink.headers["traces"] == {"api-key": "a b", "x-team": "obs"}
    assert sink.headers["logs"] == {"api-key": "logs-only"}
    assert sink.timeouts["traces"] == 2.5
    assert (sink.gzip["traces"], sink.gzip["metrics"]) == (True, False)


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    assert [backoff(n, lambda: 0.5) for n in range(8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert backoff(0, lambda: 0.0) == 0.25 and backoff(0, lambda: 1.0) == 0.75
    assert retry_after("7") == 7.0 and retry_after("soon") is None and retry_after(None) is None
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_headers("a=1, b = two ,broken,=x") == {"a": "1", "b": "two"}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    yield from serve(tmp_path / "receiver")
