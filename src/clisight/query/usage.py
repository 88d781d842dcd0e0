"""LLM usage reports in the manner of ccusage: tokens by type and cost by model per day, month,
session and 5-hour billing block, from the ``llm.request`` events (``clisight.llm.record``, the SDK
instrumentation and ``clisight usage import-claude-code`` all write them).

Days and months are local to ``tz`` (the machine's zone by default), folded from the hourly
rollups; sessions read raw events; blocks read the hourly rollups too: a block starts on the hour
and lasts whole hours, so no hour cell straddles two blocks, and each cell's first and last request
times keep the 5-hour gap rule exact.

A **billing block** (Claude's 5-hour usage window, as ccusage computes it) starts at the hour of the
first request after the previous block ended, lasts 5 hours, and also ends early when 5 hours pass
without a request.  The *active* block (its end is in the future and its last request less than 5
hours ago) has a burn rate (tokens per minute and dollars per hour between its first and last
request) and a projection to its end at that rate.

Cost is what was recorded with each request (priced when recorded); a model the price table does
not know has ``cost_usd`` None and is listed in ``unpriced_models``: never $0.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any, Final

from clisight import _prices
from clisight.store.base import Selection, Store

LLM_EVENT: Final = "llm.request"
BLOCK_NS: Final = 5 * 3600 * 10**9
HOUR_NS: Final = 3600 * 10**9
TOKEN_FIELDS: Final = ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens")
_MEASURES: Final = ("count", *(f"sum:{f}" for f in TOKEN_FIELDS), "sum:cost_usd")


@dataclass(slots=True)
class Tokens:
    """Tokens by type, requests and cost of one model (or of all models of a row)."""

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_tokens: int = 0
    cache_read_tokens: int = 0
    cost_usd: float = 0.0
    unpriced_requests: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens + self.cache_creation_tokens + self.cache_read_tokens

    def add_row(self, row: dict[str, Any], priced: bool) -> None:
        count = int(row["count"] or 0)
        self.requests += count
        self.input_tokens += int(row["sum:input_tokens"] or 0)
        self.output_tokens += int(row["sum:output_tokens"] or 0)
        self.cache_creation_tokens += int(row["sum:cache_creation_tokens"] or 0)
        self.cache_read_tokens += int(row["sum:cache_read_tokens"] or 0)
        self.cost_usd = round(self.cost_usd + float(row["sum:cost_usd"] or 0.0), 10)
        if not priced:
            self.unpriced_requests += count

    def add(self, other: Tokens) -> None:
        for name in ("requests", *TOKEN_FIELDS, "unpriced_requests"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.cost_usd = round(self.cost_usd + other.cost_usd, 10)

    def as_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["total_tokens"] = self.total_tokens
        return out


@dataclass(slots=True)
class UsageRow:
    """One day, month, session or block: totals, and the same per model (the breakdown)."""

    key: str
    totals: Tokens = field(default_factory=Tokens)
    models: dict[str, Tokens] = field(default_factory=dict)
    first_ns: int | None = None
    last_ns: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, model: str, row: dict[str, Any], priced: bool) -> None:
        self.models.setdefault(model, Tokens()).add_row(row, priced)
        self.totals.add_row(row, priced)

    @property
    def unpriced_models(self) -> list[str]:
        return sorted(m for m, t in self.models.items() if t.unpriced_requests)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": self.key, **self.totals.as_dict()}
        out["cost_usd"] = (
            None
            if self.totals.requests and self.totals.unpriced_requests == self.totals.requests
            else self.totals.cost_usd
        )
        out["unpriced_models"] = self.unpriced_models
        out["models"] = {m: t.as_dict() for m, t in sorted(self.models.items())}
        if self.first_ns is not None:
            out["first_ns"], out["last_ns"] = self.first_ns, self.last_ns
        out.update(self.extra)
        return out


def _llm(sel: Selection) -> Selection:
    return dataclasses.replace(sel, name=LLM_EVENT, min_severity=None, component=None, text=None)


_PRICED_CACHE: dict[tuple[int, str], bool] = {}


def _priced(model: str, row: dict[str, Any], is_priced: Any) -> bool:
    """Whether a row's requests have a cost: recorded with one (a provider's own figure, or the
    price table when recorded), else ``is_priced(model)`` (by default the shipped price table)."""
    if row["sum:cost_usd"]:
        return True
    key = (id(is_priced), model)
    found = _PRICED_CACHE.get(key)
    if found is None:
        found = bool(is_priced(model)) if is_priced is not None else _prices.shipped().find(model) is not None
        if len(_PRICED_CACHE) > 4096:
            _PRICED_CACHE.clear()
        _PRICED_CACHE[key] = found
    return found


def daily(store: Store, sel: Selection, tz: tzinfo | None = None, is_priced: Any = None) -> list[UsageRow]:
    """Usage per local day (YYYY-MM-DD), oldest first."""
    return _by_period(store, sel, tz, "%Y-%m-%d", is_priced)


def monthly(store: Store, sel: Selection, tz: tzinfo | None = None, is_priced: Any = None) -> list[UsageRow]:
    """Usage per local month (YYYY-MM), oldest first."""
    return _by_period(store, sel, tz, "%Y-%m", is_priced)


def _by_period(store: Store, sel: Selection, tz: tzinfo | None, fmt: str, is_priced: Any) -> list[UsageRow]:
    # Day cells when local days are UTC days over the whole range (30 cells a model a month, not 720).
    bucket = "bucket:86400" if _utc_days(sel, tz) else "bucket:3600"
    rows: dict[str, UsageRow] = {}
    for row in store.aggregate("event", _llm(sel), (bucket, "model"), _MEASURES):
        if not row["count"]:
            continue
        key = datetime.fromtimestamp(int(row[bucket]) / 1e9, tz).strftime(fmt)
        model = str(row["model"] or "unknown")
        rows.setdefault(key, UsageRow(key)).add(model, row, _priced(model, row, is_priced))
    return [rows[k] for k in sorted(rows)]


def _utc_days(sel: Selection, tz: tzinfo | None) -> bool:
    """Whether local time is UTC at both ends of ``sel`` (and now)."""
    moments = [sel.since_ns, sel.until_ns, time.time_ns()]
    for moment in moments:
        if moment is None:
            continue
        offset = datetime.fromtimestamp(moment / 1e9, tz).astimezone(tz).utcoffset()
        if offset is not None and offset.total_seconds() != 0:
            return False
    return True


def sessions(store: Store, sel: Selection, is_priced: Any = None) -> list[UsageRow]:
    """Usage per session, the most recently active first, with its project and time span."""
    found: dict[str, UsageRow] = {}
    measures = (*_MEASURES, "min:time", "max:time")
    for row in store.aggregate("event", _llm(sel), ("session_id", "model"), measures):
        sid = row["session_id"]
        if not row["count"] or not sid:
            continue
        model = str(row["model"] or "unknown")
        entry = found.setdefault(str(sid), UsageRow(str(sid)))
        entry.add(model, row, _priced(model, row, is_priced))
        first, last = int(row["min:time"]), int(row["max:time"])
        entry.first_ns = first if entry.first_ns is None else min(entry.first_ns, first)
        entry.last_ns = last if entry.last_ns is None else max(entry.last_ns, last)
    for sid, entry in found.items():
        page = store.rows("session", Selection(session_id=sid), limit=1)
        if page.rows:
            attrs = page.rows[0].get("attributes") or {}
            entry.extra["project"] = attrs.get("project")
            entry.extra["service"] = page.rows[0].get("service")
    return sorted(found.values(), key=lambda r: (-(r.last_ns or 0), r.key))


def blocks(
    store: Store, sel: Selection, now_ns: int, is_priced: Any = None, block_ns: int = BLOCK_NS
) -> list[UsageRow]:
    """5-hour billing blocks, oldest first; the active one carries ``active``, ``burn_rate`` and
    ``projection`` in its ``extra``."""
    cells: list[dict[str, Any]] = [
        r
        for r in store.aggregate(
            "event", _llm(sel), ("bucket:3600", "model"), (*_MEASURES, "min:time", "max:time")
        )
        if r["count"]
    ]
    cells.sort(key=lambda r: (int(r["min:time"]), str(r["model"])))
    out: list[UsageRow] = []
    current: UsageRow | None = None
    start = last = 0
    for cell in cells:
        first_ns, last_ns = int(cell["min:time"]), int(cell["max:time"])
        if current is None or first_ns - start >= block_ns or first_ns - last >= block_ns:
            start = first_ns - first_ns % HOUR_NS
            current = UsageRow(_iso(start))
            current.extra["start_ns"], current.extra["end_ns"] = start, start + block_ns
            out.append(current)
            last = first_ns
        model = str(cell["model"] or "unknown")
        current.add(model, cell, _priced(model, cell, is_priced))
        current.first_ns = first_ns if current.first_ns is None else min(current.first_ns, first_ns)
        last = max(last, last_ns)
        current.last_ns = last
    for row in out:
        active = row.extra["end_ns"] > now_ns and now_ns - (row.last_ns or 0) < block_ns
        row.extra["active"] = active
        if active:
            row.extra.update(burn(row, now_ns))
    return out


def burn(row: UsageRow, now_ns: int) -> dict[str, Any]:
    """The burn rate of a block between its first and last request, and the projection to its end."""
    elapsed_min = max(((row.last_ns or 0) - (row.first_ns or 0)) / 60e9, 0.0)
    remaining_min = max((row.extra["end_ns"] - now_ns) / 60e9, 0.0)
    if elapsed_min <= 0:
        return {"burn_rate": None, "projection": None, "remaining_minutes": round(remaining_min, 3)}
    tokens_per_min = row.totals.total_tokens / elapsed_min
    cost_per_hour = row.totals.cost_usd / elapsed_min * 60
    return {
        "remaining_minutes": round(remaining_min, 3),
        "burn_rate": {
            "tokens_per_minute": round(tokens_per_min, 3),
            "cost_per_hour": round(cost_per_hour, 6),
        },
        "projection": {
            "total_tokens": round(row.totals.total_tokens + tokens_per_min * remaining_min),
            "cost_usd": round(row.totals.cost_usd + cost_per_hour / 60 * remaining_min, 6),
        },
    }


def total(rows: Iterable[UsageRow]) -> Tokens:
    out = Tokens()
    for row in rows:
        out.add(row.totals)
    return out


def _iso(time_ns: int) -> str:
    return datetime.fromtimestamp(time_ns / 1e9).astimezone().isoformat(timespec="minutes")
