"""Claude Code's OTLP telemetry (``claude_code.api_request``/``api_error`` log records, sent to a real
receiver on 127.0.0.1 by a real HTTP client, as protobuf and as JSON) counted as LLM usage and LLM
errors by every reader: ``clisight usage``, the query layer's LLM totals, insights, ``top``'s cost
today, the dashboard's cost series and the error views; and counted exactly as the transcript
importer counts the same requests."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from clisight import _prices
from clisight.cli._claude_code import parse_timestamp
from clisight.pipeline.redact import PatternRedactor
from clisight.query import Filter, Query, analytics, live
from clisight.query import errors as errors_query
from clisight.query import usage as usage_query
from clisight.query.series import metric_series
from clisight.server import _claude_code
from clisight.server.dashboard import data as dashboard_data
from clisight.server.otlp import PROTOBUF, Mapper
from clisight.store.base import Selection
from tests.cli.clirun import CLISIGHT, invoke
from tests.cli.test_usage_cli import OPUS, SONNET, _import, entry
from tests.server.conftest import Served

SCOPE = "com.anthropic.claude_code"
HOUR_NS = 3600 * 10**9


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def value(item: Any) -> AnyValue:
    """A Python value as an OTLP AnyValue (what an SDK sends for each attribute type)."""
    out = AnyValue()
    if isinstance(item, bool):
        out.bool_value = item
    elif isinstance(item, int):
        out.int_value = item
    elif isinstance(item, float):
        out.double_value = item
    elif isinstance(item, bytes):
        out.bytes_value = item
    elif isinstance(item, str):
        out.string_value = item
    elif isinstance(item, list):
        out.array_value.values.extend(value(v) for v in item)
    elif isinstance(item, dict):
        out.kvlist_value.values.extend(KeyValue(key=k, value=value(v)) for k, v in item.items())
    return out


def request(*records: tuple[int, str, dict[str, Any]], version: str = "2.0.14") -> ExportLogsServiceRequest:
    """Claude Code's export: resource ``service.name=claude-code``, its scope, and each record as
    (time ns, body, attributes) with no severity."""
    message = ExportLogsServiceRequest()
    resource_logs = message.resource_logs.add()
    for key, item in (("service.name", "claude-code"), ("service.version", version)):
        resource_logs.resource.attributes.add(key=key, value=value(item))
    scope_logs = resource_logs.scope_logs.add()
    scope_logs.scope.name, scope_logs.scope.version = SCOPE, version
    for time_ns, body, attrs in records:
        log = scope_logs.log_records.add(time_unix_nano=time_ns, observed_time_unix_nano=time_ns)
        log.body.string_value = body
        log.attributes.extend(KeyValue(key=k, value=value(v)) for k, v in attrs.items())
    return message


def api_request(
    session: str,
    model: str,
    tokens: tuple[int, int, int, int],
    cost: float | str | None = None,
    duration_ms: int = 1500,
    as_text: bool = True,
) -> dict[str, Any]:
    """A ``claude_code.api_request``'s attributes; ``as_text`` sends the numbers as strings, as
    Claude Code does."""
    numbers: dict[str, Any] = dict(
        zip(
            ("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens"),
            tokens,
            strict=True,
        )
    )
    numbers["duration_ms"] = duration_ms
    if cost is not None:
        numbers["cost_usd"] = cost
    if as_text:
        numbers = {k: str(v) for k, v in numbers.items()}
    return {
        "session.id": session,
        "user.id": "u-1",
        "organization.id": "org-1",
        "app.version": "2.0.14",
        "terminal.type": "vscode",
        "event.name": "api_request",
        "event.timestamp": "2025-06-01T09:10:00.000Z",
        "prompt.id": "p-1",
        "event.sequence": 7,
        "request_id": f"req_{session}_{sum(tokens)}",
        "query_source": "repl_main_thread",
        "model": model,
        **numbers,
    }


def post_protobuf(served: Served, message: ExportLogsServiceRequest) -> None:
    answer = httpx.post(
        f"{served.url}/v1/logs",
        content=message.SerializeToString(),
        headers={"Content-Type": PROTOBUF},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text


def post_json(served: Served, message: ExportLogsServiceRequest) -> None:
    """The same request as OTLP/JSON (camelCase, 64-bit integers as strings): what Claude Code sends
    with ``OTEL_EXPORTER_OTLP_PROTOCOL=http/json``."""
    body = json_format.MessageToJson(message, indent=None)
    assert '"stringValue": "claude_code.api_request"' in body or "api_error" in body
    answer = httpx.post(
        f"{served.url}/v1/logs", content=body, headers={"Content-Type": "application/json"}, timeout=10
    )
    assert answer.status_code == 200, answer.text


def at(day: int, hour: int, minute: int = 0) -> int:
    return int(datetime(2025, 6, day, hour, minute, tzinfo=UTC).timestamp()) * 10**9


def store_path(served: Served) -> str:
    assert served.pipeline.flush(timeout=10)
    return served.store_url.removeprefix("sqlite:///")


def report(db: str, kind: str, *more: str) -> dict[str, Any]:
    result = invoke("usage", kind, "--store", db, "--json", *more)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


SONNET_PRICE = _prices.shipped().cost(SONNET, 200, 30, 5000, 100)


def test_clisight_usage_shows_tokens_and_cost_per_model_and_day_from_protobuf_and_json(
    served: Served, utc: None
) -> None:
    post_protobuf(
        served,
        request(
            (at(1, 9, 10), "claude_code.api_request", api_request("s1", SONNET, (100, 50, 0, 1000), 0.0048)),
            (at(1, 9, 40), "claude_code.api_request", api_request("s1", OPUS, (5, 100, 2000, 0), 0.010575)),
        ),
    )
    post_json(
        served,
        request(
            # numbers as OTLP numbers, not text; no cost: priced by the table, as the importer prices
            (
                at(2, 1, 0),
                "claude_code.api_request",
                api_request("s2", SONNET, (200, 30, 5000, 100), as_text=False),
            ),
        ),
    )
    db = store_path(served)
    daily = report(db, "daily", "--breakdown")
    day1, day2 = daily["rows"]
    assert (day1["key"], day2["key"]) == ("2025-06-01", "2025-06-02")
    sonnet = day1["models"][SONNET]
    assert [sonnet[k] for k in ("requests", *usage_query.TOKEN_FIELDS, "cost_usd")] == [
        1,
        100,
        50,
        1000,
        0,
        0.0048,
    ]
    assert day1["models"][OPUS]["cache_read_tokens"] == 2000 and day1["models"][OPUS]["cost_usd"] == 0.010575
    assert round(day1["cost_usd"], 9) == round(0.0048 + 0.010575, 9) and day1["requests"] == 2
    assert SONNET_PRICE is not None and day2["cost_usd"] == SONNET_PRICE
    assert day2["total_tokens"] == 5330 and day2["unpriced_models"] == []
    sessions = {r["key"]: r for r in report(db, "session")["rows"]}
    assert sessions["s1"]["requests"] == 2 and sessions["s2"]["service"] == "claude-code"
    assert [b["requests"] for b in report(db, "blocks")["rows"]] == [2, 1]


def test_every_llm_reader_counts_a_request_received_over_otlp(served: Served) -> None:
    now = time.time_ns()
    post_protobuf(
        served,
        request(
            (now - 10**6, "claude_code.api_request", api_request("live", SONNET, (1000, 200, 0, 0), "0.25"))
        ),
    )
    assert served.pipeline.flush(timeout=10)
    with Query(served.store_url) as query:
        [model] = query.llm_usage(Filter(since=now - HOUR_NS))
        assert (model.model, model.requests, model.input_tokens, model.output_tokens) == (
            SONNET,
            1,
            1000,
            200,
        )
        assert model.cost_usd == 0.25
        summary = query.usage(Filter(since=now - HOUR_NS))
        assert [(c.key, c.count) for c in summary.events] == [("llm.request", 1)]
        assert (
            sum(d["cost_usd"] for d in analytics.llm_daily(query.reader, Filter().selection()).values())
            == 0.25
        )
        snapshot = live.snapshot(query, now_ns=now)
        assert (snapshot.cost_today.requests, snapshot.cost_today.cost_usd) == (1, 0.25)
        cost = metric_series(query, "cost", {}, now - HOUR_NS, now, HOUR_NS, of="llm")
        assert sum(v for _, v in cost) == 0.25
        page = dashboard_data.usage(query, now)  # the Usage page's LLM and Claude Code panels
        assert [r.totals.cost_usd for r in page.claude_daily] == [0.25] and page.models == [SONNET]
        [stored] = list(query.export(Filter(), kinds=("event",)))
    attrs = stored["attributes"]
    # Claude Code's own attributes stay; its numbers, sent as text, are stored as numbers.
    assert (attrs["prompt.id"], attrs["app.version"], attrs["session.id"]) == ("p-1", "2.0.14", "live")
    assert attrs["request_id"] == "req_live_1200"  # what a de-duplication against transcripts would use
    assert (attrs["duration_ms"], attrs["duration"], attrs["cost_usd"], attrs["priced"]) == (
        1500,
        1.5,
        0.25,
        True,
    )
    assert (attrs["provider"], attrs["source"], attrs["otel.event_name"]) == (
        "anthropic",
        "claude-code",
        "claude_code.api_request",
    )
    assert stored["session_id"] == "live" and stored["service"] == "claude-code"


# Six API calls of two sessions, as (time, session, model, (input, output, cache write, cache read)).
CALLS = [
    ("2025-06-01T09:10:00.000Z", "s1", SONNET, (100, 50, 1000, 0)),
    ("2025-06-01T09:40:00.500Z", "s1", SONNET, (10, 200, 0, 1000)),
    ("2025-06-01T16:20:00.000Z", "s1", OPUS, (5, 100, 0, 2000)),
    ("2025-06-02T01:00:00.000Z", "s2", "claude-haiku-4-5-20251001", (1000, 1000, 0, 0)),
    ("2025-06-02T03:30:00.000Z", "s2", "my-model", (1, 1, 0, 0)),
    ("2025-06-02T03:31:00.000Z", "s2", SONNET, (1, 1, 0, 0)),
]


def write_transcript(tmp_path: Path) -> list[str]:
    """:data:`CALLS` as one transcript under ``tmp_path/claude`` (message ``m<i>``, request ``r<i>``);
    its lines."""
    folder = tmp_path / "claude" / "projects" / "-home-someone-project"
    folder.mkdir(parents=True)
    lines = [
        entry(ts, sid, model, tokens, f"m{i}", f"r{i}") for i, (ts, sid, model, tokens) in enumerate(CALLS)
    ]
    (folder / "t.jsonl").write_text("\n".join(lines) + "\n")
    return lines


def sent(i: int, request_id: bool = False) -> tuple[int, str, dict[str, Any]]:
    """Call ``i`` of :data:`CALLS` as Claude Code's telemetry sends it (without cost_usd, so it is
    priced by the table as the importer prices), with its ``request_id`` ``r<i>`` when asked."""
    ts, sid, model, (inp, out, cache_write, cache_read) = CALLS[i]
    attrs = api_request(sid, model, (inp, out, cache_read, cache_write))
    if request_id:
        attrs["request_id"] = f"r{i}"
    return parse_timestamp(ts), "claude_code.api_request", attrs


def usage_reports(db: str) -> dict[str, list[dict[str, Any]]]:
    """Every usage report of ``db`` by model, without what a session row adds from the session
    record (the importer's project), which is not usage."""
    return {
        kind: [
            {k: v for k, v in row.items() if k not in ("project", "service")}
            for row in report(db, kind, "--breakdown")["rows"]
        ]
        for kind in ("daily", "monthly", "session", "blocks")
    }


def test_otlp_requests_are_counted_exactly_as_the_transcript_importer_counts_them(
    served: Served, tmp_path: Path, utc: None
) -> None:
    """The same six API calls, imported from transcripts into one store and received over OTLP
    (protobuf and JSON) into another: every report agrees."""
    write_transcript(tmp_path)
    imported = tmp_path / "imported.db"
    assert _import(imported, tmp_path / "claude")["entries"] == 6
    post_protobuf(served, request(*(sent(i) for i in range(3))))
    post_json(served, request(*(sent(i) for i in range(3, 6))))
    assert usage_reports(store_path(served)) == usage_reports(str(imported))


def test_importing_transcripts_the_telemetry_already_sent_counts_each_call_once(
    served: Served, tmp_path: Path, utc: None
) -> None:
    """Three of six API calls arrive over OTLP (with the ``request_id`` recent Claude Code sends),
    then the transcripts holding all six are imported into the same store: the importer skips the
    three by their ``requestId``, and every report equals an import of the six alone."""
    lines = write_transcript(tmp_path)
    resumed = tmp_path / "claude" / "projects" / "-home-someone-project" / "resumed.jsonl"
    resumed.write_text(lines[0] + "\n")  # a resumed session copies history
    post_protobuf(served, request(*(sent(i, request_id=True) for i in (0, 2, 4))))
    both = store_path(served)
    got = _import(Path(both), tmp_path / "claude")
    assert (got["entries"], got["received"], got["duplicates"]) == (3, 3, 1)
    assert _import(Path(both), tmp_path / "claude")["entries"] == 0  # and a re-run adds nothing
    alone = tmp_path / "alone.db"
    assert _import(alone, tmp_path / "claude")["received"] == 0
    assert usage_reports(both) == usage_reports(str(alone))


def test_a_malformed_cost_is_priced_by_the_table_and_the_sent_value_kept(served: Served) -> None:
    now = time.time_ns()
    post_protobuf(
        served,
        request(
            (now, "claude_code.api_request", api_request("s", SONNET, (200, 30, 5000, 100), "$0.01")),
            (now, "claude_code.api_request", api_request("s", SONNET, (200, 30, 5000, 100), "-1")),
            (now, "claude_code.api_request", api_request("s", "no-such-model", (1, 1, 0, 0), "NaN")),
        ),
    )
    events = sorted(served.stored("event"), key=lambda e: str(e["attributes"]["cost_usd.invalid"]))
    assert [e["name"] for e in events] == ["llm.request"] * 3
    assert [e["attributes"]["cost_usd.invalid"] for e in events] == ["$0.01", "-1", "NaN"]
    assert [e["attributes"].get("cost_usd") for e in events] == [SONNET_PRICE, SONNET_PRICE, None]
    assert [e["attributes"]["priced"] for e in events] == [True, True, False]
    with Query(served.store_url) as query:
        usage = {m.model: m for m in query.llm_usage()}
    assert usage[SONNET].requests == 2 and usage["no-such-model"].requests == 1


@pytest.mark.parametrize("tokens", ["12k", "-5", "1.5", "true", "1e30"])
def test_an_unreadable_token_count_keeps_the_original_event_and_says_why(served: Served, tokens: str) -> None:
    attrs = api_request("s", SONNET, (0, 10, 0, 0), "0.5") | {"input_tokens": tokens}
    post_protobuf(served, request((time.time_ns(), "claude_code.api_request", attrs)))
    [event] = served.stored("event")
    assert event["name"] == "claude_code.api_request" and event["attributes"]["input_tokens"] == tokens
    assert "input_tokens" in event["attributes"]["clisight.unmapped"]
    with Query(served.store_url) as query:
        assert query.llm_usage() == []  # never counted with a made-up 0


def test_an_event_named_only_by_event_name_is_counted(served: Served) -> None:
    """A record of Claude Code's scope whose body is not the event name still names it in its
    ``event.name`` attribute."""
    attrs = api_request("s", SONNET, (1, 2, 0, 0), "0.125")
    post_protobuf(served, request((time.time_ns(), "API request to claude-sonnet", attrs)))
    [event] = served.stored("event")
    assert event["name"] == "llm.request" and event["attributes"]["cost_usd"] == 0.125
    assert event["attributes"]["body"] == "API request to claude-sonnet"


def test_api_errors_reach_the_error_views_grouped_by_kind_and_model(served: Served) -> None:
    now = time.time_ns()

    def error(status: str, message: str, model: str = SONNET) -> tuple[int, str, dict[str, Any]]:
        attrs = {"session.id": "s", "model": model, "error": message, "status_code": status}
        return (now, "claude_code.api_error", attrs | {"duration_ms": "300", "attempt": "1"})

    post_json(
        served,
        request(
            error("429", "Rate limited: too many requests"),
            error("429", "Rate limited after 3 retries"),
            error("529", "Overloaded"),
            error("undefined", "Request was aborted."),
        ),
    )
    assert served.stored("event") == []  # each API error is stored once, as an error occurrence
    with Query(served.store_url) as query:
        groups = {(g.kind, g.model): g for g in errors_query.error_groups(query)}
        assert groups[("llm.rate_limit", SONNET)].count == 2
        assert groups[("llm.overloaded", SONNET)].count == 1
        assert groups[(None, None)].title == "claude_code.api_error: Request was aborted."
        detail = errors_query.error_detail(query, groups[("llm.rate_limit", SONNET)].fingerprint)
    assert detail is not None and detail.latest is not None
    assert detail.latest["attributes"]["status_code"] == 429
    assert detail.latest["attributes"]["otel.event_name"] == "claude_code.api_error"


@pytest.mark.parametrize(
    ("status", "message", "kind"),
    [
        (429, "", "rate_limit"),
        (None, '{"type":"error","error":{"type":"rate_limit_error"}}', "rate_limit"),
        (529, "", "overloaded"),
        (500, "Overloaded", "overloaded"),
        (400, "prompt is too long: 210000 tokens > 200000 maximum", "context_length"),
        (400, "invalid request", None),
        (401, "", "authentication"),
        (None, "Request timed out.", "timeout"),
        (None, "Connection error.", "connection"),
        (None, "Request was aborted.", None),
    ],
)
def test_error_kind_names_api_errors_as_the_client_does(
    status: int | None, message: str, kind: str | None
) -> None:
    assert _claude_code.error_kind(status, message) == kind


def test_the_llm_prices_setting_prices_requests_without_a_cost(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLISIGHT_LLM_PRICES", '{"house-model": {"input": 2, "output": 4}}')
    post_protobuf(
        served,
        request(
            (time.time_ns(), "claude_code.api_request", api_request("s", "house-model", (1000, 500, 0, 0)))
        ),
    )
    [event] = served.stored("event")
    assert event["attributes"]["cost_usd"] == 0.004 and event["attributes"]["priced"] is True


def test_clisight_serve_prices_in_its_worker_processes_by_the_llm_prices_setting(tmp_path: Path) -> None:
    """``clisight serve`` maps logs in worker processes: each reads ``llm_prices`` as ``clisight
    usage`` does."""
    env = {**os.environ, "CLISIGHT_LLM_PRICES": '{"house-model": {"input": 2, "output": 4}}'}
    db = tmp_path / "served.db"
    proc = subprocess.Popen(
        [str(CLISIGHT), "serve", "--port", "0", "--workers", "1", "--store", str(db)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr or ()], daemon=True)
    reader.start()
    try:
        line = ""
        while not line.startswith("REST API:"):
            line = lines.get(timeout=30)  # the banner comes once the port is bound
        base = line.split()[-1].removesuffix("/api/v1/").rstrip("/")
        message = request(
            (time.time_ns(), "claude_code.api_request", api_request("s", "house-model", (1000, 500, 0, 0)))
        )
        answer = httpx.post(
            f"{base}/v1/logs",
            content=message.SerializeToString(),
            headers={"Content-Type": PROTOBUF},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        reader.join(timeout=10)
    assert proc.returncode == 0, "".join(lines.queue)
    with Query(db) as query:
        [model] = query.llm_usage()
    assert (model.model, model.input_tokens, model.cost_usd) == ("house-model", 1000, 0.004)


ANY_VALUE = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**63 - 1),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=20),
        st.sampled_from(["1200", " 7 ", "1e3", "0.0087", "-0", "1_000", "0x10", "١٢", "inf", "", "12.0"]),
        st.binary(max_size=8),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
FIELDS = st.sampled_from(
    [
        "model",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_creation_tokens",
        "cost_usd",
        "duration_ms",
        "session.id",
        "status_code",
        "error",
        "event.name",
    ]
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.dictionaries(FIELDS, ANY_VALUE, max_size=8),
    st.sampled_from(["claude_code.api_request", "claude_code.api_error", "not an event name"]),
)
def test_arbitrary_attribute_values_never_raise_and_the_record_is_always_stored(
    served: Served, attrs: dict[str, Any], body: str
) -> None:
    message = request((time.time_ns(), body, {k: v for k, v in attrs.items() if v is not None}))
    mapped = Mapper(PatternRedactor()).map("logs", message)
    assert mapped.rejected == 0 and len(mapped.records) == 1
    [record] = mapped.records
    if record.name == "llm.request":
        for field in _claude_code.TOKEN_FIELDS:
            count = record.attributes[field]
            assert type(count) is int and 0 <= count <= _claude_code.MAX_TOKENS
        cost = record.attributes.get("cost_usd")
        assert record.attributes["priced"] is (cost is not None)
        assert cost is None or (type(cost) is float and cost >= 0)
    elif record.name == "claude_code.api_request":
        assert record.attributes[_claude_code.UNMAPPED].startswith("not counted as LLM usage: ")
    # The real receiver takes it (200, nothing rejected) and the store holds one more record.
    before = stored_count(served)
    post_protobuf(served, message)
    assert stored_count(served) == before + 1


def stored_count(served: Served) -> int:
    assert served.pipeline.flush(timeout=10)
    with Query(served.store_url) as query:
        return sum(
            int(query.reader.aggregate(kind, Selection(), (), ("count",))[0]["count"] or 0)
            for kind in ("event", "error", "log")
        )


@given(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30), st.binary(max_size=4)
    )
)
def test_number_reads_numbers_and_their_text_or_says_what_is_wrong(item: Any) -> None:
    try:
        found = _claude_code.number(item, "x")
    except _claude_code.Unreadable as problem:
        assert str(problem).startswith("x ")
        return
    if found is None:
        assert item is None or (isinstance(item, str) and not item.strip())
    else:
        assert found >= 0 and found == float(item)
