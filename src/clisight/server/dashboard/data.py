"""What each dashboard page shows, read through the query service and the rollups.

One function per page, each taking an open :class:`~clisight.query.Query` and the current time,
returning plain data for its template (and for ``bench/bench_dashboard.py``, which times them on a
store of a million events).  Counts, rates and percentiles come from ``aggregate`` (answered from
the minute/hour/day rollups); raw rows are read only in bounded amounts: the newest log lines of a
tail, the newest spans of the trace list, one trace, one error group's occurrences.
"""

from __future__ import annotations

import dataclasses
import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from clisight.detect import default_threshold, make_detector
from clisight.query import Filter, LogLine, Query, parse_level
from clisight.query import analytics as analytics_query
from clisight.query import errors as errors_query
from clisight.query import usage as usage_query
from clisight.query.series import metric_series
from clisight.query.traces import SpanNode, TraceSummary, recent_traces, trace_tree

MINUTE_NS: Final = 60 * 10**9
HOUR_NS: Final = 3600 * 10**9
DAY_NS: Final = 86_400 * 10**9
ACTIVE_NS: Final = 15 * MINUTE_NS  # a session with a record in the last 15 minutes is active
LEVELS: Final = ("trace", "debug", "info", "performance", "warning", "error", "critical")
RESOURCE_METRICS: Final = (
    ("process.cpu.utilization", "%"),
    ("process.memory.rss", "B"),
    ("system.cpu.utilization", "%"),
    ("system.memory.utilization", "%"),
)
CLAUDE_CODE: Final = "claude-code"
MAX_TAIL: Final = 1000
RANGES: Final = {"1h": HOUR_NS, "6h": 6 * HOUR_NS, "24h": DAY_NS, "7d": 7 * DAY_NS, "30d": 30 * DAY_NS}


def _sel(since_ns: int | None = None, until_ns: int | None = None, name: str | None = None) -> Any:
    """The store selection of a time range (and a name): built by the query layer's Filter, as the
    server reaches the store only through ``clisight.query``."""
    return Filter(since=since_ns, until=until_ns, name=name).selection()


def _since(now_ns: int, span_ns: int) -> Any:
    return _sel(now_ns - span_ns, now_ns)


def _per_bucket(
    rows: list[dict[str, Any]], key: str, start_ns: int, step_ns: int, n: int, measure: str
) -> list[float]:
    out = [0.0] * n
    for row in rows:
        index = (int(row[key]) - start_ns) // step_ns
        if 0 <= index < n:
            out[index] += float(row[measure] or 0)
    return out


# -- overview ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Latency:
    """Runs of one command (or operation): how many, how many failed, durations in seconds."""

    name: str
    runs: int
    failed: int
    p50: float
    p95: float
    max: float


def command_latency(q: Query, since_ns: int, until_ns: int, top: int = 10) -> tuple[str, list[Latency]]:
    """("command", runs per command path): each session is one run of a command, its duration from
    start to exit, from the session rollups; without sessions (OTLP senders), ("operation", the
    slowest operations by p95)."""
    rows = q.reader.aggregate(
        "session",
        _sel(since_ns, until_ns),
        ("command",),
        ("count", "sum:failed", "quantiles:duration", "max:duration"),
    )
    found = []
    for row in rows:
        sketch = row["quantiles:duration"]
        if not row["count"] or not row["command"] or sketch is None:
            continue
        p50, p95 = sketch.quantiles((0.5, 0.95))
        failed = int(row["sum:failed"] or 0)
        found.append(
            Latency(
                str(row["command"]),
                int(row["count"]),
                failed,
                p50 or 0.0,
                p95 or 0.0,
                float(row["max:duration"] or 0),
            )
        )
    if found:
        found.sort(key=lambda c: (-c.runs, c.name))
        return "command", found[:top]
    ops = q.slow_operations(Filter(since=since_ns, until=until_ns), top)
    return "operation", [Latency(o.operation, o.count, o.failed, o.p50, o.p95, o.max) for o in ops]


@dataclass(frozen=True, slots=True)
class Overview:
    events_per_s: float
    per_minute: list[float]  # records a minute over the last hour, oldest first
    error_rate: float  # failed operations / operations over the last hour
    error_per_minute: list[float]
    latency_of: str  # "command" (sessions by command path) or "operation"
    latency: list[Latency]  # p50/p95 by command over the last 7 days
    cost_today: float
    tokens_today: int
    requests_today: int
    active_sessions: int
    resources: list[tuple[str, str, float | None, list[float]]]  # name, unit, latest, hourly means (24 h)
    server_max_rss: int  # this server process's peak resident memory, bytes


def overview(q: Query, now_ns: int, tz: Any = None) -> Overview:
    store = q.reader
    start = now_ns - now_ns % MINUTE_NS - 59 * MINUTE_NS
    hour = _sel(start, now_ns)
    per_minute = [0.0] * 60
    for kind in ("log", "event", "operation"):
        rows = store.aggregate(kind, hour, ("bucket:60",), ("count",))
        for i, v in enumerate(_per_bucket(rows, "bucket:60", start, MINUTE_NS, 60, "count")):
            per_minute[i] += v
    ops = store.aggregate("operation", hour, ("bucket:60",), ("count", "errors"))
    op_counts = _per_bucket(ops, "bucket:60", start, MINUTE_NS, 60, "count")
    op_errors = _per_bucket(ops, "bucket:60", start, MINUTE_NS, 60, "errors")
    error_per_minute = [e / c if c else 0.0 for e, c in zip(op_errors, op_counts, strict=True)]
    total_ops = sum(op_counts)
    latency_of, latency = command_latency(q, now_ns - 7 * DAY_NS, now_ns)
    midnight = datetime.fromtimestamp(now_ns / 1e9, tz).astimezone(tz)
    midnight = midnight.replace(hour=0, minute=0, second=0, microsecond=0)
    today = analytics_query.llm_daily(store, _sel(int(midnight.timestamp()) * 10**9), tz)
    recent = _sel(now_ns - ACTIVE_NS, now_ns)
    active: set[str] = set()
    for kind in ("log", "event", "operation"):
        active.update(
            str(r["session_id"]) for r in store.aggregate(kind, recent, ("session_id",)) if r["session_id"]
        )
    return Overview(
        events_per_s=round(sum(per_minute[-5:]) / 300, 3),
        per_minute=per_minute,
        error_rate=(sum(op_errors) / total_ops) if total_ops else 0.0,
        error_per_minute=error_per_minute,
        latency_of=latency_of,
        latency=latency,
        cost_today=sum(d["cost_usd"] for d in today.values()),
        tokens_today=int(sum(d["tokens"] for d in today.values())),
        requests_today=int(sum(d["requests"] for d in today.values())),
        active_sessions=len(active),
        resources=resources(q, now_ns),
        server_max_rss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        * (1 if sys.platform == "darwin" else 1024),
    )


def resources(q: Query, now_ns: int) -> list[tuple[str, str, float | None, list[float]]]:
    """The latest value and the hourly means over the last 24 hours of each resource gauge."""
    store = q.reader
    start = now_ns - now_ns % HOUR_NS - 23 * HOUR_NS
    out = []
    for name, unit in RESOURCE_METRICS:
        sel = _sel(start, now_ns, name)
        rows = store.aggregate("metric", sel, ("bucket:3600",), ("count", "sum:value"))
        counts = _per_bucket(rows, "bucket:3600", start, HOUR_NS, 24, "count")
        sums = _per_bucket(rows, "bucket:3600", start, HOUR_NS, 24, "sum:value")
        means = [s / c if c else 0.0 for s, c in zip(sums, counts, strict=True)]
        latest = store.rows(
            "metric", dataclasses.replace(sel, since_ns=now_ns - 7 * DAY_NS), limit=1, newest_first=True
        )
        value = latest.rows[0]["value"] if latest.rows else None
        out.append((name, unit, None if value is None else float(value), means))
    return out


# -- logs --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogsParams:
    """The logs page's filters, as the query string gives them (each checked)."""

    level: str = ""
    service: str = ""
    component: str = ""
    q: str = ""
    range: str = "24h"
    limit: int = 200
    before: int = 0  # older lines: those before this time (ns), within ``range`` of it

    @classmethod
    def parse(cls, args: dict[str, str]) -> LogsParams:
        level = args.get("level", "").strip().lower()
        if level and level not in LEVELS:
            raise ValueError(f"unknown level {level!r}: expected one of {', '.join(LEVELS)}")
        span = args.get("range", "24h")
        if span not in RANGES:
            raise ValueError(f"unknown range {span!r}: expected one of {', '.join(RANGES)}")
        limit_text = args.get("limit", "200")
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_TAIL:
            raise ValueError(f"limit must be a whole number from 1 to {MAX_TAIL}, not {limit_text!r}")
        before_text = args.get("before", "") or "0"
        if not before_text.isdigit() or int(before_text) >= 2**63:
            raise ValueError(f"before must be a time in nanoseconds since the epoch, not {before_text!r}")
        return cls(
            level=level,
            service=args.get("service", "")[:200],
            component=args.get("component", "")[:200],
            q=args.get("q", "")[:200],
            range=span,
            limit=int(limit_text),
            before=int(before_text),
        )

    def filter(self, now_ns: int | None = None) -> Filter:
        """What to show: ``range`` back from now (or from ``before``); without ``now_ns`` (the live
        tail) no time bound."""
        end = self.before - 1 if self.before else now_ns
        since = None if end is None else max(end - RANGES[self.range], 0)
        return Filter(
            since=since,
            until=end if self.before else None,
            service=self.service or None,
            component=self.component or None,
            level=parse_level(self.level) if self.level else None,
            text=self.q or None,
        )


@dataclass(frozen=True, slots=True)
class Logs:
    lines: list[LogLine]  # newest first
    last_id: int  # the cursor live updates start from
    oldest_ns: int  # the time of the oldest line shown (the "older" link starts there)
    services: list[str]
    components: list[str]


def logs(q: Query, now_ns: int, params: LogsParams) -> Logs:
    lines = q.tail(params.filter(now_ns), params.limit)
    lines.reverse()
    week = _since(now_ns, 7 * DAY_NS)
    services = sorted(
        {str(r["service"]) for r in q.reader.aggregate("log", week, ("service",)) if r["count"]}
    )
    components = [c.key for c in q.components(Filter(since=now_ns - 7 * DAY_NS), 50)]
    last_id = max((line.id for line in lines), default=0)
    return Logs(
        lines, last_id, min((line.time_ns for line in lines), default=0), services, sorted(components)
    )


def newest_log_id(q: Query) -> int:
    """The id of the latest stored log line (live updates start after it), found by following
    from 0 a page at a time would be a scan: instead, the newest line by time, then forward."""
    page = q.reader.rows("log", _sel(), limit=1, newest_first=True)
    last = int(page.rows[0]["id"]) if page.rows else 0
    for _ in range(100):  # lines stored after it with older times: bounded catch-up
        more = q.follow(last, Filter(), 1000)
        if not more:
            break
        last = more[-1].id
    return last


# -- traces ------------------------------------------------------------------------------------------


TRACE_SCAN: Final = 1000  # newest spans read to list the newest traces (a read of raw rows: bounded)


def traces(q: Query, service: str = "", limit: int = 50) -> list[TraceSummary]:
    return recent_traces(q, Filter(service=service or None), limit, scan=TRACE_SCAN)


def trace(q: Query, trace_id: str) -> list[SpanNode]:
    return trace_tree(q, trace_id)


# -- errors ------------------------------------------------------------------------------------------


def errors(
    q: Query, now_ns: int, status: str = "", span: str = "7d", order: str = "count"
) -> list[errors_query.ErrorGroupView]:
    groups = errors_query.error_groups(q, Filter(since=now_ns - RANGES.get(span, 7 * DAY_NS)), order, 100)
    if status == "open":
        return [g for g in groups if g.status in ("unresolved", "regression")]
    return [g for g in groups if g.status == status] if status else groups


@dataclass(frozen=True, slots=True)
class Occurrence:
    detail: errors_query.ErrorDetail
    frames: list[dict[str, Any]]
    breadcrumbs: list[dict[str, Any]]
    context: list[tuple[str, str]]  # the other attributes, as text


def error(q: Query, fingerprint: str) -> Occurrence | None:
    detail = errors_query.error_detail(q, fingerprint)
    if detail is None:
        return None
    attrs = dict((detail.latest or {}).get("attributes") or {})
    frames = [f for f in attrs.pop("exception.frames", None) or [] if isinstance(f, dict)]
    crumbs = [c for c in attrs.pop("breadcrumbs", None) or [] if isinstance(c, dict)]
    context = sorted((str(k), json_text(v)) for k, v in attrs.items())
    return Occurrence(detail, frames, crumbs, context)


def json_text(value: Any) -> str:
    """An attribute value as text: strings as they are, anything else as JSON (``true``, ``[1,2]``)."""
    if isinstance(value, str):
        return value
    import orjson

    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return repr(value)


# -- usage -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Usage:
    days: int
    commands: list[Latency]  # runs per command path (sessions), or the slowest operations
    commands_of: str
    sessions: int
    users: int
    failed_sessions: int
    events: list[tuple[str, int]]
    conversations: dict[str, Any]
    daily: list[usage_query.UsageRow]  # cost by model per day
    models: list[str]
    cost_series: list[tuple[str, list[float]]]  # per model, the cost of each day of ``daily``
    llm_sessions: list[usage_query.UsageRow]  # the last 24 hours' (a read of raw events)
    claude_daily: list[usage_query.UsageRow]
    claude_blocks: list[usage_query.UsageRow]
    claude_metrics: list[tuple[str, int, float]]  # Claude Code's own OTLP metrics: name, points, sum


def usage(q: Query, now_ns: int, days: int = 7, tz: Any = None) -> Usage:
    store = q.reader
    sel = _since(now_ns, days * DAY_NS)
    summary = q.usage(Filter(since=sel.since_ns, until=now_ns))
    latency_of, latency = command_latency(q, sel.since_ns, now_ns, 20)
    daily = usage_query.daily(store, sel, tz)
    models = sorted({m for row in daily for m in row.models})
    claude = dataclasses.replace(sel, service=CLAUDE_CODE)
    claude_metrics = [
        (str(r["name"]), int(r["count"]), float(r["sum:value"] or 0))
        for r in store.aggregate("metric", sel, ("name",), ("count", "sum:value"))
        if str(r["name"]).startswith("claude_code.") and r["count"]
    ]
    return Usage(
        days=days,
        commands_of=latency_of,
        commands=latency,
        sessions=summary.sessions.sessions,
        users=summary.sessions.users,
        failed_sessions=summary.sessions.failed,
        events=[(c.key, c.count) for c in summary.events[:20]],
        conversations=analytics_query.conversations(store, sel, tz),
        daily=daily,
        models=models,
        cost_series=[(m, [r.models[m].cost_usd if m in r.models else 0.0 for r in daily]) for m in models],
        llm_sessions=usage_query.sessions(store, _since(now_ns, DAY_NS))[:15],
        claude_daily=usage_query.daily(store, claude, tz),
        claude_blocks=usage_query.blocks(store, claude, now_ns)[-6:],
        claude_metrics=sorted(claude_metrics),
    )


# -- anomalies ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Series:
    """One series over a range with the default detector's score of each point."""

    key: str
    title: str
    unit: str
    step_ns: int
    points: list[tuple[int, float, float]]  # (bucket start ns, value, anomaly score)
    threshold: float

    @property
    def anomalies(self) -> list[tuple[int, float, float]]:
        return [p for p in self.points if p[2] >= self.threshold]


MEAN_LATENCY: Final = "mean_latency"
# The series the page draws: (key, metric, of, title, unit, scale), each read by
# :func:`clisight.query.series.metric_series` (one aggregate over the rollups) per step.  Latency is
# the mean (sum and count of the rollup cells), not p95: a p95 per step merges one quantile sketch
# per cell, which over 7 days of hours is thousands of sketches (0.2-0.6 s on a million records);
# the mean moves with the tail and reads in a few milliseconds.
SERIES: Final = (
    ("operations", "count", "operations", "Operations per step", "", 1.0),
    ("errors", "count", "errors", "Errors per step", "", 1.0),
    ("error_rate", "error_rate", None, "Operation error rate", "%", 100.0),
    ("latency", MEAN_LATENCY, None, "Operation mean latency", "s", 1.0),
    ("cost", "cost", None, "LLM cost per step", "$", 1.0),
    ("rss", "rss", None, "Process memory (mean RSS)", "MB", 1.0),
)


def mean_latency(q: Query, start_ns: int, end_ns: int, step_ns: int) -> list[tuple[int, float]]:
    """Mean operation duration (seconds) per step with operations, from the operation rollups."""
    bucket = f"bucket:{step_ns // 10**9}"
    rows = q.reader.aggregate("operation", _sel(start_ns, end_ns), (bucket,), ("count", "sum:duration"))
    return sorted((int(r[bucket]), float(r["sum:duration"] or 0) / r["count"]) for r in rows if r["count"])


# The step of each range on the anomalies page: a few hundred points at most.
STEPS: Final = {"1h": MINUTE_NS, "6h": MINUTE_NS, "24h": 5 * MINUTE_NS, "7d": HOUR_NS, "30d": DAY_NS}


def anomalies(q: Query, now_ns: int, span_ns: int = 7 * DAY_NS, step_ns: int = HOUR_NS) -> list[Series]:
    """Each series of :data:`SERIES` over ``span_ns`` ending now, with the default detector
    (:data:`clisight.detect.DEFAULT_DETECTOR`) run over it from its first point."""
    end = now_ns - now_ns % step_ns
    start = end - span_ns + step_ns
    out = []
    for key, metric, of, title, unit, scale in SERIES:
        if metric == MEAN_LATENCY:
            values = mean_latency(q, start, now_ns, step_ns)
        else:
            values = metric_series(q, metric, {}, start, now_ns, step_ns, of=of)
        detector = make_detector(series_length=len(values))
        points = [(t, v * scale, float(detector.update(t / 1e9, v))) for t, v in values]
        out.append(Series(key, title, unit, step_ns, points, default_threshold()))
    return out


# -- health ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Health:
    store: Any  # clisight.query.StoreInfo
    pipeline: list[dict[str, Any]]
    receiver: dict[str, Any]
    uptime_s: float
    store_age_s: float = 0.0  # how old the store facts are (they are cached: counting rows is a scan)
    notes: list[str] = field(default_factory=list)


class StoreFacts:
    """``Query.doctor()`` at most every ``ttl_s`` seconds: its row counts are ``COUNT(*)`` over every
    table (a third of a second on a million records), not something to do on each page view."""

    def __init__(self, q: Query, ttl_s: float = 30.0) -> None:
        self.q, self.ttl_s = q, ttl_s
        self.info: Any = None
        self.at = 0.0

    def get(self) -> tuple[Any, float]:
        now = time.monotonic()
        if self.info is None or now - self.at > self.ttl_s:
            self.info, self.at = self.q.doctor(), now
        return self.info, now - self.at


def health(
    q: Query,
    pipeline: Sequence[Any],
    receiver: dict[str, Any],
    started: float,
    facts: StoreFacts | None = None,
) -> Health:
    info, age = (facts or StoreFacts(q)).get()
    notes = []
    for stats in pipeline:
        if stats.dropped:
            notes.append(f"{stats.sink}: {stats.dropped} records dropped (queue full or store errors)")
        if stats.last_error:
            notes.append(f"{stats.sink}: last error: {stats.last_error}")
    return Health(info, [s.as_dict() for s in pipeline], receiver, time.monotonic() - started, age, notes)
