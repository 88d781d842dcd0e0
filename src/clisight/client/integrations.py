"""Logging libraries programs already use: a structlog processor and a loguru sink.

Both route each record into clisight, with the library's bound context as fields, beside whatever
else the program does with it (the processor returns the event dict unchanged; the sink is one more
loguru sink)::

    structlog.configure(processors=[clisight.structlog_processor, structlog.processors.JSONRenderer()])
    loguru.logger.add(clisight.loguru_sink)

Neither library is imported by clisight: they hand their records to these callables.  Both run
inside the never-raise guard and are ignored before ``init()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from threading import get_ident
from typing import Any, Final

from clisight._safety import PIPELINE_THREADS, guard
from clisight.client import context as _ctx
from clisight.client import core as _core
from clisight.client.errors import format_stack
from clisight.types import CRITICAL, DEBUG, ERROR_LEVEL, INFO, SEVERITY_NUMBERS, WARNING

# structlog's method names and loguru's level names (SUCCESS is loguru's, between INFO and WARNING).
_LEVELS: Final[dict[str, int]] = {
    **SEVERITY_NUMBERS,
    "SUCCESS": INFO,
    "EXCEPTION": ERROR_LEVEL,
    "MSG": INFO,
    "CRITICAL": CRITICAL,
}
_STRUCTLOG_OWN: Final = frozenset({"event", "level", "logger", "logger_name", "exc_info", "_record"})


def severity(level: object, number: object = None) -> int:
    """A clisight severity for a library's level name, else its stdlib-style number."""
    if isinstance(level, str):
        found = _LEVELS.get(level.strip().upper())
        if found is not None:
            return found
    if isinstance(number, int | float) and not isinstance(number, bool):
        for threshold, value in ((50, CRITICAL), (40, ERROR_LEVEL), (30, WARNING), (20, INFO)):
            if number >= threshold:
                return value
    return DEBUG


def structlog_processor(logger: object, method_name: str, event_dict: Mapping[str, Any]) -> Any:
    """A structlog processor: records the event in clisight and returns ``event_dict`` unchanged.

    The message is ``event``; the level is ``level`` (``add_log_level``) or the method name; the
    component is ``logger`` (``add_logger_name``) or the logger's name; every other key, the bound
    context included, becomes a field.  ``exc_info`` adds the exception's type and stack.
    """
    with guard():
        client = _core._client
        if client is None or get_ident() in PIPELINE_THREADS:
            return event_dict
        level = severity(event_dict.get("level") or method_name)
        if level < client.level:
            return event_dict
        fields = {k: v for k, v in event_dict.items() if k not in _STRUCTLOG_OWN}
        component = event_dict.get("logger") or event_dict.get("logger_name") or getattr(logger, "name", None)
        exc_info = event_dict.get("exc_info")
        if exc_info:
            exc = exc_info if isinstance(exc_info, BaseException) else None
            if isinstance(exc_info, tuple) and len(exc_info) == 3:
                exc = exc_info[1]
            elif exc_info is True:
                import sys

                exc = sys.exc_info()[1]
            if exc is not None:
                fields["exception.type"] = type(exc).__name__
                fields["exception.stacktrace"] = format_stack(exc, client.config["max_field_chars"])
        ctx = _ctx.get()
        build = client.records
        message = event_dict.get("event", "")
        client.emit(build.log(component or "structlog", level, message, build.merge(ctx, fields), ctx))
    return event_dict


def loguru_sink(message: Any) -> None:
    """A loguru sink (``logger.add(clisight.loguru_sink)``): the record's level, message, module
    name (the component), time, bound ``extra`` fields and exception."""
    with guard():
        client = _core._client
        if client is None or get_ident() in PIPELINE_THREADS:
            return
        record = message.record
        level = record["level"]
        number = severity(getattr(level, "name", None), getattr(level, "no", None))
        if number < client.level:
            return
        fields: dict[str, Any] = dict(record.get("extra") or {})
        fields["code.function"] = record.get("function")
        fields["code.lineno"] = record.get("line")
        exception = record.get("exception")
        if exception is not None and getattr(exception, "value", None) is not None:
            exc = exception.value
            fields["exception.type"] = type(exc).__name__
            fields["exception.stacktrace"] = format_stack(exc, client.config["max_field_chars"])
        when = record.get("time")
        time_ns = int(when.timestamp() * 1e9) if isinstance(when, datetime) else None
        ctx = _ctx.get()
        build = client.records
        component = record.get("name") or "loguru"
        client.emit(build.log(component, number, record["message"], build.merge(ctx, fields), ctx, time_ns))


__all__ = ["loguru_sink", "severity", "structlog_processor"]
