"""The receiver's answers per the OTLP/HTTP specification, over real HTTP on 127.0.0.1 (httpx)."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.server.conftest import Served, serve

PB = {"Content-Type": "application/x-protobuf"}
JS = {"Content-Type": "application/json"}
TRACE = "5b8efff798038103d269b633813fc60c"
SPAN = "eee19b7ec3c1b174"


def span_json(**span: object) -> dict[str, object]:
    base = {
        "traceId": TRACE,
        "spanId": SPAN,
        "name": "checkout",
        "kind": 2,
        "startTimeUnixNano": "1544712660000000000",
        "endTimeUnixNano": "1544712661000000000",
        "attributes": [{"key": "http.status", "value": {"intValue": "200"}}],
    }
    base.update(span)
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "shop"}}]},
                "scopeSpans": [{"scope": {"name": "shop.http"}, "spans": [base]}],
            }
        ]
    }


def pb_request(n: int = 3) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for i in range(n):
        span = scope.spans.add()
        span.trace_id = bytes.fromhex(TRACE)
        span.span_id = (i + 1).to_bytes(8, "big")
        span.name = f"op-{i}"
        span.start_time_unix_nano = 1_700_000_000_000_000_000 + i
        span.end_time_unix_nano = 1_700_000_000_500_000_000 + i
    return request


@pytest.fixture
def http(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=10) as client:
        yield client


def test_an_empty_request_is_answered_200_with_an_empty_response(http: httpx.Client) -> None:
    for headers, body in ((PB, b""), (JS, b"{}"), (JS, b"")):
        answer = http.post("/v1/traces", content=body, headers=headers)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith(headers["Content-Type"])
    assert ExportTraceServiceResponse.FromString(
        http.post("/v1/traces", content=b"", headers=PB).content
    ) == (ExportTraceServiceResponse())


def test_otlp_json_with_hex_ids_enum_ints_and_int64_strings_is_stored(
    served: Served, http: httpx.Client
) -> None:
    document = span_json(
        unknownField={"nested": [1, 2]}, status={"code": "STATUS_CODE_ERROR", "message": "x"}
    )
    document["futureTopLevelField"] = True  # unknown fields are ignored, per the spec
    answer = http.post("/v1/traces", content=orjson.dumps(document), headers=JS)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {}
    [row] = served.stored("span")
    assert (row["trace_id"], row["span_id"], row["name"], row["service"]) == (TRACE, SPAN, "checkout", "shop")
    assert row["span_kind"] == "server" and row["status"] == 17
    assert row["attributes"]["http.status"] == 200 and row["start_ns"] == 1544712660000000000


def test_a_gzip_body_sent_in_chunks_without_content_length_is_stored(
    served: Served, http: httpx.Client
) -> None:
    body = gzip.compress(pb_request(40).SerializeToString())

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 97):
            yield body[start : start + 97]

    answer = http.post("/v1/traces", content=chunks(), headers={**PB, "Content-Encoding": "gzip"})
    assert answer.status_code == 200, answer.text
    assert len(served.stored("span")) == 40


def test_invalid_spans_are_rejected_as_partial_success_and_the_rest_stored(
    served: Served, http: httpx.Client
) -> None:
    request = pb_request(3)
    request.resource_spans[0].scope_spans[0].spans[1].trace_id = b"\0" * 16
    answer = http.post("/v1/traces", content=request.SerializeToString(), headers=PB)
    assert answer.status_code == 200
    response = ExportTraceServiceResponse.FromString(answer.content)
    assert response.partial_success.rejected_spans == 1
    assert "trace_id" in response.partial_success.error_message
    assert sorted(r["name"] for r in served.stored("span")) == ["op-0", "op-2"]


@pytest.mark.parametrize(
    ("headers", "body", "status", "reason"),
    [
        (PB, b"\x0a\xff\xff\xff\xff\x0f", 400, "malformed protobuf"),
        (JS, b'{"resourceSpans": [', 400, "malformed JSON"),
        (JS, b"[1, 2]", 400, "must be an object"),
        (JS, orjson.dumps(span_json(traceId="zz")), 400, "hex"),
        (JS, orjson.dumps({"resourceSpans": "nope"}), 400, "invalid OTLP/JSON"),
        ({**PB, "Content-Encoding": "gzip"}, b"not gzip at all", 400, "gzip"),
        ({**PB, "Content-Encoding": "gzip"}, gzip.compress(b"x" * 1000, mtime=0)[:20], 400, "truncated"),
        ({"Content-Type": "text/plain"}, b"hello", 415, "Content-Type"),
        ({**PB, "Content-Encoding": "br"}, b"", 415, "Content-Encoding"),
    ],
    ids=[
        "protobuf",
        "json-cut",
        "json-array",
        "hex-id",
        "json-shape",
        "gzip-garbage",
        "gzip-cut",
        "type",
        "encoding",
    ],
)
def test_bad_requests_get_a_clear_reason_never_a_500(
    http: httpx.Client, headers: dict[str, str], body: bytes, status: int, reason: str
) -> None:
    answer = http.post("/v1/traces", content=body, headers=headers)
    assert answer.status_code == status
    if answer.headers["content-type"].startswith("application/json"):
        message = answer.json()["message"]
    else:  # a google.rpc.Status in protobuf: field 2 is the message
        message = answer.content.decode("utf-8", "replace")
    assert reason in message


def test_bodies_over_the_limit_are_413_after_decompression_too(tmp_path: Path) -> None:
    for served in serve(tmp_path, max_body=64 * 1024):
        with httpx.Client(base_url=served.url, timeout=10) as http:
            big = http.post("/v1/logs", content=b"\0" * (65 * 1024), headers=PB)
            assert big.status_code == 413
            bomb = gzip.compress(b"\0" * (50 * 1024 * 1024))  # 50 MiB of zeros in about 50 KiB
            assert len(bomb) < 64 * 1024
            answer = http.post("/v1/logs", content=bomb, headers={**PB, "Content-Encoding": "gzip"})
            assert answer.status_code == 413
            assert "limit" in answer.content.decode("utf-8", "replace")
            small = http.post(
                "/v1/logs", content=gzip.compress(b""), headers={**PB, "Content-Encoding": "gzip"}
            )
            assert small.status_code == 200
            assert ExportLogsServiceResponse.FromString(small.content) == ExportLogsServiceResponse()


@pytest.mark.parametrize("span_rows", [False, True], ids=["records", "span rows"])
def test_a_full_write_queue_answers_429_with_retry_after_and_stores_nothing_of_it(
    tmp_path: Path, span_rows: bool
) -> None:
    for served in serve(tmp_path, queue_size=10, span_rows=span_rows):
        with httpx.Client(base_url=served.url, timeout=10) as http:
            answer = http.post("/v1/traces", content=pb_request(11).SerializeToString(), headers=PB)
            assert answer.status_code == 429
            assert answer.headers["retry-after"] == "1"
            accepted = http.post("/v1/traces", content=pb_request(10).SerializeToString(), headers=PB)
            assert accepted.status_code == 200
            assert len(served.stored("span")) == 10
            stats = served.pipeline.stats()[0]
            assert stats.dropped == 0  # refused, not accepted and dropped
            assert stats.emitted == stats.stored == 10


def test_wrong_methods_and_paths_are_not_500(http: httpx.Client) -> None:
    assert http.get("/v1/traces").status_code == 405
    assert http.post("/v1/profiles", content=b"", headers=PB).status_code == 404


def test_a_host_header_not_on_the_allow_list_is_403(served: Served, http: httpx.Client) -> None:
    answer = http.post("/v1/traces", content=b"", headers={**PB, "Host": "attacker.example:4318"})
    assert answer.status_code == 403
    assert "attacker.example" in answer.json()["message"]
    for host in ("localhost:4318", "127.0.0.1", "[::1]:4318", "127.0.0.2:4318", "[0:0:0:0:0:0:0:1]"):
        # every loopback address, as docs/server.md says (127.0.0.2 was refused)
        assert http.post("/v1/traces", content=b"", headers={**PB, "Host": host}).status_code == 200, host
    for host in ("127.0.0.1.attacker.example", "127.0.0.1x", "0.0.0.0", "10.0.0.1"):
        assert http.post("/v1/traces", content=b"", headers={**PB, "Host": host}).status_code == 403, host


def test_with_a_token_requests_without_it_are_401(tmp_path: Path) -> None:
    for served in serve(tmp_path, token="s3cret-token"):
        with httpx.Client(base_url=served.url, timeout=10) as http:
            assert http.post("/v1/traces", content=b"", headers=PB).status_code == 401
            wrong = {**PB, "Authorization": "Bearer s3cret-tokem"}
            assert http.post("/v1/traces", content=b"", headers=wrong).status_code == 401
            right = {**PB, "Authorization": "Bearer s3cret-token"}
            assert http.post("/v1/traces", content=b"", headers=right).status_code == 200


def test_metrics_exposes_pipeline_and_receiver_counters_for_prometheus(
    served: Served, http: httpx.Client
) -> None:
    assert http.post("/v1/traces", content=pb_request(3).SerializeToString(), headers=PB).status_code == 200
    assert http.post("/v1/traces", content=b"\x0a\xff", headers=PB).status_code == 400
    assert served.pipeline.flush(timeout=10)
    answer = http.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for line in answer.text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    assert samples['clisight_receiver_requests_total{signal="traces",status="200"}'] == 1
    assert samples['clisight_receiver_requests_total{signal="traces",status="400"}'] == 1
    assert samples['clisight_receiver_items_total{signal="traces",outcome="accepted"}'] == 3
    assert samples['clisight_pipeline_records_total{sink="store",outcome="stored"}'] == 3
    assert samples['clisight_pipeline_queue_depth{sink="store"}'] == 0
    assert "# TYPE clisight_pipeline_records_total counter" in answer.text


def test_refusals_carry_a_google_rpc_status_with_a_matching_code(http: httpx.Client) -> None:
    bad = http.post("/v1/logs", content=b"{", headers=JS)
    assert bad.status_code == 400 and bad.json()["code"] == 3  # INVALID_ARGUMENT
    wrong_type = http.post("/v1/logs", content=b"x", headers={"Content-Type": "text/csv"})
    assert wrong_type.status_code == 415 and wrong_type.json()["code"] == 3
    proto = http.post("/v1/logs", content=b"\x0a\xff", headers=PB)
    assert proto.status_code == 400 and proto.content[:2] == b"\x08\x03"  # field 1 (code) = 3


def test_a_summarys_value_is_the_increase_of_its_cumulative_sum(served: Served, http: httpx.Client) -> None:
    # A summary's count and sum are totals since its start time (the OTLP data model); stored as
    # sent, each report added the whole history again to the rollups.
    def summary(at: int, start: int, count: int, total: float) -> bytes:
        point = {"timeUnixNano": str(at), "startTimeUnixNano": str(start), "count": str(count), "sum": total}
        metric = {"name": "rpc.duration", "unit": "s", "summary": {"dataPoints": [point]}}
        return orjson.dumps({"resourceMetrics": [{"scopeMetrics": [{"metrics": [metric]}]}]})

    t0 = 1_700_000_000_000_000_000
    for at, start, count, total in ((1, 0, 2, 3.0), (2, 0, 3, 4.5), (3, 2, 1, 0.5)):  # the last: restarted
        answer = http.post("/v1/metrics", content=summary(t0 + at, t0 + start, count, total), headers=JS)
        assert answer.status_code == 200, answer.text
    points = served.stored("metric")
    assert [p["value"] for p in points] == [3.0, 1.5, 0.5]
    assert [p["attributes"]["otel.cumulative_value"] for p in points] == [3.0, 4.5, 0.5]
    assert [p["attributes"]["summary"]["count"] for p in points] == [2, 3, 1]
