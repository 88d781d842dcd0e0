"""What every store backend must do, run against each of them: SQLite, memory and PostgreSQL.

The suite is the judge of the backends: every test takes ``any_store`` (one per backend) and checks
the :class:`~clisight.store.base.Store` protocol as ``clisight.store.base`` documents it, against
expectations computed here from the records written, never from another backend's answers.
What is particular to one backend lives in its own test file.
"""

from __future__ import annotations

import importlib.util
import math
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from clisight._sketch import QuantileSketch
from clisight.exceptions import DataError, StoreError
from clisight.store import (
    EXPORT_FIELDS,
    RetentionPolicy,
    Selection,
    SqliteStore,
    Store,
    open_store,
    redact_url,
)
from clisight.store.base import HISTORY_STATE_PREFIXES
from clisight.store.schema import LATEST_VERSION
from clisight.types import (
    CRITICAL,
    DEBUG,
    ERROR_LEVEL,
    INFO,
    PERFORMANCE,
    WARNING,
    Deadline,
    Record,
    Resource,
)
from tests.records import Make

try:  # the PostgreSQL fixtures arrive with the PostgreSQL backend
    from tests.pg_cluster import pg_cluster, pg_url  # noqa: F401

    _NO_PG_FIXTURES = ""
except ImportError as exc:
    _NO_PG_FIXTURES = f"the PostgreSQL test fixtures (tests/pg_cluster.py) cannot be imported: {exc}"

MINUTE = 60 * 10**9
HOUR = 60 * MINUTE
DAY = 24 * HOUR
A = Resource("svc-a", version="1.0", host="host-a", pid=101)
B = Resource("svc-b", version="2.0", host="host-b", pid=202)
BACKEND_NAMES = {"sqlite": "sqlite", "memory": "memory", "postgres": "postgresql"}
NO_AGE = RetentionPolicy(raw_days=0, minute_days=0, hour_days=0, day_days=0)
SUBPROCESS_TIMEOUT = 60
ANCHOR = 1_767_225_600 * 10**9 + 37 * MINUTE + 13_123_456_789  # 2026-01-01 00:37:13.123456789 UTC


# Tests a backend fails today, with what is wrong: marked xfail(strict=True), so that the fix shows up
# as an XPASS failure and the entry must go.  Key: (test name, its parameter id or that id's prefix
# before "-"); value: the reason.
KNOWN_FAILURES: dict[tuple[str, str], str] = {}


@pytest.fixture(autouse=True)
def _known_failure(request: pytest.FixtureRequest) -> None:
    callspec = getattr(request.node, "callspec", None)
    if callspec is None:
        return
    for (name, param), reason in KNOWN_FAILURES.items():
        if request.node.originalname == name and (
            callspec.id == param or callspec.id.startswith(param + "-")
        ):
            request.applymarker(pytest.mark.xfail(strict=True, reason=reason))


@pytest.fixture(params=["sqlite", "memory", "postgres"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A new, empty store of each backend."""
    if request.param == "sqlite":
        store: Store = SqliteStore(tmp_path / "conformance.db")
    elif request.param == "memory":
        store = open_store("memory://")
    else:
        if _NO_PG_FIXTURES:
            pytest.skip(_NO_PG_FIXTURES)
        if importlib.util.find_spec("clisight.store.postgres") is None:
            pytest.skip("the PostgreSQL backend (clisight/store/postgres.py) is not there yet")
        store = open_store(request.getfixturevalue("pg_url"))  # skips, saying why, without PostgreSQL
    yield store
    store.close()


@pytest.fixture
def backend(request: pytest.FixtureRequest, any_store: Store) -> str:
    """Which backend ``any_store`` is: sqlite, memory or postgres."""
    name: str = request.node.callspec.params["any_store"]
    return name


@pytest.fixture
def store_url(request: pytest.FixtureRequest, backend: str, any_store: Store) -> str:
    """The URL ``any_store`` was opened from (other store objects and processes open it too)."""
    if backend == "postgres":
        url: str = request.getfixturevalue("pg_url")
        return url
    return any_store.url


def persistent(backend: str) -> bool:
    """Whether other store objects and other processes see the same data (not so for memory://)."""
    return backend != "memory"


# -- records --------------------------------------------------------------------------------------
def log(
    t: int,
    message: str = "hello",
    component: str = "app",
    severity: int = INFO,
    *,
    res: Resource = A,
    session: str | None = None,
    trace: str | None = None,
    span: str | None = None,
    **attributes: Any,
) -> Record:
    return Record("log", t, component, message, severity, attributes, res, session, trace, span)


def event(
    t: int,
    name: str = "command",
    *,
    res: Resource = A,
    session: str | None = None,
    trace: str | None = None,
    span: str | None = None,
    **attributes: Any,
) -> Record:
    return Record("event", t, name, "", 0, attributes, res, session, trace, span)


def span(
    t: int,
    name: str = "op",
    duration_ns: int | None = 1_000_000,
    *,
    status: int = 0,
    res: Resource = A,
    session: str | None = None,
    trace: str | None = "trace-1",
    span_id: str | None = "span-1",
    parent: str | None = None,
    **attributes: Any,
) -> Record:
    end = None if duration_ns is None else t + duration_ns
    return Record("span", t, name, "", status, attributes, res, session, trace, span_id, parent, end)


def metric(
    t: int,
    name: str = "rss",
    value: float | None = 1.0,
    *,
    res: Resource = A,
    session: str | None = None,
    **attributes: Any,
) -> Record:
    return Record("metric", t, name, "", 0, attributes, res, session, value=value)


def error(
    t: int,
    type_: str = "ValueError",
    message: str = "bad value",
    stack: str = "",
    *,
    res: Resource = A,
    session: str | None = None,
    trace: str | None = None,
    span: str | None = None,
    **attributes: Any,
) -> Record:
    return Record(
        "error", t, type_, message, ERROR_LEVEL, {"stack": stack, **attributes}, res, session, trace, span
    )


def session_record(
    session_id: str, t: int, *, end: int | None = None, res: Resource = A, **attributes: Any
) -> Record:
    return Record("session", t, session_id, "", 0, attributes, res, session_id, end_ns=end)


def stack(*frames: tuple[str, int, str]) -> str:
    lines = ["Traceback (most recent call last):"]
    lines += [f'  File "{path}", line {line}, in {func}\n    code()' for path, line, func in frames]
    return "\n".join(lines)


def write_in_batches(store: Store, records: Sequence[Record], size: int = 500) -> None:
    for start in range(0, len(records), size):
        assert store.write_batch(records[start : start + size])


# -- reading --------------------------------------------------------------------------------------
def read_all(
    store: Store, kind: str, sel: Selection | None = None, *, newest_first: bool = False, limit: int = 1000
) -> list[dict[str, Any]]:
    """Every row of ``kind`` in ``sel``, page by page."""
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = store.rows(kind, sel or Selection(), cursor=cursor, limit=limit, newest_first=newest_first)
        if not page.rows:
            assert page.cursor == cursor, "an empty page gives back the cursor it was given"
            return out
        out += page.rows
        cursor = page.cursor


def ids(rows: Sequence[dict[str, Any]]) -> list[Any]:
    return [row["id"] for row in rows]


def count(store: Store, kind: str, sel: Selection | None = None, *, source: str = "auto") -> int:
    [row] = store.aggregate(kind, sel or Selection(), (), ("count",), source=source)
    value: int = row["count"]
    return value


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
TIME_FIELD = {"span": "start_ns", "session": "start_ns", "error_group": "last_seen_ns"}
# The filters the Selection docs give each kind (the others do not apply to it).
APPLICABLE: dict[str, frozenset[str]] = {
    "log": frozenset(
        {"since_ns", "until_ns", "service", "session_id", "min_severity", "component", "text", "trace_id"}
    ),
    "event": frozenset({"since_ns", "until_ns", "service", "session_id", "name", "trace_id"}),
    "span": frozenset({"since_ns", "until_ns", "service", "session_id", "name", "trace_id"}),
    "metric": frozenset({"since_ns", "until_ns", "service", "session_id", "name"}),
    "error": frozenset({"since_ns", "until_ns", "service", "session_id", "name", "text", "trace_id"}),
    "session": frozenset({"since_ns", "until_ns", "service", "session_id"}),
    "error_group": frozenset({"since_ns", "until_ns", "name"}),
    "operation": frozenset({"since_ns", "until_ns", "service", "session_id", "name", "trace_id"}),
}


def selected(kind: str, row: dict[str, Any], sel: Selection) -> bool:
    """Whether an export row (or an operation) is in ``sel``, as the Selection docs say."""
    moment = row["time" if kind == "operation" else TIME_FIELD.get(kind, "time_ns")]
    if sel.since_ns is not None and moment < sel.since_ns:
        return False
    if sel.until_ns is not None and moment > sel.until_ns:
        return False
    if kind == "error_group":
        return sel.name is None or row["fingerprint"] == sel.name
    if sel.service is not None and row["service"] != sel.service:
        return False
    if sel.session_id is not None and row["id" if kind == "session" else "session_id"] != sel.session_id:
        return False
    if sel.min_severity is not None and row["severity"] < sel.min_severity:
        return False
    if sel.component is not None and row["component"] != sel.component:
        return False
    if sel.name is not None and row["type" if kind == "error" else "name"] != sel.name:
        return False
    if sel.text and sel.text.translate(_ASCII_LOWER) not in row["message"].translate(_ASCII_LOWER):
        return False
    return sel.trace_id is None or row["trace_id"] == sel.trace_id


def operations(store: Store) -> list[dict[str, Any]]:
    """The operations of the store, from its raw rows: spans that ended and PERFORMANCE logs with a
    numeric duration (named by their ``operation`` attribute, else their message)."""
    out = []
    for row in read_all(store, "span"):
        if row["end_ns"] is not None:
            out.append(
                {
                    "time": row["start_ns"],
                    "service": row["service"],
                    "session_id": row["session_id"],
                    "trace_id": row["trace_id"],
                    "name": row["name"],
                    "duration": (row["end_ns"] - row["start_ns"]) / 1e9,
                    "failed": row["status"] == 2 or row["status"] >= ERROR_LEVEL,
                }
            )
    for row in read_all(store, "log"):
        duration = row["attributes"].get("duration")
        if (
            PERFORMANCE <= row["severity"] < WARNING
            and isinstance(duration, int | float)
            and not isinstance(duration, bool)
        ):
            operation = row["attributes"].get("operation")
            out.append(
                {
                    "time": row["time_ns"],
                    "service": row["service"],
                    "session_id": row["session_id"],
                    "trace_id": row["trace_id"],
                    "name": operation if isinstance(operation, str) and operation else row["message"],
                    "duration": duration,
                    "failed": row["attributes"].get("success") is False,
                }
            )
    return out


def lower_quantile(values: Sequence[float], q: float) -> float:
    """The value a quantile sketch approximates: rank floor(q * (n - 1)) of the sorted values."""
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))]


def assert_sketch_close(sketch: Any, values: Sequence[float], tolerance: float, context: str) -> None:
    assert isinstance(sketch, QuantileSketch), f"{context}: quantiles are a QuantileSketch, got {sketch!r}"
    assert sketch.count == len(values), context
    for q in (0.5, 0.9, 0.99):
        exact = lower_quantile(values, q)
        got = sketch.quantile(q)
        assert got is not None and abs(got - exact) <= tolerance * abs(exact) + 1e-12, (
            f"{context}: q{q} is {got}, exact {exact}"
        )


# == writes and the export schema ===================================================================
def test_every_kind_is_read_back_in_its_export_schema_with_values_intact(any_store: Store) -> None:
    now = time.time_ns()
    nested = {"list": [1, "two", {"three": 3.5}], "map": {"deep": {"deeper": [None, True, False]}}}
    attrs = {
        "unicode": "héllo wörld ☃ 🎉 中文",
        "nested": nested,
        "nul": "before\x00after",
        "int64_max": 2**63 - 1,
        "int64_min": -(2**63),
        "uint64_max": 2**64 - 1,
        "float": 0.1 + 0.2,
        "tiny": 5e-324,
        "huge_float": 1.7976931348623157e308,
        "empty_list": [],
        "empty_map": {},
        "flag": True,
        "nothing": None,
        "user_id": "user-9f86d081",  # the client's hashed user: may be stored apart, reads back the same
    }
    batch = [
        session_record(
            "sess-rt", now - 10, end=now + 10, command="build --all", user_id="u-1", exit_code=3, team="a"
        ),
        log(
            now,
            "message with\x00NUL and ünïcode",
            "comp\x00onent",
            WARNING,
            session="sess-rt",
            trace="tr",
            span="sp",
            **attrs,
        ),
        log(now + 1, "no attributes", session="sess-rt"),
        log(now + 2, "only a user", user_id="user-1"),
        log(now + 3, "a user that is no string", user_id=7),
        event(now, "llm.request", session="sess-rt", trace="tr", span="sp", **attrs),
        event(now + 1, "bare"),
        span(
            now,
            "op\x00name",
            2_000,
            status=2,
            session="sess-rt",
            parent="parent-1",
            **{"span.kind": "server", "k": "v"},
        ),
        span(now + 1, "open span", None, trace=None, span_id=None),
        metric(now, "rss", 12.5, session="sess-rt", unit="By", type="gauge", temporality="cumulative"),
        metric(now + 1, "latency", 3.0, type="histogram", histogram={"bounds": [1, 2], "counts": [0, 1, 2]}),
        error(
            now,
            "KeyError",
            "missing 'x'\x00 here",
            stack(("/app/a.py", 3, "f")),
            session="sess-rt",
            trace="tr",
            span="sp",
            **attrs,
        ),
    ]
    assert any_store.write_batch(batch) is True

    rows = {kind: read_all(any_store, kind) for kind in EXPORT_FIELDS}
    for kind, found in rows.items():
        for row in found:
            assert list(row) == list(EXPORT_FIELDS[kind]), (
                f"{kind} rows have exactly the export fields, in order"
            )

    resource = {"service": "svc-a", "service_version": "1.0", "host": "host-a", "pid": 101}
    for kind in ("log", "event", "error"):
        kept = rows[kind][0]["attributes"]
        assert sorted(kept) == sorted(attrs), f"{kind}: the same attribute names"
        for name, value in attrs.items():
            assert (kept[name], type(kept[name])) == (value, type(value)), f"{kind}: attribute {name!r}"
    first_log, second_log, only_user, odd_user = rows["log"]
    assert only_user["attributes"] == {"user_id": "user-1"} and odd_user["attributes"] == {"user_id": 7}
    assert isinstance(first_log["id"], int) and second_log["id"] > first_log["id"]
    assert {k: v for k, v in first_log.items() if k != "id"} == {
        "time_ns": now,
        "severity": WARNING,
        "severity_text": "WARNING",
        "component": "comp\x00onent",
        "message": "message with\x00NUL and ünïcode",
        "attributes": attrs,
        **resource,
        "session_id": "sess-rt",
        "trace_id": "tr",
        "span_id": "sp",
    }
    assert second_log["attributes"] == {} and second_log["trace_id"] is None and second_log["span_id"] is None
    assert (
        type(first_log["attributes"]["int64_max"]) is int and type(first_log["attributes"]["float"]) is float
    )

    first_event, second_event = rows["event"]
    assert {k: v for k, v in first_event.items() if k != "id"} == {
        "time_ns": now,
        "name": "llm.request",
        "attributes": attrs,
        **resource,
        "session_id": "sess-rt",
        "trace_id": "tr",
        "span_id": "sp",
    }
    assert second_event["attributes"] == {} and second_event["session_id"] is None

    closed, still_open = rows["span"]
    assert {k: v for k, v in closed.items() if k != "id"} == {
        "trace_id": "trace-1",
        "span_id": "span-1",
        "parent_span_id": "parent-1",
        "name": "op\x00name",
        "span_kind": "server",
        "start_ns": now,
        "end_ns": now + 2_000,
        "status": 2,
        "attributes": {"span.kind": "server", "k": "v"},
        "events": [],
        **resource,
        "session_id": "sess-rt",
    }
    assert still_open["end_ns"] is None and still_open["trace_id"] is None and still_open["attributes"] == {}

    rss, latency = rows["metric"]
    assert {k: v for k, v in rss.items() if k != "id"} == {
        "time_ns": now,
        "name": "rss",
        "type": "gauge",
        "unit": "By",
        "temporality": "cumulative",
        "value": 12.5,
        "histogram": None,
        "attributes": {"unit": "By", "type": "gauge", "temporality": "cumulative"},
        **resource,
        "session_id": "sess-rt",
    }
    assert latency["type"] == "histogram" and latency["histogram"] == {"bounds": [1, 2], "counts": [0, 1, 2]}
    assert latency["unit"] == "" and latency["temporality"] == ""

    [err] = rows["error"]
    assert isinstance(err["fingerprint"], str) and err["fingerprint"]
    assert {k: v for k, v in err.items() if k not in ("id", "fingerprint")} == {
        "time_ns": now,
        "type": "KeyError",
        "message": "missing 'x'\x00 here",
        "stack": stack(("/app/a.py", 3, "f")),
        "attributes": attrs,  # the stack is a field of its own, not an attribute
        **resource,
        "session_id": "sess-rt",
        "trace_id": "tr",
        "span_id": "sp",
    }

    [sess] = rows["session"]
    assert sess == {
        "id": "sess-rt",
        "service": "svc-a",
        "start_ns": now - 10,
        "end_ns": now + 10,
        "exit_code": 3,
        "command": "build --all",
        "user_id": "u-1",
        "attributes": {"team": "a"},
        "log_count": 2,
        "error_count": 1,
        "event_count": 1,
    }
    [group] = rows["error_group"]
    assert group == {
        "fingerprint": err["fingerprint"],
        "type": "KeyError",
        "title": "KeyError: missing 'x'\x00 here",
        "status": "open",
        "count": 1,
        "first_seen_ns": now,
        "last_seen_ns": now,
    }


def test_an_integer_beyond_64_bits_keeps_its_value_and_spoils_no_other_attribute(any_store: Store) -> None:
    huge = 2**100
    siblings = {"n": 1, "f": 2.5, "s": "text", "nested": {"a": [1, 2]}, "flag": False}
    any_store.write_batch([log(time.time_ns(), "huge", huge=huge, **siblings)])
    [row] = read_all(any_store, "log")
    kept = row["attributes"]
    assert kept.get("huge") in (huge, str(huge)), "the value is kept, as a number or as its digits"
    assert {k: v for k, v in kept.items() if k != "huge"} == siblings


def test_metric_values_are_floats_and_what_is_no_finite_number_reads_as_none(any_store: Store) -> None:
    now = time.time_ns()
    values = [2**70, 3, -2.5, math.nan, math.inf, -math.inf, None]
    any_store.write_batch([metric(now + i, "m", v) for i, v in enumerate(values)])
    got = [row["value"] for row in read_all(any_store, "metric")]
    assert got == [float(2**70), 3.0, -2.5, None, None, None, None]
    assert all(type(v) is float for v in got[:3])
    for source in ("raw", "auto"):
        [row] = any_store.aggregate(
            "metric", Selection(), (), ("count", "sum:value", "min:value", "max:value"), source=source
        )
        assert row == {
            "count": 7,
            "sum:value": float(2**70) + 0.5,
            "min:value": -2.5,
            "max:value": float(2**70),
        }, source


def test_empty_batch_is_stored_as_nothing(any_store: Store) -> None:
    assert any_store.write_batch([]) is True
    assert all(read_all(any_store, kind) == [] for kind in EXPORT_FIELDS)


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda r: r._replace(time_ns=None), id="time-missing"),
        pytest.param(lambda r: r._replace(time_ns=2**70), id="time-beyond-64-bits"),
    ],
)
def test_a_batch_with_a_malformed_record_raises_data_error_and_stores_nothing(
    any_store: Store, spoil: Callable[[Record], Record]
) -> None:
    now = time.time_ns()
    batch = [
        session_record("s", now),
        log(now, session="s"),
        event(now, session="s"),
        span(now),
        error(now),
        spoil(log(now + 1, "bad one", session="s")),
    ]
    with pytest.raises(DataError):  # the data's fault, not the store's: the pipeline retries record by record
        any_store.write_batch(batch)
    assert all(read_all(any_store, kind) == [] for kind in EXPORT_FIELDS)
    assert count(any_store, "log") == 0 and count(any_store, "operation") == 0
    any_store.write_batch([log(now, "after")])  # still usable
    assert [row["message"] for row in read_all(any_store, "log")] == ["after"]


# == every filter, for rows() and aggregate() =========================================================
MESSAGES = (
    "Connection TIMEOUT after 100% retries",
    "disk at 100 percent",
    "user a_b logged in",
    "user axb logged in",
    "path C:\\temp\\x",
    "grüße aus München",
    "plain message",
    "rate 50%_off",
)
TEXTS = ("timeout", "TimeOut", "100%", "%", "_", "a_b", "\\", "%_", "münchen", "ße", "nothing matches", "")


def filter_world(now: int) -> list[Record]:
    """A bit of every kind, with values each filter tells apart (times repeat on purpose)."""
    rng = random.Random(8)
    base = now - 3 * HOUR - now % MINUTE
    sessions = (None, "sess-1", "sess-2")
    traces = (None, "trace-1", "trace-2")
    severities = (DEBUG, INFO, PERFORMANCE, WARNING, ERROR_LEVEL, CRITICAL)
    out: list[Record] = [
        session_record("sess-1", base, end=base + 2 * HOUR, res=A, command="build"),
        session_record("sess-2", base + 5 * MINUTE, res=B, command="test"),
        session_record("sess-3", base + 7 * MINUTE, res=B, command="lint", exit_code=1),
    ]
    for i in range(60):
        t = base + (i // 2) * 97 * 10**9  # two records at each time
        res = A if i % 3 else B
        severity = severities[i % len(severities)]
        attrs: dict[str, Any] = {"i": i}
        if severity == PERFORMANCE:
            attrs |= {"duration": rng.uniform(0.01, 2.0), "success": i % 4 != 0}
            if i % 5:
                attrs["operation"] = ("op.a", "op.b")[i % 2]
        out.append(
            log(
                t,
                MESSAGES[i % len(MESSAGES)],
                ("app", "db", "http")[i % 3],
                severity,
                res=res,
                session=sessions[i % 3],
                trace=traces[(i // 3) % 3],
                **attrs,
            )
        )
    for i in range(24):
        t = base + i * 131 * 10**9
        out.append(
            event(
                t,
                ("command", "llm.request")[i % 2],
                res=A if i % 4 else B,
                session=sessions[(i + 1) % 3],
                trace=traces[i % 3],
                model=("m-1", "m-2")[i % 2],
                input_tokens=i * 10,
            )
        )
    for i in range(24):
        t = base + i * 113 * 10**9
        out.append(
            span(
                t,
                ("op.a", "op.b", "op.c")[i % 3],
                None if i % 7 == 6 else rng.randint(1, 5_000) * 1_000_000,
                status=2 if i % 5 == 0 else 0,
                res=B if i % 3 == 1 else A,
                session=sessions[i % 3],
                trace=traces[(i + 2) % 3],
                span_id=f"span-{i}",
            )
        )
    for i in range(18):
        t = base + i * 151 * 10**9
        out.append(metric(t, ("rss", "cpu")[i % 2], float(i), res=A if i % 2 else B, session=sessions[i % 3]))
    for i in range(20):
        t = base + i * 173 * 10**9
        out.append(
            error(
                t,
                ("ValueError", "KeyError")[i % 2],
                MESSAGES[(i * 3) % len(MESSAGES)],
                stack(("/app/x.py", i, ("f", "g", "h")[i % 3])),
                res=A if i % 3 else B,
                session=sessions[(i + 2) % 3],
                trace=traces[i % 3],
            )
        )
    return out


def selections(kind: str, rows: list[dict[str, Any]], groups: list[dict[str, Any]]) -> list[Selection]:
    """Every applicable filter alone with a few values each (bounds at real record times: inclusive),
    and some of them together."""
    applicable = APPLICABLE[kind]
    times = sorted({row["time" if kind == "operation" else TIME_FIELD.get(kind, "time_ns")] for row in rows})
    values: dict[str, list[Any]] = {}
    if times:
        middle = times[len(times) // 2]
        values["since_ns"] = [times[0], middle, middle + 1, times[-1], times[-1] + 1]
        values["until_ns"] = [times[0], times[0] - 1, middle, middle - 1, times[-1]]
    values |= {
        "service": ["svc-a", "svc-b", "svc-none"],
        "session_id": ["sess-1", "sess-3", "sess-none"],
        "min_severity": [PERFORMANCE, WARNING, ERROR_LEVEL, CRITICAL + 1],
        "component": ["db", "nope"],
        "text": list(TEXTS),
        "trace_id": ["trace-2", "trace-none"],
    }
    names = {"event": ["llm.request", "none"], "span": ["op.b", "none"], "metric": ["cpu", "none"]}
    names |= {"error": ["KeyError", "none"], "operation": ["op.a", "op.c", "none"]}
    names["error_group"] = [groups[0]["fingerprint"], "none"] if groups else ["none"]
    values["name"] = names.get(kind, [])
    out = [Selection()]
    for field in sorted(applicable):
        out += [Selection(**{field: value}) for value in values.get(field, [])]
    combos = [
        {"since_ns": values.get("since_ns", [None])[1], "until_ns": values.get("until_ns", [None])[2]},
        {"service": "svc-a", "session_id": "sess-1"},
        {"service": "svc-b", "name": values["name"][0] if values["name"] else None},
        {"min_severity": WARNING, "component": "db", "text": "100%"},
        {"trace_id": "trace-1", "service": "svc-a", "text": "USER"},
        {
            "since_ns": values.get("since_ns", [None])[1],
            "service": "svc-a",
            "name": values["name"][0] if values["name"] else None,
        },
    ]
    for combo in combos:
        picked = {k: v for k, v in combo.items() if k in applicable and v is not None}
        if picked:
            out.append(Selection(**picked))
    return out


def test_rows_honour_every_selection_filter(any_store: Store) -> None:
    write_in_batches(any_store, filter_world(time.time_ns()), size=50)
    groups = read_all(any_store, "error_group")
    for kind in EXPORT_FIELDS:
        key = "fingerprint" if kind == "error_group" else "id"
        everything = read_all(any_store, kind)
        assert everything, kind
        for sel in selections(kind, everything, groups):
            expected = [row[key] for row in everything if selected(kind, row, sel)]
            got = [row[key] for row in read_all(any_store, kind, sel, limit=7)]
            assert got == expected, f"rows({kind!r}, {sel})"
            newest = [row[key] for row in read_all(any_store, kind, sel, newest_first=True, limit=7)]
            assert sorted(newest) == sorted(expected), f"rows({kind!r}, {sel}, newest_first=True)"


def test_text_filter_takes_percent_underscore_and_backslash_literally(any_store: Store) -> None:
    now = time.time_ns()
    any_store.write_batch(
        [log(now + i, m) for i, m in enumerate(MESSAGES)] + [error(now, "E", m) for m in MESSAGES]
    )
    for kind in ("log", "error"):
        for text, want in [
            ("100%", [MESSAGES[0]]),
            ("a_b", [MESSAGES[2]]),
            ("%_", [MESSAGES[7]]),
            ("\\temp", [MESSAGES[4]]),
            ("connection timeout", [MESSAGES[0]]),
        ]:
            got = [row["message"] for row in read_all(any_store, kind, Selection(text=text))]
            assert got == want, (kind, text)


def test_aggregate_honours_every_selection_filter(any_store: Store) -> None:
    write_in_batches(any_store, filter_world(time.time_ns()), size=50)
    groups = read_all(any_store, "error_group")
    sources: dict[str, list[dict[str, Any]]] = {
        kind: read_all(any_store, kind) for kind in ("log", "event", "metric", "error", "session")
    }
    sources["operation"] = operations(any_store)
    assert len(sources["operation"]) > 20
    for kind, everything in sources.items():
        for sel in selections(kind, everything, groups):
            expected = sum(1 for row in everything if selected(kind, row, sel))
            for source in ("raw", "auto"):
                assert count(any_store, kind, sel, source=source) == expected, (
                    f"aggregate({kind!r}, {sel}, {source})"
                )


# == cursors ========================================================================================
def test_paging_oldest_first_returns_every_row_once_in_the_order_stored(any_store: Store) -> None:
    now = time.time_ns()
    times = [now - (i % 5) * 1000 for i in range(130)]  # out of time order, with ties
    write_in_batches(any_store, [log(t, f"m{i}", session=f"s{i % 11}") for i, t in enumerate(times)], size=17)
    write_in_batches(
        any_store,
        [error(t, "E", f"msg {i}", stack(("/a.py", 1, f"f{i % 9}"))) for i, t in enumerate(times)],
        40,
    )
    for kind, key in (("log", "id"), ("error", "id"), ("session", "id"), ("error_group", "fingerprint")):
        whole = any_store.rows(kind, Selection(), limit=10_000).rows
        for limit in (1, 7, 1000):
            paged = read_all(any_store, kind, limit=limit)
            assert [r[key] for r in paged] == [r[key] for r in whole], (kind, limit)
            assert len({r[key] for r in paged}) == len(paged)
    logs = read_all(any_store, "log")
    assert [row["message"] for row in logs] == [f"m{i}" for i in range(130)], (
        "oldest first is the order stored"
    )
    assert ids(logs) == sorted(ids(logs))


def test_paging_newest_first_orders_by_time_then_id(any_store: Store) -> None:
    now = time.time_ns()
    rng = random.Random(3)
    times = [now - rng.randrange(40) * 1000 for _ in range(150)]  # many ties
    write_in_batches(any_store, [log(t, f"m{i}") for i, t in enumerate(times)], size=23)
    write_in_batches(any_store, [span(t, f"op{i}") for i, t in enumerate(times)], size=23)
    write_in_batches(any_store, [session_record(f"s{i}", t) for i, t in enumerate(times)], size=23)
    for kind, time_field in (("log", "time_ns"), ("span", "start_ns"), ("session", "start_ns")):
        oldest_first = read_all(any_store, kind)
        # Within one time, the later-stored row first; ids of sessions are not ordered, so by position.
        order = {row["id"]: position for position, row in enumerate(oldest_first)}
        want = sorted(oldest_first, key=lambda r: (r[time_field], order[r["id"]]), reverse=True)
        for limit in (1, 6, 1000):
            got = read_all(any_store, kind, newest_first=True, limit=limit)
            assert [r["id"] for r in got] == [r["id"] for r in want], (kind, limit)


def test_a_cursor_past_the_end_gives_an_empty_page_with_the_same_cursor(any_store: Store) -> None:
    any_store.write_batch([log(time.time_ns(), f"m{i}") for i in range(3)])
    for newest_first in (False, True):
        page = any_store.rows("log", Selection(), limit=3, newest_first=newest_first)
        assert len(page.rows) == 3 and isinstance(page.cursor, str)
        after = any_store.rows("log", Selection(), cursor=page.cursor, limit=3, newest_first=newest_first)
        assert after.rows == [] and after.cursor == page.cursor
    first = any_store.rows("log", Selection(), limit=3)
    any_store.write_batch([log(time.time_ns(), "late")])
    more = any_store.rows("log", Selection(), cursor=first.cursor)
    assert [row["message"] for row in more.rows] == ["late"], "a live follow picks up what came since"


def test_paging_while_threads_write_never_skips_a_committed_row(any_store: Store) -> None:
    writers, batches, size = 3, 30, 5
    failures: list[BaseException] = []

    def write(writer: int) -> None:
        try:
            for b in range(batches):
                now = time.time_ns()
                any_store.write_batch([log(now, f"w{writer} b{b} {i}", f"w{writer}") for i in range(size)])
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    seen: list[int] = []
    cursor = None
    while True:
        running = any(thread.is_alive() for thread in threads)
        page = any_store.rows("log", Selection(), cursor=cursor, limit=11)
        seen += ids(page.rows)
        cursor = page.cursor
        if not page.rows and not running:
            break
    for thread in threads:
        thread.join(timeout=SUBPROCESS_TIMEOUT)
    assert not failures
    everything = ids(read_all(any_store, "log"))
    assert len(everything) == writers * batches * size
    assert len(seen) == len(set(seen)), "no row twice"
    assert sorted(seen) == sorted(everything), "no committed row skipped"


def test_bad_requests_raise_value_error(any_store: Store) -> None:
    any_store.write_batch([log(time.time_ns())])
    with pytest.raises(ValueError):
        any_store.rows("nonsense", Selection())
    with pytest.raises(ValueError):
        any_store.rows("log", Selection(), cursor="not a cursor")
    with pytest.raises(ValueError):
        any_store.aggregate("nonsense", Selection())
    with pytest.raises(ValueError):
        any_store.aggregate("log", Selection(), ("bucket:61",))
    with pytest.raises(ValueError):
        any_store.aggregate("log", Selection(), (), ("median:time",))


# == aggregates =====================================================================================
def test_every_measure_matches_the_exact_values(any_store: Store) -> None:
    rng = random.Random(11)
    now = time.time_ns()
    base = now - 2 * DAY - now % HOUR
    records: list[Record] = []
    expected_ops: dict[str, list[tuple[float, bool, str]]] = {"op.a": [], "op.b": []}
    for i in range(600):
        t = base + rng.randrange(36 * 3600) * 10**9
        name = ("op.a", "op.b")[i % 2]
        duration = rng.lognormvariate(-2.0, 1.2)
        failed = rng.random() < 0.2
        session = f"s{i % 13}"
        if i % 3:
            records.append(
                span(t, name, max(1, round(duration * 1e9)), status=2 if failed else 0, session=session)
            )
            duration = max(1, round(duration * 1e9)) / 1e9
        else:
            records.append(
                log(
                    t,
                    "timed",
                    "perf",
                    PERFORMANCE,
                    session=session,
                    operation=name,
                    duration=duration,
                    success=not failed,
                )
            )
        expected_ops[name].append((duration, failed, session))
    points: dict[str, list[float]] = {"rss": [], "cpu": []}
    for i in range(300):
        name = ("rss", "cpu")[i % 2]
        value = rng.uniform(-50.0, 500.0)
        records.append(metric(base + rng.randrange(36 * 3600) * 10**9, name, value))
        points[name].append(value)
    usage: dict[tuple[str, str], list[dict[str, float]]] = {}
    for i in range(200):
        model = ("m-1", "m-2", "m-3")[i % 3]
        fields = {
            "input_tokens": rng.randrange(1000),
            "output_tokens": rng.randrange(500),
            "cost_usd": rng.random(),
        }
        records.append(event(base + rng.randrange(36 * 3600) * 10**9, "llm.request", model=model, **fields))
        usage.setdefault(("llm.request", model), []).append(fields)
    write_in_batches(any_store, records, size=250)

    for source in ("raw", "auto"):
        found = any_store.aggregate(
            "operation",
            Selection(),
            ("name",),
            (
                "count",
                "errors",
                "sum:duration",
                "min:duration",
                "max:duration",
                "quantiles:duration",
                "distinct:session_id",
            ),
            source=source,
        )
        assert sorted(row["name"] for row in found) == ["op.a", "op.b"]
        for row in found:
            values = [d for d, _, _ in expected_ops[row["name"]]]
            context = f"{source} {row['name']}"
            assert row["count"] == len(values), context
            assert row["errors"] == sum(f for _, f, _ in expected_ops[row["name"]]), context
            assert math.isclose(row["sum:duration"], math.fsum(values), rel_tol=1e-9), context
            assert math.isclose(row["min:duration"], min(values), rel_tol=1e-12), context
            assert math.isclose(row["max:duration"], max(values), rel_tol=1e-12), context
            assert row["distinct:session_id"] == len({s for _, _, s in expected_ops[row["name"]]}), context
            assert_sketch_close(row["quantiles:duration"], values, 0.01, context)

        found = any_store.aggregate(
            "metric",
            Selection(),
            ("name",),
            ("count", "sum:value", "min:value", "max:value", "quantiles:value"),
            source=source,
        )
        assert sorted(row["name"] for row in found) == ["cpu", "rss"]
        for row in found:
            values = points[row["name"]]
            context = f"{source} {row['name']}"
            assert row["count"] == len(values)
            assert math.isclose(row["sum:value"], math.fsum(values), rel_tol=1e-9), context
            assert row["min:value"] == min(values) and row["max:value"] == max(values), context
            assert_sketch_close(row["quantiles:value"], values, 0.01, context)

        found = any_store.aggregate(
            "event",
            Selection(),
            ("name", "model"),
            ("count", "sum:input_tokens", "sum:output_tokens", "sum:cost_usd", "sum:cache_read_tokens"),
            source=source,
        )
        assert sorted((row["name"], row["model"]) for row in found) == sorted(usage)
        for row in found:
            fields = usage[(row["name"], row["model"])]
            assert row["count"] == len(fields)
            for field in ("input_tokens", "output_tokens", "cost_usd"):
                assert math.isclose(row[f"sum:{field}"], math.fsum(f[field] for f in fields), rel_tol=1e-9)
            assert row["sum:cache_read_tokens"] == 0, "a field no event has sums to 0"

        [events] = any_store.aggregate("event", Selection(), (), ("distinct:model", "count"), source=source)
        assert events == {"distinct:model": 3, "count": 200}


def test_log_error_session_measures_match_the_exact_values(any_store: Store) -> None:
    now = time.time_ns()
    base = now - 3 * HOUR - now % HOUR
    severities = [DEBUG, INFO, WARNING, ERROR_LEVEL, CRITICAL]
    logs = [
        log(base + i * 7 * 10**9, f"m{i % 4}", ("a", "b")[i % 2], severities[i % 5], session=f"s{i % 3}")
        for i in range(100)
    ]
    errors = [
        error(base + i * 11 * 10**9, ("E1", "E2", "E3")[i % 3], "boom", stack(("/x.py", 1, f"f{i % 2}")))
        for i in range(30)
    ]
    sessions = [
        session_record("s0", base, end=base + 10 * 10**9, command="build", user_id="u1", exit_code=0),
        session_record("s1", base + 1, end=base + 1 + 20 * 10**9, command="build", user_id="u2", exit_code=2),
        session_record("s2", base + 2, command="test", user_id="u1"),
    ]
    any_store.write_batch(logs + errors + sessions)
    for source in ("raw", "auto"):
        found = any_store.aggregate(
            "log",
            Selection(),
            ("component",),
            ("count", "min:severity", "max:severity", "min:time", "max:time"),
            source=source,
        )
        for row in found:
            mine = [r for r in logs if r.name == row["component"]]
            assert row["count"] == len(mine), source
            assert row["min:severity"] == min(r.severity for r in mine) and row["max:severity"] == max(
                r.severity for r in mine
            )
            assert row["min:time"] == min(r.time_ns for r in mine) and row["max:time"] == max(
                r.time_ns for r in mine
            )
        by_severity = any_store.aggregate("log", Selection(), ("severity",), ("count",), source=source)
        assert {row["severity"]: row["count"] for row in by_severity} == Counter(r.severity for r in logs)
        [row] = any_store.aggregate(
            "log", Selection(), (), ("distinct:component", "distinct:session_id"), source=source
        )
        assert row == {"distinct:component": 2, "distinct:session_id": 3}

        by_type = any_store.aggregate(
            "error", Selection(), ("type",), ("count", "distinct:fingerprint"), source=source
        )
        assert {row["type"]: (row["count"], row["distinct:fingerprint"]) for row in by_type} == {
            "E1": (10, 2),
            "E2": (10, 2),
            "E3": (10, 2),
        }

    by_command = any_store.aggregate(
        "session",
        Selection(),
        ("command",),
        ("count", "sum:duration", "max:exit_code", "sum:failed", "distinct:user_id"),
    )
    assert {row["command"]: row for row in by_command} == {
        "build": {
            "command": "build",
            "count": 2,
            "sum:duration": 30.0,
            "max:exit_code": 2,
            "sum:failed": 1,
            "distinct:user_id": 2,
        },
        "test": {
            "command": "test",
            "count": 1,
            "sum:duration": 0.0,
            "max:exit_code": None,
            "sum:failed": 0,
            "distinct:user_id": 1,
        },
    }


@pytest.mark.parametrize("width", [60, 3600, 86_400])
def test_time_buckets_count_the_records_of_each_utc_aligned_bucket(any_store: Store, width: int) -> None:
    rng = random.Random(width)
    now = time.time_ns()
    start = now - 3 * DAY
    times = [start + rng.randrange(3 * 86_400 * 1000) * 10**6 for _ in range(400)]
    times += [
        start - start % DAY + DAY,
        start - start % HOUR + HOUR,
        start - start % MINUTE + MINUTE,
    ]  # on edges
    records = [span(t, "op", rng.randrange(1, 10**9)) for t in times] + [log(t) for t in times]
    write_in_batches(any_store, records, size=200)
    wide = width * 10**9
    want = Counter(t - t % wide for t in times)
    for kind in ("operation", "log"):
        for source in ("raw", "auto"):
            found = any_store.aggregate(kind, Selection(), (f"bucket:{width}",), ("count",), source=source)
            assert {row[f"bucket:{width}"]: row["count"] for row in found} == want, (kind, source)
    found = any_store.aggregate(
        "operation", Selection(), (f"bucket:{width}", "name"), ("count", "quantiles:duration")
    )
    assert sum(row["count"] for row in found) == len(times)


# -- the key property: rollups answer exactly as raw rows do ------------------------------------------
Request = tuple[str, dict[str, Any], tuple[str, ...], tuple[str, ...]]  # kind, filters, group_by, measures
OPERATION_MEASURES = ("count", "errors", "sum:duration", "min:duration", "max:duration", "quantiles:duration")
METRIC_MEASURES = ("count", "sum:value", "min:value", "max:value", "quantiles:value")
REQUESTS: dict[str, Request] = {
    "log-count": ("log", {}, (), ("count",)),
    "log-by-component-severity": ("log", {}, ("component", "severity"), ("count", "min:time", "max:time")),
    "log-of-a-service-by-hour": ("log", {"service": "svc-b"}, ("bucket:3600",), ("count",)),
    "log-warnings-by-service-minute": (
        "log",
        {"min_severity": WARNING},
        ("service", "bucket:60"),
        ("count",),
    ),
    "log-of-a-component-by-severity": ("log", {"component": "db"}, ("severity",), ("count",)),
    "log-errors-by-message": (
        "log",
        {"min_severity": ERROR_LEVEL},
        ("component", "message"),
        ("count", "max:severity", "max:time"),
    ),
    "log-warnings-by-message": ("log", {"min_severity": WARNING}, ("message",), ("count",)),
    "event-usage-by-name-model": (
        "event",
        {},
        ("name", "model"),
        ("count", "sum:input_tokens", "sum:cost_usd", "min:time"),
    ),
    "event-tokens-by-day-without-count": (
        "event",
        {"name": "llm.request"},
        ("bucket:86400",),
        ("sum:input_tokens",),
    ),
    "operation-every-measure-by-name": ("operation", {}, ("name",), OPERATION_MEASURES),
    "operation-ungrouped-without-count": ("operation", {}, (), ("sum:duration", "max:duration")),
    "operation-of-a-service-by-minute": (
        "operation",
        {"service": "svc-a"},
        ("bucket:60",),
        ("count", "quantiles:duration"),
    ),
    "operation-by-two-hours-service": (
        "operation",
        {"name": "op.b"},
        ("bucket:7200", "service"),
        ("count", "errors"),
    ),
    "metric-every-measure-by-name": ("metric", {}, ("name",), METRIC_MEASURES),
    "error-by-type-fingerprint": ("error", {}, ("type", "fingerprint"), ("count", "min:time", "max:time")),
    "error-of-a-type-by-day": ("error", {"name": "KeyError"}, ("bucket:86400",), ("count",)),
}


def spread_world(rng: random.Random, start: int, end: int, n: int) -> list[Record]:
    """``n`` records of every aggregated kind between ``start`` and ``end``, some right on minute,
    hour and day edges (and one nanosecond off them)."""
    out: list[Record] = []
    severities = (DEBUG, INFO, PERFORMANCE, WARNING, ERROR_LEVEL, CRITICAL)
    for _ in range(n):
        t = rng.randrange(start, end)
        edge = rng.random()
        for p, width in ((0.05, MINUTE), (0.08, HOUR), (0.1, DAY)):
            if edge < p:
                t = t - t % width + rng.choice((0, 0, -1, 1))
                break
        res = (A, B)[rng.random() < 0.3]
        kind = rng.random()
        if kind < 0.35:
            severity = rng.choice(severities)
            attrs: dict[str, Any] = {}
            if severity == PERFORMANCE:
                attrs = {
                    "duration": rng.lognormvariate(-1, 1),
                    "operation": rng.choice(("op.a", "op.b")),
                    "success": rng.random() > 0.1,
                }
            message = rng.choice(("disk full", "timeout", "ok"))
            if message == "timeout":  # messages with ids: errors are counted by the message's shape
                message = f"timeout after {rng.randrange(5000)} ms on req_{rng.randrange(10**6):x}"
            out.append(
                log(
                    t,
                    message,
                    rng.choice(("app", "db", "http")),
                    severity,
                    res=res,
                    **attrs,
                )
            )
        elif kind < 0.55:
            attrs = {"input_tokens": rng.randrange(2000), "cost_usd": rng.random() / 10}
            if rng.random() < 0.8:
                attrs["model"] = rng.choice(("m-1", "m-2"))
            out.append(event(t, rng.choice(("llm.request", "command")), res=res, **attrs))
        elif kind < 0.8:
            duration = max(1, int(rng.lognormvariate(17, 2)))
            out.append(
                span(
                    t,
                    rng.choice(("op.a", "op.b", "op.c")),
                    duration,
                    status=2 if rng.random() < 0.1 else 0,
                    res=res,
                )
            )
        elif kind < 0.9:
            out.append(metric(t, rng.choice(("rss", "cpu")), rng.uniform(0, 1000), res=res))
        else:
            out.append(
                error(
                    t,
                    rng.choice(("ValueError", "KeyError")),
                    "bad",
                    stack(("/m.py", 1, rng.choice("fgh"))),
                    res=res,
                )
            )
    return out


def odd_world(rng: random.Random, start: int, end: int) -> list[Record]:
    """Records with the odd values real programs send: numbers as text or booleans, non-string names,
    spans that end before they start (a clock stepped back), metric points that are not finite."""
    out: list[Record] = []
    perf_attrs: list[dict[str, Any]] = [
        {"duration": 2, "operation": "op.a"},
        {"duration": True, "operation": "op.a"},
        {"duration": "1.5", "operation": "op.a"},
        {"duration": 0.25, "operation": ""},
        {"duration": 0.5, "operation": 42},
        {"duration": 0.75, "operation": "op.b", "success": "false"},
        {"duration": -0.5, "operation": "op.b"},
    ]
    event_attrs: list[dict[str, Any]] = [
        {"model": 3, "input_tokens": 10},
        {"model": "", "input_tokens": "12"},
        {"model": None, "input_tokens": True, "cost_usd": 0.5},
        {"model": "m-1", "input_tokens": 2**62, "output_tokens": 1.5},
    ]
    for i in range(8):
        for attrs in perf_attrs:
            out.append(
                log(rng.randrange(start, end), "timed", "perf", rng.choice((PERFORMANCE, 12)), **attrs)
            )
        for attrs in event_attrs:
            out.append(event(rng.randrange(start, end), "llm.request", **attrs))
        t = rng.randrange(start, end)
        out.append(span(t, "op.c", -rng.randrange(1, 10**9)))  # ends before it starts
        out.append(span(t, "op.c", 0, status=(1, 17)[i % 2]))
        for value in (math.nan, math.inf, -math.inf, None, 7, -3.5):
            out.append(metric(rng.randrange(start, end), "odd", value))
    return out


def random_window(rng: random.Random, start: int, end: int) -> tuple[int | None, int | None]:
    def moment() -> int:
        t = rng.randrange(start - HOUR, end + HOUR)
        align = rng.random()
        if align < 0.2:
            return t - t % DAY + rng.choice((0, -1, 1))
        if align < 0.4:
            return t - t % HOUR + rng.choice((0, -1, 1))
        if align < 0.6:
            return t - t % MINUTE + rng.choice((0, -1, 1))
        return t

    lo, hi = sorted((moment(), moment()))
    shape = rng.random()
    if shape < 0.1:
        return None, hi
    if shape < 0.2:
        return lo, None
    if shape < 0.25:
        return None, None
    if shape < 0.35:
        return lo, lo + rng.randrange(1, 3 * MINUTE)  # a few minutes only
    return lo, hi


def assert_same_answers(
    auto: list[dict[str, Any]],
    raw: list[dict[str, Any]],
    group_by: Sequence[str],
    measures: Sequence[str],
    context: str,
) -> None:
    def keyed(rows: list[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
        return {tuple(row[g] for g in group_by): row for row in rows}

    mine, theirs = keyed(auto), keyed(raw)
    assert len(mine) == len(auto) and len(theirs) == len(raw), f"{context}: one row per group"
    assert mine.keys() == theirs.keys(), f"{context}: groups differ: auto {sorted(mine)} raw {sorted(theirs)}"
    for key, row in mine.items():
        other = theirs[key]
        for m in measures:
            a, b = row[m], other[m]
            where = f"{context} group {key} {m}: auto {a!r} raw {b!r}"
            if m.startswith("quantiles:"):
                assert (a is None) == (b is None), where
                if a is not None:
                    assert a.count == b.count, where
                    for q in (0.5, 0.9, 0.99):
                        qa, qb = a.quantile(q), b.quantile(q)
                        assert math.isclose(qa, qb, rel_tol=0.02, abs_tol=1e-12), (
                            f"{where} q{q}: {qa} vs {qb}"
                        )
            elif isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
                continue
            elif m.startswith("sum:"):
                assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9), where
            elif a is None or b is None or m.endswith(":time") or m in ("count", "errors"):
                assert a == b, where
            else:
                assert math.isclose(a, b, rel_tol=1e-12), where


@pytest.mark.parametrize("request_name", list(REQUESTS))
def test_rollups_answer_exactly_as_raw_rows_for_random_windows(any_store: Store, request_name: str) -> None:
    """The key property: rollups (whole minutes, hours, days) plus raw edges give what raw rows give."""
    kind, extra, group_by, measures = REQUESTS[request_name]
    rng = random.Random(20240608)
    # A fixed time, not the clock: the same records and windows every run, so a failure reproduces.
    start, end = ANCHOR - 4 * DAY - 3 * HOUR, ANCHOR
    write_in_batches(any_store, spread_world(rng, start, end, 3000) + odd_world(rng, start, end), size=500)
    for _ in range(40):
        since, until = random_window(rng, start, end)
        sel = Selection(since_ns=since, until_ns=until, **extra)
        auto = any_store.aggregate(kind, sel, group_by, measures, source="auto")
        raw = any_store.aggregate(kind, sel, group_by, measures, source="raw")
        assert_same_answers(
            auto, raw, group_by, measures, f"aggregate({kind!r}, {sel}, {group_by}, {measures})"
        )


# == sessions and error groups ======================================================================
def test_session_counters_count_every_record_of_the_session_across_batches(any_store: Store) -> None:
    now = time.time_ns()
    any_store.write_batch(
        [session_record("s1", now, command="deploy", region="eu"), log(now + 1, session="s1")]
    )
    any_store.write_batch(
        [
            log(now + 2, "oops", severity=ERROR_LEVEL, session="s1"),
            log(now + 3, session="s1"),
            event(now + 4, session="s1"),
            event(now + 5, session="s1"),
            error(now + 6, session="s1"),
            error(now + 7, session="s1"),
            span(now + 8, session="s1"),
            metric(now + 9, session="s1"),
            log(now + 10, session="other"),
        ]
    )
    any_store.write_batch([session_record("s1", now, end=now + 100, exit_code=1, user_id="u", tier="gold")])
    sessions = {row["id"]: row for row in read_all(any_store, "session")}
    assert sessions["s1"] == {
        "id": "s1",
        "service": "svc-a",
        "start_ns": now,
        "end_ns": now + 100,
        "exit_code": 1,
        "command": "deploy",  # kept from the first record: the later one did not say
        "user_id": "u",
        "attributes": {"region": "eu", "tier": "gold"},
        "log_count": 3,
        "error_count": 3,  # the ERROR log and two errors
        "event_count": 2,
    }
    # A session only its records named: it exists, starting at its first record.
    assert sessions["other"]["start_ns"] == now + 10 and sessions["other"]["log_count"] == 1
    assert sessions["other"]["end_ns"] is None and sessions["other"]["attributes"] == {}
    # Its records are found by it, spans and metric points too.
    for kind, expected in (("log", 3), ("event", 2), ("error", 2), ("span", 1), ("metric", 1)):
        assert len(read_all(any_store, kind, Selection(session_id="s1"))) == expected, kind
    assert read_all(any_store, "log", Selection(session_id="nope")) == []


def test_error_groups_gather_the_same_stack_and_keep_their_status(any_store: Store) -> None:
    now = time.time_ns()
    first = stack(("/srv/app/models.py", 10, "load"), ("/srv/app/db.py", 20, "query"))
    moved = stack(("/srv/app/models.py", 14, "load"), ("/srv/app/db.py", 27, "query"))  # lines changed
    other = stack(("/srv/app/models.py", 10, "save"))
    any_store.write_batch(
        [error(now, "KeyError", "missing 'a'", first), error(now + 5, "KeyError", "missing 'b'", moved)]
    )
    any_store.write_batch(
        [error(now + 2, "KeyError", "missing 'c'", other), error(now - 3, "KeyError", "missing 'd'", first)]
    )
    any_store.write_batch(
        [error(now + 9, "IOError", "no stack 42"), error(now + 10, "IOError", "no stack 43")]
    )
    any_store.write_batch(
        [
            error(now + 11, "Custom", "given", fingerprint="fp-given"),
            error(now + 12, "Custom", "x", fingerprint="fp-given"),
        ]
    )
    errors = read_all(any_store, "error")
    fp = [row["fingerprint"] for row in errors]
    assert fp[0] == fp[1] == fp[3], "the same frames are one group, whatever the line numbers and message"
    assert fp[2] != fp[0], "other frames are another group"
    assert fp[4] == fp[5] != fp[0], "without a stack, messages that differ only in numbers are one group"
    assert fp[6] == fp[7] == "fp-given"
    groups = {row["fingerprint"]: row for row in read_all(any_store, "error_group")}
    assert len(groups) == 4
    assert groups[fp[0]] == {
        "fingerprint": fp[0],
        "type": "KeyError",
        "title": "KeyError: missing 'a'",
        "status": "open",
        "count": 3,
        "first_seen_ns": now - 3,
        "last_seen_ns": now + 5,
    }
    assert groups[fp[2]]["count"] == 1 and groups["fp-given"]["count"] == 2
    any_store.write_batch([error(now + 20, "KeyError", "missing 'e'", first)])
    group = {row["fingerprint"]: row for row in read_all(any_store, "error_group")}[fp[0]]
    assert (group["count"], group["last_seen_ns"], group["status"], group["title"]) == (
        4,
        now + 20,
        "open",
        "KeyError: missing 'a'",
    )
    assert [row["fingerprint"] for row in read_all(any_store, "error_group", Selection(name="fp-given"))] == [
        "fp-given"
    ]
    for source in ("raw", "auto"):
        found = any_store.aggregate("error", Selection(), ("fingerprint",), ("count",), source=source)
        assert {row["fingerprint"]: row["count"] for row in found} == {
            fp[0]: 4,
            fp[2]: 1,
            fp[4]: 2,
            "fp-given": 2,
        }


# == state ==========================================================================================
def test_state_is_saved_loaded_and_overwritten(any_store: Store) -> None:
    assert any_store.load_state("missing") is None
    value = {"mean": 1.5, "history": [1, 2, 3], "name": "détecteur ☃", "nested": {"ok": True, "none": None}}
    any_store.save_state("detector:latency", value)
    assert any_store.load_state("detector:latency") == value
    any_store.save_state("detector:latency", [4, 5])
    assert any_store.load_state("detector:latency") == [4, 5]
    any_store.save_state("n", 7)
    any_store.save_state("s", "text")
    assert any_store.load_state("n") == 7 and any_store.load_state("s") == "text"


def test_state_items_take_the_prefix_literally(any_store: Store) -> None:
    keys = ["a%b:1", "a%b:2", "axb:1", "a_b:1", "aXb:1", "a\\b:1", "a\\\\b:1", "A%B:1", "a%b", "a%bc"]
    for i, key in enumerate(keys):
        any_store.save_state(key, i)
    assert any_store.state_items("a%b:") == [("a%b:1", 0), ("a%b:2", 1)]
    assert any_store.state_items("a_b") == [("a_b:1", 3)]
    assert any_store.state_items("a\\b") == [("a\\b:1", 5)]
    assert any_store.state_items("a%b") == [("a%b", 8), ("a%b:1", 0), ("a%b:2", 1), ("a%bc", 9)]
    assert [k for k, _ in any_store.state_items("")] == sorted(keys), "in key order (code points)"
    assert any_store.state_items("zzz") == []


def test_delete_state_removes_exactly_the_keys_given(any_store: Store) -> None:
    keys = [f"alert:state:{i}" for i in range(1200)]  # more than one chunk of SQLite's parameters
    for key in [*keys, "alert:state:kept", "other"]:
        any_store.save_state(key, {"k": key})
    assert any_store.delete_state([*keys, "never-saved"]) == len(keys)
    assert any_store.state_items("alert:state:") == [("alert:state:kept", {"k": "alert:state:kept"})]
    assert any_store.load_state("other") == {"k": "other"}
    assert any_store.delete_state([]) == 0 and any_store.delete_state(keys[:3]) == 0


def test_claim_state_saves_only_when_the_key_is_free(any_store: Store) -> None:
    assert any_store.claim_state("alert:claim:1", {"by": "first"}) is True
    assert any_store.claim_state("alert:claim:1", {"by": "second"}) is False
    assert any_store.load_state("alert:claim:1") == {"by": "first"}, "a lost claim changes nothing"
    any_store.save_state("taken", 1)
    assert any_store.claim_state("taken", 2) is False and any_store.load_state("taken") == 1
    any_store.save_state("alert:claim:1", "overwritten")  # save_state still replaces a claimed value
    assert any_store.load_state("alert:claim:1") == "overwritten"


def test_claim_state_has_one_winner_among_racing_store_objects(
    any_store: Store, backend: str, store_url: str
) -> None:
    # Each thread claims through its own store object (its own connection), as separate processes do;
    # the in-memory store is private to one object, so there the threads share it.
    stores = [any_store] + ([] if backend == "memory" else [open_store(store_url) for _ in range(3)])
    start = threading.Barrier(8)
    wins: list[tuple[int, int]] = []

    def claim(i: int) -> None:
        store = stores[i % len(stores)]
        start.wait(timeout=30)
        for key in range(20):
            if store.claim_state(f"race:{key}", i):
                wins.append((key, i))

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        for other in stores[1:]:
            other.close()
    assert sorted(key for key, _ in wins) == list(range(20)), "exactly one winner per key"
    assert {key: any_store.load_state(f"race:{key}") for key in range(20)} == dict(wins)


def test_state_items_since_returns_keys_saved_from_then_on(any_store: Store) -> None:
    any_store.save_state("job:old", 1)
    any_store.save_state("job:touched", 2)
    time.sleep(0.01)
    mark = time.time_ns()
    time.sleep(0.01)
    any_store.save_state("job:new", 3)
    any_store.save_state("job:touched", 4)  # overwriting counts as saving
    assert any_store.state_items("job:", since_ns=mark) == [("job:new", 3), ("job:touched", 4)]
    assert len(any_store.state_items("job:")) == 3


# == once keys ======================================================================================
def test_once_key_stores_a_batch_exactly_once(any_store: Store) -> None:
    batch = [log(time.time_ns(), f"m{i}", session="s") for i in range(5)]
    assert any_store.write_batch(batch, once_key="spool:abc") is True
    assert any_store.write_batch(batch, once_key="spool:abc") is False
    assert any_store.write_batch(batch, once_key="spool:def") is True
    assert len(read_all(any_store, "log")) == 10
    assert count(any_store, "log") == 10 and read_all(any_store, "session")[0]["log_count"] == 10
    assert any_store.load_state("spool:abc") == 5, "the key remembers how many records came in"


def test_once_key_wins_once_among_racing_threads(any_store: Store) -> None:
    batch = [log(time.time_ns(), f"m{i}") for i in range(20)]
    results: list[bool] = []
    start = threading.Barrier(6)

    def write() -> None:
        start.wait(timeout=30)
        results.append(any_store.write_batch(batch, once_key="spool:race"))

    threads = [threading.Thread(target=write) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=SUBPROCESS_TIMEOUT)
    assert sorted(results) == [False] * 5 + [True]
    assert len(read_all(any_store, "log")) == 20


def test_exit_key_acts_as_once_key_only_with_a_finite_deadline(any_store: Store) -> None:
    batch = [log(time.time_ns(), "at exit")]
    exiting = Deadline(time.monotonic() + 30)
    assert any_store.write_batch(batch, deadline=exiting, exit_key="exit:1") is True
    assert any_store.write_batch(batch, deadline=Deadline(time.monotonic() + 30), exit_key="exit:1") is False
    assert any_store.write_batch(batch, exit_key="exit:2") is True
    assert any_store.write_batch(batch, deadline=Deadline(), exit_key="exit:2") is True
    assert any_store.load_state("exit:2") is None, "no marker is kept outside exit"
    assert len(read_all(any_store, "log")) == 3


# == retention ======================================================================================
def test_retention_drops_old_raw_rows_and_rollups_answer_for_them(any_store: Store) -> None:
    now = time.time_ns()
    ages = {"recent": 10, "past_raw": 40, "past_minute": 100, "past_hour": 500, "past_day": 800}
    written: dict[str, list[int]] = {}
    for label, days in ages.items():
        # Twelve records around noon of a day that many days ago, a few minutes apart.
        noon = now - days * DAY - (now - days * DAY) % DAY + 12 * HOUR
        written[label] = [noon + i * 3 * MINUTE + i for i in range(12)]
        any_store.write_batch(
            [log(t, label, session=f"sess-{label}") for t in written[label]]
            + [span(t, label, 5_000_000) for t in written[label]]
            + [session_record(f"sess-{label}", written[label][0], end=written[label][-1])]
        )
    assert any_store.apply_retention(NO_AGE).total_deleted == 0, "ages of 0 keep everything"
    assert len(read_all(any_store, "log")) == 60

    result = any_store.apply_retention(RetentionPolicy())  # raw 30 days, minutes 90, hours 400, days 730
    assert result.deleted["logs"] == 48 and result.deleted["spans"] == 48 and result.deleted["sessions"] == 4
    assert result.deleted["rollups"] > 0
    assert {row["message"] for row in read_all(any_store, "log")} == {"recent"}
    assert {row["name"] for row in read_all(any_store, "span")} == {"recent"}
    assert [row["id"] for row in read_all(any_store, "session")] == ["sess-recent"]

    def day_of(label: str) -> Selection:
        first = written[label][0]
        return Selection(since_ns=first - first % DAY, until_ns=first - first % DAY + DAY - 1)

    def hours(label: str) -> Counter[int]:
        return Counter(t - t % HOUR for t in written[label])

    for label in ("recent", "past_raw", "past_minute", "past_hour"):
        assert count(any_store, "log", day_of(label)) == 12, f"{label}: the day rollup still counts"
        assert count(any_store, "operation", day_of(label)) == 12, label
    assert count(any_store, "log", day_of("past_day")) == 0, "past day_days: gone"
    for label in ("past_raw", "past_minute", "past_hour", "past_day"):
        assert count(any_store, "log", day_of(label), source="raw") == 0, f"{label}: raw rows gone"

    def by(label: str, width: int) -> dict[int, int]:
        found = any_store.aggregate("log", day_of(label), (f"bucket:{width}",), ("count",))
        return {row[f"bucket:{width}"]: row["count"] for row in found}

    assert sum(by("past_raw", 60).values()) == 12, "within minute_days: minute rollups answer"
    assert by("past_minute", 60) == {}, "past minute_days: no minute rollups"
    assert by("past_minute", 3600) == hours("past_minute"), "within hour_days: hour rollups answer"
    assert by("past_hour", 3600) == {}, "past hour_days: no hour rollups"
    assert by("past_hour", 86_400) == {written["past_hour"][0] - written["past_hour"][0] % DAY: 12}
    [ops] = any_store.aggregate("operation", day_of("past_hour"), (), ("count", "quantiles:duration"))
    assert ops["count"] == 12
    assert_sketch_close(ops["quantiles:duration"], [0.005] * 12, 0.01, "percentiles outlive raw rows")


def test_retention_drops_history_kept_as_state_with_the_records_and_no_other_state(
    any_store: Store, backend: str
) -> None:
    """Spool and exit markers, alert transitions and notification claims are history of records:
    past the raw cutoff they go; offsets, alert states, silences and other state stay.  PostgreSQL
    keeps whole UTC days (its raw rows are day partitions), so state of today stays there."""
    from clisight.query import alerts as alert_keys

    assert {alert_keys.EVENT_PREFIX, alert_keys.NOTIFIED_PREFIX} <= set(HISTORY_STATE_PREFIXES)
    history = [f"{prefix}old" for prefix in HISTORY_STATE_PREFIXES]
    others = ["alert:state:old", "alert:silence:old", "claude_code:offset:old", "otlp:cumulative:00", "old"]
    for key in history + others:
        any_store.save_state(key, {"n": 1})
    time.sleep(1.5)
    recent = [f"{prefix}new" for prefix in HISTORY_STATE_PREFIXES]
    for key in recent:
        any_store.save_state(key, {"n": 2})
    # Raw records older than 1 s go (the old keys are at least 1.5 s old, the new ones just written).
    any_store.apply_retention(replace(NO_AGE, raw_days=1 / 86_400))
    kept = {key for key in history + others + recent if any_store.load_state(key) is not None}
    assert kept == set(others + recent + (history if backend == "postgres" else []))


def test_ids_are_never_given_again_after_retention_emptied_a_table(any_store: Store) -> None:
    now = time.time_ns()
    old = now - 40 * DAY
    any_store.write_batch([log(old + i, f"old {i}") for i in range(5)] + [error(old, "E", "old")])
    before = any_store.rows("log", Selection())
    last_error = read_all(any_store, "error")[-1]["id"]
    assert any_store.apply_retention(RetentionPolicy(raw_days=30)).deleted["logs"] == 5
    assert read_all(any_store, "log") == []
    any_store.write_batch([log(now, "new"), error(now, "E", "new")])
    [fresh] = read_all(any_store, "log")
    assert fresh["id"] > max(ids(before.rows)) and read_all(any_store, "error")[-1]["id"] > last_error
    follow = any_store.rows("log", Selection(), cursor=before.cursor)
    assert [row["message"] for row in follow.rows] == ["new"], (
        "a follow from before retention sees the new row"
    )


def test_size_cap_deletes_the_oldest_records_first(any_store: Store) -> None:
    keep_all = RetentionPolicy(raw_days=0, minute_days=0, hour_days=0, day_days=0, max_bytes=10**12)
    any_store.migrate()
    empty = any_store.apply_retention(keep_all).bytes_after  # what the store takes with no record in it
    now = time.time_ns()
    padding = "x" * 1000
    records = [log(now - (2000 - i) * 10**9, f"{i} {padding}") for i in range(2000)]
    records += [event(now - (2000 - i) * 10**9 + 1, "e", note=padding) for i in range(0, 2000, 4)]
    write_in_batches(any_store, records, size=500)
    everything = {kind: read_all(any_store, kind) for kind in ("log", "event")}
    unchanged = any_store.apply_retention(keep_all)
    assert unchanged.total_deleted == 0
    before = unchanged.bytes_after
    assert before > empty
    cap = empty + (before - empty) * 6 // 10
    result = any_store.apply_retention(replace(keep_all, max_bytes=cap))
    kept = {kind: read_all(any_store, kind) for kind in ("log", "event")}
    assert 0 < sum(map(len, kept.values())) < sum(map(len, everything.values()))
    assert result.deleted["logs"] == len(everything["log"]) - len(kept["log"])
    assert result.deleted["events"] == len(everything["event"]) - len(kept["event"])
    for kind, rows in everything.items():
        still = set(ids(kept[kind]))
        gone = [row["time_ns"] for row in rows if row["id"] not in still]
        if gone and still:
            assert max(gone) <= min(row["time_ns"] for row in kept[kind]), f"{kind}: the oldest go first"
    newest = max(everything["log"] + everything["event"], key=lambda row: row["time_ns"])
    assert newest in kept["log"] + kept["event"], "the newest record stays"
    assert result.bytes_before == before and result.bytes_after < result.bytes_before
    assert result.bytes_after <= cap * 1.1, f"the store fits the cap ({result.bytes_after} > {cap})"


# == migrations, info, close, fork ==================================================================
def test_a_new_store_is_at_the_latest_schema_and_migrating_again_changes_nothing(
    any_store: Store, backend: str, store_url: str
) -> None:
    assert any_store.migrate() == LATEST_VERSION
    assert any_store.schema_version() == LATEST_VERSION
    make = Make()
    any_store.write_batch(
        [make.log(), make.event(), make.span(), make.metric(), make.error(), make.session("s")]
    )
    any_store.save_state("k", 1)
    before = {kind: read_all(any_store, kind) for kind in EXPORT_FIELDS}
    assert any_store.migrate() == LATEST_VERSION
    assert {kind: read_all(any_store, kind) for kind in EXPORT_FIELDS} == before
    assert any_store.info().schema_version == LATEST_VERSION
    if persistent(backend):
        again = open_store(store_url)
        try:
            assert again.migrate() == LATEST_VERSION
            assert {kind: read_all(again, kind) for kind in EXPORT_FIELDS} == before
            assert again.load_state("k") == 1
        finally:
            again.close()


def test_info_names_the_backend_and_counts_the_rows(any_store: Store, backend: str, store_url: str) -> None:
    now = time.time_ns()
    any_store.write_batch([log(now - 5), log(now), event(now + 3), span(now - 9), metric(now), error(now)])
    info = any_store.info()
    assert info.backend == BACKEND_NAMES[backend]
    assert info.url == redact_url(store_url) and info.schema_version == LATEST_VERSION
    counts = info.row_counts
    assert (counts["logs"], counts["events"], counts["spans"], counts["metric_points"], counts["errors"]) == (
        2,
        1,
        1,
        1,
        1,
    )
    assert counts["error_groups"] == 1 and counts["rollups"] > 0
    assert (info.oldest_ns, info.newest_ns) == (now - 9, now + 3)


def test_after_close_a_store_reopens_or_says_it_cannot(any_store: Store, backend: str) -> None:
    any_store.write_batch([log(time.time_ns(), "kept")])
    any_store.close()
    if persistent(backend):
        assert [row["message"] for row in read_all(any_store, "log")] == ["kept"], "reopens on next use"
        return
    for use in (
        lambda: any_store.rows("log", Selection()),
        lambda: any_store.write_batch([log(1)]),
        lambda: any_store.aggregate("log", Selection()),
        lambda: any_store.load_state("k"),
        lambda: any_store.info(),
    ):
        with pytest.raises(StoreError, match="closed; an in-memory store cannot be reopened"):
            use()
    any_store.close()  # closing twice is fine


def _wait(pid: int, timeout: float = SUBPROCESS_TIMEOUT) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError("the forked child did not finish in time")


def test_a_forked_child_reads_and_writes_after_after_fork(any_store: Store, backend: str) -> None:
    any_store.write_batch([log(time.time_ns(), "from parent")])
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            any_store.after_fork()
            seen = [row["message"] for row in read_all(any_store, "log")]
            any_store.write_batch([log(time.time_ns(), "from child")])
            both = [row["message"] for row in read_all(any_store, "log")]
            code = 0 if seen == ["from parent"] and both == ["from parent", "from child"] else 2
        finally:
            os._exit(code)
    assert _wait(pid) == 0
    messages = [row["message"] for row in read_all(any_store, "log")]
    # The child of a memory store owns a copy; the others share the database.
    assert messages == (["from parent", "from child"] if persistent(backend) else ["from parent"])
    any_store.write_batch([log(time.time_ns(), "parent again")])
    assert read_all(any_store, "log")[-1]["message"] == "parent again"


# == several processes, kill -9 =====================================================================
WRITER = r"""
import os, sys, time
from clisight.store import open_store
from clisight.types import Record, Resource

url, go = sys.argv[1], sys.argv[5]
writer, batches, size = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
store = open_store(url)
store.migrate()
res = Resource("multi", pid=writer)
deadline = time.monotonic() + 30
while not os.path.exists(go) and time.monotonic() < deadline:
    time.sleep(0.005)
for b in range(batches):
    now = time.time_ns()
    attrs = {"writer": writer, "batch": b}
    store.write_batch([
        Record("log", now, f"w{writer}", f"w{writer} b{b} i{i}", 9, attrs, res, "shared") for i in range(size)
    ])
once = [Record("event", time.time_ns(), "once", "", 0, {"writer": writer}, res)]
won = store.write_batch(once, once_key="spool:multi")
print("once", int(won), flush=True)
store.close()
"""

KILLED = r"""
import sys, time
from clisight.store import open_store
from clisight.types import Record, Resource

url, first, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
store = open_store(url)
res = Resource("victim")
pad, sid = "p" * 50, "victim-session"
b = first
while True:
    now = time.time_ns()
    store.write_batch([
        Record("log", now + i, "victim", f"b{b} i{i}", 9, {"batch": b, "i": i, "pad": pad}, res, sid)
        for i in range(size)
    ])
    print(b, flush=True)
    b += 1
"""


def _python(script: Path, *args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(script), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_processes_write_one_store_at_once_and_readers_miss_nothing(
    any_store: Store, backend: str, store_url: str, tmp_path: Path
) -> None:
    if not persistent(backend):
        pytest.skip("a memory:// store belongs to one process: other processes cannot open it")
    any_store.migrate()
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    go = tmp_path / "go"
    writers, batches, size = 3, 25, 20
    procs = [_python(script, store_url, w, batches, size, go) for w in range(writers)]
    go.touch()
    seen: list[int] = []
    cursor = None
    outputs = []
    try:
        deadline = time.monotonic() + SUBPROCESS_TIMEOUT
        while True:
            running = any(proc.poll() is None for proc in procs)
            page = any_store.rows("log", Selection(), cursor=cursor, limit=37)
            seen += ids(page.rows)
            cursor = page.cursor
            if not page.rows and not running:
                break
            assert time.monotonic() < deadline, "writers did not finish in time"
            if not page.rows:
                time.sleep(0.005)
        for proc in procs:
            out, err = proc.communicate(timeout=SUBPROCESS_TIMEOUT)
            assert proc.returncode == 0, err
            outputs.append(out)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    total = writers * batches * size
    everything = read_all(any_store, "log")
    assert len(everything) == total
    assert len(seen) == len(set(seen)) and sorted(seen) == sorted(ids(everything)), (
        "a reader paging along missed nothing"
    )
    assert Counter(row["attributes"]["writer"] for row in everything) == dict.fromkeys(
        range(writers), batches * size
    )
    [shared] = read_all(any_store, "session", Selection(session_id="shared"))
    assert shared["log_count"] == total, "no counter increment lost between processes"
    for source in ("auto", "raw"):
        found = any_store.aggregate("log", Selection(), ("component",), ("count",), source=source)
        assert {row["component"]: row["count"] for row in found} == {
            f"w{w}": batches * size for w in range(writers)
        }
    assert sorted(out.split()[1] for out in outputs) == ["0"] * (writers - 1) + ["1"], (
        "one process won the once key"
    )
    assert len(read_all(any_store, "event")) == 1


def test_kill_9_during_a_write_leaves_only_whole_batches(
    any_store: Store, backend: str, store_url: str, tmp_path: Path
) -> None:
    if not persistent(backend):
        pytest.skip("a memory:// store dies with its process: after kill -9 there is nothing to check")
    any_store.migrate()
    script = tmp_path / "killed.py"
    script.write_text(KILLED)
    size = 2000
    rng = random.Random(9)
    victim = Selection(component="victim")
    committed: set[int] = set()
    for round_, first in enumerate((0, 1000)):
        proc = _python(script, store_url, first, size)
        try:
            assert proc.stdout is not None and proc.stderr is not None
            deadline = time.monotonic() + SUBPROCESS_TIMEOUT
            while len([b for b in committed if b >= first]) < 3:
                assert time.monotonic() < deadline, "the writer did not commit in time"
                line = proc.stdout.readline()
                assert line, f"the writer stopped: {proc.stderr.read()}"
                committed.add(int(line))
            time.sleep(rng.uniform(0, 0.05))  # somewhere inside the next batch's write
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=SUBPROCESS_TIMEOUT)
            committed.update(int(line) for line in proc.stdout.read().split())  # printed before the kill
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)

        reopened = open_store(store_url)
        try:
            per_batch = Counter(
                row["attributes"]["batch"] for row in read_all(reopened, "log", victim, limit=5000)
            )
            assert all(n == size for n in per_batch.values()), f"round {round_}: torn batches {per_batch}"
            assert committed <= per_batch.keys(), f"round {round_}: a reported commit is missing"
            total = sum(per_batch.values())
            assert (
                count(reopened, "log", victim) == total
                and count(reopened, "log", victim, source="raw") == total
            )
            [session] = read_all(reopened, "session", Selection(session_id="victim-session"))
            assert session["log_count"] == total, "counters were committed with their rows"
            assert reopened.write_batch([log(time.time_ns(), "after the kill")])
        finally:
            reopened.close()


def test_error_logs_are_counted_by_the_shape_of_their_message(any_store: Store) -> None:
    base = 1_700_000_000_000_000_000
    records = [
        log(base + i * 7 * MINUTE // 3, f"user {1000 + i} not found in '/srv/{i}.json'", "db", ERROR_LEVEL)
        for i in range(40)
    ] + [log(base + 5, "disk full", "db", CRITICAL)]
    any_store.write_batch(records)
    for source in ("auto", "raw"):
        rows = any_store.aggregate(
            "log",
            Selection(min_severity=ERROR_LEVEL),
            ("component", "message"),
            ("count", "max:severity"),
            source=source,
        )
        found = {row["message"]: (row["count"], row["max:severity"]) for row in rows}
        assert found == {
            "user <n> not found in <str>": (40, ERROR_LEVEL),
            "disk full": (1, CRITICAL),
        }, source
