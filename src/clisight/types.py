"""The one record model every signal travels in, from the client API to every sink.

A :class:`Record` is immutable and already redacted when it is built; sinks and decoders map
to and from it in one place each.  It is a ``NamedTuple`` because the hot path builds one per
call and a tuple is the cheapest immutable object Python can make.
"""

from __future__ import annotations

import math
import time
from typing import Any, Final, NamedTuple

# Record kinds.  Plain strings (not an Enum) so that building a record costs nothing extra.
LOG: Final = "log"
SPAN: Final = "span"
METRIC: Final = "metric"
EVENT: Final = "event"
ERROR: Final = "error"
SESSION: Final = "session"
KINDS: Final = (LOG, SPAN, METRIC, EVENT, ERROR, SESSION)
# A metric point's attribute asking for its series to be served on ``/metrics`` (``expose=True`` on
# the instrument); not a label of the series.
EXPOSE_KEY: Final = "clisight.expose"

# Severity numbers follow OpenTelemetry's log data model so OTLP maps one to one.
# PERFORMANCE sits between INFO (9) and WARN (13): visible at the default INFO threshold,
# filterable on its own.
DEBUG: Final = 5
INFO: Final = 9
PERFORMANCE: Final = 11
WARNING: Final = 13
ERROR_LEVEL: Final = 17
CRITICAL: Final = 21

SEVERITY_NAMES: Final[dict[int, str]] = {
    DEBUG: "DEBUG",
    INFO: "INFO",
    PERFORMANCE: "PERFORMANCE",
    WARNING: "WARNING",
    ERROR_LEVEL: "ERROR",
    CRITICAL: "CRITICAL",
}
SEVERITY_NUMBERS: Final[dict[str, int]] = {v: k for k, v in SEVERITY_NAMES.items()} | {
    "WARN": WARNING,
    "FATAL": CRITICAL,
    "TRACE": 1,
}


def severity_name(number: int) -> str:
    """The text of a severity number; numbers between levels round down to the level below."""
    name = _NAME_OF.get(number)
    if name is None:
        name = "TRACE"
        for num, text in SEVERITY_NAMES.items():
            if number >= num:
                name = text
    return name


_NAME_OF: Final[dict[int, str]] = {}
_NAME_OF.update((n, severity_name(n)) for n in range(32))


class Resource(NamedTuple):
    """What produced a record: one per client, shared by reference by all its records."""

    service: str
    version: str = ""
    host: str = ""
    pid: int = 0
    sdk: str = "clisight"


class Record(NamedTuple):
    """One log line, span, metric point, usage event, error or session update.

    Field use by kind:

    - ``log``: ``name`` is the component/logger, ``body`` the message, ``severity`` the level.
    - ``span``: ``name`` the span name, ``time_ns``/``end_ns`` its bounds, ``parent_span_id``,
      ``severity`` 0 (ok) or ``ERROR_LEVEL`` (error status).
    - ``metric``: ``name`` the metric, ``value`` the point, ``attributes['unit']`` optional.
    - ``event``: ``name`` the usage event (``command``, ``llm.request``...), ``attributes`` its properties.
    - ``error``: ``name`` the exception type, ``body`` the message, ``attributes['stack']``.
    - ``session``: ``attributes`` carry ``user_id`` (hashed), ``command``, ``exit_code``; ``time_ns`` is the
      start, ``end_ns`` the end once known (an update with the same session id completes it).
    """

    kind: str
    time_ns: int
    name: str
    body: str
    severity: int
    attributes: dict[str, Any]
    resource: Resource
    session_id: str | None = None
    trace_id: str | None = None
    span_id: str | None = None
    parent_span_id: str | None = None
    end_ns: int | None = None
    value: float | None = None


class SpanRow(NamedTuple):
    """A span already scrubbed and laid out as a row of the ``spans`` table: what ``clisight serve``
    queues for a received span instead of a :class:`Record` (cheaper to build, to send from its
    worker processes and to store).  It travels the pipeline as a record does; every store takes
    it (SQLite binds it as it is, the others store :meth:`to_record`), and the spool and the
    pipeline's bad-value recovery see it as :meth:`to_record`.

    The fields are those of the ``spans`` row of :func:`clisight.store._model.map_batch`, with the
    attributes and events as their JSON text: ``attributes`` holds every attribute but ``user_id``
    (None when there are none), ``user`` the ``user_id`` attribute when it is a string.
    """

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    span_kind: str
    start_ns: int
    end_ns: int
    severity: int
    attributes: str | None
    events: str | None
    user: str | None
    session_id: str | None
    resource: Resource

    def to_record(self) -> Record:
        """The :class:`Record` this row stands for (``user_id`` back among the attributes)."""
        import orjson  # the receiver's path has it loaded already; a plain client never gets here

        attributes = orjson.loads(self.attributes) if self.attributes is not None else {}
        if self.user is not None:
            attributes["user_id"] = self.user
        return Record(
            SPAN,
            self.start_ns,
            self.name,
            "",
            self.severity,
            attributes,
            self.resource,
            self.session_id,
            self.trace_id,
            self.span_id,
            self.parent_span_id,
            self.end_ns,
        )


def split_user(attrs: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """Attributes without ``user_id``, and the user: the stores keep it in a column of its own (the
    client puts the context's user in every record, and an interned number is a few bytes where the
    text is 30).  Readers put it back.  Empty attributes are None."""
    if not attrs:
        return None, None
    user = attrs.get("user_id")
    if type(user) is not str:
        return attrs, None
    rest = dict(attrs)
    del rest["user_id"]
    return rest or None, user


def span_columns(attrs: dict[str, Any]) -> tuple[str, dict[str, Any] | None, Any, str | None]:
    """The columns a span's attributes give its ``spans`` row (:class:`SpanRow`): its kind, the
    other attributes (a string ``user_id`` taken out; None when nothing is left), its events (None
    when there are none) and its user.  One place for a span record's row in the store and a
    received span's row in the receiver."""
    if not attrs:
        return "", None, None, None
    span_kind = attrs.get("span.kind", "")
    kind = span_kind if type(span_kind) is str else str(span_kind)
    rest, user = split_user(attrs) if "user_id" in attrs else (attrs, None)
    return kind, rest, attrs.get("span.events") or None, user


def as_record(item: Record | SpanRow) -> Record:
    """``item`` as a :class:`Record` (a :class:`SpanRow` converted, a Record as it is)."""
    return item.to_record() if isinstance(item, SpanRow) else item


class Deadline:
    """The latest ``time.monotonic()`` a sink or store call may run until.

    Mutable on purpose: when the process starts to exit, the pipeline brings the deadline of a
    call already under way forward, so a write waiting on a locked database gives up in time for
    its records to be spooled.  ``Deadline()`` is no deadline at all.
    """

    __slots__ = ("at",)

    def __init__(self, at: float = math.inf) -> None:
        self.at = at

    def remaining(self) -> float:
        """Seconds left (negative once passed; ``inf`` without a deadline)."""
        return self.at - time.monotonic()

    def expired(self) -> bool:
        return time.monotonic() >= self.at

    def __repr__(self) -> str:
        return f"Deadline(remaining={self.remaining():.3f})"
