"""What a batch of records becomes in every store, whatever the backend: the one mapping.

:func:`map_batch` turns records into row tuples per table (in the column order of ``schema``),
session counter increments, error-group upserts (fingerprints and titles are computed here, not in
SQL) and rollup increments per minute, hour and day.  A backend only turns these into its own
statements, inside the batch's one transaction.

Rollup series (``series`` column), each keyed by (bucket, service, name, dim):

============  =====================  ==================  ==========================================
series        name                   dim                 measures
============  =====================  ==================  ==========================================
log           component              severity number     count
log_error     component              message shape       count, max severity, first/last time
                                                         (logs at ERROR and above only)
event         event name             ``model`` attr      count, first/last time, sums of the
                                                         usage fields (:data:`USAGE_FIELDS`)
operation     operation / span name  ""                  count, errors, duration (s): sum, min,
                                                         max, quantile sketch
metric        metric name            ""                  count, value: sum, min, max, sketch
error         fingerprint            exception type      count, first/last time
============  =====================  ==================  ==========================================

An *operation* is a span (duration from its start and end, failed when its status is an error) or
a PERFORMANCE log with a numeric ``duration`` attribute (named by its ``operation`` attribute,
else its message; failed when ``success`` is false).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from clisight._shape import message_shape
from clisight._sketch import QuantileSketch
from clisight.exceptions import DataError
from clisight.store.base import RESOLUTIONS
from clisight.types import (
    ERROR_LEVEL,
    PERFORMANCE,
    WARNING,
    Deadline,
    Record,
    Resource,
    SpanRow,
    span_columns,
    split_user,
)

_JSON_OPTIONS = orjson.OPT_NON_STR_KEYS

# Numeric event attributes the usage views sum (LLM tokens, cost, time).
USAGE_FIELDS: Final = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_creation_tokens",
    "cost_usd",
    "duration",
)
SERIES: Final = ("log", "log_error", "event", "operation", "metric", "error")
# The number a series is stored as in a rollup cell (the cells of one series and resolution are
# contiguous in the primary key, so a time range of one series is one range scan).
SERIES_CODE: Final = {name: number for number, name in enumerate(SERIES, start=1)}
_MINUTE_NS: Final = 60_000_000_000

# A CPython traceback frame line; line numbers are left out so editing a file doesn't split a group.
_FRAME = re.compile(r'File "([^"]+)", line \d+, in (\S+)')
# Numbers, hex ids and quoted values vary between occurrences of the same error.
_VARIABLE = re.compile(r"0x[0-9a-fA-F]+|\d+|'[^']*'|\"[^\"]*\"")
_TOP_FRAMES = 5


# -- values -------------------------------------------------------------------------------------
def to_json(value: Any) -> str:
    """JSON text of ``value``; never raises, so one odd attribute can't lose a whole batch."""
    try:
        return orjson.dumps(value, default=str, option=_JSON_OPTIONS).decode()
    except (TypeError, ValueError):
        pass
    try:
        # An integer beyond 64 bits becomes its digits; every other value stays as it was.
        return orjson.dumps(_wide_ints_as_text(value, 0), default=str, option=_JSON_OPTIONS).decode()
    except (TypeError, ValueError, RecursionError):
        # Nesting too deep and the like: keep what can be kept, as text.
        if isinstance(value, dict):
            return orjson.dumps({str(k): str(v) for k, v in value.items()}).decode()
        return orjson.dumps(str(value)).decode()


_INT64 = range(-(2**63), 2**63)


def _wide_ints_as_text(value: Any, depth: int) -> Any:
    if type(value) is int:
        return value if value in _INT64 else str(value)
    if depth > 200:
        return str(value)
    if isinstance(value, dict):
        return {k: _wide_ints_as_text(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_wide_ints_as_text(v, depth + 1) for v in value]
    return value


def from_json(text: str | bytes | None, empty: Any = None) -> Any:
    """The value of JSON text written by :func:`to_json`; ``None`` gives ``empty``."""
    if text is None:
        return empty
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def stack_text(stack: Any) -> str:
    """A stack attribute as text, whether it came as a string or a list of frames."""
    if stack is None:
        return ""
    if isinstance(stack, str):
        return stack
    if isinstance(stack, list | tuple):
        return "\n".join(str(frame) for frame in stack)
    return str(stack)


def error_fingerprint(error_type: str, message: str, stack: str) -> str:
    """The group an error belongs to: its type plus the innermost frames, or its message shape."""
    frames = _FRAME.findall(stack)[-_TOP_FRAMES:]
    if frames:
        basis = "|".join(f"{path.replace(chr(92), '/').rsplit('/', 1)[-1]}:{func}" for path, func in frames)
    else:
        basis = _VARIABLE.sub("_", message)
    return hashlib.sha256(f"{error_type}|{basis}".encode()).hexdigest()[:32]


def error_title(error_type: str, message: str) -> str:
    """One line naming an error group."""
    first_line = message.strip().splitlines()[0] if message.strip() else ""
    title = f"{error_type}: {first_line}" if first_line else error_type
    return title if len(title) <= 200 else title[:199] + "…"


_SHAPES: dict[str, str] = {}


def shape_of(message: str) -> str:
    """:func:`clisight._shape.message_shape`, remembered for the messages seen most recently (error
    logs repeat a few messages): the key of a ``log_error`` cell."""
    shape = _SHAPES.get(message)
    if shape is None:
        if len(_SHAPES) >= 4096:
            _SHAPES.clear()
        shape = _SHAPES[message] = message_shape(message)
    return shape


def batch_key(once_key: str | None, exit_key: str, deadline: Deadline | None) -> str | None:
    """The key a batch is stored under at most once: ``once_key``, or ``exit_key`` while the deadline
    is finite (the process is exiting and may spool a copy of the batch too); None for no key."""
    if once_key is None and exit_key and deadline is not None and deadline.at != math.inf:
        return exit_key
    return once_key


def span_failed(status: int) -> bool:
    """A span status that means failure: OTLP's ERROR (2) or a severity at ERROR and above."""
    return status == 2 or status >= ERROR_LEVEL


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
        if number == number and abs(number) != float("inf"):
            return number
    return None


def _operation(
    minute: dict[tuple[int, str, str, str, str], Acc],
    bucket: int,
    service: str,
    name: str,
    status: int,
    duration_ns: int,
) -> None:
    """Count one span in its operation's minute cell (a span row and a span record alike)."""
    key = (bucket, "operation", service, name, "")
    op = minute.get(key)
    if op is None:
        op = minute[key] = Acc()
    op.count += 1
    if status:
        op.errors += span_failed(status)
    op.add_value(max(duration_ns, 0) / 1e9, True)


def _session_entry(
    counts: dict[str, list[Any]], sid: str, time_ns: int, service: str, resource: Resource
) -> list[Any]:
    """The counters of session ``sid`` in this batch, their time bounds widened to ``time_ns``."""
    entry = counts.get(sid)
    if entry is None:
        entry = counts[sid] = [0, 0, 0, time_ns, time_ns, service, resource]
    elif time_ns < entry[3]:
        entry[3] = time_ns
    elif time_ns > entry[4]:
        entry[4] = time_ns
    return entry


class IdCache:
    """Ids of resources, names and rollup keys as this process knows them, for a SQL backend's
    interner.  New ids join the cache only after their transaction commits (:meth:`commit`); a
    rollback forgets them (:meth:`rollback`)."""

    def __init__(self) -> None:
        self.resources: dict[Resource, int] = {}
        self.names: dict[str, int] = {}
        self.keys: dict[tuple[str, str, str, str], int] = {}
        self.rollback()

    def commit(self) -> None:
        self.resources.update(self._new_resources)
        self.names.update(self._new_names)
        self.keys.update(self._new_keys)
        self.rollback()

    def rollback(self) -> None:
        self._new_resources: dict[Resource, int] = {}
        self._new_names: dict[str, int] = {}
        self._new_keys: dict[tuple[str, str, str, str], int] = {}


# -- rollups ------------------------------------------------------------------------------------
class Acc:
    """The measures of one rollup cell (one series, bucket, service, name and dim)."""

    __slots__ = ("count", "errors", "first", "last", "max", "min", "pending", "sketch", "sum", "sums")

    def __init__(self) -> None:
        self.count = 0
        self.errors = 0
        self.sum = 0.0
        self.min: float | None = None
        self.max: float | None = None
        self.first: int | None = None
        self.last: int | None = None
        self.sketch: QuantileSketch | None = None
        self.sums: dict[str, float] | None = None
        # Values waiting to go into the sketch: one add_many per cell costs the writer (and, through
        # the GIL, the host program) well under half of one add per value.
        self.pending: list[float] | None = None

    def settle(self) -> None:
        """Put the pending values into the sketch (every reader of ``sketch`` calls this first)."""
        pending = self.pending
        if pending:
            if self.sketch is None:
                self.sketch = QuantileSketch()
            self.sketch.add_many(pending)
        self.pending = None

    def add_time(self, time_ns: int) -> None:
        if self.first is None or time_ns < self.first:
            self.first = time_ns
        if self.last is None or time_ns > self.last:
            self.last = time_ns

    def add_value(self, value: float, sketch: bool) -> None:
        self.sum += value
        if self.min is None or value < self.min:
            self.min = value
        if self.max is None or value > self.max:
            self.max = value
        if sketch:
            if self.pending is None:
                self.pending = [value]
            else:
                self.pending.append(value)

    def merge(self, other: Acc) -> None:
        """Fold ``other`` (a cell of the same key) into this one."""
        other.settle()
        self.settle()
        self.count += other.count
        self.errors += other.errors
        self.sum += other.sum
        if other.min is not None and (self.min is None or other.min < self.min):
            self.min = other.min
        if other.max is not None and (self.max is None or other.max > self.max):
            self.max = other.max
        if other.first is not None:
            self.add_time(other.first)
        if other.last is not None:
            self.add_time(other.last)
        if other.sketch is not None:
            if self.sketch is None:
                self.sketch = QuantileSketch()
            self.sketch.merge(other.sketch)
        if other.sums:
            mine = self.sums if self.sums is not None else {}
            for key, value in other.sums.items():
                mine[key] = mine.get(key, 0.0) + value
            self.sums = mine

    def row(self) -> tuple[Any, ...]:
        """(count, errors, sum, min, max, first_ns, last_ns, sketch bytes, sums JSON) as stored."""
        self.settle()
        return (
            self.count,
            self.errors,
            self.sum,
            self.min,
            self.max,
            self.first,
            self.last,
            None if self.sketch is None else self.sketch.to_bytes(),
            None if not self.sums else to_json(self.sums),
        )

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Acc:
        """The inverse of :meth:`row` (as a backend reads it back to merge a new batch in)."""
        acc = cls()
        acc.count, acc.errors, acc.sum, acc.min, acc.max, acc.first, acc.last = (
            int(row[0]),
            int(row[1]),
            float(row[2] or 0.0),
            row[3],
            row[4],
            row[5],
            row[6],
        )
        if row[7] is not None:
            acc.sketch = QuantileSketch.from_bytes(bytes(row[7]))
        if row[8] is not None:
            sums = from_json(row[8])
            acc.sums = sums if isinstance(sums, dict) else None
        return acc


# (resolution seconds, bucket start ns, series, service, name, dim)
RollupKey = tuple[int, int, str, str, str, str]


# -- the batch ----------------------------------------------------------------------------------
@dataclass(slots=True)
class MappedBatch:
    """One batch as rows for every table.  Strings are not interned and attributes not serialised:
    each backend does both its own way.  ``resource`` fields hold :class:`Resource` values."""

    # (time_ns, severity, component, message, attributes|None, trace_id, span_id, user, session_id,
    #  resource); ``user`` is the ``user_id`` attribute, taken out of the attributes
    logs: list[tuple[Any, ...]] = field(default_factory=list)
    # (time_ns, name, attributes|None, trace_id, span_id, user, session_id, resource)
    events: list[tuple[Any, ...]] = field(default_factory=list)
    # (trace_id, span_id, parent_span_id, name, span_kind, start_ns, end_ns, status, attributes|None,
    #  events|None, user, session_id, resource)
    spans: list[tuple[Any, ...]] = field(default_factory=list)
    # (time_ns, name, type, unit, temporality, value, histogram|None, attributes|None, user,
    #  session_id, resource)
    metrics: list[tuple[Any, ...]] = field(default_factory=list)
    # (time_ns, fingerprint, type, message, stack, attributes|None, trace_id, span_id, user,
    #  session_id, resource)
    errors: list[tuple[Any, ...]] = field(default_factory=list)
    # fingerprint -> [type, title, first_seen_ns, last_seen_ns, count]
    error_groups: dict[str, list[Any]] = field(default_factory=dict)
    # (id, service, resource, start_ns, end_ns, exit_code, command, user_id, attributes dict)
    sessions: list[tuple[Any, ...]] = field(default_factory=list)
    # session id -> [logs, errors, events, earliest time, latest time, service, resource]
    session_counts: dict[str, list[Any]] = field(default_factory=dict)
    # trace id -> [earliest time, latest time] of its records in this batch
    traces: dict[str, list[int]] = field(default_factory=dict)
    rollups: dict[RollupKey, Acc] = field(default_factory=dict)

    def session_ids(self) -> set[str]:
        """Every session id a row of this batch refers to."""
        return set(self.session_counts) | {s[0] for s in self.sessions}

    def resources(self) -> set[Resource]:
        found: set[Resource] = set()
        for rows in (self.logs, self.events, self.spans, self.metrics, self.errors):
            found.update(row[-1] for row in rows)
        found.update(s[2] for s in self.sessions)
        return found


def map_batch(records: Iterable[Record | SpanRow], json_rows: bool = False) -> MappedBatch:
    """Rows, counters, error groups and rollup cells for ``records``; unknown kinds are skipped.

    A :class:`SpanRow` (``clisight serve``'s received spans) is a spans row already: with
    ``json_rows`` it goes in as it is, its attributes and events as JSON text (a backend that writes
    that text as it is: SQLite); without, as the row of its record (attributes as dicts).

    Raises DataError when a record is malformed (a field of the wrong type): the batch's data, not
    the store, is at fault, so the pipeline cleans and retries it record by record.
    """
    try:
        return _map(records, json_rows)
    except (TypeError, ValueError, AttributeError) as exc:
        raise DataError(f"a record of the batch is malformed: {type(exc).__name__}: {exc}") from exc


def _map(records: Iterable[Record | SpanRow], json_rows: bool) -> MappedBatch:
    out = MappedBatch()
    minute: dict[tuple[int, str, str, str, str], Acc] = {}

    def cell(bucket: int, series: str, service: str, name: str, dim: str) -> Acc:
        key = (bucket, series, service, name, dim)
        acc = minute.get(key)
        if acc is None:
            acc = minute[key] = Acc()
        return acc

    counts = out.session_counts
    spans = out.spans
    for item in records:
        if type(item) is SpanRow:
            if json_rows:
                # The receiver's hot path: the row is the record; only its operation cell and
                # session bounds are left to count (as for a span record, below).
                spans.append(item)
                row_start = item[5]
                service = item[12].service
                _operation(
                    minute, row_start - row_start % _MINUTE_NS, service, item[3], item[7], item[6] - row_start
                )
                if item[11] is not None:
                    _session_entry(counts, item[11], row_start, service, item[12])
                continue
            rec = item.to_record()
        else:
            rec = item  # type: ignore[assignment]
        kind = rec.kind
        time_ns = rec.time_ns
        bucket = time_ns - time_ns % _MINUTE_NS
        service = rec.resource.service
        attrs = rec.attributes
        sid = rec.session_id
        if kind == "log":
            severity = rec.severity
            rest, user = split_user(attrs)
            out.logs.append(
                (
                    time_ns,
                    severity,
                    rec.name,
                    rec.body,
                    rest,
                    rec.trace_id,
                    rec.span_id,
                    user,
                    sid,
                    rec.resource,
                )
            )
            acc = cell(bucket, "log", service, rec.name, str(severity))
            acc.count += 1
            if severity >= ERROR_LEVEL:
                acc = cell(bucket, "log_error", service, rec.name, shape_of(rec.body))
                acc.count += 1
                acc.add_time(time_ns)
                if acc.max is None or severity > acc.max:
                    acc.max = severity
            elif PERFORMANCE <= severity < WARNING and attrs:
                duration = _number(attrs.get("duration"))
                if duration is not None:
                    operation = attrs.get("operation")
                    name = operation if isinstance(operation, str) and operation else rec.body
                    acc = cell(bucket, "operation", service, name, "")
                    acc.count += 1
                    acc.errors += attrs.get("success") is False
                    acc.add_value(duration, True)
            if sid is not None:
                entry = _session_entry(counts, sid, time_ns, service, rec.resource)
                entry[0] += 1
                entry[1] += severity >= ERROR_LEVEL
        elif kind == "event":
            rest, user = split_user(attrs)
            out.events.append((time_ns, rec.name, rest, rec.trace_id, rec.span_id, user, sid, rec.resource))
            model = attrs.get("model") if attrs else None
            acc = cell(bucket, "event", service, rec.name, model if isinstance(model, str) else "")
            acc.count += 1
            acc.add_time(time_ns)
            if attrs:
                for key in USAGE_FIELDS:
                    if key in attrs:
                        number = _number(attrs[key])
                        if number is not None:
                            sums = acc.sums if acc.sums is not None else {}
                            sums[key] = sums.get(key, 0.0) + number
                            acc.sums = sums
            if sid is not None:
                _session_entry(counts, sid, time_ns, service, rec.resource)[2] += 1
        elif kind == "span":
            # The hottest branch (the OTLP receiver's spans): no user_id attribute and no session
            # are the common case, and the operation cell is updated inline.
            span_kind, rest, span_events, user = span_columns(attrs)
            name, end_ns, severity = rec.name, rec.end_ns, rec.severity
            out.spans.append(
                (
                    rec.trace_id,
                    rec.span_id,
                    rec.parent_span_id,
                    name,
                    span_kind,
                    time_ns,
                    end_ns,
                    severity,
                    rest,
                    span_events,
                    user,
                    sid,
                    rec.resource,
                )
            )
            if sid is not None:
                _session_entry(counts, sid, time_ns, service, rec.resource)  # bounds only, no count
            if end_ns is not None:
                _operation(minute, bucket, service, name, severity, end_ns - time_ns)
        elif kind == "metric":
            histogram = attrs.get("histogram") if attrs else None
            value = _number(rec.value)  # a float, or None for what is no finite number
            rest, user = split_user(attrs)
            out.metrics.append(
                (
                    time_ns,
                    rec.name,
                    str(attrs.get("type", "gauge")) if attrs else "gauge",
                    str(attrs.get("unit", "")) if attrs else "",
                    str(attrs.get("temporality", "")) if attrs else "",
                    value,
                    histogram,
                    rest,
                    user,
                    sid,
                    rec.resource,
                )
            )
            if sid is not None:
                _session_entry(counts, sid, time_ns, service, rec.resource)  # bounds only, no count
            acc = cell(bucket, "metric", service, rec.name, "")
            acc.count += 1
            if value is not None:
                acc.add_value(value, True)
        elif kind == "error":
            stack = stack_text(attrs.get("stack"))
            given = attrs.get("fingerprint")
            fingerprint = (
                given if isinstance(given, str) and given else error_fingerprint(rec.name, rec.body, stack)
            )
            rest, user = split_user({k: v for k, v in attrs.items() if k not in ("stack", "fingerprint")})
            out.errors.append(
                (
                    time_ns,
                    fingerprint,
                    rec.name,
                    rec.body,
                    stack,
                    rest,
                    rec.trace_id,
                    rec.span_id,
                    user,
                    sid,
                    rec.resource,
                )
            )
            group = out.error_groups.get(fingerprint)
            if group is None:
                out.error_groups[fingerprint] = [
                    rec.name,
                    error_title(rec.name, rec.body),
                    time_ns,
                    time_ns,
                    1,
                ]
            else:
                group[2] = min(group[2], time_ns)
                group[3] = max(group[3], time_ns)
                group[4] += 1
            acc = cell(bucket, "error", service, fingerprint, rec.name)
            acc.count += 1
            acc.add_time(time_ns)
            if sid is not None:
                _session_entry(counts, sid, time_ns, service, rec.resource)[1] += 1
        elif kind == "session":
            rest = dict(attrs)
            exit_code = rest.pop("exit_code", None)
            command = rest.pop("command", None)
            user_id = rest.pop("user_id", None)
            out.sessions.append(
                (
                    sid or rec.name,
                    service,
                    rec.resource,
                    time_ns,
                    rec.end_ns,
                    exit_code if isinstance(exit_code, int) and not isinstance(exit_code, bool) else None,
                    None if command is None else str(command),
                    None if user_id is None else str(user_id),
                    rest,
                )
            )
    traces = out.traces
    for rows, trace_at, time_at in (
        (out.logs, 5, 0),
        (out.events, 3, 0),
        (out.errors, 6, 0),
        (out.spans, 0, 5),
    ):
        for row in rows:
            trace_id = row[trace_at]
            if trace_id is not None:
                moment = row[time_at]
                bounds = traces.get(trace_id)
                if bounds is None:
                    traces[trace_id] = [moment, moment]
                elif moment < bounds[0]:
                    bounds[0] = moment
                elif moment > bounds[1]:
                    bounds[1] = moment
    for row in out.spans:
        if row[0] is not None and row[6] is not None and row[6] > traces[row[0]][1]:
            traces[row[0]][1] = row[6]  # a span ends after it starts
    # Hour and day cells are merges of the minute cells: the same numbers at a coarser grain.
    rollups = out.rollups
    for (bucket, series, service, name, dim), acc in minute.items():
        acc.settle()
        rollups[(RESOLUTIONS[0], bucket, series, service, name, dim)] = acc
        for resolution in RESOLUTIONS[1:]:
            width = resolution * 1_000_000_000
            coarse_key = (resolution, bucket - bucket % width, series, service, name, dim)
            coarse = rollups.get(coarse_key)
            if coarse is None:
                coarse = rollups[coarse_key] = Acc()
            coarse.merge(acc)
    return out
