"""Received spans as rows (``SpanRow``, ``clisight serve``'s fast path) store exactly what their
records would: the same rows, traces, sessions and rollup cells in SQLite, the same spans in the
memory store, the same answers and stored rows over HTTP with and without worker processes, and
the same records when the pipeline spools them or cleans a batch."""

from __future__ import annotations

import math
import multiprocessing
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("uvicorn", reason="the server extra is not installed")
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from clisight._values import clean_record
from clisight.pipeline.redact import PatternRedactor
from clisight.pipeline.serialize import dict_to_record, record_to_dict
from clisight.pipeline.spool import Spool, import_spool
from clisight.server.otlp import PROTOBUF, Mapper, start_worker
from clisight.store import open_store
from clisight.store.base import Selection
from clisight.types import Record, SpanRow
from tests.pg_cluster import admin_execute, database_url, pg_cluster  # noqa: F401
from tests.server.conftest import serve

NOW = 1_764_000_000_000_000_000

# -- OTLP requests with everything a span can carry ------------------------------------------------
SECRETS = [
    "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789",
    "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc",
    "mail me at someone@example.com",
    "AKIAABCDEFGHIJKLMNOP",
    "password=hunter2",
]
KEYS = ["n", "http.route", "password", "api_key", "authorization", "token_count", "user_id", "session.id"]
texts = st.one_of(st.sampled_from([*SECRETS, "", "ok", "op", "server"]), st.text(max_size=12))


def any_values(depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    """An AnyValue as a dict of the one field to set (or {} for an empty value)."""
    scalars = st.one_of(
        st.builds(lambda v: {"string_value": v}, texts),
        st.builds(lambda v: {"int_value": v}, st.integers(-(2**63), 2**63 - 1)),
        st.builds(lambda v: {"double_value": v}, st.floats(allow_nan=True, allow_infinity=True)),
        st.builds(lambda v: {"bool_value": v}, st.booleans()),
        st.builds(lambda v: {"bytes_value": v}, st.binary(max_size=8)),
        st.just({}),
    )
    if depth >= 2:
        return scalars
    inner = any_values(depth + 1)
    return st.one_of(
        scalars,
        st.builds(lambda vs: {"array": vs}, st.lists(inner, max_size=3)),
        st.builds(lambda kv: {"kvlist": kv}, st.lists(st.tuples(st.sampled_from(KEYS), inner), max_size=3)),
    )


def set_value(target: AnyValue, spec: dict[str, Any]) -> None:
    for name, value in spec.items():
        if name == "array":
            target.array_value.SetInParent()
            for item in value:
                set_value(target.array_value.values.add(), item)
        elif name == "kvlist":
            target.kvlist_value.SetInParent()
            for key, item in value:
                set_value(target.kvlist_value.values.add(key=key).value, item)
        else:
            setattr(target, name, value)


attribute_lists = st.builds(
    lambda known, other: [*known.items(), *other],
    st.dictionaries(st.sampled_from(KEYS), any_values(), max_size=len(KEYS)),
    st.lists(st.tuples(texts, any_values()), max_size=2),
)
valid_ids = st.integers(1, 40).map(lambda n: n.to_bytes(16, "big"))
ids = st.one_of(valid_ids, st.sampled_from([bytes(16), b"", b"\x01" * 15]))  # links' ids may be invalid
spans = st.fixed_dictionaries(
    {
        "trace": valid_ids,
        "span": st.integers(1, 10**6).map(lambda n: n.to_bytes(8, "big")),
        "parent": st.sampled_from([b"", bytes(8), b"\x00" * 7 + b"\x05", b"\x07" * 3]),
        "name": texts,
        "kind": st.integers(0, 7),
        "start": st.integers(NOW, NOW + 3 * 60 * 10**9),
        "duration": st.integers(0, 10**10),
        # One thing a receiver must reject, or (most often) nothing.
        "broken": st.sampled_from([None, None, None, None, None, "trace", "span", "start", "end"]),
        "user": st.one_of(st.none(), texts),  # a string user_id goes to a column of its own
        "session": st.one_of(st.none(), texts),
        "status": st.tuples(st.integers(0, 2), texts),
        "trace_state": st.sampled_from(["", "vendor=1"]),
        "attributes": attribute_lists,
        "events": st.lists(st.tuples(texts, attribute_lists), max_size=2),
        "links": st.lists(st.tuples(ids, attribute_lists), max_size=2),
    }
)
resources = st.fixed_dictionaries(
    {
        "attributes": st.lists(
            st.tuples(
                st.sampled_from(["service.name", "service.version", "host.name", *KEYS]), any_values(1)
            ),
            max_size=4,
        ),
        "scopes": st.lists(
            st.tuples(texts, texts, st.lists(spans, min_size=1, max_size=5)), min_size=1, max_size=2
        ),
    }
)
requests = st.lists(resources, min_size=1, max_size=2)


def build(spec: list[dict[str, Any]]) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for res in spec:
        resource_spans = request.resource_spans.add()
        for key, value in res["attributes"]:
            set_value(resource_spans.resource.attributes.add(key=key).value, value)
        for scope_name, scope_version, scope_spans in res["scopes"]:
            scope = resource_spans.scope_spans.add()
            scope.scope.name, scope.scope.version = scope_name, scope_version
            for s in scope_spans:
                span = scope.spans.add(trace_id=s["trace"], span_id=s["span"], parent_span_id=s["parent"])
                span.name, span.kind, span.trace_state = s["name"], s["kind"], s["trace_state"]
                span.start_time_unix_nano = s["start"]
                span.end_time_unix_nano = s["start"] + s["duration"]
                broken = s["broken"]
                if broken == "trace":
                    span.trace_id = bytes(16)
                elif broken == "span":
                    span.span_id = b"\x01" * 7
                elif broken == "start":
                    span.start_time_unix_nano = 0
                elif broken == "end":
                    span.end_time_unix_nano = s["start"] - 1
                for key in ("user", "session"):
                    if s[key] is not None:
                        span.attributes.add(key=f"{key}.id" if key == "session" else "user_id")
                        span.attributes[-1].value.string_value = s[key]
                span.status.code, span.status.message = s["status"]
                for key, value in s["attributes"]:
                    set_value(span.attributes.add(key=key).value, value)
                for name, attrs in s["events"]:
                    event = span.events.add(name=name, time_unix_nano=NOW)
                    for key, value in attrs:
                        set_value(event.attributes.add(key=key).value, value)
                for trace_id, attrs in s["links"]:
                    link = span.links.add(trace_id=trace_id, span_id=b"\x02" * 8)
                    for key, value in attrs:
                        set_value(link.attributes.add(key=key).value, value)
    return request


# -- what a store holds, independent of the numbers it gave rows ----------------------------------
_TABLES = {
    "spans": "SELECT t.id, s.span_id, s.parent_span_id, n.value, s.span_kind, s.start_ns, s.end_ns,"
    " s.status, s.attributes, s.events, u.value, se.id, r.service, r.version, r.host, r.pid, r.sdk"
    " FROM spans s LEFT JOIN traces t ON t.tid = s.trace JOIN names n ON n.id = s.name_id"
    " LEFT JOIN names u ON u.id = s.user_id LEFT JOIN sessions se ON se.sid = s.session"
    " JOIN resources r ON r.id = s.resource_id",
    "traces": "SELECT id, first_ns, last_ns FROM traces",
    "sessions": "SELECT id, service, start_ns, end_ns, log_count, error_count, event_count, first_ns,"
    " last_ns FROM sessions",
    "rollups": "SELECT c.res, c.series, c.bucket_ns, k.series, k.service, k.name, k.dim, c.count,"
    " c.errors, c.sum, c.min, c.max, c.first_ns, c.last_ns, c.sketch, c.sums"
    " FROM rollups c JOIN rollup_keys k ON k.id = c.key_id",
}


def contents(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    conn = sqlite3.connect(path)
    try:
        return {table: sorted(conn.execute(sql).fetchall(), key=repr) for table, sql in _TABLES.items()}
    finally:
        conn.close()


def both_ways(request: ExportTraceServiceRequest) -> tuple[Any, Any]:
    """The request mapped the general way (records) and the fast way (rows), each by a fresh mapper."""
    general = Mapper(PatternRedactor()).map("traces", request)
    fast = Mapper(PatternRedactor()).map("traces", request, rows=True)
    return general, fast


def items_of(mapped: Any) -> list[Any]:
    """What the receiver queues for a mapped request."""
    return [*mapped.records, *(SpanRow(*row) for row in mapped.rows)]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests)
def test_span_rows_store_exactly_what_their_records_store(spec: list[dict[str, Any]]) -> None:
    request = build(spec)
    general, fast = both_ways(request)
    assert (fast.rejected, fast.reason) == (general.rejected, general.reason)
    assert len(items_of(fast)) == len(general.records)
    # Converted back, each row is its record (attributes compared by their JSON: NaN is null there).
    assert sorted(map(_comparable, map(_record_of, items_of(fast))), key=repr) == sorted(
        map(_comparable, general.records), key=repr
    )
    with tempfile.TemporaryDirectory() as tmp:
        stored = []
        for name, items in (("general", general.records), ("fast", items_of(fast))):
            store = open_store(f"sqlite:///{tmp}/{name}.db")
            try:
                store.migrate()
                store.write_batch(items)
            finally:
                store.close()
            stored.append(contents(Path(tmp) / f"{name}.db"))
        assert stored[1] == stored[0]


def _record_of(item: Any) -> Record:
    return item.to_record() if isinstance(item, SpanRow) else item


def _comparable(rec: Record) -> tuple[Any, ...]:
    import orjson

    attrs = orjson.dumps(rec.attributes, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SORT_KEYS)
    return (*rec[:5], attrs, *rec[6:])


def span_request(n: int, secret: str = "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789") -> bytes:
    request = ExportTraceServiceRequest()
    resource = request.resource_spans.add()
    resource.resource.attributes.add(key="service.name").value.string_value = "rows"
    resource.resource.attributes.add(key="region").value.string_value = "eu"
    scope = resource.scope_spans.add()
    scope.scope.name = "lib"
    for i in range(n):
        span = scope.spans.add(name=f"op-{i % 3}", kind=1 + i % 3, start_time_unix_nano=NOW + i * 10**6)
        span.end_time_unix_nano = NOW + i * 10**6 + 5000 * (i + 1)
        span.trace_id = (i // 4 + 1).to_bytes(16, "big")
        span.span_id = (i + 1).to_bytes(8, "big")
        if i % 4:
            span.parent_span_id = (i - i % 4 + 1).to_bytes(8, "big")
        span.attributes.add(key="n").value.int_value = i
        span.attributes.add(key="ratio").value.double_value = i / 7
        span.attributes.add(key="note").value.string_value = f"call {secret}" if i % 5 == 0 else "fine"
        if i % 3 == 0:
            span.attributes.add(key="user_id").value.string_value = f"u{i % 2}"
            span.attributes.add(key="session.id").value.string_value = f"s{i % 2}"
        if i % 7 == 0:
            span.status.code, span.status.message = 2, "boom"
            span.events.add(name="retry", time_unix_nano=NOW).attributes.add(key="k").value.double_value = 1.5
        if i == 5:
            span.span_id = bytes(8)  # rejected by both paths
    return request.SerializeToString()


def test_memory_store_takes_span_rows_as_their_records() -> None:
    general, fast = both_ways(ExportTraceServiceRequest.FromString(span_request(40)))
    found = []
    for items in (general.records, items_of(fast)):
        store = open_store("memory://")
        store.migrate()
        store.write_batch(items)
        page = store.rows("span", Selection(), limit=1000)
        found.append(sorted((repr(row) for row in page.rows), key=str))
        store.close()
    assert found[0] and found[1] == found[0]


def test_postgres_store_takes_span_rows_as_their_records(request: pytest.FixtureRequest) -> None:
    admin_url: str = request.getfixturevalue("pg_cluster")  # a throw-away server (tests/pg_cluster)
    general, fast = both_ways(ExportTraceServiceRequest.FromString(span_request(40)))
    found = []
    for name, items in (("general", general.records), ("fast", items_of(fast))):
        database = f"rows_{os.getpid()}_{name}"
        admin_execute(admin_url, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        admin_execute(admin_url, f"CREATE DATABASE {database}")
        store = open_store(database_url(admin_url, database))
        try:
            store.migrate()
            store.write_batch(items)
            spans = store.rows("span", Selection(), limit=1000).rows
            operations = store.aggregate(
                "operation", Selection(), ["name"], ["count", "errors", "sum:duration"]
            )
            found.append((spans, sorted(operations, key=repr)))
        finally:
            store.close()
            admin_execute(admin_url, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    assert len(found[0][0]) == 39 and found[1] == found[0]


def test_spooled_or_cleaned_span_rows_come_back_as_their_records(tmp_path: Path) -> None:
    general, fast = both_ways(ExportTraceServiceRequest.FromString(span_request(30)))
    rows = [SpanRow(*row) for row in fast.rows]
    assert [clean_record(row) for row in rows] == [row.to_record() for row in rows]
    assert [dict_to_record(record_to_dict(row)) for row in rows] == [
        dict_to_record(record_to_dict(rec)) for rec in general.records
    ]
    # The exit spill: written to the spool as records, imported by the next writer into the store.
    spool = Spool(tmp_path / "spool")
    assert spool.append(rows)
    spool.close()
    imported: list[Record] = []

    def write(chunk: Any, key: str) -> bool:
        imported.extend(chunk)
        return True

    done = import_spool(tmp_path / "spool", write)
    assert done.records == len(rows)
    with tempfile.TemporaryDirectory() as tmp:
        stored = []
        for name, items in (("direct", general.records), ("spooled", imported)):
            store = open_store(f"sqlite:///{tmp}/{name}.db")
            store.migrate()
            store.write_batch(items)
            store.close()
            stored.append(contents(Path(tmp) / f"{name}.db"))
        assert stored[1]["spans"] == stored[0]["spans"]


# -- over HTTP: the receiver with and without worker processes --------------------------------------
@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolExecutor]:
    executor = ProcessPoolExecutor(
        1, multiprocessing.get_context("spawn"), start_worker, (PatternRedactor(),)
    )
    try:
        executor.submit(math.sqrt, 4).result(timeout=60)
        yield executor
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


@pytest.mark.parametrize("options", ["records", "rows in the server", "rows in a worker"])
def test_receiver_stores_the_same_spans_whichever_path(
    tmp_path: Path, pool: ProcessPoolExecutor, options: str
) -> None:
    bodies = [span_request(64), span_request(33, secret="AKIAABCDEFGHIJKLMNOP")]
    kwargs: dict[str, Any] = {}
    if options != "records":
        kwargs["span_rows"] = True
    if options == "rows in a worker":
        kwargs["pool"] = pool
    reference = tmp_path / "reference"
    reference.mkdir()
    expected = _store_directly(reference / "ref.db", bodies)
    for served in serve(tmp_path, **kwargs):
        with httpx.Client(timeout=30) as client:
            for body in bodies:
                answer = client.post(
                    served.url + "/v1/traces", content=body, headers={"Content-Type": PROTOBUF}
                )
                assert answer.status_code == 200, answer.text
                assert answer.content  # partial success: the one span without a valid id
        assert served.pipeline.flush(timeout=20)
        [stats] = served.pipeline.stats()
        assert stats.emitted == stats.stored == 64 + 33 - 2
        assert served.app.state.receiver.stats.accepted["traces"] == 64 + 33 - 2
        assert served.app.state.receiver.stats.rejected["traces"] == 2
        got = contents(tmp_path / "served.db")
    assert got == expected
    assert "sk-ant-api03" not in repr(got) and "AKIAABCDEFGHIJKLMNOP" not in repr(got)


def _store_directly(path: Path, bodies: list[bytes]) -> dict[str, list[tuple[Any, ...]]]:
    """The general path without a server: records from a mapper, written in one batch."""
    mapper = Mapper(PatternRedactor())
    requests = [ExportTraceServiceRequest.FromString(body) for body in bodies]
    records = [rec for request in requests for rec in mapper.map("traces", request).records]
    store = open_store(f"sqlite:///{path}")
    store.migrate()
    store.write_batch(records)
    store.close()
    return contents(path)
