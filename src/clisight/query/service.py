"""The query service: the one read path for the CLI, the server, the TUI and alerts."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from clisight.query.filters import Filter
from clisight.query.percentiles import percentile
from clisight.query.results import (
    ErrorSummary,
    LevelCount,
    OperationStats,
    PipelineLosses,
    Report,
    UsageSummary,
)
from clisight.store import open_store
from clisight.store.base import Count, LogLine, RetentionResult, Store, StoreInfo
from clisight.types import severity_name

EXPORT_ORDER: Final = ("session", "log", "event", "span", "error")
DEFAULT_TAIL: Final = 20
_NO_FILTER: Final = Filter()


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
        lines = self._reads.logs(flt.selection(), newest_first=True, limit=max(count, 0))
        lines.reverse()
        return lines

    def follow(self, after_id: int, flt: Filter = _NO_FILTER, limit: int = 1000) -> list[LogLine]:
        """Matching log lines stored after the line with id ``after_id``, in insertion order.

        Call again with the last id returned (or the same id if none) to keep following.
        """
        return self._reads.logs(flt.selection(), after_id=after_id, limit=limit)

    # -- report -------------------------------------------------------------------------------
    def levels(self, flt: Filter = _NO_FILTER) -> list[LevelCount]:
        """Log counts per level, lowest level first; only levels that occur."""
        merged: dict[str, list[int]] = {}
        for row in self._reads.count_logs(flt.selection(), by="severity"):
            number = int(row.key)
            name = severity_name(number)
            entry = merged.setdefault(name, [number, 0])
            entry[0] = min(entry[0], number)
            entry[1] += row.count
        return sorted(
            (LevelCount(name, num, count) for name, (num, count) in merged.items()),
            key=lambda lc: lc.severity,
        )

    def components(self, flt: Filter = _NO_FILTER, top: int | None = None) -> list[Count]:
        """Log counts per component, largest first (the ``top`` largest if given)."""
        rows = self._reads.count_logs(flt.selection(), by="component")
        return rows if top is None else rows[:top]

    def errors(self, flt: Filter = _NO_FILTER, top: int = 10) -> ErrorSummary:
        """The ``top`` error groups and ``top`` ERROR/CRITICAL log messages, most frequent first."""
        sel = flt.selection()
        return ErrorSummary(
            tuple(self._reads.error_groups(sel, top)), tuple(self._reads.error_logs(sel, top))
        )

    def slow_operations(self, flt: Filter = _NO_FILTER, top: int = 10) -> list[OperationStats]:
        """Operations timed by PERFORMANCE logs, slowest p95 first.

        The operation is ``attributes["operation"]`` (else the message), the duration
        ``attributes["duration"]`` in seconds; the filter's ``level`` is ignored here.
        """
        sel = dataclasses.replace(flt.selection(), min_severity=None)
        samples: dict[str, list[float]] = {}
        for operation, seconds in self._reads.operation_durations(sel):
            samples.setdefault(operation, []).append(seconds)
        stats = [_operation_stats(op, values) for op, values in samples.items()]
        stats.sort(key=lambda s: (-s.p95, -s.max, s.operation))
        return stats[:top]

    def usage(self, flt: Filter = _NO_FILTER) -> UsageSummary:
        """Events by name, sessions and distinct users, and LLM totals per model (``llm.request`` events)."""
        sel = flt.selection()
        return UsageSummary(
            tuple(self._reads.count_events(sel)),
            self._reads.session_totals(sel),
            tuple(self._reads.llm_usage(sel)),
        )

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

        Streams: rows are read in chunks, so memory stays flat.  Stops after ``flt.limit`` rows in all.
        Kinds: ``session``, ``log``, ``event``, ``span``, ``error`` and ``metric``.
        """
        sel = flt.selection()
        remaining = flt.limit
        for kind in kinds:
            for row in self._reads.iter_rows(kind, sel):
                if remaining is not None:
                    if remaining <= 0:
                        return
                    remaining -= 1
                yield row

    # -- store ----------------------------------------------------------------------------------
    def doctor(self) -> StoreInfo:
        """URL, path, file and WAL size, schema version, row counts and time span of the store."""
        return self._reads.info()

    def pipeline_losses(self, flt: Filter = _NO_FILTER) -> PipelineLosses:
        """Records emitted and dropped by the runs (sessions) in ``flt``, as each run reported at exit."""
        runs = with_drops = emitted = dropped = errors = 0
        for row in self._reads.iter_rows("session", flt.selection()):
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

    def vacuum(self, max_age_days: float, max_bytes: int) -> RetentionResult:
        """Apply retention: drop records older than ``max_age_days``, then the oldest until the store
        fits ``max_bytes``; 0 means no limit.  The one state change the CLI makes through the query layer."""
        return self.store.apply_retention(max_age_days, max_bytes)

    def save_state(self, key: str, value: Any) -> None:
        """Persist a JSON-able value (a detector baseline) under ``key``."""
        self.store.save_state(key, value)

    def load_state(self, key: str) -> Any | None:
        """The value saved under ``key``, or ``None``; read with the writer, as state usually is
        loaded to be saved again (and a missing store then gets created)."""
        return self.store.load_state(key)


def _operation_stats(operation: str, values: list[float]) -> OperationStats:
    values.sort()
    return OperationStats(
        operation=operation,
        count=len(values),
        total=sum(values),
        p50=percentile(values, 50, presorted=True),
        p95=percentile(values, 95, presorted=True),
        max=values[-1],
    )
