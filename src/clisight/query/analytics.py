"""Usage analytics over a store: commands, activity by hour and weekday, conversations, cost trends,
insight rules, and journeys (paths, funnels, weekly retention cohorts).

Everything is built from the store's generic reads.  Commands are the ``command:<path>`` operations
that ``clisight.instrument`` and ``UserAnalytics.track_command_usage`` record (count, failures and
duration percentiles come from the operation rollups), LLM use from the ``llm.request`` event
rollups (tokens and cost per model), conversation trends from the ``conversation.*`` metric
rollups, and journeys (paths, funnels) from the per-minute rollup cells of each ``journey:<step>``
event by actor; none of these reads raw rows.  Retention groups the sessions by hashed user id and
day.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Final

from clisight._sketch import QuantileSketch
from clisight.store.base import Selection, Store

COMMAND_PREFIX: Final = "command:"
LLM_EVENT: Final = "llm.request"
JOURNEY_PREFIX: Final = "journey:"
CONVERSATION_METRICS: Final = ("conversation.messages", "conversation.tokens", "conversation.response_time")
WEEKDAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
DAY_NS: Final = 86_400 * 10**9
WEEK_NS: Final = 7 * DAY_NS
_PAGE: Final = 5000

# Insight rule thresholds: (minimum runs, rate) and ratios that make a finding worth a line.
ERROR_RATE_MIN_RUNS: Final = 5
ERROR_RATE_THRESHOLD: Final = 0.2
SLOWER_MIN_RUNS: Final = 3
SLOWER_RATIO: Final = 2.0
COST_CHANGE: Final = 0.25


@dataclass(frozen=True, slots=True)
class CommandStats:
    """One command path over a range: runs, failed runs, and durations in seconds."""

    command: str
    runs: int
    failed: int
    error_rate: float
    total: float
    mean: float
    p50: float
    p95: float
    max: float


@dataclass(frozen=True, slots=True)
class Insight:
    """A finding: the rule that fired, what it is about, one readable line, and the numbers behind it."""

    rule: str
    subject: str
    message: str
    severity: str
    numbers: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Trend:
    """Per-day values over a range (local days), oldest first: (YYYY-MM-DD, value)."""

    name: str
    points: tuple[tuple[str, float], ...]


@dataclass(frozen=True, slots=True)
class Insights:
    """What ``clisight insights`` shows for a range of ``days``."""

    days: float
    since_ns: int
    until_ns: int
    commands: tuple[CommandStats, ...]
    by_hour: tuple[int, ...]  # 24 counts, local hour of day
    by_weekday: tuple[int, ...]  # 7 counts, Monday first
    conversations: dict[str, Any]
    llm_requests: int
    tokens: int
    cost_usd: float
    trends: tuple[Trend, ...]
    findings: tuple[Insight, ...]


@dataclass(frozen=True, slots=True)
class FunnelStep:
    step: str
    entered: int
    conversion: float  # of the first step's actors
    step_conversion: float  # of the previous step's
    dropped: int  # actors of the previous step who did not reach this one


@dataclass(frozen=True, slots=True)
class Funnel:
    steps: tuple[FunnelStep, ...]
    window_s: float
    actors: int


@dataclass(frozen=True, slots=True)
class NextStep:
    step: str
    next: str
    count: int
    share: float


@dataclass(frozen=True, slots=True)
class Cohort:
    """Actors whose first week is ``week`` (the Monday, YYYY-MM-DD), and how many of them were
    active in each week after it (``active[0]`` is the cohort's size)."""

    week: str
    size: int
    active: tuple[int, ...]

    @property
    def rates(self) -> tuple[float, ...]:
        return tuple(a / self.size if self.size else 0.0 for a in self.active)


# -- commands and activity ---------------------------------------------------------------------------


def command_stats(store: Store, sel: Selection) -> list[CommandStats]:
    """Every command path run in ``sel``, most runs first."""
    sel = dataclasses.replace(sel, name=None, min_severity=None, component=None, text=None)
    found = store.aggregate(
        "operation", sel, ("name",), ("count", "errors", "sum:duration", "max:duration", "quantiles:duration")
    )
    stats = []
    for row in found:
        name = str(row["name"])
        if not name.startswith(COMMAND_PREFIX) or not row["count"]:
            continue
        runs, failed = int(row["count"]), int(row["errors"] or 0)
        sketch = row["quantiles:duration"]
        p50, p95 = sketch.quantiles((0.5, 0.95)) if isinstance(sketch, QuantileSketch) else (None, None)
        total = _float(row["sum:duration"])
        stats.append(
            CommandStats(
                name[len(COMMAND_PREFIX) :],
                runs,
                failed,
                round(failed / runs, 6),
                total,
                round(total / runs, 9),
                p50 or 0.0,
                p95 or 0.0,
                _float(row["max:duration"]),
            )
        )
    stats.sort(key=lambda s: (-s.runs, s.command))
    return stats


def activity(store: Store, sel: Selection, tz: tzinfo | None = None) -> tuple[list[int], list[int]]:
    """Commands run and usage events, counted by hour of day (24) and weekday (7, Monday first) in
    ``tz`` (None: local time)."""
    sel = dataclasses.replace(sel, name=None, min_severity=None, component=None, text=None)
    hours, weekdays = [0] * 24, [0] * 7
    rows = [
        r
        for r in store.aggregate("operation", sel, ("name", "bucket:3600"), ("count",))
        if str(r["name"]).startswith(COMMAND_PREFIX)
    ]
    rows += store.aggregate("event", sel, ("bucket:3600",), ("count",))
    for row in rows:
        when = _local(row["bucket:3600"], tz)
        hours[when.hour] += int(row["count"])
        weekdays[when.weekday()] += int(row["count"])
    return hours, weekdays


def llm_daily(store: Store, sel: Selection, tz: tzinfo | None = None) -> dict[str, dict[str, float]]:
    """Per local day (YYYY-MM-DD): requests, tokens and cost of ``llm.request`` events."""
    sel = dataclasses.replace(sel, name=LLM_EVENT, min_severity=None, component=None, text=None)
    measures = ("count", "sum:input_tokens", "sum:output_tokens", "sum:cache_read_tokens")
    days: dict[str, dict[str, float]] = {}
    for row in store.aggregate(
        "event", sel, ("bucket:3600",), (*measures, "sum:cache_creation_tokens", "sum:cost_usd")
    ):
        day = _local(row["bucket:3600"], tz).strftime("%Y-%m-%d")
        entry = days.setdefault(day, {"requests": 0, "tokens": 0, "cost_usd": 0.0})
        entry["requests"] += int(row["count"])
        entry["tokens"] += sum(int(row[m] or 0) for m in measures[1:]) + int(
            row["sum:cache_creation_tokens"] or 0
        )
        entry["cost_usd"] = _round(entry["cost_usd"] + _float(row["sum:cost_usd"]))
    return dict(sorted(days.items()))


def conversations(store: Store, sel: Selection, tz: tzinfo | None = None) -> dict[str, Any]:
    """Conversation count, average length (messages), tokens and response time, and per-day
    averages (``trend``), from the ``conversation.*`` metrics."""
    sel = dataclasses.replace(sel, min_severity=None, component=None, text=None)
    out: dict[str, Any] = {"conversations": 0, "avg_message_count": 0.0, "avg_tokens": 0.0}
    out["avg_response_time"] = 0.0
    out["total_tokens"] = 0
    trend: dict[str, dict[str, list[float]]] = {}
    keys = {"conversation.messages": "messages", "conversation.tokens": "tokens"}
    keys["conversation.response_time"] = "response_time"
    for name, key in keys.items():
        rows = store.aggregate(
            "metric", dataclasses.replace(sel, name=name), ("bucket:3600",), ("count", "sum:value")
        )
        count = sum(int(r["count"]) for r in rows)
        total = sum(_float(r["sum:value"]) for r in rows)
        if key == "messages":
            out["conversations"] = count
        if key == "tokens":
            out["total_tokens"] = int(total)
        out[f"avg_{'message_count' if key == 'messages' else key}"] = (
            round(total / count, 6) if count else 0.0
        )
        for row in rows:
            day = _local(row["bucket:3600"], tz).strftime("%Y-%m-%d")
            cell = trend.setdefault(day, {}).setdefault(key, [0.0, 0.0])
            cell[0] += int(row["count"])
            cell[1] += _float(row["sum:value"])
    out["trend"] = {
        day: {key: round(s / c, 6) if c else 0.0 for key, (c, s) in cells.items()}
        for day, cells in sorted(trend.items())
    }
    return out


# -- insights -----------------------------------------------------------------------------------------


def insights(
    store: Store, days: float, now_ns: int, service: str | None = None, tz: tzinfo | None = None
) -> Insights:
    """Everything ``clisight insights`` shows for the last ``days``, and the rules that fired
    (comparing with the ``days`` before)."""
    span = int(days * DAY_NS)
    current = Selection(since_ns=now_ns - span, until_ns=now_ns, service=service)
    previous = Selection(since_ns=now_ns - 2 * span, until_ns=now_ns - span - 1, service=service)
    commands = command_stats(store, current)
    before = {c.command: c for c in command_stats(store, previous)}
    hours, weekdays = activity(store, current, tz)
    convo = conversations(store, current, tz)
    daily = llm_daily(store, current, tz)
    daily_before = llm_daily(store, previous, tz)
    cost = _round(sum(d["cost_usd"] for d in daily.values()))
    cost_before = _round(sum(d["cost_usd"] for d in daily_before.values()))
    tokens = int(sum(d["tokens"] for d in daily.values()))
    tokens_before = int(sum(d["tokens"] for d in daily_before.values()))
    findings = rules(commands, before, cost, cost_before, tokens, tokens_before, days)
    trends = (
        Trend("cost_usd", tuple((d, v["cost_usd"]) for d, v in daily.items())),
        Trend("tokens", tuple((d, v["tokens"]) for d, v in daily.items())),
        Trend("conversation_length", tuple((d, v.get("messages", 0.0)) for d, v in convo["trend"].items())),
    )
    return Insights(
        days,
        current.since_ns or 0,
        now_ns,
        tuple(commands),
        tuple(hours),
        tuple(weekdays),
        convo,
        int(sum(d["requests"] for d in daily.values())),
        tokens,
        cost,
        trends,
        tuple(findings),
    )


def rules(
    commands: Sequence[CommandStats],
    before: dict[str, CommandStats],
    cost: float,
    cost_before: float,
    tokens: int,
    tokens_before: int,
    days: float,
) -> list[Insight]:
    """The insight rules, each with the numbers that made it fire."""
    period = "week" if days == 7 else f"{days:g} days"
    found: list[Insight] = []
    for c in commands:
        if c.runs >= ERROR_RATE_MIN_RUNS and c.error_rate >= ERROR_RATE_THRESHOLD:
            found.append(
                Insight(
                    "high_error_rate",
                    c.command,
                    f"high error rate in {c.command}: "
                    f"{c.failed} of {c.runs} runs failed ({c.error_rate:.0%})",
                    "warning",
                    {"runs": c.runs, "failed": c.failed, "error_rate": c.error_rate},
                )
            )
        old = before.get(c.command)
        if old and c.runs >= SLOWER_MIN_RUNS and old.runs >= SLOWER_MIN_RUNS and old.p50 > 0:
            ratio = c.p50 / old.p50
            if ratio >= SLOWER_RATIO:
                found.append(
                    Insight(
                        "slower",
                        c.command,
                        f"{c.command} is {ratio:.1f}x slower than the {period} before "
                        f"(median {c.p50:.3g}s against {old.p50:.3g}s)",
                        "warning",
                        {"p50": c.p50, "p50_before": old.p50, "ratio": round(ratio, 3), "runs": c.runs},
                    )
                )
    for what, now, then, fmt in (
        ("cost", cost, cost_before, "${:,.2f}"),
        ("tokens", tokens, tokens_before, "{:,.0f}"),
    ):
        if then > 0:
            change = (now - then) / then
            if abs(change) >= COST_CHANGE:
                word = "up" if change > 0 else "down"
                found.append(
                    Insight(
                        f"{what}_change",
                        what,
                        f"{what} {word} {abs(change):.0%} {period} over {period} "
                        f"({fmt.format(now)} against {fmt.format(then)})",
                        "warning" if change > 0 else "info",
                        {"value": now, "before": then, "change": round(change, 6)},
                    )
                )
    return found


# -- journeys -----------------------------------------------------------------------------------------


def journey_steps(
    store: Store, sel: Selection, steps: Sequence[str] | None = None, resolution: int = 60
) -> dict[str, list[tuple[int, str]]]:
    """Each actor's journey steps in ``sel`` (only ``steps`` when given), oldest first.

    Read from the rollup cells of each ``journey:<step>`` event (the actor is the cells' dimension,
    see ``clisight.client.journey``), the range widened to whole cells of ``resolution`` seconds: a
    step taken several times by one actor within one minute counts as its first and its last time in
    that minute.  With ``resolution=3600`` the hour cells are read (fewer cells over long ranges) and
    only the hours in which an actor took a step more than twice are read again as minute cells, so
    the answer is the minute one over the widened range (or the hour cell's first and last time when
    its minute cells are gone).
    """
    base = dataclasses.replace(sel, name=None, min_severity=None, component=None, text=None)
    # Whole cells only: the range widened to the cells' edges is read from rollups alone (no
    # partial cells from raw rows at the ends).
    width = resolution * 10**9
    if base.since_ns is not None:
        base = dataclasses.replace(base, since_ns=base.since_ns - base.since_ns % width)
    if base.until_ns is not None:
        base = dataclasses.replace(base, until_ns=base.until_ns - base.until_ns % width + width - 1)
    if steps is None:
        names = [
            str(r["name"])
            for r in store.aggregate("event", base, ("name",), ("count",))
            if str(r["name"]).startswith(JOURNEY_PREFIX) and r["count"]
        ]
    else:
        names = [JOURNEY_PREFIX + step for step in dict.fromkeys(steps)]
    actors: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for name in names:
        step = name[len(JOURNEY_PREFIX) :]
        step_sel = dataclasses.replace(base, name=name)
        # An actor's step taken more than twice in a coarse cell may have minute cells between its
        # first and last time: those cells are read from minute rollups (one read per such cell's
        # span), so the history is the minute one whatever ``resolution`` is.
        refine: dict[int, dict[str, tuple[int, int]]] = defaultdict(dict)
        for actor, bucket, count, first, last in _journey_cells(store, step_sel, resolution):
            if resolution > 60 and count > 2:
                refine[bucket][actor] = (first, last)
                continue
            taken = actors[actor]
            taken.append((first, step))
            if count > 1 and last != first:
                taken.append((last, step))
        for bucket, coarse in refine.items():
            span = dataclasses.replace(step_sel, since_ns=bucket, until_ns=bucket + width - 1)
            fine: dict[str, list[tuple[int, str]]] = defaultdict(list)
            for actor, _, count, first, last in _journey_cells(store, span, 60):
                if actor in coarse:
                    fine[actor].append((first, step))
                    if count > 1 and last != first:
                        fine[actor].append((last, step))
            for actor, (first, last) in coarse.items():
                # No minute cells (already dropped by retention): the coarse cell's first and last.
                actors[actor].extend(fine.get(actor) or dict.fromkeys([(first, step), (last, step)]))
    for taken in actors.values():
        taken.sort()
    return dict(actors)


def _journey_cells(store: Store, sel: Selection, resolution: int) -> Iterator[tuple[str, int, int, int, int]]:
    """(actor, cell start, count, first time, last time) of each non-empty rollup cell of one
    journey step in ``sel`` (whole cells of ``resolution`` seconds)."""
    bucket = f"bucket:{resolution}"
    for cell in store.aggregate("event", sel, ("model", bucket), ("count", "min:time", "max:time")):
        count, actor = cell["count"], cell["model"]
        if count and actor:
            yield str(actor), int(cell[bucket]), int(count), int(cell["min:time"]), int(cell["max:time"])


def journey_resolution(window_s: float) -> int:
    """The rollup cells a journey view needs: minutes for windows under a day, else hours."""
    return 60 if window_s < 86_400 else 3600


def next_steps(
    actors: dict[str, list[tuple[int, str]]], after: str | None = None, top: int = 10
) -> list[NextStep]:
    """The most common transitions (``step`` -> the next step the same actor took), or, with
    ``after``, the most common steps right after it."""
    pairs: Counter[tuple[str, str]] = Counter()
    for steps in actors.values():
        for (_, a), (_, b) in itertools.pairwise(steps):
            if after is None or a == after:
                pairs[(a, b)] += 1
    totals: Counter[str] = Counter()
    for (a, _), n in pairs.items():
        totals[a] += n
    ranked = sorted(pairs.items(), key=lambda item: (-item[1], item[0]))[:top]
    return [NextStep(a, b, n, round(n / totals[a], 6)) for (a, b), n in ranked]


def funnel(actors: dict[str, list[tuple[int, str]]], steps: Sequence[str], window_s: float) -> Funnel:
    """Ordered funnel: an actor enters step k when, after reaching step k-1, it takes step k within
    ``window_s`` of its first step (the earliest occurrence that can complete the most steps).

    Each history must be oldest first (as :func:`journey_steps` returns it).  One pass per actor:
    ``start[k]`` is the latest first-step time from which steps ``0..k`` were taken in order so far
    (a later start leaves more of the window, so it is the only one worth keeping).
    """
    window = int(window_s * 1e9)
    n = len(steps)
    reached = [0] * n
    # Each step's levels, deepest first: one event extends a chain by one level at most.
    levels: dict[str, list[int]] = defaultdict(list)
    for k in range(n - 1, -1, -1):
        levels[steps[k]].append(k)
    for history in actors.values():
        start: list[int | None] = [None] * n
        best = 0
        for when, name in history:
            for k in levels.get(name, ()):
                if k == 0:
                    start[0] = when
                    best = max(best, 1)
                    continue
                began = start[k - 1]
                if began is not None and when - began <= window:
                    have = start[k]
                    if have is None or began > have:
                        start[k] = began
                    best = max(best, k + 1)
            if best == n:
                break
        for k in range(best):
            reached[k] += 1
    out = []
    for k, step in enumerate(steps):
        first = reached[0] or 0
        prev = reached[k - 1] if k else reached[0]
        out.append(
            FunnelStep(
                step,
                reached[k],
                round(reached[k] / first, 6) if first else 0.0,
                round(reached[k] / prev, 6) if prev else 0.0,
                (prev - reached[k]) if k else 0,
            )
        )
    return Funnel(tuple(out), window_s, reached[0] if steps else 0)


def retention(store: Store, sel: Selection, weeks: int = 8) -> list[Cohort]:
    """Weekly retention cohorts of users (hashed ids): each user's cohort is the UTC week (from
    Monday) of their first session in ``sel``; ``active[k]`` counts the cohort's users with a session
    ``k`` weeks later.  Read as one aggregate of sessions by user and day."""
    seen: dict[str, set[int]] = defaultdict(set)
    session_sel = dataclasses.replace(sel, name=None, min_severity=None, component=None, text=None)
    for row in store.aggregate("session", session_sel, ("user_id", "bucket:86400"), ("count",)):
        if row["user_id"] and row["count"]:
            seen[str(row["user_id"])].add(_week(int(row["bucket:86400"])))
    return cohorts(seen, weeks)


def cohorts(seen: dict[str, set[int]], weeks: int) -> list[Cohort]:
    """Cohorts from each actor's active weeks (week start, ns)."""
    by_cohort: dict[int, list[set[int]]] = defaultdict(list)
    for active in seen.values():
        if active:
            by_cohort[min(active)].append(active)
    out = []
    for week in sorted(by_cohort):
        members = by_cohort[week]
        counts = tuple(sum(1 for m in members if week + k * WEEK_NS in m) for k in range(weeks))
        label = datetime.fromtimestamp(week / 1e9, UTC).strftime("%Y-%m-%d")
        out.append(Cohort(label, len(members), counts))
    return out


# -- helpers ------------------------------------------------------------------------------------------


def _week(time_ns: int) -> int:
    """The start (Monday 00:00 UTC, ns) of the week holding ``time_ns``."""
    day = datetime.fromtimestamp(time_ns // 10**9, UTC).date()
    monday = day - timedelta(days=day.weekday())
    return int(datetime(monday.year, monday.month, monday.day, tzinfo=UTC).timestamp()) * 10**9


def _local(bucket_ns: Any, tz: tzinfo | None) -> datetime:
    """The time of an hour bucket in ``tz`` (None: the machine's local time)."""
    return datetime.fromtimestamp(int(bucket_ns) / 1e9, tz)


def _iter_rows(store: Store, kind: str, sel: Selection) -> Iterator[dict[str, Any]]:
    cursor = None
    while True:
        page = store.rows(kind, sel, cursor=cursor, limit=_PAGE)
        yield from page.rows
        if len(page.rows) < _PAGE:
            return
        cursor = page.cursor


def _float(value: Any) -> float:
    return 0.0 if value is None else float(f"{float(value):.12g}")


def _round(value: float) -> float:
    return round(value, 10)


def as_dict(value: Any) -> Any:
    """A result (or a list of them) as JSON-able data."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: as_dict(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [as_dict(v) for v in value]
    if isinstance(value, dict):
        return {k: as_dict(v) for k, v in value.items()}
    return value
