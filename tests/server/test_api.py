"""The REST API over HTTP on 127.0.0.1: pages with cursors, filters, traces, reports, clear errors;
and schemathesis against its OpenAPI schema."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from clisight.types import ERROR_LEVEL, INFO, WARNING, Record, Resource
from tests.server.conftest import Served

APP = Resource("api-app", version="1.0")
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def filled(served: Served) -> Iterator[tuple[Served, httpx.Client]]:
    now = time.time_ns()
    records = [
        Record("log", now - 5_000 + i, "api", f"request {i}", WARNING if i % 2 else INFO, {"i": i}, APP, "s1")
        for i in range(5)
    ]
    records += [
        Record("span", now, "handle", "", 0, {}, APP, "s1", TRACE, "00f067aa0ba902b7", None, now + 10**8),
        Record(
            "span",
            now + 1,
            "db",
            "",
            ERROR_LEVEL,
            {},
            APP,
            "s1",
            TRACE,
            "00f067aa0ba902b8",
            "00f067aa0ba902b7",
            now + 5 * 10**7,
        ),
        Record(
            "event", now, "llm.request", "", 0, {"model": "m", "input_tokens": 10, "cost_usd": 0.5}, APP, "s1"
        ),
        Record(
            "error", now, "KeyError", "missing 'x'", ERROR_LEVEL, {"stack": "", "component": "api"}, APP, "s1"
        ),
    ]
    for record in records:
        served.pipeline.emit(record)
    assert served.pipeline.flush(timeout=10)
    with httpx.Client(base_url=f"{served.url}/api/v1", timeout=10) as client:
        yield served, client


def test_records_page_through_with_cursors_newest_first(filled: tuple[Served, httpx.Client]) -> None:
    _, api = filled
    seen, cursor = [], None
    for _ in range(5):
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.get("/records/log", params=params).json()
        assert page["kind"] == "log"
        seen += [row["message"] for row in page["rows"]]
        cursor = page["cursor"]
        if len(page["rows"]) < 2:
            break
    assert seen == [f"request {i}" for i in (4, 3, 2, 1, 0)]
    oldest = api.get("/records/log", params={"order": "oldest", "limit": 1}).json()
    assert oldest["rows"][0]["message"] == "request 0"


def test_records_filters_by_level_text_trace_and_kind(filled: tuple[Served, httpx.Client]) -> None:
    _, api = filled
    warnings = api.get("/records/log", params={"level": "warning"}).json()["rows"]
    assert sorted(r["message"] for r in warnings) == ["request 1", "request 3"]
    assert [r["message"] for r in api.get("/records/log", params={"q": "QUEST 4"}).json()["rows"]] == [
        "request 4"
    ]
    spans = api.get("/records/span", params={"trace_id": TRACE.upper()}).json()["rows"]
    assert sorted(s["name"] for s in spans) == ["db", "handle"]
    assert api.get("/records/log", params={"service": "other"}).json()["rows"] == []


def test_traces_errors_usage_report_and_health(filled: tuple[Served, httpx.Client]) -> None:
    _, api = filled
    [trace] = api.get("/traces").json()
    assert (trace["trace_id"], trace["root"], trace["spans"], trace["errors"]) == (TRACE, "handle", 2, 1)
    tree = api.get(f"/traces/{TRACE}").json()
    assert [(s["name"], s["depth"]) for s in tree["spans"]] == [("handle", 0), ("db", 1)]
    errors = api.get("/errors").json()
    assert errors["groups"][0]["type"] == "KeyError" and errors["total"] >= 1
    usage = api.get("/usage").json()
    assert usage["llm"][0]["model"] == "m" and usage["llm_cost_usd"] == 0.5
    report = api.get("/report", params={"since": "1h"}).json()
    assert report["total_logs"] == 5
    health = api.get("/health").json()
    assert health["status"] == "ok" and health["pipeline"][0]["stored"] == 9


def test_records_take_the_plural_words_of_clisight_export_too(filled: tuple[Served, httpx.Client]) -> None:
    _, api = filled
    for single, plural in [("log", "logs"), ("span", "spans"), ("error_group", "error_groups")]:
        one, many = api.get(f"/records/{single}"), api.get(f"/records/{plural}")
        assert one.status_code == many.status_code == 200, many.text
        assert many.json()["kind"] == single and many.json()["rows"] == one.json()["rows"] != []
    # The schema names each kind once, singular.
    schema = api.get("/openapi.json").json()["components"]["schemas"]["Kind"]
    assert schema["enum"] == ["log", "event", "span", "metric", "error", "session", "error_group"]


def test_bad_parameters_are_clear_json_errors(filled: tuple[Served, httpx.Client]) -> None:
    _, api = filled
    not_a_time = api.get("/records/log", params={"since": "yesterday-ish"})
    assert not_a_time.status_code == 422 and "since" in not_a_time.text  # not of the documented form
    no_such_date = api.get("/records/log", params={"since": "2024-02-31"})
    assert no_such_date.status_code == 400 and "2024-02-31" in no_such_date.json()["detail"]
    bad_level = api.get("/records/log", params={"level": "loud"})
    assert bad_level.status_code == 422 and "level" in bad_level.text
    assert api.get("/records/log", params={"limit": 0}).status_code == 422
    assert api.get("/records/nope").status_code == 422
    missing = api.get(f"/traces/{'0' * 32}")
    assert missing.status_code == 404 and "no span" in missing.json()["detail"]
    assert api.get("/records/log", params={"cursor": "not-a-cursor"}).status_code == 400


def test_the_openapi_schema_lists_every_route(served: Served) -> None:
    schema = httpx.get(f"{served.url}/api/v1/openapi.json", timeout=10).json()
    assert schema["info"]["title"] == "clisight API"
    assert {
        "/health",
        "/records/{kind}",
        "/traces",
        "/traces/{trace_id}",
        "/errors",
        "/usage",
        "/report",
    } <= set(schema["paths"])


def test_a_path_no_route_takes_is_a_json_404(served: Served) -> None:
    # schemathesis found it: a trace id with a newline in it fell through the /api/v1 mount to a
    # plain-text 404.
    answer = httpx.get(f"{served.url}/api/v1/traces/ab%0Acd", timeout=10)
    assert answer.status_code == 404 and answer.json() == {"detail": "Not Found"}
    assert httpx.get(f"{served.url}/nowhere", timeout=10).headers["content-type"] == "application/json"


def test_a_bad_cursor_is_named_once_with_what_to_do(filled: tuple[Served, httpx.Client]) -> None:
    _, api = filled
    answer = api.get("/records/log", params={"cursor": "abc"})
    detail = answer.json()["detail"]
    assert answer.status_code == 400 and "'abc'" in detail and "pass back a cursor" in detail
    assert detail.lower().count("bad cursor") == 1, detail  # it read "bad cursor: bad cursor 'abc'"


def test_error_group_records_carry_the_status_set_by_resolve_and_ignore(
    filled: tuple[Served, httpx.Client],
) -> None:
    from clisight.query import Query
    from clisight.query import errors as errors_query

    served, api = filled
    [group] = api.get("/records/error_group").json()["rows"]
    assert group["status"] == "unresolved"  # as /errors, `clisight errors` and the dashboard say it
    with Query(served.store_url) as query:
        errors_query.set_status(query, group["fingerprint"], "resolved")
    [group] = api.get("/records/error_group").json()["rows"]
    assert group["status"] == "resolved"  # it said "open": the store's column is never updated
    [listed] = api.get("/errors").json()["groups"]
    assert listed["status"] == "resolved"
    with Query(served.store_url) as query:
        errors_query.set_status(query, group["fingerprint"], "ignored")
    assert [g["status"] for g in api.get("/records/error_group").json()["rows"]] == ["ignored"]


def test_every_parameter_in_the_schema_says_what_it_is(served: Served) -> None:
    schema = httpx.get(f"{served.url}/api/v1/openapi.json", timeout=10).json()
    bare = [
        f"{path} {p['name']}"
        for path, methods in schema["paths"].items()
        for operation in methods.values()
        for p in operation.get("parameters", [])
        if not p.get("description")
    ]
    assert bare == []  # kind, order, limit, top and trace_id had none


def test_a_filter_that_cannot_apply_to_the_kind_is_a_400_not_ignored(
    filled: tuple[Served, httpx.Client],
) -> None:
    _, api = filled
    # Each was ignored: ?service=other listed every error group, ?level=error every span.
    for kind, params, named in (
        ("error_group", {"service": "other"}, "service"),
        ("error_group", {"q": "x"}, "q"),
        ("span", {"level": "error"}, "level"),
        ("event", {"component": "api"}, "component"),
        ("log", {"name": "request 1"}, "name"),
        ("session", {"q": "x"}, "q"),
    ):
        answer = api.get(f"/records/{kind}", params=params)
        assert answer.status_code == 400, (kind, params, answer.text)
        assert f"'{named}'" in answer.json()["detail"] and kind in answer.json()["detail"]
    # the filters a kind has still work
    assert (
        api.get("/records/log", params={"level": "warning", "component": "api", "q": "request"}).status_code
        == 200
    )
    [group] = api.get("/records/error_group").json()["rows"]
    by_fingerprint = api.get("/records/error_group", params={"name": group["fingerprint"]}).json()["rows"]
    assert by_fingerprint == [group]
    assert api.get("/records/error", params={"name": "KeyError", "q": "missing"}).json()["rows"]


def test_an_until_before_since_is_a_400_that_says_so(filled: tuple[Served, httpx.Client]) -> None:
    _, api = filled
    for route in ("/records/log", "/traces", "/errors", "/operations", "/usage", "/report"):
        answer = api.get(route, params={"since": "1h", "until": "2h"})  # it answered an empty page
        assert answer.status_code == 400 and "before" in answer.json()["detail"], (route, answer.text)
    assert api.get("/records/log", params={"since": "2h", "until": "1h"}).status_code == 200
