"""Error capture: an exception becomes an ``error`` record the store groups into issues."""

from __future__ import annotations

from typing import Any

from clisight._safety import _raise_internal, record_internal_error
from clisight.client import context as _ctx
from clisight.client import core as _core
from clisight.pipeline.redact import as_text, unprintable
from clisight.types import ERROR_LEVEL


def capture_exception(
    exc: BaseException, component: str = "app", severity: int = ERROR_LEVEL, **context: Any
) -> None:
    """Record ``exc`` (type, message, stack, context).  Never raises, whatever it is given."""
    record_error(exc, component, severity, context)


def exception_text(exc: object) -> str:
    """``str(exc)``; for an exception whose ``__str__`` raises, ``<unprintable ValueError: str() raised
    TypeError>``.  Never raises."""
    return as_text(exc)


def format_stack(exc: BaseException, limit: int) -> str:
    """The formatted traceback of ``exc``, its last ``limit`` characters (the innermost frames, which
    group errors) marked when cut.  Never raises: a traceback that cannot be formatted is described."""
    import traceback  # only a program that records an exception pays for it (3 ms at start-up)

    try:
        stack = "".join(traceback.format_exception(exc))
    except Exception as error:  # a broken __notes__, __cause__ or frame must not lose the record
        stack = f"{type(exc).__name__}: {unprintable(exc, 'traceback.format_exception', error)}\n"
    if len(stack) <= limit:
        return stack
    mark = f"[truncated: {len(stack)} chars]…"
    return mark + stack[len(stack) - max(limit - len(mark), 0) :]


def record_error(
    exc: BaseException,
    component: str,
    severity: int,
    context: dict[str, Any],
    stack: str | None = None,
) -> None:
    """:func:`capture_exception`, for callers that already formatted the traceback (``stack``)."""
    client = _core._client
    if client is None:
        return
    try:
        ctx = _ctx.get()
        limit: int = client.config["max_field_chars"]
        if isinstance(exc, BaseException):
            name = type(exc).__qualname__
            if stack is None:
                stack = format_stack(exc, limit)
        else:  # capture_exception(<not an exception>): record what it was given
            name = f"<not an exception: {type(exc).__qualname__}>"
            stack = ""
        if type(severity) is not int:
            severity = ERROR_LEVEL
        build = client.records
        attrs = build.merge(ctx, context)
        client.emit(build.error(name, exception_text(exc), severity, attrs, component, stack, ctx))
    except Exception as error:
        client.pipeline.count_lost()
        record_internal_error(error)
        if _raise_internal:
            raise
