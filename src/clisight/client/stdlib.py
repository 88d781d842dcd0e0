"""Bridges from the standard library: a ``logging.Handler`` and opt-in capture of warnings.

``logging.getLogger().addHandler(clisight.LoggingHandler())`` sends existing ``logging`` calls to
the store, with their ``extra=`` fields as attributes.  The handler never configures the root
logger itself (the seed's ``basicConfig`` did; that is the application's choice, not ours).
"""

from __future__ import annotations

import logging
import warnings
from time import time_ns
from typing import Any, TextIO

from clisight.client import context as _ctx
from clisight.client import core as _core
from clisight._safety import guard
from clisight.types import CRITICAL, DEBUG, ERROR_LEVEL, INFO, LOG, WARNING, Record

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
    """A stdlib ``logging`` handler that queues each record into clisight's pipeline."""

    def emit(self, record: logging.LogRecord) -> None:
        with guard():
            client = _core._client
            if client is None:
                return
            severity = _severity(record.levelno)
            if severity < client.level:
                return
            ctx = _ctx.get()
            attrs: dict[str, Any] = {k: v for k, v in vars(record).items() if k not in _STANDARD}
            attrs.update(ctx.fields)
            attrs["code.function"] = record.funcName
            attrs["code.lineno"] = record.lineno
            if record.exc_info and record.exc_info[1] is not None:
                exc = record.exc_info[1]
                attrs["exception.type"] = type(exc).__name__
                attrs["exception.stacktrace"] = logging.Formatter().formatException(record.exc_info)[-8000:]
            red = client.redactor
            client.emit(
                Record(
                    LOG,
                    int(record.created * 1e9) or time_ns(),
                    record.name,
                    red.message(record.getMessage()),
                    severity,
                    red.attributes(attrs),
                    client.resource,
                    ctx.session_id,
                    ctx.trace_id,
                    ctx.span_id,
                )
            )


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
            attrs = {"category": category.__name__, "filename": filename, "lineno": lineno}
            client.emit(
                Record(
                    LOG,
                    time_ns(),
                    "py.warnings",
                    client.redactor.message(str(message)),
                    WARNING,
                    attrs,
                    client.resource,
                    ctx.session_id,
                    ctx.trace_id,
                    ctx.span_id,
                )
            )
    _original_showwarning[0](message, category, filename, lineno, file, line)


def capture_warnings(enable: bool = True) -> None:
    """Record Python warnings as WARNING logs (they are still shown as before)."""
    if enable and not _original_showwarning:
        _original_showwarning.append(warnings.showwarning)
        warnings.showwarning = _showwarning
    elif not enable and _original_showwarning:
        warnings.showwarning = _original_showwarning.pop()


__all__ = ["LoggingHandler", "capture_warnings"]
