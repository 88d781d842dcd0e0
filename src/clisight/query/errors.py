"""Error groups for ``clisight errors``: ranking, trend, one group's latest occurrence, and status.

Built on the store's generic reads (the ``error`` rollups for counts and trends, ``rows`` for a
group's row and its occurrences) and its key-value state for what a user decides about a group:

- ``resolve``/``ignore``/``reopen`` save ``error_status:<fingerprint>`` = ``{"status", "at_ns",
  "version"}`` (the service version of the latest occurrence when it was resolved);
- a resolved group seen again after it was resolved, in a *newer* service version (or with no
  version to compare), is reported as ``regression`` (unresolved again) with ``regressed_ns``;
  an occurrence in the version it was resolved in leaves it resolved (the fix is not out yet);
- an ignored group stays ignored.

Statuses shown: ``unresolved``, ``resolved``, ``ignored``, ``regression``.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from clisight.query.filters import Filter
from clisight.query.service import Query
from clisight.store.base import Selection

_ALL: Final = Filter()

STATE_PREFIX: Final = "error_status:"
STATUSES: Final = ("unresolved", "resolved", "ignored")
TREND_BUCKETS: Final = 12
_PAGE: Final = 500


@dataclass(frozen=True, slots=True)
class ErrorGroupView:
    """One group as ``clisight errors`` lists it; ``count`` is within the filter, ``total`` all time."""

    fingerprint: str
    type: str
    title: str
    status: str
    count: int
    total: int
    sessions: int
    first_seen_ns: int
    last_seen_ns: int
    trend: tuple[int, ...]
    regressed_ns: int | None = None
    kind: str | None = None  # an LLM API error's kind (``llm.rate_limit``...), from its latest occurrence
    model: str | None = None  # and its model


def _latest_attributes(q: Query, group: dict[str, Any]) -> dict[str, Any]:
    """The attributes of the group's latest occurrence (found at its last-seen time exactly)."""
    at = group["last_seen_ns"]
    sel = Selection(since_ns=at, until_ns=at, name=group["type"])
    for row in q.reader.rows("error", sel, limit=50).rows:
        if row["fingerprint"] == group["fingerprint"]:
            attrs = row["attributes"]
            return attrs if isinstance(attrs, dict) else {}
    return {}


def _llm_facts(attrs: dict[str, Any]) -> tuple[str | None, str | None]:
    kind, model = attrs.get("error.kind"), attrs.get("llm.model")
    return (kind if isinstance(kind, str) else None), (model if isinstance(model, str) else None)


def llm_facts(q: Query, group: dict[str, Any]) -> tuple[str | None, str | None]:
    """(kind, model) of an LLM API error group, from its latest occurrence; (None, None) otherwise."""
    return _llm_facts(_latest_attributes(q, group))


@dataclass(frozen=True, slots=True)
class ErrorDetail:
    """One group and its latest occurrence (an ``error`` row in the export schema)."""

    group: ErrorGroupView
    latest: dict[str, Any] | None


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:6])


def newer_version(candidate: str, than: str) -> bool:
    """Whether ``candidate`` is a later release than ``than`` (numbers compared part by part;
    two versions without numbers compare as text; an empty version is never newer than one)."""
    if candidate == than:
        return False
    if not than:
        return bool(candidate)
    if not candidate:
        return False
    a, b = _version_key(candidate), _version_key(than)
    if a or b:
        return a > b
    return candidate > than


def _status_state(q: Query, fingerprint: str) -> dict[str, Any]:
    value = q.reader.load_state(STATE_PREFIX + fingerprint)
    return value if isinstance(value, dict) else {}


def _occurrences(
    q: Query, fingerprint: str, type_name: str, since_ns: int | None = None, newest_first: bool = True
) -> Iterator[dict[str, Any]]:
    """Occurrences of one group (rows of its exception type, filtered by fingerprint), newest first
    or oldest first, a page at a time."""
    sel = Selection(since_ns=since_ns, name=type_name)
    cursor = None
    for _ in range(1000):  # bounded, whatever the store holds
        if newest_first:
            page = q.reader.rows("error", sel, limit=_PAGE, newest_first=True)
        else:
            page = q.reader.rows("error", sel, cursor=cursor, limit=_PAGE)
        yield from (row for row in page.rows if row["fingerprint"] == fingerprint)
        if len(page.rows) < _PAGE:
            return
        if newest_first:  # the next page: everything older than this one's oldest row
            sel = dataclasses.replace(sel, until_ns=min(r["time_ns"] for r in page.rows) - 1)
        else:
            cursor = page.cursor


def status_of(q: Query, group: dict[str, Any]) -> tuple[str, int | None]:
    """(status, time of the regression or None) of an ``error_group`` row."""
    state = _status_state(q, group["fingerprint"])
    status = state.get("status")
    if status == "ignored":
        return "ignored", None
    if status != "resolved":
        return "unresolved", None
    at_ns = int(state.get("at_ns") or 0)
    if group["last_seen_ns"] <= at_ns:
        return "resolved", None
    resolved_in = str(state.get("version") or "")
    for row in _occurrences(q, group["fingerprint"], group["type"], since_ns=at_ns + 1, newest_first=False):
        if newer_version(str(row.get("service_version") or ""), resolved_in) or not resolved_in:
            return "regression", int(row["time_ns"])
    return "resolved", None


def with_status(q: Query, groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``error_group`` rows with the status :func:`status_of` gives them (the store's own column
    keeps the status a group was created with; resolve and ignore are saved as state)."""
    return [{**g, "status": status_of(q, g)[0]} for g in groups]


def error_groups(q: Query, flt: Filter = _ALL, order: str = "count", top: int = 20) -> list[ErrorGroupView]:
    """Groups with an occurrence in ``flt``, by ``count`` (most first) or ``recent`` (latest first),
    each with its status, affected sessions and a trend of :data:`TREND_BUCKETS` counts."""
    sel = dataclasses.replace(flt.selection(), min_severity=None, component=None)
    found = [
        r
        for r in q.reader.aggregate("error", sel, ("fingerprint",), ("count", "min:time", "max:time"))
        if r["count"]
    ]
    if order == "recent":
        found.sort(key=lambda r: (-(r["max:time"] or 0), -r["count"]))
    else:
        found.sort(key=lambda r: (-r["count"], -(r["max:time"] or 0)))
    found = found[:top]
    if not found:
        return []
    since = sel.since_ns if sel.since_ns is not None else min(r["min:time"] for r in found)
    until = (
        sel.until_ns if sel.until_ns is not None else max(time.time_ns(), max(r["max:time"] for r in found))
    )
    width = max(60, -(-(until - since) // (TREND_BUCKETS * 1_000_000_000) // 60 * 60) or 60)
    trend_rows = q.reader.aggregate("error", sel, ("fingerprint", f"bucket:{width}"), ("count",))
    first_bucket = since - since % (width * 1_000_000_000)
    trends: dict[str, list[int]] = {}
    for row in trend_rows:
        index = (row[f"bucket:{width}"] - first_bucket) // (width * 1_000_000_000)
        counts = trends.setdefault(row["fingerprint"], [0] * TREND_BUCKETS)
        counts[min(max(int(index), 0), TREND_BUCKETS - 1)] += row["count"]
    wanted = {r["fingerprint"] for r in found}
    sessions = {
        r["fingerprint"]: r["distinct:session_id"]
        for r in q.reader.aggregate("error", sel, ("fingerprint",), ("distinct:session_id",))
        if r["fingerprint"] in wanted
    }
    views = []
    for row in found:
        page = q.reader.rows("error_group", Selection(name=row["fingerprint"]), limit=1)
        if not page.rows:
            continue  # deleted by retention between the two reads
        g = page.rows[0]
        status, regressed = status_of(q, g)
        kind, model = llm_facts(q, g)
        views.append(
            ErrorGroupView(
                g["fingerprint"],
                g["type"],
                g["title"],
                status,
                row["count"],
                g["count"],
                int(sessions.get(g["fingerprint"]) or 0),
                g["first_seen_ns"],
                g["last_seen_ns"],
                tuple(trends.get(g["fingerprint"], [0] * TREND_BUCKETS)),
                regressed,
                kind,
                model,
            )
        )
    return views


def find_group(q: Query, ident: str) -> dict[str, Any] | None:
    """The ``error_group`` row whose fingerprint is ``ident`` or starts with it (at least 6
    characters, and only one group may match)."""
    ident = ident.strip().lower()
    page = q.reader.rows("error_group", Selection(name=ident), limit=1)
    if page.rows:
        return page.rows[0]
    if len(ident) < 6:
        return None
    matches = []
    cursor = None
    while True:
        page = q.reader.rows("error_group", Selection(), cursor=cursor, limit=_PAGE)
        matches += [r for r in page.rows if r["fingerprint"].startswith(ident)]
        if len(page.rows) < _PAGE or len(matches) > 1:
            break
        cursor = page.cursor
    return matches[0] if len(matches) == 1 else None


def error_detail(q: Query, ident: str) -> ErrorDetail | None:
    """A group (by fingerprint or a unique prefix of it) and its latest occurrence; None if none."""
    group = find_group(q, ident)
    if group is None:
        return None
    status, regressed = status_of(q, group)
    latest = next(iter(_occurrences(q, group["fingerprint"], group["type"])), None)
    sessions = next(
        (
            int(r["distinct:session_id"] or 0)
            for r in q.reader.aggregate(
                "error", Selection(name=group["type"]), ("fingerprint",), ("distinct:session_id",)
            )
            if r["fingerprint"] == group["fingerprint"]
        ),
        0,
    )
    kind, model = _llm_facts((latest or {}).get("attributes") or {})
    view = ErrorGroupView(
        group["fingerprint"],
        group["type"],
        group["title"],
        status,
        group["count"],
        group["count"],
        sessions,
        group["first_seen_ns"],
        group["last_seen_ns"],
        (),
        regressed,
        kind,
        model,
    )
    return ErrorDetail(view, latest)


def set_status(q: Query, ident: str, status: str, now_ns: int | None = None) -> dict[str, Any] | None:
    """Mark a group ``resolved``, ``ignored`` or ``unresolved``; returns the saved state, or None
    when no group matches.  Resolving notes the service version of the latest occurrence: a later
    occurrence in a newer version reopens the group as a regression."""
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}: expected one of {', '.join(STATUSES)}")
    group = find_group(q, ident)
    if group is None:
        return None
    state: dict[str, Any] = {"status": status, "at_ns": now_ns if now_ns is not None else time.time_ns()}
    if status == "resolved":
        latest = next(iter(_occurrences(q, group["fingerprint"], group["type"])), None)
        state["version"] = str(latest.get("service_version") or "") if latest else ""
        state["at_ns"] = max(state["at_ns"], group["last_seen_ns"])
    q.save_state(STATE_PREFIX + group["fingerprint"], state)
    return {"fingerprint": group["fingerprint"], **state}
