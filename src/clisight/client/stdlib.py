"""Bridges from the standard library: a ``logging.Handler`` and opt-in capture of warnings.

``logging.getLogger().addHandler(clisight.LoggingHandler())`` sends existing ``logging`` calls to
the store, with their ``extra=`` fields as attributes.  The handler never configures the root
logger itself (the seed's ``basicConfig`` did; that is the application's choice, not ours).
"""

from __future__ import annotations

import logging
import warnings
from threading import get_ident
from time import time_ns
from typing import Any, TextIO

from clisight._safety import PIPELINE_THREADS, _raise_internal, guard, record_internal_error
from clisight.client import context as _ctx
from clisight.client import core as _core
from clisight.client.errors import format_stack
from clisight.client.logger import format_message
from clisight.pipeline.redact import as_text
from clisight.types import CRITICAL, DEBUG, ERROR_LEVEL, INFO, WARNING

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("n", 0, "p", 0, "m", None, None))) | {"message", "asctime"}


def _severity(levelno: int) -> int:
    if levelno >= logging.CRITICAL:
        return CRITICAL
    if levelno >= logging.ERROR:
        return ERROR_LEVEL
    if levelno >= logging.WARNING:
        return WARNING
    if levelno >= logging.INFO:
        return INFO
    return DEBUG


class LoggingHandler(logging.Handler):
    """A stdlib ``logging`` handler that queues each record into clisight's pipeline.

    Never raises: a message whose ``%`` arguments do not fit is kept unformatted, with the
    arguments' reprs in ``log.args`` and the error in ``log.args_error``.
    """

    def emit(self, record: logging.LogRecord) -> None:
        client = _core._client
        if client is None or get_ident() in PIPELINE_THREADS:
            return
        try:
            severity = _severity(record.levelno)
            if severity < client.level:
                return
            ctx = _ctx.get()
            # The record's extra= fields are the call's own: they win over the context's.
            extra = {k: v for k, v in vars(record).items() if k not in _STANDARD}
            build = client.records
            attrs = build.merge(ctx, extra)
            attrs["code.function"] = record.funcName
            attrs["code.lineno"] = record.lineno
            message = as_text(record.msg)
            if record.args:
                # LogRecord already unwrapped a single mapping argument; format_message wants a tuple.
                args = record.args if isinstance(record.args, tuple) else (record.args,)
                message, attrs = format_message(message, args, attrs)
            exc_info = record.exc_info
            if exc_info and exc_info[1] is not None:
                exc = exc_info[1]
                attrs["exception.type"] = type(exc).__name__
                attrs["exception.stacktrace"] = format_stack(exc, client.config["max_field_chars"])
            built = build.log(record.name, severity, message, attrs, ctx, _time_ns(record.created))
            client.emit(built)
            client.breadcrumbs.append(built)
        except Exception as error:
            client.pipeline.count_lost()  # the record is lost: counted as a drop of every sink
            record_internal_error(error)
            if _raise_internal:
                raise


def _time_ns(created: object) -> int:
    try:
        return int(created * 1e9) or time_ns()  # type: ignore[operator]
    except Exception:  # a record whose ``created`` was overwritten with something odd
        return time_ns()


_original_showwarning: list[Any] = []


def _showwarning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    with guard():
        client = _core._client
        if client is not None:
            ctx = _ctx.get()
            build = client.records
            fields = {
                "category": as_text(getattr(category, "__name__", category)),
                "filename": filename,
                "lineno": lineno,
            }
            client.emit(build.log("py.warnings", WARNING, message, build.merge(ctx, fields), ctx))
    _original_showwarning[0](message, category, filename, lineno, file, line)


def capture_warnings(enable: bool = True) -> None:
    """Record Python warnings as WARNING logs (they are still shown as before)."""
    if enable and not _original_showwarning:
        _original_showwarning.append(warnings.showwarning)
        warnings.showwarning = _showwarning
    elif not enable and _original_showwarning:
        warnings.showwarning = _original_showwarning.pop()


__all__ = ["LoggingHandler", "capture_warnings"]
