"""The :class:`Store` protocol every backend implements, and the plain values it reads and returns.

The protocol is small and generic, so a new view never needs a new method per backend:

- ``write_batch(records)``: one transaction per batch; raw rows, session counters, error groups and
  the per-minute/hour/day rollups all land in it (mapping shared by every backend: ``_model``).
- ``rows(kind, selection, cursor, limit)``: records of one kind in a declared export schema
  (:data:`EXPORT_FIELDS`, documented in ``docs/store.md``), never the table layout; the cursor is
  opaque and stable across concurrent writes.
- ``aggregate(kind, selection, group_by, measures)``: counts, sums, minima, maxima, quantiles from
  mergeable sketches and distinct counts, answered from rollups whenever they can answer it and
  from raw rows only for what they cannot (see ``_aggregate`` for the plan).
- key-value state (with ``claim_state``, an atomic insert-if-absent for work that must happen
  once across processes), retention, migrations, ``info``.

Report logic (LLM usage, slow operations, error tables) lives in ``clisight.query`` on top of these.
Times are integers in nanoseconds since the Unix epoch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, runtime_checkable

from clisight.types import Deadline, Record

# What rows() and aggregate() take as ``kind``, in the order exports list them.
KINDS: Final = ("session", "log", "event", "span", "metric", "error", "error_group")

# Key-value state that is history of the records (the pipeline's markers of imported spool batches
# and exit writes; alerting's transitions and notification claims, clisight.query.alerts): raw
# retention deletes it with the records, once it is older than the same cutoff.  Other state
# (offsets, alert states, silences, saved series) is kept until its owner removes it.
HISTORY_STATE_PREFIXES: Final = ("spool:", "exit:", "alert:event:", "alert:notified:")

# The export schema: the fields every backend returns for each kind, in this order.  Stable: a
# field may be added at the end, never renamed or removed.  ``attributes`` is a JSON object.
_RESOURCE = ("service", "service_version", "host", "pid")
EXPORT_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "log": (
        "id",
        "time_ns",
        "severity",
        "severity_text",
        "component",
        "message",
        "attributes",
        *_RESOURCE,
        "session_id",
        "trace_id",
        "span_id",
    ),
    "event": ("id", "time_ns", "name", "attributes", *_RESOURCE, "session_id", "trace_id", "span_id"),
    "span": (
        "id",
        "trace_id",
        "span_id",
        "parent_span_id",
        "name",
        "span_kind",
        "start_ns",
        "end_ns",
        "status",
        "attributes",
        "events",
        *_RESOURCE,
        "session_id",
    ),
    "metric": (
        "id",
        "time_ns",
        "name",
        "type",
        "unit",
        "temporality",
        "value",
        "histogram",
        "attributes",
        *_RESOURCE,
        "session_id",
    ),
    "error": (
        "id",
        "time_ns",
        "type",
        "message",
        "stack",
        "fingerprint",
        "attributes",
        *_RESOURCE,
        "session_id",
        "trace_id",
        "span_id",
    ),
    "session": (
        "id",
        "service",
        "start_ns",
        "end_ns",
        "exit_code",
        "command",
        "user_id",
        "attributes",
        "log_count",
        "error_count",
        "event_count",
    ),
    "error_group": ("fingerprint", "type", "title", "status", "count", "first_seen_ns", "last_seen_ns"),
}

# Resolutions of the rollup tables, in seconds, finest first.
RESOLUTIONS: Final = (60, 3600, 86_400)
RESOLUTION_NAMES: Final = {60: "minute", 3600: "hour", 86_400: "day"}


@dataclass(frozen=True, slots=True)
class Selection:
    """Which records a read covers; ``None`` means "no constraint".  All bounds are inclusive.

    - ``since_ns``/``until_ns``: record time (a span's start, a session's start).
    - ``service``: the producing service.
    - ``session_id``: one session (for ``session``: that session's row).
    - ``min_severity``: logs only.
    - ``component``: logs only, the logger/component name.
    - ``name``: events, spans, metrics and operations by name, errors by exception type, error
      groups by fingerprint.
    - ``text``: case-insensitive (ASCII) substring of a log or error message.
    - ``trace_id``: logs, events, spans and errors of one trace.
    """

    since_ns: int | None = None
    until_ns: int | None = None
    service: str | None = None
    session_id: str | None = None
    min_severity: int | None = None
    component: str | None = None
    name: str | None = None
    text: str | None = None
    trace_id: str | None = None


@dataclass(frozen=True, slots=True)
class Page:
    """One page of :meth:`Store.rows`: rows in the kind's export schema, and where to go on from.

    ``cursor`` is opaque; pass it back to get the rows after these (with the same order).  When no
    row came back it is the cursor that was passed in, so a live follow keeps calling with it.
    """

    rows: list[dict[str, Any]]
    cursor: str | None


@dataclass(frozen=True, slots=True)
class StoreInfo:
    """What ``clisight doctor`` shows about a store.  Sizes are 0 where a backend cannot tell."""

    url: str
    backend: str
    server_version: str
    path: str | None
    file_bytes: int
    wal_bytes: int
    schema_version: int
    row_counts: Mapping[str, int]
    oldest_ns: int | None
    newest_ns: int | None


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """How long each kind of data is kept, in days (0 keeps forever), and a size cap in bytes (0: none).

    Rollups outlive raw rows: reports over old ranges still have counts and percentiles after the
    raw records are gone.
    """

    raw_days: float = 30.0
    minute_days: float = 90.0
    hour_days: float = 400.0
    day_days: float = 730.0
    max_bytes: int = 0


@dataclass(frozen=True, slots=True)
class RetentionResult:
    """What :meth:`Store.apply_retention` deleted, per table, and the store size around it."""

    deleted: Mapping[str, int] = field(default_factory=dict)
    bytes_before: int = 0
    bytes_after: int = 0
    seconds: float = 0.0

    @property
    def total_deleted(self) -> int:
        return sum(self.deleted.values())


@runtime_checkable
class Store(Protocol):
    """A place records are written to and read from.  Every method may be called from any thread.

    Writes: ``write_batch`` stores a whole batch in one transaction or raises StoreError (nothing
    of the batch is stored then).  A store migrates itself on first use.  ``after_fork`` runs in a
    forked child: inherited connections are abandoned without being closed.
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
        was never stored before (False when it was).  ``exit_key`` acts as ``once_key`` only while
        the deadline is finite (the process is exiting and may also spool the batch)."""
        ...

    def migrate(self) -> int: ...

    def schema_version(self) -> int: ...

    def apply_retention(self, policy: RetentionPolicy) -> RetentionResult: ...

    def save_state(self, key: str, value: Any) -> None:
        """Persist a JSON-able value under ``key``; replaces an earlier value."""

    def load_state(self, key: str) -> Any | None:
        """The value saved under ``key``, or ``None``."""

    def state_items(self, prefix: str, since_ns: int = 0) -> list[tuple[str, Any]]:
        """(key, value) of every state key starting with ``prefix`` saved at or after ``since_ns``."""
        ...

    def delete_state(self, keys: Sequence[str]) -> int:
        """Remove the values saved under ``keys`` (missing keys are no error); how many there were."""
        ...

    def claim_state(self, key: str, value: Any) -> bool:
        """Save ``value`` under ``key`` only if nothing is saved there yet, atomically: of callers
        racing for one key (threads, processes, machines sharing the store) exactly one gets True.
        A later :meth:`save_state` may still overwrite the value."""
        ...

    def close(self) -> None: ...

    def after_fork(self) -> None: ...

    # -- reads ------------------------------------------------------------------------------
    def rows(
        self,
        kind: str,
        sel: Selection,
        *,
        cursor: str | None = None,
        limit: int = 1000,
        newest_first: bool = False,
    ) -> Page:
        """Up to ``limit`` records of ``kind`` in ``sel`` as dicts of :data:`EXPORT_FIELDS`.

        Oldest first in the order they were stored (a later page never misses a row committed
        after the earlier page was read), or the newest first by time with ``newest_first``.
        """
        ...

    def aggregate(
        self,
        kind: str,
        sel: Selection,
        group_by: Sequence[str] = (),
        measures: Sequence[str] = ("count",),
        *,
        source: str = "auto",
    ) -> list[dict[str, Any]]:
        """One dict per group: the ``group_by`` fields and the ``measures`` (see ``_aggregate``).

        ``source="raw"`` forces a scan of raw rows (tests compare it with the rollups).
        """
        ...

    def info(self) -> StoreInfo:
        """Backend, size, schema version, row counts and time span of the store."""
        ...
