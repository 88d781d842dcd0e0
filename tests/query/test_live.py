"""Live views (``clisight.query.live``): rates, error rate, active runs, errors, resources, series."""

from __future__ import annotations

from typing import Any

import pytest

from clisight.query import Filter, Query, live
from clisight.store import SqliteStore
from clisight.types import ERROR_LEVEL, Record, Resource
from tests.records import SVC

OTHER = Resource("other", pid=7)


def span(make: Any, name: str, *, ago_s: float = 0, failed: bool = False, resource: Resource = SVC) -> Record:
    start = make.now - int(ago_s * 1e9)
    status = ERROR_LEVEL if failed else 0
    return Record(
        "span", start, name, "", status, {}, resource, None, "t" * 32, "s" * 16, None, start + 2_000_000
    )


def test_snapshot_counts_only_the_window_and_the_service(store: SqliteStore, make: Any) -> None:
    store.write_batch(
        [
            span(make, "command:deploy", ago_s=10),
            span(make, "command:deploy", ago_s=20, failed=True),
            span(make, "fetch", ago_s=30),
            span(make, "fetch", ago_s=40),
            span(make, "old", ago_s=3600),  # outside a 15-minute window
            span(make, "elsewhere", ago_s=5, resource=OTHER),
            make.log("fine", ago_s=5),
            make.log("broke", severity=ERROR_LEVEL, ago_s=5),
            make.event("command", ago_s=5),
            make.error(ago_s=6),
        ]
    )
    with Query(store) as query:
        snap = live.snapshot(query, service="svc", window_s=900, now_ns=make.now)
    assert snap.operations == 4 and snap.failed_operations == 1
    assert snap.error_rate == pytest.approx(0.25)
    assert [(lat.name, lat.count, lat.failed) for lat in snap.latencies] == [
        ("command:deploy", 2, 1),
        ("fetch", 2, 0),
    ]
    assert (snap.rates.logs, snap.rates.events, snap.rates.operations, snap.rates.errors) == (2, 1, 4, 2)
    assert snap.rates.per_second(snap.rates.events) == pytest.approx(1 / 900)
    assert [(e.source, e.title) for e in snap.recent_errors] == [
        ("log", "broke"),
        ("error", "ValueError: bad"),
    ]


def test_error_rate_is_none_when_nothing_ran(store: SqliteStore, make: Any) -> None:
    with Query(store) as query:
        snap = live.snapshot(query, now_ns=make.now)
    assert snap.error_rate is None and snap.operations == 0 and snap.latencies == ()


def test_active_runs_are_started_runs_without_an_end_in_the_last_hour(store: SqliteStore, make: Any) -> None:
    store.write_batch(
        [
            make.session("running", ago_s=60),
            make.session("finished", ago_s=60, end=True),
            make.session("abandoned", ago_s=3 * 3600),  # killed hours ago: no longer counted
        ]
    )
    with Query(store) as query:
        runs = live.active_runs(query, None, make.now)
    assert [r.session_id for r in runs] == ["running"]
    assert runs[0].service == "svc"


def test_a_session_known_only_from_its_records_runs_while_they_keep_coming(
    store: SqliteStore, make: Any
) -> None:
    """Claude Code over OTLP sends no start or end: its session is running while its events come,
    and has ended once they stopped, whenever it started; a run clisight recorded (its session
    row names a command) runs until its end, quiet or not."""
    claude = Resource("claude-code")
    store.write_batch(
        [
            make.event("claude_code.user_prompt", ago_s=700, resource=claude, session="stopped"),
            make.event("llm.request", ago_s=660, resource=claude, session="stopped"),
            make.event("claude_code.user_prompt", ago_s=3 * 3600, resource=claude, session="long"),
            make.event("llm.request", ago_s=30, resource=claude, session="long"),
            Record(
                "metric",
                make.now - int(20e9),
                "claude_code.token.usage",
                "",
                0,
                {},
                claude,
                "metrics",
                value=5,
            ),
            make.session("quiet-run", ago_s=900, command="deploy"),
            make.log("started", ago_s=899, session="quiet-run"),
        ]
    )
    with Query(store) as query:
        runs = live.active_runs(query, None, make.now)
        assert [(r.session_id, r.service, r.command) for r in runs] == [
            ("metrics", "claude-code", ""),
            ("quiet-run", "svc", "deploy"),
            ("long", "claude-code", ""),
        ]
        # A shorter idle time ends "long" too; clisight's own run is still running.
        quieter = live.active_runs(query, None, make.now, idle_s=10)
        assert [r.session_id for r in quieter] == ["quiet-run"]
        assert [r.session_id for r in live.snapshot(query, now_ns=make.now).active] == [
            r.session_id for r in runs
        ]


def test_resources_give_the_newest_minute_and_the_peak(store: SqliteStore, make: Any) -> None:
    store.write_batch(
        [
            Record(
                "metric", make.now - int(600e9), "process.memory.rss", "", 0, {"unit": "By"}, SVC, value=900.0
            ),
            Record(
                "metric", make.now - int(1e9), "process.memory.rss", "", 0, {"unit": "By"}, SVC, value=100.0
            ),
            Record("metric", make.now - int(1e9), "unrelated", "", 0, {}, SVC, value=5.0),
        ]
    )
    with Query(store) as query:
        [rss] = live.resources(query, Filter(since=make.now - int(900e9), until=make.now).selection())
    assert (rss.metric, rss.now, rss.peak, rss.samples, rss.unit) == (
        "process.memory.rss",
        100.0,
        900.0,
        2,
        "By",
    )
    assert rss.recent == (900.0, 100.0)


def test_cost_today_sums_llm_requests_since_local_midnight(store: SqliteStore, make: Any) -> None:
    midnight = live.local_midnight_ns(make.now)
    since_midnight_s = (make.now - midnight) / 1e9
    store.write_batch(
        [
            make.event("llm.request", ago_s=0, model="m", cost_usd=0.25, input_tokens=10, output_tokens=5),
            make.event("llm.request", ago_s=since_midnight_s + 60, model="m", cost_usd=9.0),  # yesterday
        ]
    )
    with Query(store) as query:
        cost = live.cost_today(query, None, make.now)
    assert (cost.requests, cost.cost_usd, cost.input_tokens, cost.output_tokens) == (1, 0.25, 10, 5)


def test_services_are_those_that_wrote_recently(store: SqliteStore, make: Any) -> None:
    store.write_batch([make.log(), span(make, "x", resource=OTHER)])
    with Query(store) as query:
        assert live.services(query, make.now) == ["other", "svc"]


def test_hourly_series_fill_empty_hours_with_zero_counts(store: SqliteStore, make: Any) -> None:
    hour = 3600
    base = make.now - make.now % (hour * 10**9)  # the start of the current hour
    make.now = base + 10**9
    store.write_batch(
        [
            span(make, "a", ago_s=2 * hour),
            span(make, "a", ago_s=2 * hour + 1, failed=True),
            make.error(ago_s=0),
            span(make, "a", ago_s=0),
        ]
    )
    with Query(store) as query:
        found = live.series(query, Filter())
    assert [v for _, v in found["operations"]] == [2.0, 0.0, 1.0]
    assert [v for _, v in found["error_rate"]] == [0.5, 0.0]  # no point for the empty hour
    assert [v for _, v in found["errors"]] == [0.0, 0.0, 1.0]
    assert found["operations"][0][0] == base - 2 * hour * 10**9


@pytest.mark.parametrize(
    ("window_s", "step"), [(60, 60), (900, 60), (3600, 60), (3601, 120), (7 * 86_400, 10_080)]
)
def test_resource_buckets_keep_a_sparkline_to_sixty_points(window_s: float, step: int) -> None:
    assert live.bucket_seconds(window_s) == step
    assert window_s / step <= live.MAX_BUCKETS
