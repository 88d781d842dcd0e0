"""Traces for ``clisight traces`` and the API: recent traces, and one trace's span tree.

A trace is the spans sharing a trace id, whichever processes wrote them (a CLI and the child
processes it started with ``TRACEPARENT``, or any OpenTelemetry SDK sending to ``clisight
serve``).  Recent traces come from the newest spans (a bounded number of raw rows); one trace is
every span with its id, ordered into a tree.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Final

from clisight.query.filters import Filter
from clisight.query.service import Query
from clisight.store.base import Selection

_ALL: Final = Filter()
RECENT_SCAN: Final = 5_000  # newest spans read to find the recent traces
MAX_SPANS: Final = 10_000  # spans of one trace shown


@dataclass(frozen=True, slots=True)
class TraceSummary:
    """One trace among the recent ones; times in nanoseconds."""

    trace_id: str
    root: str  # the root span's name (or the earliest span's, when the root is not stored)
    service: str
    start_ns: int
    end_ns: int
    spans: int
    errors: int

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9


@dataclass(frozen=True, slots=True)
class SpanNode:
    """A span in a trace's tree: ``depth`` 0 for roots; children follow their parent."""

    span_id: str
    parent_span_id: str | None
    name: str
    service: str
    start_ns: int
    end_ns: int
    status: int
    depth: int
    attributes: dict[str, Any]

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9


def _selection(flt: Filter) -> Selection:
    return dataclasses.replace(flt.selection(), min_severity=None, component=None)


def recent_traces(
    q: Query, flt: Filter = _ALL, limit: int = 20, scan: int = RECENT_SCAN
) -> list[TraceSummary]:
    """The ``limit`` traces with the newest spans, newest first, found among the ``scan`` newest spans."""
    rows = q.reader.rows("span", _selection(flt), limit=scan, newest_first=True).rows
    by_trace: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        trace_id = row.get("trace_id")
        if trace_id:
            by_trace.setdefault(trace_id, []).append(row)
    summaries = []
    for trace_id, spans in by_trace.items():
        ids = {s["span_id"] for s in spans}
        roots = [s for s in spans if not s.get("parent_span_id") or s["parent_span_id"] not in ids]
        root = min(roots or spans, key=lambda s: (s.get("parent_span_id") is not None, s["start_ns"]))
        summaries.append(
            TraceSummary(
                trace_id,
                str(root["name"]),
                str(root.get("service") or ""),
                min(s["start_ns"] for s in spans),
                max(s["end_ns"] or s["start_ns"] for s in spans),
                len(spans),
                sum(1 for s in spans if (s.get("status") or 0) >= 17),
            )
        )
    summaries.sort(key=lambda t: (-t.start_ns, t.trace_id))
    return summaries[:limit]


def trace_tree(q: Query, trace_id: str) -> list[SpanNode]:
    """Every stored span of the trace, depth-first: each parent before its children, siblings by
    start time.  A span whose parent is not stored (another process's, not sent) is a root."""
    sel = Selection(trace_id=trace_id.strip().lower())
    rows = q.reader.rows("span", sel, limit=MAX_SPANS).rows
    ids = {row["span_id"] for row in rows}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for row in rows:
        parent = row.get("parent_span_id")
        children.setdefault(parent if parent in ids else None, []).append(row)
    for group in children.values():
        group.sort(key=lambda r: (r["start_ns"], r["span_id"]))
    out: list[SpanNode] = []
    stack = [(row, 0) for row in reversed(children.get(None, []))]
    seen: set[str] = set()
    while stack:
        row, depth = stack.pop()
        if row["span_id"] in seen:  # a cycle in bad data: each span once
            continue
        seen.add(row["span_id"])
        out.append(
            SpanNode(
                row["span_id"],
                row.get("parent_span_id"),
                str(row["name"]),
                str(row.get("service") or ""),
                row["start_ns"],
                row["end_ns"] or row["start_ns"],
                row.get("status") or 0,
                depth,
                row.get("attributes") or {},
            )
        )
        stack.extend((child, depth + 1) for child in reversed(children.get(row["span_id"], [])))
    return out
