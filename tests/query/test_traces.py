"""Recent traces and one trace's tree, from spans written by several processes."""

from __future__ import annotations

from typing import Any

from clisight.query import Query
from clisight.query.traces import recent_traces, trace_tree
from clisight.store import SqliteStore
from clisight.types import ERROR_LEVEL, Record, Resource

CLI = Resource("mycli", pid=1)
CHILD = Resource("worker", pid=2)
T1, T2 = "a" * 32, "b" * 32


def span(
    trace: str,
    span_id: str,
    parent: str | None,
    name: str,
    start: int,
    end: int,
    *,
    resource: Resource = CLI,
    status: int = 0,
) -> Record:
    return Record("span", start, name, "", status, {}, resource, None, trace, span_id, parent, end)


def test_a_trace_across_processes_is_one_tree_parents_before_children(store: SqliteStore, make: Any) -> None:
    now = make.now
    store.write_batch(
        [
            span(T1, "0000000000000003", "0000000000000001", "fetch", now + 30, now + 80),
            span(
                T1, "0000000000000004", "0000000000000003", "worker.run", now + 40, now + 70, resource=CHILD
            ),
            span(T1, "0000000000000002", "0000000000000001", "parse", now + 10, now + 20, status=ERROR_LEVEL),
            span(T1, "0000000000000001", None, "cli main", now, now + 100),
            span(
                T1, "0000000000000005", "00000000000000ff", "orphan", now + 50, now + 60
            ),  # parent not stored
        ]
    )
    tree = trace_tree(Query(store), T1)
    assert [(n.name, n.depth) for n in tree] == [
        ("cli main", 0),
        ("parse", 1),
        ("fetch", 1),
        ("worker.run", 2),
        ("orphan", 0),
    ]
    assert tree[3].service == "worker" and tree[1].status == ERROR_LEVEL
    assert tree[0].duration_s == 100 / 1e9


def test_recent_traces_newest_first_with_root_counts_and_errors(store: SqliteStore, make: Any) -> None:
    now = make.now
    store.write_batch(
        [
            span(T1, "0000000000000001", None, "old run", now - 10_000, now - 5_000),
            span(
                T1,
                "0000000000000002",
                "0000000000000001",
                "step",
                now - 9_000,
                now - 8_000,
                status=ERROR_LEVEL,
            ),
            span(T2, "0000000000000003", None, "new run", now, now + 2_000_000_000),
        ]
    )
    first, second = recent_traces(Query(store))
    assert (first.trace_id, first.root, first.spans, first.errors) == (T2, "new run", 1, 0)
    assert first.duration_s == 2.0
    assert (second.trace_id, second.root, second.spans, second.errors) == (T1, "old run", 2, 1)
    assert [t.trace_id for t in recent_traces(Query(store), limit=1)] == [T2]
    assert trace_tree(Query(store), "c" * 32) == []
