"""The official OpenTelemetry Python SDK's OTLP/HTTP exporters, sending to a live receiver: every
span, log record and metric point is stored, with its attributes and ids exact."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("opentelemetry.exporter.otlp.proto.http", reason="opentelemetry-exporter-otlp-proto-http")

from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricExportResult
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode

from tests.helpers import GENEROUS_EXIT
from tests.server.conftest import Served

RESOURCE = Resource.create({"service.name": "otel-app", "service.version": "2.1.0", "deployment": "test"})


def test_every_span_from_the_sdk_is_stored_with_exact_ids_and_attributes(served: Served) -> None:
    provider = TracerProvider(resource=RESOURCE)
    exporter = OTLPSpanExporter(endpoint=f"{served.url}/v1/traces", timeout=10)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("interop.tests", "0.3")
    sent = {}
    with tracer.start_as_current_span("request", attributes={"http.method": "GET", "retries": 2}) as root:
        for i in range(5):
            with tracer.start_as_current_span(f"step-{i}", attributes={"index": i, "ratio": i / 4}) as child:
                child.add_event("checkpoint", {"at": i})
                sent[f"step-{i}"] = child
        with tracer.start_as_current_span("failing") as failing:
            failing.set_status(Status(StatusCode.ERROR, "boom"))
            sent["failing"] = failing
        sent["request"] = root
    provider.shutdown()

    rows = {row["name"]: row for row in served.stored("span")}
    assert set(rows) == set(sent)
    for name, span in sent.items():
        row, ctx = rows[name], span.get_span_context()
        assert row["trace_id"] == format(ctx.trace_id, "032x")
        assert row["span_id"] == format(ctx.span_id, "016x")
        assert row["service"] == "otel-app" and row["service_version"] == "2.1.0"
        assert row["start_ns"] == span.start_time and row["end_ns"] == span.end_time
        parent = span.parent
        assert row["parent_span_id"] == (format(parent.span_id, "016x") if parent else None)
        assert row["attributes"]["otel.scope.name"] == "interop.tests"
        assert row["attributes"]["otel.resource"]["deployment"] == "test"
    assert rows["request"]["attributes"]["http.method"] == "GET"
    assert rows["request"]["attributes"]["retries"] == 2
    assert rows["step-3"]["attributes"]["index"] == 3 and rows["step-3"]["attributes"]["ratio"] == 0.75
    assert rows["step-3"]["events"][0]["attributes"] == {"at": 3}
    assert rows["failing"]["status"] == 17 and rows["request"]["status"] == 0  # ERROR_LEVEL, ok
    assert rows["failing"]["attributes"]["status.message"] == "boom"


@contextlib.contextmanager
def sdk_logger(served: Served, name: str) -> Iterator[logging.Logger]:
    """A stdlib logger whose records the OpenTelemetry SDK exports to ``served``, one at a time;
    flushed and detached on leaving."""
    from opentelemetry.sdk._logs import LoggingHandler

    provider = LoggerProvider(resource=RESOURCE)
    provider.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{served.url}/v1/logs", timeout=10))
    )
    logger = logging.getLogger(name)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    handler = LoggingHandler(logger_provider=provider)
    logger.addHandler(handler)
    try:
        yield logger
    finally:
        logger.removeHandler(handler)
        provider.shutdown()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_every_log_record_from_the_sdk_is_stored(served: Served) -> None:
    with sdk_logger(served, "interop.logs") as logger:
        logger.info("cache warmed", extra={"entries": 120})
        logger.warning("slow disk", extra={"latency_ms": 812.5})
        logger.error("upload failed: api_key=sk-ant-0123456789abcdef0123456789")

    rows = served.stored("log")
    assert [(r["severity_text"], r["component"]) for r in rows] == [
        ("INFO", "interop.logs"),
        ("WARNING", "interop.logs"),
        ("ERROR", "interop.logs"),
    ]
    assert rows[0]["message"] == "cache warmed" and rows[0]["attributes"]["entries"] == 120
    assert rows[1]["attributes"]["latency_ms"] == 812.5
    assert "sk-ant-0123456789abcdef" not in rows[2]["message"]  # scrubbed like the client's own records
    assert all(r["service"] == "otel-app" for r in rows)


def test_every_metric_point_from_the_sdk_is_stored(served: Served) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(resource=RESOURCE, metric_readers=[reader])
    meter = provider.get_meter("interop.metrics")
    requests = meter.create_counter("requests", unit="1")
    queue = meter.create_up_down_counter("queue.depth")
    latency = meter.create_histogram("latency", unit="s")
    for route, n in (("/a", 3), ("/b", 5)):
        requests.add(n, {"route": route})
    queue.add(7)
    queue.add(-2)
    for value in (0.1, 0.4, 2.5):
        latency.record(value, {"route": "/a"})
    exporter = OTLPMetricExporter(endpoint=f"{served.url}/v1/metrics", timeout=10)
    data = reader.get_metrics_data()
    assert data is not None
    assert exporter.export(data) is MetricExportResult.SUCCESS
    requests.add(4, {"route": "/a"})  # a second cumulative export: stored as the increase
    data = reader.get_metrics_data()
    assert data is not None
    assert exporter.export(data) is MetricExportResult.SUCCESS
    exporter.shutdown()
    provider.shutdown()

    rows = served.stored("metric")
    by_name: dict[str, list[dict[str, object]]] = {}
    for row in rows:
        by_name.setdefault(row["name"], []).append(row)
    a_points = [r for r in by_name["requests"] if r["attributes"]["route"] == "/a"]
    assert [r["value"] for r in a_points] == [3.0, 4.0]  # cumulative 3 then 7: deltas 3 and 4
    assert [r["attributes"]["otel.cumulative_value"] for r in a_points] == [3.0, 7.0]
    assert a_points[0]["type"] == "counter" and a_points[0]["temporality"] == "cumulative"
    assert by_name["queue.depth"][0]["type"] == "updowncounter"
    hist = by_name["latency"][0]
    assert hist["type"] == "histogram" and hist["value"] == pytest.approx(3.0)
    assert hist["histogram"]["count"] == 3 and hist["histogram"]["max"] == 2.5


def test_a_cumulative_histogram_is_stored_as_the_increase_of_its_sum(served: Served) -> None:
    # The SDK's default: every export repeats the histogram's whole history.  Stored as sent, each
    # export added the cumulative sum again to the rollups (2 exports of one 1.5 s request: 3.0 s).
    reader = InMemoryMetricReader()
    provider = MeterProvider(resource=RESOURCE, metric_readers=[reader])
    latency = provider.get_meter("interop.metrics").create_histogram("latency", unit="s")
    exporter = OTLPMetricExporter(endpoint=f"{served.url}/v1/metrics", timeout=10)
    for value in (1.5, None, 0.5):  # an export with no new recording repeats the same totals
        if value is not None:
            latency.record(value, {"route": "/a"})
        data = reader.get_metrics_data()
        assert data is not None
        assert exporter.export(data) is MetricExportResult.SUCCESS
    exporter.shutdown()
    provider.shutdown()

    points = [row for row in served.stored("metric") if row["name"] == "latency"]
    assert [p["value"] for p in points] == [1.5, 0.0, 0.5]
    assert [p["attributes"]["otel.cumulative_value"] for p in points] == [1.5, 1.5, 2.0]
    assert [p["histogram"]["count"] for p in points] == [1, 1, 2]  # the buckets as the SDK sent them
    assert all(p["temporality"] == "cumulative" for p in points)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_logged_exception_from_the_sdk_keeps_its_line_and_makes_one_error(served: Served) -> None:
    with sdk_logger(served, "interop.exceptions") as logger:
        try:
            {}["user"]
        except KeyError:
            logger.exception("payment failed")

    # Both: the line (it used to be dropped, only the error stored) and one error.
    [line] = served.stored("log")
    assert (line["message"], line["severity_text"]) == ("payment failed", "ERROR")
    [error] = served.stored("error")
    assert error["type"] == "KeyError" and "user" in error["message"] and "Traceback" in error["stack"]


def test_clisights_own_exporter_into_the_receiver_stores_a_logged_exception_as_it_was(
    served: Served, tmp_path: Path
) -> None:
    # clisight's client stores logger.exception as a log line and an error; its exporter sends both
    # (the error as an ``exception`` event).  The line came back as a second error, the line lost.
    program = (
        "import clisight\n"
        "clisight.init(service='rt', store='none')\n"
        "try:\n    1 / 0\n"
        "except ZeroDivisionError:\n    clisight.get_logger('shop').exception('payment failed')\n"
    )
    env = {**os.environ, "CLISIGHT_OTLP_ENDPOINT": served.url, "CLISIGHT_HOME": str(tmp_path / "home")}
    env.update(CLISIGHT_EXIT_TIMEOUT=str(GENEROUS_EXIT))
    proc = subprocess.run(
        [sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    [line] = served.stored("log")
    assert (line["message"], line["component"]) == ("payment failed", "shop")
    [error] = served.stored("error")
    assert error["type"] == "ZeroDivisionError"
