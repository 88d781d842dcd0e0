"""Traces and logs decoded and mapped in worker processes (what ``clisight serve`` does by default):
the same records as mapping in the server, the same answers, and nothing lost when a worker dies."""

from __future__ import annotations

import base64
import multiprocessing
import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import httpx
import orjson
import pytest

pytest.importorskip("uvicorn", reason="the server extra is not installed")
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from clisight.pipeline.redact import PatternRedactor
from clisight.server.otlp import JSON, PROTOBUF, Mapper, decode, map_in_worker, start_worker
from tests.server.conftest import serve


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolExecutor]:
    executor = ProcessPoolExecutor(
        1, multiprocessing.get_context("spawn"), start_worker, (PatternRedactor(),)
    )
    try:
        yield executor
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def traces(n: int, secret: str = "") -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource = request.resource_spans.add()
    resource.resource.attributes.add(key="service.name").value.string_value = "pooled"
    resource.resource.attributes.add(key="deployment").value.string_value = "eu"
    scope = resource.scope_spans.add()
    scope.scope.name = "lib"
    now = time.time_ns()
    for i in range(n):
        span = scope.spans.add(name=f"op-{i % 3}", kind=2, start_time_unix_nano=now + i)
        span.end_time_unix_nano = now + i + 1000
        span.trace_id = (i + 1).to_bytes(16, "big")
        span.span_id = (i + 1).to_bytes(8, "big")
        span.attributes.add(key="n").value.int_value = i
        span.attributes.add(key="ok").value.bool_value = i % 2 == 0
        span.attributes.add(key="list").value.array_value.values.add().string_value = "x"
        span.attributes.add(key="password").value.string_value = secret or "hunter2"
        if i == 1:
            span.trace_id = bytes(16)  # rejected: all-zero trace id
        if i == 2:
            span.status.code, span.status.message = 2, "boom"
            span.events.add(name="retry", time_unix_nano=now).attributes.add(key="k").value.double_value = 1.5
    return request


def logs() -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    resource = request.resource_logs.add()
    resource.resource.attributes.add(key="service.name").value.string_value = "pooled"
    scope = resource.scope_logs.add()
    record = scope.log_records.add(time_unix_nano=time.time_ns(), severity_number=13)
    record.body.string_value = "disk almost full: token=sk-abcdefghijklmnopqrstuvwxyz0123"
    event = scope.log_records.add(time_unix_nano=time.time_ns())
    event.body.string_value = "claude_code.api_request"
    return request


def otlp_json(request: ExportTraceServiceRequest) -> bytes:
    """The OTLP JSON mapping of ``request``: protobuf's JSON with the ids in hex."""
    document = json_format.MessageToDict(request)
    for resource in document["resourceSpans"]:
        for scope in resource["scopeSpans"]:
            for span in scope["spans"]:
                for key in ("traceId", "spanId"):
                    span[key] = base64.b64decode(span[key]).hex()
    return orjson.dumps(document)


def test_a_worker_maps_every_request_exactly_as_the_server_process_does(pool: ProcessPoolExecutor) -> None:
    cases = [
        ("traces", PROTOBUF, traces(5).SerializeToString()),
        ("traces", JSON, otlp_json(traces(3))),
        ("logs", PROTOBUF, logs().SerializeToString()),
    ]
    for signal_name, content_type, body in cases:
        here = Mapper(PatternRedactor()).map(signal_name, decode(signal_name, content_type, body))
        there = pool.submit(map_in_worker, signal_name, content_type, body).result(timeout=60)
        assert there == here, (signal_name, content_type)
    assert here.records and any("REDACTED" in r.body for r in here.records)


def test_served_with_a_pool_stores_spans_and_answers_bad_bodies_with_400(
    tmp_path: Path, pool: ProcessPoolExecutor
) -> None:
    for served in serve(tmp_path, pool=pool):
        answer = httpx.post(
            f"{served.url}/v1/traces",
            content=traces(4).SerializeToString(),
            headers={"Content-Type": PROTOBUF},
            timeout=30,
        )
        assert answer.status_code == 200
        assert ExportTraceServiceResponse.FromString(answer.content).partial_success.rejected_spans == 1
        bad = httpx.post(
            f"{served.url}/v1/traces", content=b"\x0a\xff\xff", headers={"Content-Type": PROTOBUF}, timeout=30
        )
        assert bad.status_code == 400 and b"malformed protobuf" in bad.content
        bad_json = httpx.post(
            f"{served.url}/v1/logs",
            content=b'{"resourceLogs": 3}',
            headers={"Content-Type": JSON},
            timeout=30,
        )
        assert bad_json.status_code == 400 and "message" in orjson.loads(bad_json.content)
        spans = served.stored("span")
        assert sorted(s["name"] for s in spans) == ["op-0", "op-0", "op-2"]
        assert {s["attributes"]["password"] for s in spans} == {"[REDACTED]"}


def test_when_a_worker_dies_requests_are_mapped_in_the_server_and_nothing_is_lost(tmp_path: Path) -> None:
    executor = ProcessPoolExecutor(
        1, multiprocessing.get_context("spawn"), start_worker, (PatternRedactor(),)
    )
    try:
        worker = executor.submit(os.getpid).result(timeout=60)
        for served in serve(tmp_path, pool=executor):
            os.kill(worker, signal.SIGKILL)
            for _ in range(2):
                answer = httpx.post(
                    f"{served.url}/v1/traces",
                    content=traces(3).SerializeToString(),
                    headers={"Content-Type": PROTOBUF},
                    timeout=30,
                )
                assert answer.status_code == 200
            assert len(served.stored("span")) == 4  # 2 of 3 spans valid, twice
            assert served.app.state.receiver.pool is None
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
