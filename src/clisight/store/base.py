"""The :class:`Store` protocol every backend implements, and the plain values it reads and returns.

A store owns its SQL: the query layer (``clisight.query``) asks for logs, counts and summaries
through the read primitives below and never writes SQL itself, so a PostgreSQL backend only has
to implement this one protocol.  Times are integers in nanoseconds since the Unix epoch.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, runtime_checkable

from clisight.types import Deadline, Record

# Tables that hold records, in the order exports and row counts list them.
RECORD_TABLES: Final = ("logs", "events", "spans", "metric_points", "errors", "sessions")

# What an export may ask for, mapped to the table each kind lives in.
EXPORT_KINDS: Final[dict[str, str]] = {
    "log": "logs",
    "event": "events",
    "span": "spans",
    "metric": "metric_points",
    "error": "errors",
    "session": "sessions",
}


@dataclass(frozen=True, slots=True)
class Selection:
    """Which records a read covers; ``None`` means "no constraint".  All bounds are inclusive.

    - ``since_ns``/``until_ns``: record time (a span's start, a session's start).
    - ``service``: the producing service (sessions: their own service column).
    - ``session_id``: one session (sessions: that session's row).
    - ``min_severity``: logs only; other tables ignore it.
    - ``component``: logs only, the logger/component name.
    - ``name``: events, spans and metric points by name, errors by exception type.
    - ``text``: case-insensitive (ASCII) substring of a log message or an error message.
    """

    since_ns: int | None = None
    until_ns: int | None = None
    service: str | None = None
    session_id: str | None = None
    min_severity: int | None = None
    component: str | None = None
    name: str | None = None
    text: str | None = None


@dataclass(frozen=True, slots=True)
class LogLine:
    """One stored log line.  ``id`` grows with every insert and is never reused (for live follow)."""

    id: int
    time_ns: int
    severity: int
    severity_text: str
    component: str
    message: str
    attributes: dict[str, Any]
    service: str
    session_id: str | None
    trace_id: str | None
    span_id: str | None


@dataclass(frozen=True, slots=True)
class Count:
    """A key (level, component, event name...) and how many records have it."""

    key: str
    count: int


@dataclass(frozen=True, slots=True)
class ErrorGroupCount:
    """An error group (one fingerprint): ``count`` occurrences within the selection; ``total_count``,
    ``first_seen_ns`` and ``last_seen_ns`` over all time."""

    fingerprint: str
    type: str
    title: str
    status: str
    count: int
    total_count: int
    first_seen_ns: int
    last_seen_ns: int


@dataclass(frozen=True, slots=True)
class ErrorLogCount:
    """ERROR/CRITICAL log lines with the same component and message, counted."""

    component: str
    message: str
    severity: int
    count: int
    first_seen_ns: int
    last_seen_ns: int


@dataclass(frozen=True, slots=True)
class SessionTotals:
    """How many sessions a selection covers, from how many distinct (hashed) users, and how many failed."""

    sessions: int
    users: int
    failed: int


@dataclass(frozen=True, slots=True)
class ModelUsage:
    """Totals of ``llm.request`` events for one model.  Missing attributes count as zero."""

    model: str
    requests: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cost_usd: float
    duration_s: float


@dataclass(frozen=True, slots=True)
class StoreInfo:
    """What ``clisight doctor`` shows about a store.  Sizes are 0 for an in-memory store."""

    url: str
    path: str | None
    file_bytes: int
    wal_bytes: int
    schema_version: int
    row_counts: Mapping[str, int]
    oldest_ns: int | None
    newest_ns: int | None


@dataclass(frozen=True, slots=True)
class RetentionResult:
    """What :meth:`Store.apply_retention` deleted, per table, and the store size around it."""

    deleted: Mapping[str, int] = field(default_factory=dict)
    bytes_before: int = 0
    bytes_after: int = 0

    @property
    def total_deleted(self) -> int:
        return sum(self.deleted.values())


@runtime_checkable
class Store(Protocol):
    """A place records are written to and read from.

    Writes: ``write_batch`` stores a whole batch in one transaction or raises (nothing of the batch
    is stored then).  A store migrates itself on first use; ``migrate`` does it explicitly.
    ``after_fork`` runs in a forked child: the inherited connection is abandoned without being
    closed (closing it could release the parent's locks) and a new one is opened on next use.
    Every method may be called from any thread.
    """

    url: str

    # -- writes and maintenance -------------------------------------------------------------
    def write_batch(
        self,
        records: Sequence[Record],
        *,
        deadline: Deadline | None = None,
        once_key: str | None = None,
        exit_key: str = "",
    ) -> bool:
        """Store the batch in one transaction (raise StoreError, storing nothing, on failure); wait
        for other writers until ``deadline`` at most; with ``once_key``, store it only if that key
        was never stored before (False when it was)."""
        ...

    def migrate(self) -> int: ...

    def schema_version(self) -> int: ...

    def apply_retention(self, max_age_days: float, max_bytes: int) -> RetentionResult: ...

    def save_state(self, key: str, value: Any) -> None:
        """Persist a JSON-able value under ``key`` (detector baselines); replaces an earlier value."""

    def load_state(self, key: str) -> Any | None:
        """The value saved under ``key``, or ``None``."""

    def state_items(self, prefix: str, since_ns: int = 0) -> list[tuple[str, Any]]:
        """(key, value) of every state key starting with ``prefix`` saved at or after ``since_ns``."""
        ...

    def close(self) -> None: ...

    def after_fork(self) -> None: ...

    # -- reads ------------------------------------------------------------------------------
    def logs(
        self, sel: Selection, *, after_id: int | None = None, newest_first: bool = False, limit: int = 100
    ) -> list[LogLine]:
        """Log lines in ``sel``: oldest first after ``after_id`` (live follow), or the newest ``limit``
        when ``newest_first`` (still returned newest first)."""

    def count_logs(self, sel: Selection, by: str) -> list[Count]:
        """Log counts grouped ``by`` ``"severity"`` (key: the severity number as text) or ``"component"``,
        largest first."""

    def error_groups(self, sel: Selection, limit: int) -> list[ErrorGroupCount]:
        """Error groups with occurrences in ``sel``, most occurrences first."""

    def error_logs(self, sel: Selection, limit: int) -> list[ErrorLogCount]:
        """ERROR and CRITICAL log lines in ``sel`` grouped by component and message, most first."""

    def operation_durations(self, sel: Selection) -> Iterator[tuple[str, float]]:
        """``(operation, seconds)`` of every PERFORMANCE log in ``sel`` with a numeric ``duration``."""

    def count_events(self, sel: Selection) -> list[Count]:
        """Events in ``sel`` counted by name, largest first."""

    def session_totals(self, sel: Selection) -> SessionTotals:
        """Sessions starting in ``sel``: count, distinct users, non-zero exit codes."""

    def llm_usage(self, sel: Selection) -> list[ModelUsage]:
        """Totals of ``llm.request`` events in ``sel`` per model, most expensive first."""

    def iter_rows(self, kind: str, sel: Selection) -> Iterator[dict[str, Any]]:
        """Every row of one kind (see ``EXPORT_KINDS``) in ``sel`` as a plain dict, oldest first,
        read in chunks so memory stays flat however many rows match."""

    def info(self) -> StoreInfo:
        """Size, schema version, row counts and time span of the store."""
