"""The one place every kind of :class:`~clisight.types.Record` is built.

Every client API (loggers, the stdlib handler, warnings, spans, errors, usage events, sessions,
metrics) builds its records here, so they all follow the same rules:

- **Merge**: attributes are the context's fields (``set_session_context``, ``session()``), then a
  logger's bound fields, then the call's own fields; later wins.  Then the kind's reserved keys
  (:data:`RESERVED_KEYS`) that clisight sets itself, which a user field of the same name cannot
  replace.  ``user_id`` is always the context's pseudonym when there is one.
- **Limits and scrubbing**: text and attribute values are cut to ``max_field_chars`` (marked) and
  then redacted, by the client's redactor, before the record exists.
- **Time and ids**: from ``clock`` (``time.time_ns``) and ``random_bytes`` (``os.urandom``), both
  injectable: ``clisight demo`` records days of history through the real API on a simulated clock.

The logger inlines :meth:`RecordBuilder.log` on its hot path; a test pins the two to the same output.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from time import time_ns
from typing import Any, Final

from clisight.client.context import Context
from clisight.pipeline.redact import Redactor, as_text
from clisight.types import ERROR, EVENT, LOG, METRIC, SESSION, SPAN, Record, Resource

# Attribute keys with a meaning to the store, the reports or OTLP.  "set" keys are clisight's own:
# the builder writes them last, over any user field of that name.  "honoured" keys may come from
# the caller and are read with that meaning.
RESERVED_KEYS: Final[dict[str, str]] = {
    "user_id": "set, every kind: the context's user pseudonym (a salted hash, never the raw id)",
    "duration": "set, span: seconds from start to end; honoured, log: an operation's seconds",
    "exception.type": "set, span: the type of the exception that escaped the block",
    "span.kind": "honoured, span: internal, server, client, producer or consumer (OTLP)",
    "span.events": "honoured, span: timed events within the span",
    "component": "set, error: the component that captured it",
    "stack": "set, error: the formatted traceback (its innermost frames group errors)",
    "fingerprint": "honoured, error: the group it belongs to, instead of one from its stack",
    "exit_code": "set, session: how the run or block ended (0 ok, 1 error, 130 Ctrl-C, 128+signal)",
    "command": "set, session: the command path (set_command), never argv values",
    "type": "honoured, metric: counter, gauge or histogram",
    "unit": "honoured, metric: the unit of its values",
    "temporality": "honoured, metric: delta or cumulative",
    "histogram": "honoured, metric: bucket bounds and counts",
}


class RecordBuilder:
    """Builds one client's records: its resource, redactor, clock and id source."""

    __slots__ = ("clock", "random_bytes", "redactor", "resource")

    def __init__(
        self,
        resource: Resource,
        redactor: Redactor,
        clock: Callable[[], int] = time_ns,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.resource = resource
        self.redactor = redactor
        self.clock = clock
        self.random_bytes = random_bytes

    # -- ids ------------------------------------------------------------------------------------
    def new_trace_id(self) -> str:
        """128 random bits as 32 hex characters (an OTLP trace id; also a session id)."""
        return self.random_bytes(16).hex()

    def new_span_id(self) -> str:
        """64 random bits as 16 hex characters (an OTLP span id)."""
        return self.random_bytes(8).hex()

    # -- the merge rule ------------------------------------------------------------------------
    @staticmethod
    def merge(
        ctx: Context, fields: Mapping[str, Any], bound: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Context fields, then ``bound``, then ``fields`` (later wins); then the context's user."""
        attrs = {**ctx.fields, **bound, **fields} if bound else {**ctx.fields, **fields}
        if ctx.user_id is not None:
            attrs["user_id"] = ctx.user_id
        return attrs

    def _text(self, text: object) -> str:
        return self.redactor.message(text if type(text) is str else as_text(text))

    def _name(self, name: object) -> str:
        return name if type(name) is str else as_text(name)

    # -- one method per kind -------------------------------------------------------------------
    def log(
        self,
        component: object,
        severity: int,
        message: object,
        attributes: dict[str, Any],
        ctx: Context,
        time_ns: int | None = None,
    ) -> Record:
        """A log record; ``attributes`` already merged (:meth:`merge`)."""
        return Record(
            LOG,
            self.clock() if time_ns is None else time_ns,
            self._name(component),
            self._text(message),
            severity,
            self.redactor.attributes(attributes) if attributes else attributes,
            self.resource,
            ctx.session_id,
            ctx.trace_id,
            ctx.span_id,
        )

    def event(self, name: object, attributes: dict[str, Any], ctx: Context) -> Record:
        """A usage event (``command``, ``llm.request``...); ``attributes`` already merged."""
        return Record(
            EVENT,
            self.clock(),
            self._name(name),
            "",
            0,
            self.redactor.attributes(attributes),
            self.resource,
            ctx.session_id,
            ctx.trace_id,
            ctx.span_id,
        )

    def span(
        self,
        name: object,
        start_ns: int,
        end_ns: int,
        status: int,
        attributes: dict[str, Any],
        parent: Context,
        trace_id: str,
        span_id: str,
    ) -> Record:
        """A finished span; ``parent`` is the context it was opened in (its span is the parent)."""
        attrs = {**attributes, "duration": (end_ns - start_ns) / 1e9}
        return Record(
            SPAN,
            start_ns,
            self._name(name),
            "",
            status,
            self.redactor.attributes(attrs),
            self.resource,
            parent.session_id,
            trace_id,
            span_id,
            parent.span_id,
            end_ns,
        )

    def error(
        self,
        type_name: str,
        message: object,
        severity: int,
        attributes: dict[str, Any],
        component: object,
        stack: str,
        ctx: Context,
    ) -> Record:
        """An error occurrence; ``attributes`` already merged; ``stack`` already cut to the limit."""
        attrs = {**attributes, "component": self._name(component), "stack": stack}
        return Record(
            ERROR,
            self.clock(),
            type_name,
            self._text(message),
            severity,
            self.redactor.attributes(attrs),
            self.resource,
            ctx.session_id,
            ctx.trace_id,
            ctx.span_id,
        )

    def session(
        self,
        session_id: str,
        start_ns: int,
        end_ns: int | None,
        attributes: dict[str, Any],
        user_id: str | None = None,
    ) -> Record:
        """A session update: the first one opens it, later ones (same id) add what is known."""
        attrs = {k: v for k, v in attributes.items() if v is not None}
        if user_id:
            attrs["user_id"] = user_id
        return Record(
            SESSION,
            start_ns,
            self.resource.service,
            "",
            0,
            self.redactor.attributes(attrs),
            self.resource,
            session_id,
            end_ns=end_ns,
        )

    def metric(
        self, name: object, value: float, attributes: dict[str, Any], ctx: Context, time_ns: int | None = None
    ) -> Record:
        """A metric point; the series' ``type``, ``unit`` and ``temporality`` travel as attributes."""
        return Record(
            METRIC,
            self.clock() if time_ns is None else time_ns,
            self._name(name),
            "",
            0,
            self.redactor.attributes(attributes),
            self.resource,
            ctx.session_id,
            ctx.trace_id,
            ctx.span_id,
            value=float(value),
        )
