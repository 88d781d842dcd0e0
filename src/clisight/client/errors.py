"""Error capture: an exception becomes an ``error`` record the store groups into issues."""

from __future__ import annotations

import traceback
from time import time_ns
from typing import Any

from clisight.client import context as _ctx
from clisight.client import core as _core
from clisight._safety import guard
from clisight.types import ERROR, ERROR_LEVEL, Record


def capture_exception(
    exc: BaseException, component: str = "app", severity: int = ERROR_LEVEL, **context: Any
) -> None:
    """Record ``exc`` (type, message, stack, context).  Never raises."""
    record_error(exc, component, severity, context)


def record_error(
    exc: BaseException,
    component: str,
    severity: int,
    context: dict[str, Any],
    stack: str | None = None,
) -> None:
    """:func:`capture_exception`, for callers that already formatted the traceback (``stack``)."""
    with guard():
        client = _core._client
        if client is None:
            return
        ctx = _ctx.get()
        frames = traceback.extract_tb(exc.__traceback__)
        red = client.redactor
        attrs = {
            **ctx.fields,
            **context,
            "component": component,
            "stack": red.message((stack or "".join(traceback.format_exception(exc)))[-16000:]),
            "frames": [f"{f.filename}:{f.name}" for f in frames[-5:]],
        }
        client.emit(
            Record(
                ERROR,
                time_ns(),
                type(exc).__qualname__,
                red.message(str(exc))[:2000],
                severity,
                red.attributes(attrs),
                client.resource,
                ctx.session_id,
                ctx.trace_id,
                ctx.span_id,
            )
        )
