"""Structured logging: ``clisight.get_logger(component)``.

A call builds one redacted :class:`~clisight.types.Record` and queues it; that is all it costs
the caller.  Before ``clisight.init()`` (or after ``shutdown()``) calls are ignored cheaply.

Every method takes ``(message, /, *args, **fields)``: ``args`` are formatted into the message the
way stdlib ``logging`` does (``message % args``; a single mapping for ``%(name)s``), only when the
record is built; ``fields`` become attributes (any name, ``message`` included).  No call raises
into the program, whatever it is given: a message that cannot be formatted is kept unformatted,
with the arguments' reprs in ``log.args`` and the error in ``log.args_error``.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from typing import Any

from clisight._safety import _raise_internal, record_internal_error
from clisight.client import context as _ctx
from clisight.client import core as _core
from clisight.client.errors import exception_text, format_stack, record_error
from clisight.pipeline.redact import as_repr, as_text
from clisight.types import CRITICAL, DEBUG, ERROR_LEVEL, INFO, LOG, PERFORMANCE, WARNING, Record

_get_ctx = _ctx.current.get
_EMPTY = _ctx.EMPTY
_new_record = tuple.__new__  # Record(...) without the generated __new__'s argument handling
_MAX_ARGS_KEPT = 32  # reprs kept in log.args when formatting fails


class Logger:
    """A component's logger.  Fields are keyword arguments; ``bind`` returns a logger with context."""

    __slots__ = ("_bound", "component")

    def __init__(self, component: str = "app", bound: dict[str, Any] | None = None) -> None:
        self.component = component if type(component) is str else as_text(component)
        self._bound = bound or {}

    def bind(self, **context: Any) -> Logger:
        """A logger that adds ``context`` to every record (later keyword arguments win)."""
        return Logger(self.component, {**self._bound, **context})

    def _log(self, severity: int, message: str, args: tuple[Any, ...], fields: dict[str, Any]) -> None:
        client = _core._client
        if client is None or severity < client.level:
            return
        try:
            if type(message) is not str:
                message = as_text(message)
            if args:
                message, fields = format_message(message, args, fields)
            # RecordBuilder.log and .merge, inlined (a test pins the two to the same records).
            ctx = _get_ctx()
            if ctx is _EMPTY:
                ctx = _ctx.process_default[0]
            if self._bound:
                fields = {**self._bound, **fields}
            if ctx.fields:
                fields = {**ctx.fields, **fields}
            if ctx.user_id is not None:
                fields["user_id"] = ctx.user_id
            redactor = client.redactor
            # The redactor's cache, read inline: messages are mostly constant, so this is the common case.
            text = client.redaction_cache.get(message)
            if text is None:
                text = redactor.message(message)
            record = _new_record(
                Record,
                (
                    LOG,
                    client.records.clock(),
                    self.component,
                    text,
                    severity,
                    redactor.attributes(fields) if fields else fields,
                    client.resource,
                    ctx.session_id,
                    ctx.trace_id,
                    ctx.span_id,
                    None,
                    None,
                    None,
                ),
            )
            client.emit(record)
            client.breadcrumbs.append(record)
        except Exception as exc:
            client.pipeline.count_lost()  # the record is lost: counted as a drop of every sink
            record_internal_error(exc)
            if _raise_internal:
                raise

    # One method per level, each calling _log directly: a wrapper per call would cost more than
    # the rest of the call.  ``message`` is positional-only, so a field may be named "message".
    def debug(self, message: str, /, *args: Any, **fields: Any) -> None:
        self._log(DEBUG, message, args, fields)

    def info(self, message: str, /, *args: Any, **fields: Any) -> None:
        self._log(INFO, message, args, fields)

    def warning(self, message: str, /, *args: Any, **fields: Any) -> None:
        self._log(WARNING, message, args, fields)

    warn = warning

    def error(self, message: str, /, *args: Any, **fields: Any) -> None:
        self._log(ERROR_LEVEL, message, args, fields)

    def critical(self, message: str, /, *args: Any, **fields: Any) -> None:
        self._log(CRITICAL, message, args, fields)

    def exception(self, message: str, /, *args: Any, **fields: Any) -> None:
        """An ERROR log with the exception being handled, which is also recorded as an error occurrence.

        An exception whose ``__str__`` raises is recorded as ``<unprintable T: str() raised E>``.
        """
        exc = sys.exc_info()[1]
        client = _core._client
        if exc is None or client is None:
            self._log(ERROR_LEVEL, message, args, fields)
            return
        stack = format_stack(exc, client.config["max_field_chars"])  # once, for the log and the error
        fields = {
            **fields,
            "exception.type": type(exc).__name__,
            "exception.message": exception_text(exc),
            "exception.stacktrace": stack,
        }
        self._log(ERROR_LEVEL, message, args, fields)
        # The call's fields go with the occurrence too (an LLM error is grouped by their ``model``).
        context = {k: v for k, v in fields.items() if not k.startswith("exception.")}
        record_error(exc, self.component, ERROR_LEVEL, {**self._bound, **context}, stack)

    def log_performance(self, operation: str, duration: float, /, **fields: Any) -> None:
        """A PERFORMANCE record: ``operation`` took ``duration`` seconds (reports show p50/p95/max).

        A ``duration`` that is not a finite number is kept as text in ``duration_text`` (and no
        ``duration`` attribute is set).
        """
        client = _core._client
        if client is None or client.level > PERFORMANCE:
            return
        if type(operation) is not str:
            operation = as_text(operation)
        seconds = _seconds(duration)
        if seconds is None:
            raw = as_text(duration)
            message = f"{operation} took {raw}"
            fields.pop("duration", None)  # a caller's own "duration" must not pass for a number either
            fields = {**fields, "operation": operation, "duration_text": raw}
        else:
            message = f"{operation} took {seconds * 1000:.1f} ms"
            fields = {**fields, "operation": operation, "duration": seconds}
        self._log(PERFORMANCE, message, (), fields)


def format_message(message: str, args: tuple[Any, ...], fields: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``message % args`` as stdlib ``logging`` formats it (a single non-empty mapping is used for
    ``%(name)s`` keys), and ``fields``.  Never raises: when formatting fails, the message unformatted
    and ``fields`` plus ``log.args`` (the arguments' reprs) and ``log.args_error``."""
    try:
        values: Any = args
        if len(args) == 1 and isinstance(args[0], Mapping) and args[0]:
            values = args[0]
        text = message % values
        return (text if type(text) is str else as_text(text)), fields
    except Exception as exc:  # logging prints such an error instead of raising it; so do we, as attributes
        return message, {
            **fields,
            "log.args": [as_repr(arg) for arg in args[:_MAX_ARGS_KEPT]],
            "log.args_error": f"{type(exc).__name__}: {as_text(exc)}",
        }


def _seconds(duration: object) -> float | None:
    """``duration`` as finite seconds, or None when it is not a finite number."""
    try:
        seconds = float(duration)  # type: ignore[arg-type]
    except Exception:  # not a number, a huge int, or a __float__ that raises
        return None
    return seconds if math.isfinite(seconds) else None


def get_logger(component: str = "app") -> Logger:
    """The logger of a component (a subsystem name such as ``"api"`` or ``"cli.run"``)."""
    return Logger(component)
