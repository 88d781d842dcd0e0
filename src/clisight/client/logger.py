"""Structured logging: ``clisight.get_logger(component)``.

A call builds one redacted :class:`~clisight.types.Record` and queues it; that is all it costs
the caller.  Before ``clisight.init()`` (or after ``shutdown()``) calls are ignored cheaply.
"""

from __future__ import annotations

import traceback
from time import time_ns
from typing import Any

from clisight.client import context as _ctx
from clisight.client import core as _core
from clisight._safety import _raise_internal, record_internal_error
from clisight.types import CRITICAL, DEBUG, ERROR_LEVEL, INFO, LOG, PERFORMANCE, WARNING, Record

_get_ctx = _ctx.current.get
_EMPTY = _ctx.EMPTY
_new_record = tuple.__new__  # Record(...) without the generated __new__'s argument handling


class Logger:
    """A component's logger.  Fields are keyword arguments; ``bind`` returns a logger with context."""

    __slots__ = ("_bound", "component")

    def __init__(self, component: str, bound: dict[str, Any] | None = None) -> None:
        self.component = component
        self._bound = bound or {}

    def bind(self, **context: Any) -> Logger:
        """A logger that adds ``context`` to every record (later keyword arguments win)."""
        return Logger(self.component, {**self._bound, **context})

    def _log(self, severity: int, message: str, fields: dict[str, Any]) -> None:
        client = _core._client
        if client is None or severity < client.level:
            return
        try:
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
            if type(message) is not str:
                message = str(message)
            text = client.redaction_cache.get(message)
            if text is None:
                text = redactor.message(message)
            client.emit(
                _new_record(
                    Record,
                    (
                        LOG,
                        time_ns(),
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
            )
        except Exception as exc:
            record_internal_error(exc)
            if _raise_internal:
                raise

    # One method per level, each calling _log directly: a wrapper per call would cost more than
    # the rest of the call.
    def debug(self, message: str, **fields: Any) -> None:
        self._log(DEBUG, message, fields)

    def info(self, message: str, **fields: Any) -> None:
        self._log(INFO, message, fields)

    def warning(self, message: str, **fields: Any) -> None:
        self._log(WARNING, message, fields)

    warn = warning

    def error(self, message: str, **fields: Any) -> None:
        self._log(ERROR_LEVEL, message, fields)

    def critical(self, message: str, **fields: Any) -> None:
        self._log(CRITICAL, message, fields)

    def exception(self, message: str, **fields: Any) -> None:
        """An ERROR log with the exception being handled, which is also recorded as an error occurrence."""
        import sys

        exc = sys.exc_info()[1]
        if exc is None:
            self._log(ERROR_LEVEL, message, fields)
            return
        stack = "".join(traceback.format_exception(exc))  # formatted once, for the log and the error
        fields = {
            **fields,
            "exception.type": type(exc).__name__,
            "exception.message": str(exc),
            "exception.stacktrace": stack[-8000:],
        }
        self._log(ERROR_LEVEL, message, fields)
        from clisight.client.errors import record_error

        record_error(exc, self.component, ERROR_LEVEL, {}, stack)

    def log_performance(self, operation: str, duration: float, **fields: Any) -> None:
        """A PERFORMANCE record: ``operation`` took ``duration`` seconds (reports show p50/p95/max)."""
        self._log(
            PERFORMANCE,
            f"{operation} took {duration * 1000:.1f} ms",
            {**fields, "operation": operation, "duration": float(duration)},
        )


def get_logger(component: str = "app") -> Logger:
    """The logger of a component (a subsystem name such as ``"api"`` or ``"cli.run"``)."""
    return Logger(component)
