"""One record builder: every API follows its merge rule, limits, clock and ids; the logger's inlined
fast path builds exactly what the builder builds."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

import clisight
from clisight.client import context as _ctx
from clisight.client.core import get_client
from clisight.client.records import RESERVED_KEYS, RecordBuilder
from clisight.testing import MemorySink
from clisight.types import LOG, Record

FIXED_NS = 1_700_000_000_123_456_789


@pytest.fixture
def sink() -> Iterator[MemorySink]:
    sink = MemorySink()
    clisight.init(service="records", sinks=[sink])
    client = get_client()
    assert client is not None
    client.records.clock = lambda: FIXED_NS
    yield sink
    clisight.shutdown()


keys = st.sampled_from(["a", "b", "user_id", "message", "duration", "x.y"])
values = st.one_of(st.integers(), st.text(max_size=8), st.none(), st.floats(allow_nan=False))
field_maps = st.dictionaries(keys, values, max_size=4)


@settings(max_examples=60, deadline=None)
@given(
    message=st.text(max_size=30),
    fields=field_maps,
    bound=field_maps,
    context=field_maps,
    user=st.one_of(st.none(), st.text(min_size=1, max_size=5)),
    severity=st.sampled_from(["debug", "info", "warning", "error", "critical"]),
)
def test_the_loggers_fast_path_builds_what_the_builder_builds(
    message: str,
    fields: dict[str, Any],
    bound: dict[str, Any],
    context: dict[str, Any],
    user: str | None,
    severity: str,
) -> None:
    sink = MemorySink()
    clisight.init(service="records", sinks=[sink])
    client = get_client()
    assert client is not None
    client.records.clock = lambda: FIXED_NS
    try:
        ctx = _ctx.Context("s1", None if user is None else f"u_{user}", context, "t" * 32, "p" * 16)
        with _ctx.use(ctx):
            getattr(clisight.get_logger("comp").bind(**bound), severity)(message, **fields)
        clisight.flush(5.0)
        (logged,) = sink.of_kind(LOG)
        build = client.records
        expected = build.log("comp", logged.severity, message, build.merge(ctx, fields, bound), ctx)
        assert logged == expected
    finally:
        clisight.shutdown()


def test_every_api_merges_context_then_bound_then_call_fields(sink: MemorySink) -> None:
    handler = clisight.LoggingHandler()
    stdlib = logging.getLogger("records.stdlib")
    stdlib.addHandler(handler)
    stdlib.setLevel(logging.DEBUG)
    try:
        with clisight.session(user="alice", who="context", only_context=1):
            clisight.get_logger("c").bind(who="bound").info("logger", who="call")
            stdlib.info("stdlib", extra={"who": "call"})
            clisight.track("event", who="call")
            with clisight.span("span", who="call"):
                pass
            try:
                raise ValueError("boom")
            except ValueError as exc:
                clisight.capture_exception(exc, who="call")
        clisight.flush(5.0)
    finally:
        stdlib.removeHandler(handler)
    made = [r for r in sink.records if r.kind != "session"]
    assert {r.kind for r in made} == {"log", "event", "span", "error"}
    for record in made:
        assert record.attributes["who"] == "call", record
        assert record.attributes["only_context"] == 1, record
    user_ids = {r.attributes.get("user_id") for r in made}
    assert len(user_ids) == 1 and next(iter(user_ids)).startswith("u_")


def test_reserved_keys_are_clisights_own_and_a_users_field_cannot_replace_them(sink: MemorySink) -> None:
    with clisight.session(duration="user's", exit_code="user's"):
        pass
    with clisight.span("s", duration="user's"):
        pass
    clisight.flush(5.0)
    ended = [r for r in sink.records if r.kind == "session" and r.end_ns is not None]
    assert ended and ended[-1].attributes["exit_code"] == 0
    assert isinstance(ended[-1].attributes["duration"], float)
    (span,) = [r for r in sink.records if r.kind == "span"]
    assert isinstance(span.attributes["duration"], float)
    assert {"user_id", "stack", "exit_code", "span.kind", "fingerprint"} <= RESERVED_KEYS.keys()


def test_time_and_ids_come_from_the_injected_clock_and_id_source(sink: MemorySink) -> None:
    client = get_client()
    assert client is not None
    counter = iter(range(1, 10_000))
    client.records.clock = lambda: next(counter) * 1_000_000_000
    client.records.random_bytes = lambda n: b"\x01" * n
    with clisight.session("s-1"), clisight.span("outer"):
        clisight.get_logger("c").info("inside")
        clisight.track("done")
    clisight.flush(5.0)
    records = [r for r in sink.records if r.session_id == "s-1"]
    times = [r.time_ns for r in records]
    assert all(t % 1_000_000_000 == 0 and t < 10_000 * 1_000_000_000 for t in times)
    (span,) = [r for r in records if r.kind == "span"]
    assert span.span_id == "01" * 8 and span.trace_id == "01" * 16
    assert span.end_ns is not None and span.end_ns > span.time_ns


def test_a_builder_needs_no_client() -> None:
    build = RecordBuilder(clisight.types.Resource("svc"), clisight.pipeline.redact.NullRedactor())
    record = build.log("c", 9, "m", {"k": 1}, _ctx.Context())
    assert isinstance(record, Record) and record.kind == LOG and record.attributes == {"k": 1}
