"""Live views for ``clisight top`` and the seed's ``MonitoringDashboard``: what is happening now.

:func:`snapshot` answers one refresh of a dashboard over a recent window (default 15 minutes) from
the store's rollups (rates, error rate, latency percentiles, resources, cost today) plus a few
bounded raw reads (the newest errors, the runs still going).  Every read goes through the query
service's reader; nothing here writes.

"Active operations", as far as a store can tell: spans are stored when they end, so an open span is
invisible to any reader.  What the store does see start is a *run* (a session row is written when
``clisight.init`` starts, naming its command, and completed at exit), so the active operations are
the runs started within :data:`ACTIVE_WINDOW_S` (or the view's window, when longer) that have no end
yet.  A run killed without a chance to flush (SIGKILL, power loss) looks active until it falls out
of that window.

A session that no run record describes (no command: one known only from records that name it, such
as Claude Code's over OTLP, which sends no start or end) cannot end that way: it is running while
its records keep coming, and has ended once none came for :data:`IDLE_S` seconds.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from clisight._sketch import QuantileSketch
from clisight.query import perf
from clisight.query.filters import Filter
from clisight.query.service import Query
from clisight.store.base import Selection
from clisight.types import ERROR_LEVEL

DEFAULT_WINDOW_S: Final = 900.0
ACTIVE_WINDOW_S: Final = 3600.0  # runs older than this without an end are taken as dead
SERVICES_WINDOW_S: Final = 7 * 86_400.0  # services offered by the filter key
RECENT_ERRORS: Final = 20
ACTIVE_SCAN: Final = 500  # newest sessions read to find those still running
IDLE_S: Final = 300.0  # a session known only from its records has ended when none came for this long
RECORDS_WINDOW_S: Final = 86_400.0  # such sessions are looked for among those started this recently
RECORDS_SCAN: Final = 50  # at most this many of them are checked for recent records per refresh
_ACTIVITY_KINDS: Final = ("event", "log", "metric", "span", "error")
LATENCY_ROWS: Final = 20
MAX_BUCKETS: Final = 60  # points of a resource sparkline over the whole window


@dataclass(frozen=True, slots=True)
class Rates:
    """Records stored in the window, by kind; ``per_second`` divides by the window."""

    window_s: float
    logs: int
    events: int
    operations: int
    errors: int  # error occurrences (captured exceptions) and ERROR/CRITICAL log lines

    def per_second(self, count: int) -> float:
        return count / self.window_s if self.window_s > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Latency:
    """One operation type (``command:<path>`` for commands) over the window; seconds."""

    name: str
    count: int
    failed: int
    p50: float
    p95: float
    max: float


@dataclass(frozen=True, slots=True)
class ActiveRun:
    """A run (session) that started and has not ended yet."""

    session_id: str
    service: str
    command: str
    start_ns: int
    user_id: str | None


@dataclass(frozen=True, slots=True)
class RecentError:
    """An error occurrence (``source="error"``, ``title`` = type: message) or an ERROR/CRITICAL log
    line (``source="log"``, ``title`` = the message)."""

    time_ns: int
    source: str
    service: str
    where: str  # the exception type, or the log's component
    title: str
    session_id: str | None


@dataclass(frozen=True, slots=True)
class ResourceNow:
    """One sampled resource metric: the mean of its newest bucket (a minute for windows up to an
    hour), its peak in the window and the maxima per bucket (oldest first, for a sparkline)."""

    metric: str
    unit: str
    now: float
    peak: float
    samples: int
    last_ns: int
    recent: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class CostToday:
    """LLM requests since local midnight (``llm.request`` events)."""

    requests: int
    input_tokens: int
    output_tokens: int
    cost_usd: float


@dataclass(frozen=True, slots=True)
class LiveSnapshot:
    """One refresh of a live dashboard (see the module doc)."""

    now_ns: int
    window_s: float
    service: str | None
    rates: Rates
    operations: int
    failed_operations: int
    latencies: tuple[Latency, ...]
    active: tuple[ActiveRun, ...]
    recent_errors: tuple[RecentError, ...]
    resources: tuple[ResourceNow, ...]
    cost_today: CostToday
    breaches: tuple[perf.Breach, ...]

    @property
    def error_rate(self) -> float | None:
        """Failed operations over operations in the window; None when nothing ran."""
        return self.failed_operations / self.operations if self.operations else None


def _count(q: Query, kind: str, sel: Selection) -> int:
    [row] = q.reader.aggregate(kind, sel, (), ("count",)) or [{"count": 0}]
    return int(row["count"] or 0)


def rates(q: Query, sel: Selection, window_s: float) -> Rates:
    """Logs, usage events, operations and errors stored in ``sel`` (from the rollups)."""
    plain = dataclasses.replace(sel, min_severity=None, component=None, name=None, text=None)
    error_logs = _count(q, "log", dataclasses.replace(plain, min_severity=ERROR_LEVEL))
    return Rates(
        window_s,
        _count(q, "log", plain),
        _count(q, "event", plain),
        _count(q, "operation", plain),
        _count(q, "error", plain) + error_logs,
    )


def latencies(
    q: Query, flt: Filter, top: int = LATENCY_ROWS, operations: list[perf.OperationPerf] | None = None
) -> list[Latency]:
    """Operation types in ``flt`` (or of ``operations`` already read for it), commands first, then
    by count: the "p95 by command" table."""
    ops = perf.operations(q, flt) if operations is None else operations
    found = [Latency(o.operation, o.count, o.failed, o.p50, o.p95, o.max) for o in ops]
    found.sort(key=lambda lat: (not lat.name.startswith("command:"), -lat.count, lat.name))
    return found[:top]


def active_runs(
    q: Query, service: str | None, now_ns: int, window_s: float = ACTIVE_WINDOW_S, idle_s: float = IDLE_S
) -> list[ActiveRun]:
    """Runs in progress, newest first (the newest :data:`ACTIVE_SCAN` sessions are read):

    - a run clisight recorded (its session row names a command) with no end yet, started in the last
      ``window_s`` seconds (at least :data:`ACTIVE_WINDOW_S`);
    - a session no run record describes (no command) while its records keep coming: one stored in
      the last ``idle_s`` seconds (whenever it started, up to :data:`RECORDS_WINDOW_S` ago).  One
      with no record at all is taken as a run."""
    run_since = now_ns - int(max(window_s, ACTIVE_WINDOW_S) * 1e9)
    since = min(run_since, now_ns - int(RECORDS_WINDOW_S * 1e9))
    sel = Selection(since_ns=since, until_ns=now_ns, service=service)
    idle_since = now_ns - int(idle_s * 1e9)
    checked = 0
    found = []
    for row in q.reader.rows("session", sel, limit=ACTIVE_SCAN, newest_first=True).rows:
        if row["end_ns"] is not None:
            continue
        start = int(row["start_ns"])
        if row["command"] is None:
            if checked >= RECORDS_SCAN:
                continue
            checked += 1
            if not _has_records(q, Selection(since_ns=idle_since, session_id=str(row["id"]))):
                if start < run_since:
                    continue
                # Records, but none lately: its records stopped, so it has ended as far as the
                # store can tell.  (Logs, events and errors are counted on the row; metric points
                # and spans are not.)
                counted = sum(int(row[k] or 0) for k in ("log_count", "event_count", "error_count"))
                if counted or _has_records(q, Selection(session_id=str(row["id"])), ("metric", "span")):
                    continue
        elif start < run_since:
            continue
        found.append(
            ActiveRun(
                str(row["id"]), str(row["service"] or ""), str(row["command"] or ""), start, row["user_id"]
            )
        )
    return found


def _has_records(q: Query, sel: Selection, kinds: tuple[str, ...] = _ACTIVITY_KINDS) -> bool:
    """Whether any record of ``kinds`` is in ``sel`` (one row read per kind, at most)."""
    return any(q.reader.rows(kind, sel, limit=1).rows for kind in kinds)


def recent_errors(q: Query, sel: Selection, top: int = RECENT_ERRORS) -> list[RecentError]:
    """The newest ``top`` error occurrences and ERROR/CRITICAL log lines in ``sel``, newest first."""
    plain = dataclasses.replace(sel, min_severity=None, component=None, name=None, text=None)
    found = [
        RecentError(
            int(row["time_ns"]),
            "error",
            str(row["service"] or ""),
            str(row["type"] or ""),
            f"{row['type']}: {row['message']}" if row["message"] else str(row["type"]),
            row["session_id"],
        )
        for row in q.reader.rows("error", plain, limit=top, newest_first=True).rows
    ]
    logs = dataclasses.replace(plain, min_severity=ERROR_LEVEL)
    found += [
        RecentError(
            int(row["time_ns"]),
            "log",
            str(row["service"] or ""),
            str(row["component"] or ""),
            str(row["message"] or ""),
            row["session_id"],
        )
        for row in q.reader.rows("log", logs, limit=top, newest_first=True).rows
    ]
    found.sort(key=lambda e: -e.time_ns)
    return found[:top]


_UNITS: Final = {"process.memory.rss": "By", "process.threads": "1", "process.open_files": "1"}


def bucket_seconds(window_s: float) -> int:
    """Bucket of a resource sparkline: a minute, or longer so a window has at most MAX_BUCKETS."""
    minutes = math.ceil(window_s / 60 / MAX_BUCKETS)
    return 60 * max(minutes, 1)


def resources(q: Query, sel: Selection, step_s: int = 60) -> list[ResourceNow]:
    """The sampled resource metrics (``clisight.query.perf.RESOURCE_METRICS``) in ``sel``, per
    ``step_s`` bucket (a multiple of 60): ``now`` is the mean of the newest bucket."""
    plain = dataclasses.replace(sel, min_severity=None, component=None, name=None, text=None)
    bucket = f"bucket:{step_s}"
    found = q.reader.aggregate("metric", plain, ("name", bucket), ("count", "sum:value", "max:value"))
    per: dict[str, list[dict[str, Any]]] = {}
    for row in found:
        if row["name"] in perf.RESOURCE_METRICS and row["count"]:
            per.setdefault(row["name"], []).append(row)
    out = []
    for metric in perf.RESOURCE_METRICS:
        rows = sorted(per.get(metric, ()), key=lambda r: int(r[bucket]))
        if not rows:
            continue
        last = rows[-1]
        out.append(
            ResourceNow(
                metric,
                _UNITS.get(metric, "%"),
                float(last["sum:value"] or 0.0) / int(last["count"]),
                max(float(r["max:value"] or 0.0) for r in rows),
                sum(int(r["count"]) for r in rows),
                int(last[bucket]),
                tuple(float(r["max:value"] or 0.0) for r in rows),
            )
        )
    return out


def local_midnight_ns(now_ns: int) -> int:
    """Nanoseconds at the start of the local day containing ``now_ns``."""
    day = datetime.fromtimestamp(now_ns / 1e9).replace(hour=0, minute=0, second=0, microsecond=0)
    return int(day.timestamp()) * 1_000_000_000


def cost_today(q: Query, service: str | None, now_ns: int) -> CostToday:
    """LLM requests, tokens and cost since local midnight (from the event rollups)."""
    models = q.llm_usage(Filter(since=local_midnight_ns(now_ns), until=now_ns, service=service))
    return CostToday(
        sum(m.requests for m in models),
        sum(m.input_tokens for m in models),
        sum(m.output_tokens for m in models),
        sum(m.cost_usd for m in models),
    )


def services(q: Query, now_ns: int, window_s: float = SERVICES_WINDOW_S) -> list[str]:
    """Services that stored logs, events or operations in the last ``window_s`` seconds, sorted."""
    sel = Selection(since_ns=now_ns - int(window_s * 1e9), until_ns=now_ns)
    names: set[str] = set()
    for kind in ("log", "event", "operation"):
        names.update(str(r["service"]) for r in q.reader.aggregate(kind, sel, ("service",)) if r["count"])
    return sorted(n for n in names if n)


SERIES: Final = ("operations", "error_rate", "p95_latency", "errors", "llm_cost_usd")


def series(q: Query, flt: Filter, step_s: int = 3600) -> dict[str, list[tuple[int, float]]]:
    """Per ``step_s`` bucket (a multiple of 60) of ``flt``, from the rollups: operations, the share
    of them that failed, their p95 duration (s), errors (exceptions and ERROR/CRITICAL lines) and
    LLM cost.  Buckets with no operation have no error rate or p95 point; counts are 0 there.
    Bucket times are ns, oldest first, from the first bucket with any record to the last."""
    sel = dataclasses.replace(flt.selection(), min_severity=None, component=None, name=None, text=None)
    bucket = f"bucket:{step_s}"
    ops = {
        int(r[bucket]): r
        for r in q.reader.aggregate("operation", sel, (bucket,), ("count", "errors", "quantiles:duration"))
        if r["count"]
    }
    errs: dict[int, float] = {}
    for kind, where in (("error", sel), ("log", dataclasses.replace(sel, min_severity=ERROR_LEVEL))):
        for r in q.reader.aggregate(kind, where, (bucket,), ("count",)):
            errs[int(r[bucket])] = errs.get(int(r[bucket]), 0.0) + float(r["count"] or 0)
    cost = {
        int(r[bucket]): float(r["sum:cost_usd"] or 0.0)
        for r in q.reader.aggregate(
            "event", dataclasses.replace(sel, name="llm.request"), (bucket,), ("count", "sum:cost_usd")
        )
        if r["count"]
    }
    seen = set(ops) | {t for t, v in errs.items() if v} | set(cost)
    out: dict[str, list[tuple[int, float]]] = {name: [] for name in SERIES}
    if not seen:
        return out
    step_ns = step_s * 1_000_000_000
    for t in range(min(seen), max(seen) + step_ns, step_ns):
        row = ops.get(t)
        count = int(row["count"]) if row else 0
        out["operations"].append((t, float(count)))
        if row is not None:
            out["error_rate"].append((t, int(row["errors"] or 0) / count))
            sketch = row["quantiles:duration"]
            if isinstance(sketch, QuantileSketch):
                out["p95_latency"].append((t, float(sketch.quantiles((0.95,))[0] or 0.0)))
        out["errors"].append((t, errs.get(t, 0.0)))
        out["llm_cost_usd"].append((t, cost.get(t, 0.0)))
    return out


def snapshot(
    q: Query,
    *,
    service: str | None = None,
    window_s: float = DEFAULT_WINDOW_S,
    now_ns: int | None = None,
) -> LiveSnapshot:
    """Everything a live dashboard shows for the last ``window_s`` seconds (``service``: one only)."""
    now = time.time_ns() if now_ns is None else now_ns
    since = now - int(window_s * 1e9)
    flt = Filter(since=since, until=now, service=service)
    sel = flt.selection()
    all_ops = perf.operations(q, flt)
    lats = latencies(q, flt, operations=all_ops)
    return LiveSnapshot(
        now_ns=now,
        window_s=window_s,
        service=service,
        rates=rates(q, sel, window_s),
        operations=sum(o.count for o in all_ops),
        failed_operations=sum(o.failed for o in all_ops),
        latencies=tuple(lats),
        active=tuple(active_runs(q, service, now, window_s)),
        recent_errors=tuple(recent_errors(q, sel)),
        resources=tuple(resources(q, sel, bucket_seconds(window_s))),
        cost_today=cost_today(q, service, now),
        breaches=tuple(perf.breaches(q, flt)),
    )


__all__ = [
    "ACTIVE_WINDOW_S",
    "DEFAULT_WINDOW_S",
    "SERIES",
    "ActiveRun",
    "CostToday",
    "Latency",
    "LiveSnapshot",
    "Rates",
    "RecentError",
    "ResourceNow",
    "active_runs",
    "bucket_seconds",
    "cost_today",
    "latencies",
    "local_midnight_ns",
    "rates",
    "recent_errors",
    "resources",
    "series",
    "services",
    "snapshot",
]
