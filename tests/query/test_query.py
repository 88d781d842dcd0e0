from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from clisight.query import EXPORT_ORDER, Filter, LevelCount, Query, RetentionPolicy
from clisight.store import SqliteStore
from clisight.types import CRITICAL, DEBUG, ERROR_LEVEL, INFO, PERFORMANCE, WARNING, Resource


@pytest.fixture
def query(store: SqliteStore) -> Query:
    return Query(store)


def test_tail_returns_the_latest_matching_lines_oldest_first(query: Query, make: Any) -> None:
    query.store.write_batch(
        [make.log(f"m{i}", ago_s=100 - i) for i in range(50)]
        + [make.log("debug", severity=DEBUG), make.log("db down", "db", ERROR_LEVEL)]
    )
    assert [line.message for line in query.tail(n=3)] == ["m49", "debug", "db down"]
    assert [line.message for line in query.tail(Filter(level="warning"))] == ["db down"]
    assert [line.message for line in query.tail(Filter(component="db"))] == ["db down"]
    assert [line.message for line in query.tail(Filter(text="M4", limit=2))] == ["m48", "m49"]
    assert len(query.tail()) == 20


def test_tail_filters_by_time_service_and_session(query: Query, make: Any) -> None:
    other = Resource("other")
    query.store.write_batch(
        [make.log("old", ago_s=3600), make.log("new", session="s1"), make.log("elsewhere", resource=other)]
    )
    recent = Filter(since=make.now - 60 * 10**9)
    assert [line.message for line in query.tail(recent)] == ["new", "elsewhere"]
    assert [line.message for line in query.tail(Filter(until=make.now - 60 * 10**9))] == ["old"]
    assert [line.message for line in query.tail(Filter(service="other"))] == ["elsewhere"]
    assert [line.message for line in query.tail(Filter(session="s1"))] == ["new"]


def test_text_filter_treats_wildcards_literally(query: Query, make: Any) -> None:
    query.store.write_batch([make.log("100% done"), make.log("1000 done"), make.log("a_b"), make.log("axb")])
    assert [line.message for line in query.tail(Filter(text="0%"))] == ["100% done"]
    assert [line.message for line in query.tail(Filter(text="a_b"))] == ["a_b"]


def test_follow_returns_only_lines_stored_after_the_cursor(query: Query, make: Any) -> None:
    query.store.write_batch([make.log("before")])
    cursor = query.tail()[-1].id
    assert query.follow(cursor) == []
    query.store.write_batch([make.log("one"), make.log("noise", "other"), make.log("two", ago_s=999)])
    lines = query.follow(cursor, Filter(component="app"))
    assert [line.message for line in lines] == ["one", "two"]  # insertion order, not time order
    assert query.follow(lines[-1].id) == []


def test_report_counts_levels_and_components(query: Query, make: Any) -> None:
    query.store.write_batch(
        [make.log(severity=INFO)] * 3
        + [make.log(severity=10), make.log("w", "db", WARNING), make.log("c", "db", CRITICAL)]
    )
    assert query.levels() == [
        LevelCount("INFO", 9, 4),
        LevelCount("WARNING", 13, 1),
        LevelCount("CRITICAL", 21, 1),
    ]
    assert [(c.key, c.count) for c in query.components()] == [("app", 4), ("db", 2)]
    assert [c.key for c in query.components(top=1)] == ["app"]
    report = query.report()
    assert report.total_logs == 6


def test_error_summary_has_groups_and_error_log_lines(query: Query, make: Any) -> None:
    query.store.write_batch(
        [
            make.error("KeyError", "'user'", ago_s=60),
            make.error("KeyError", "'user'"),
            make.error("OSError", "disk"),
            make.log("connection refused", "db", ERROR_LEVEL, ago_s=30),
            make.log("connection refused", "db", CRITICAL),
            make.log("bad config", "cfg", ERROR_LEVEL),
            make.log("just a warning", "db", WARNING),
        ]
    )
    summary = query.errors()
    assert [(g.type, g.count) for g in summary.groups] == [("KeyError", 2), ("OSError", 1)]
    assert summary.groups[0].first_seen_ns == make.now - 60 * 10**9
    first = summary.log_errors[0]
    assert (first.component, first.message, first.count, first.severity) == (
        "db",
        "connection refused",
        2,
        CRITICAL,
    )
    assert [e.message for e in summary.log_errors] == ["connection refused", "bad config"]
    assert summary.total == 6
    assert query.errors(top=1).groups[0].type == "KeyError"


def test_slow_operations_have_count_p50_p95_max(query: Query, make: Any) -> None:
    durations = [0.1 * i for i in range(1, 21)]
    query.store.write_batch(
        [make.log("db query", "db", PERFORMANCE, operation="db.query", duration=d) for d in durations]
        + [make.log("render", "ui", PERFORMANCE, duration=5)]  # no operation: the message names it
        + [make.log("cache", "ui", PERFORMANCE, operation="cache", duration="fast")]  # not a number: skipped
        + [make.log("not perf", "db", INFO, operation="db.query", duration=99)]
    )
    render, db = query.slow_operations(Filter(level="error"))  # level does not hide PERFORMANCE logs
    assert (render.operation, render.count, render.p50, render.p95, render.max) == ("render", 1, 5, 5, 5)
    assert db.operation == "db.query" and db.count == 20
    # Percentiles come from the store's sketches: the lower quantile (rank floor(q * (n - 1))),
    # within 1 % of the exact value.
    assert db.p50 == pytest.approx(1.0, rel=0.01001) and db.p95 == pytest.approx(1.9, rel=0.01001)
    assert db.max == pytest.approx(2.0) and db.failed == 0
    assert db.total == pytest.approx(sum(durations))
    assert [s.operation for s in query.slow_operations(top=1)] == ["render"]


def test_usage_summarizes_events_sessions_users_and_llm_cost(query: Query, make: Any) -> None:
    llm = [
        make.event(
            "llm.request",
            model="opus",
            input_tokens=1000,
            output_tokens=200,
            cache_read_tokens=50,
            cost_usd=0.5,
            duration=2.0,
        ),
        make.event("llm.request", model="opus", input_tokens=10, output_tokens=2, cost_usd=0.25, duration=1),
        make.event(
            "llm.request", model="haiku", input_tokens=5, output_tokens=5, cost_usd=0.01, duration=0.5
        ),
        make.event("llm.request"),
    ]
    query.store.write_batch(
        [
            *llm,
            make.event("command"),
            make.event("command"),
            make.session("a", user_id="u1", exit_code=0),
            make.session("b", user_id="u1", exit_code=1),
            make.session("c", user_id="u2"),
        ]
    )
    usage = query.usage()
    assert [(c.key, c.count) for c in usage.events] == [("llm.request", 4), ("command", 2)]
    assert (usage.sessions.sessions, usage.sessions.users, usage.sessions.failed) == (3, 2, 1)
    opus, haiku, unknown = usage.llm
    assert (opus.model, opus.requests, opus.input_tokens, opus.output_tokens, opus.cache_read_tokens) == (
        "opus",
        2,
        1010,
        202,
        50,
    )
    assert opus.cost_usd == pytest.approx(0.75) and opus.duration_s == pytest.approx(3.0)
    assert (haiku.model, unknown.model, unknown.requests, unknown.cost_usd) == ("haiku", "unknown", 1, 0)
    assert usage.llm_cost_usd == pytest.approx(0.76)
    assert query.usage(Filter(name="command")).llm == usage.llm  # LLM totals always read llm.request


def test_float_sums_do_not_depend_on_how_records_were_batched(tmp_path: Path, make: Any) -> None:
    # The pipeline's batch boundaries depend on thread timing; the same workload must report
    # the same totals however it was split (0.1 + 0.2 + ... in different groupings differs in
    # its last bits).
    durations = [0.1, 0.2, 0.3, 1.7, 0.013, 2.9, 0.07, 358.0, 0.041, 0.6] * 3
    records = [
        make.event("llm.request", model="m", cost_usd=d / 7, duration=d, ago_s=i)
        for i, d in enumerate(durations)
    ]
    totals = []
    for size in (1, 3, 7, len(records)):
        with Query(f"sqlite:///{tmp_path / f'split-{size}.db'}") as query:
            for start in range(0, len(records), size):
                query.store.write_batch(records[start : start + size])
            [usage] = query.llm_usage()
            totals.append((usage.cost_usd, usage.duration_s))
    assert len(set(totals)) == 1, totals
    assert totals[0][1] == pytest.approx(sum(durations))


def test_report_bundles_every_section(query: Query, make: Any) -> None:
    query.store.write_batch(
        [
            make.log(),
            make.error(),
            make.event(),
            make.session("s"),
            make.log("q", "db", PERFORMANCE, duration=0.2, operation="q"),
        ]
    )
    report = query.report(Filter(since=make.now - 10**9))
    assert report.total_logs == 2 and report.errors.groups and report.slow_operations and report.usage.events


def test_export_streams_every_kind_as_plain_dicts(query: Query, make: Any) -> None:
    query.store.write_batch(
        [make.log(f"m{i}") for i in range(2500)]
        + [make.event(), make.span(), make.error(), make.session("s1"), make.metric()]
    )
    rows = query.export()
    first = next(rows)
    assert first["kind"] == "session"
    # Rows come in chunks: writing while an export is half-read neither blocks nor deadlocks.
    query.store.write_batch([make.log("during")])
    rest = list(rows)
    kinds = [row["kind"] for row in [first, *rest]]
    assert kinds.count("log") == 2501 and set(kinds) == set(EXPORT_ORDER)
    assert [row["message"] for row in rest if row["kind"] == "log"][:2] == ["m0", "m1"]
    assert next(iter(query.export(kinds=["metric"])))["value"] == 1.0
    assert len(list(query.export(Filter(limit=10)))) == 10


def test_exported_error_groups_carry_the_status_resolve_gave_them(query: Query, make: Any) -> None:
    from clisight.query import errors as errors_query

    query.store.write_batch([make.error("KeyError", "'user'")])
    [group] = query.export(kinds=["error_group"])
    assert group["status"] == "unresolved"
    errors_query.set_status(query, group["fingerprint"], "resolved")
    [group] = query.export(kinds=["error_group"])
    assert group["status"] == "resolved"  # it said "open": the store's column is never updated


def test_export_applies_the_filter(query: Query, make: Any) -> None:
    query.store.write_batch(
        [
            make.log("old", ago_s=7200),
            make.log("new"),
            make.event("command", ago_s=7200),
            make.event("command"),
        ]
    )
    rows = list(query.export(Filter(since=make.now - 3600 * 10**9), kinds=["log", "event"]))
    assert [(r["kind"], r.get("message")) for r in rows] == [("log", "new"), ("event", None)]
    with pytest.raises(ValueError, match="unknown record kind"):
        list(query.export(kinds=["nope"]))


def test_doctor_shows_size_version_counts_and_time_span(query: Query, make: Any) -> None:
    query.store.write_batch([make.log(ago_s=100), make.log(), make.event(ago_s=50)])
    info = query.doctor()
    assert info.url.startswith("sqlite:///") and info.path and info.path.endswith("clisight.db")
    assert info.file_bytes > 0 and info.wal_bytes >= 0 and info.schema_version >= 4
    assert info.row_counts["logs"] == 2 and info.row_counts["events"] == 1
    assert (info.oldest_ns, info.newest_ns) == (make.now - 100 * 10**9, make.now)


def test_vacuum_applies_retention(query: Query, make: Any) -> None:
    query.store.write_batch([make.log(ago_s=10 * 86_400), make.log()])
    result = query.vacuum(RetentionPolicy(raw_days=1))
    assert result.deleted["logs"] == 1 and query.doctor().row_counts["logs"] == 1
    # The rollups outlive the raw rows: the old log is still counted over its day.
    old = Filter(since=make.now - 11 * 86_400 * 10**9, until=make.now - 9 * 86_400 * 10**9)
    assert query.levels(old) == [LevelCount("INFO", 9, 1)] and query.tail(old) == []


def test_state_passes_through_to_the_store(query: Query) -> None:
    query.save_state("baseline", [1, 2, 3])
    assert query.load_state("baseline") == [1, 2, 3] and query.load_state("missing") is None


def test_query_opened_from_a_url_owns_and_closes_its_store(tmp_path: Path, make: Any) -> None:
    with Query(f"sqlite:///{tmp_path}/q.db") as query:
        query.store.write_batch([make.log()])
        assert query.url.endswith("q.db")
    with Query(tmp_path / "q.db") as again:
        assert len(again.tail()) == 1
    memory = Query("memory://")
    assert memory.doctor().file_bytes == 0
    memory.close()


def test_query_given_a_store_leaves_it_open(store: SqliteStore, make: Any) -> None:
    with Query(store):
        pass
    store.write_batch([make.log()])
    assert Query(store).tail()[0].message == "hello"
