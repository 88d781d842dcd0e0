"""The query service: the one read path for the CLI, the server, the TUI and alerts.

Every report here is built from the store's two generic reads, ``rows`` and ``aggregate``; the
store answers aggregates from its rollups whenever it can, so a report over a month reads a few
hundred rollup cells, not the month's raw records.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from clisight._sketch import QuantileSketch
from clisight.query.filters import Filter
from clisight.query.results import (
    Count,
    ErrorGroupCount,
    ErrorLogCount,
    ErrorSummary,
    LevelCount,
    LogLine,
    ModelUsage,
    OperationStats,
    PipelineLosses,
    Report,
    SessionTotals,
    UsageSummary,
)
from clisight.store import open_store
from clisight.store.base import RetentionPolicy, RetentionResult, Selection, Store, StoreInfo
from clisight.types import ERROR_LEVEL, severity_name

EXPORT_ORDER: Final = ("session", "log", "event", "span", "error")
DEFAULT_TAIL: Final = 20
LLM_EVENT: Final = "llm.request"
_NO_FILTER: Final = Filter()
_PAGE: Final = 1000


class Query:
    """Reads of one store, returning frozen dataclasses.  Usable from several threads.

    ``Query(url_or_path)`` opens (and owns, so ``close`` closes) the store; ``Query(store)`` borrows an
    open one.  Also a context manager.

    Opened from a URL or path, every read goes through a read-only connection: reading never
    creates, upgrades or writes the store, so a store the user cannot write reads fine.  Only the
    state changes (:meth:`vacuum`, :meth:`save_state`, :meth:`load_state`) and direct use of
    :attr:`store` open it for writing, on first use.
    """

    def __init__(self, store: Store | str | Path) -> None:
        self._owned = isinstance(store, str | Path)
        if isinstance(store, str | Path):
            self.store: Store = open_store(store)
            reader = open_store(store, read_only=True)
            # An in-memory store is private to one object: reads must see what it holds.
            self._reads: Store = reader if getattr(reader, "read_only", False) else self.store
        else:
            self.store = self._reads = store

    @property
    def url(self) -> str:
        return self.store.url

    @property
    def reader(self) -> Store:
        """The store reads go through (read-only when opened from a URL or path); the analytics
        modules of this package (``query.analytics``, ``query.usage``) build on it."""
        return self._reads

    def close(self) -> None:
        """Close the store if this Query opened it."""
        if self._owned:
            if self._reads is not self.store:
                self._reads.close()
            self.store.close()

    def __enter__(self) -> Query:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- tail ---------------------------------------------------------------------------------
    def tail(self, flt: Filter = _NO_FILTER, n: int | None = None) -> list[LogLine]:
        """The latest ``n`` (default ``flt.limit`` or 20) matching log lines, oldest first.

        For live follow, pass the largest ``id`` returned to :meth:`follow`.
        """
        count = n if n is not None else (flt.limit or DEFAULT_TAIL)
        if count <= 0:
            return []
        page = self._reads.rows("log", flt.selection(), limit=count, newest_first=True)
        lines = [_log_line(row) for row in page.rows]
        lines.reverse()
        return lines

    def follow(self, after_id: int, flt: Filter = _NO_FILTER, limit: int = 1000) -> list[LogLine]:
        """Matching log lines stored after the line with id ``after_id``, in insertion order.

        Call again with the last id returned (or the same id if none) to keep following.
        """
        page = self._reads.rows("log", flt.selection(), cursor=str(after_id), limit=limit)
        return [_log_line(row) for row in page.rows]

    # -- report -------------------------------------------------------------------------------
    def levels(self, flt: Filter = _NO_FILTER) -> list[LevelCount]:
        """Log counts per level, lowest level first; only levels that occur."""
        merged: dict[str, list[int]] = {}
        for row in self._reads.aggregate("log", flt.selection(), ("severity",), ("count",)):
            number = int(row["severity"])
            name = severity_name(number)
            entry = merged.setdefault(name, [number, 0])
            entry[0] = min(entry[0], number)
            entry[1] += row["count"]
        return sorted(
            (LevelCount(name, num, count) for name, (num, count) in merged.items() if count),
            key=lambda lc: lc.severity,
        )

    def components(self, flt: Filter = _NO_FILTER, top: int | None = None) -> list[Count]:
        """Log counts per component, largest first (the ``top`` largest if given)."""
        found = self._reads.aggregate("log", flt.selection(), ("component",), ("count",))
        rows = sorted(
            (Count(str(r["component"]), r["count"]) for r in found if r["count"]),
            key=lambda c: (-c.count, c.key),
        )
        return rows if top is None else rows[:top]

    def errors(self, flt: Filter = _NO_FILTER, top: int = 10) -> ErrorSummary:
        """The ``top`` error groups and ``top`` ERROR/CRITICAL log messages, most frequent first."""
        sel = flt.selection()
        return ErrorSummary(tuple(self._error_groups(sel, top)), tuple(self._error_logs(sel, top)))

    def _error_groups(self, sel: Selection, top: int) -> list[ErrorGroupCount]:
        error_sel = dataclasses.replace(sel, min_severity=None, component=None)
        found = self._reads.aggregate("error", error_sel, ("fingerprint",), ("count", "min:time", "max:time"))
        found = [r for r in found if r["count"]]
        found.sort(key=lambda r: (-r["count"], -(r["max:time"] or 0)))
        # A group's status (resolve / ignore / reopen, regressions) and an LLM error's kind and model
        # are clisight.query.errors' to read, which builds on this module: imported here, when used.
        from clisight.query import errors as group_facts

        groups = []
        for row in found[:top]:
            page = self._reads.rows("error_group", Selection(name=row["fingerprint"]), limit=1)
            if not page.rows:
                continue  # the group was deleted by retention between the two reads
            g = page.rows[0]
            status, _ = group_facts.status_of(self, g)
            kind, model = group_facts.llm_facts(self, g)
            groups.append(
                ErrorGroupCount(
                    g["fingerprint"],
                    g["type"],
                    g["title"],
                    status,
                    row["count"],
                    g["count"],
                    g["first_seen_ns"],
                    g["last_seen_ns"],
                    kind,
                    model,
                )
            )
        return groups

    def _error_logs(self, sel: Selection, top: int) -> list[ErrorLogCount]:
        level = max(sel.min_severity or 0, ERROR_LEVEL)
        found = self._reads.aggregate(
            "log",
            dataclasses.replace(sel, min_severity=level),
            ("component", "message"),
            ("count", "max:severity", "min:time", "max:time"),
        )
        found = [r for r in found if r["count"]]
        found.sort(key=lambda r: (-r["count"], -(r["max:time"] or 0)))
        return [
            ErrorLogCount(
                r["component"], r["message"], int(r["max:severity"]), r["count"], r["min:time"], r["max:time"]
            )
            for r in found[:top]
        ]

    def slow_operations(self, flt: Filter = _NO_FILTER, top: int = 10) -> list[OperationStats]:
        """Operations (spans, and PERFORMANCE logs with a ``duration`` in seconds, named by their
        ``operation`` attribute or else their message), slowest p95 first.  The filter's ``level``
        and ``component`` are ignored here."""
        sel = dataclasses.replace(flt.selection(), min_severity=None, component=None)
        found = self._reads.aggregate(
            "operation",
            sel,
            ("name",),
            ("count", "errors", "sum:duration", "max:duration", "quantiles:duration"),
        )
        stats = []
        for row in found:
            if not row["count"]:
                continue
            sketch = row["quantiles:duration"]
            p50, p95, p99 = (
                sketch.quantiles((0.5, 0.95, 0.99)) if isinstance(sketch, QuantileSketch) else (None,) * 3
            )
            stats.append(
                OperationStats(
                    operation=str(row["name"]),
                    count=row["count"],
                    total=_float_sum(row["sum:duration"]),
                    p50=p50 or 0.0,
                    p95=p95 or 0.0,
                    max=float(row["max:duration"] or 0.0),
                    p99=p99 or 0.0,
                    failed=int(row["errors"] or 0),
                )
            )
        stats.sort(key=lambda s: (-s.p95, -s.max, s.operation))
        return stats[:top]

    def usage(self, flt: Filter = _NO_FILTER) -> UsageSummary:
        """Events by name, sessions and distinct users, and LLM totals per model (``llm.request`` events)."""
        sel = dataclasses.replace(flt.selection(), min_severity=None, component=None)
        events = sorted(
            (
                Count(str(r["name"]), r["count"])
                for r in self._reads.aggregate("event", sel, ("name",))
                if r["count"]
            ),
            key=lambda c: (-c.count, c.key),
        )
        session_sel = dataclasses.replace(sel, name=None, text=None)
        [totals] = self._reads.aggregate(
            "session", session_sel, (), ("count", "distinct:user_id", "sum:failed")
        )
        return UsageSummary(
            tuple(events),
            SessionTotals(totals["count"], totals["distinct:user_id"], int(totals["sum:failed"] or 0)),
            tuple(self.llm_usage(flt)),
        )

    def llm_usage(self, flt: Filter = _NO_FILTER) -> list[ModelUsage]:
        """Totals of ``llm.request`` events per model, most expensive first (model ``unknown`` when
        the event names none)."""
        sel = dataclasses.replace(flt.selection(), min_severity=None, component=None, name=LLM_EVENT)
        found = self._reads.aggregate(
            "event",
            sel,
            ("model",),
            (
                "count",
                "sum:input_tokens",
                "sum:output_tokens",
                "sum:cache_read_tokens",
                "sum:cost_usd",
                "sum:duration",
            ),
        )
        models = [
            ModelUsage(
                str(r["model"] or "unknown"),
                r["count"],
                int(r["sum:input_tokens"] or 0),
                int(r["sum:output_tokens"] or 0),
                int(r["sum:cache_read_tokens"] or 0),
                _float_sum(r["sum:cost_usd"]),
                _float_sum(r["sum:duration"]),
            )
            for r in found
            if r["count"]
        ]
        models.sort(key=lambda m: (-m.cost_usd, -m.requests, m.model))
        return models

    def report(self, flt: Filter = _NO_FILTER, top: int = 10) -> Report:
        """Levels, components, errors, slow operations and usage for one filter."""
        return Report(
            levels=tuple(self.levels(flt)),
            components=tuple(self.components(flt, top)),
            errors=self.errors(flt, top),
            slow_operations=tuple(self.slow_operations(flt, top)),
            usage=self.usage(flt),
        )

    # -- export -------------------------------------------------------------------------------
    def export(
        self, flt: Filter = _NO_FILTER, kinds: Iterable[str] = EXPORT_ORDER
    ) -> Iterator[dict[str, Any]]:
        """Matching records as plain dicts (``kind`` says which), kind by kind, each in insertion order.

        The fields of each kind are the store's export schema (``clisight.store.EXPORT_FIELDS``,
        documented in docs/store.md), never its table layout.  Streams: rows are read a page at a
        time, so memory stays flat.  Stops after ``flt.limit`` rows in all.  Kinds: ``session``,
        ``log``, ``event``, ``span``, ``error``, ``metric`` and ``error_group``.
        """
        remaining = flt.limit
        for kind in kinds:
            rows = self._iter_rows(kind, flt.selection())
            if kind == "error_group":  # the status resolve and ignore saved, not the store's column
                from clisight.query import errors as group_facts

                rows = (group_facts.with_status(self, [g])[0] for g in rows)
            for row in rows:
                if remaining is not None:
                    if remaining <= 0:
                        return
                    remaining -= 1
                yield {"kind": kind, **row}

    def _iter_rows(self, kind: str, sel: Selection) -> Iterator[dict[str, Any]]:
        cursor = None
        while True:
            page = self._reads.rows(kind, sel, cursor=cursor, limit=_PAGE)
            yield from page.rows
            if len(page.rows) < _PAGE:
                return
            cursor = page.cursor

    # -- store ----------------------------------------------------------------------------------
    def doctor(self) -> StoreInfo:
        """Backend, URL, path, size, schema version, row counts and time span of the store."""
        return self._reads.info()

    def pipeline_losses(self, flt: Filter = _NO_FILTER) -> PipelineLosses:
        """Records emitted and dropped by the runs (sessions) in ``flt``, as each run reported at exit."""
        runs = with_drops = emitted = dropped = errors = 0
        for row in self._iter_rows("session", flt.selection()):
            attrs = row.get("attributes") or {}
            if "pipeline.emitted" not in attrs:
                continue  # a nested session, or a run that has not ended
            runs += 1
            run_dropped = int(attrs.get("pipeline.dropped") or 0)
            with_drops += run_dropped > 0
            emitted += int(attrs.get("pipeline.emitted") or 0)
            dropped += run_dropped
            errors += int(attrs.get("pipeline.errors") or 0)
        since = flt.selection().since_ns or 0
        imported = sum(
            int(value) for _, value in self._reads.state_items("spool:", since) if isinstance(value, int)
        )
        return PipelineLosses(runs, with_drops, emitted, dropped, errors, imported)

    def vacuum(self, policy: RetentionPolicy) -> RetentionResult:
        """Apply retention (see :class:`~clisight.store.RetentionPolicy`).  The one state change the
        CLI makes through the query layer."""
        return self.store.apply_retention(policy)

    def save_state(self, key: str, value: Any) -> None:
        """Persist a JSON-able value (a detector baseline) under ``key``."""
        self.store.save_state(key, value)

    def load_state(self, key: str) -> Any | None:
        """The value saved under ``key``, or ``None``; read with the writer, as state usually is
        loaded to be saved again (and a missing store then gets created)."""
        return self.store.load_state(key)


def _float_sum(value: Any) -> float:
    """A float sum as reported: the store adds batch sums in whatever order batches were written,
    so the last bits of a sum differ between two runs of the same workload (358.661 against
    358.66099999999994). Twelve significant digits keep every real digit and drop that noise."""
    if value is None:
        return 0.0
    return float(f"{float(value):.12g}")


def _log_line(row: dict[str, Any]) -> LogLine:
    return LogLine(
        row["id"],
        row["time_ns"],
        row["severity"],
        row["severity_text"],
        row["component"],
        row["message"],
        row["attributes"],
        row["service"],
        row["session_id"],
        row["trace_id"],
        row["span_id"],
    )
