"""Spans: timed, nested operations.  Records inside a span carry its trace and span ids."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

from clisight.client import context as _ctx
from clisight.client import core as _core
from clisight._safety import guard
from clisight.types import ERROR_LEVEL, SPAN, Record

P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def span(name: str, **attributes: Any) -> Iterator[str]:
    """Time a block as a span; nested spans share the trace.  Yields the span id.

    An exception escaping the block marks the span as an error (and still propagates).
    """
    base = _ctx.get()
    span_id = _ctx.new_span_id()
    trace_id = base.trace_id or _ctx.new_session_id()
    ctx = _ctx.Context(base.session_id, base.user_id, base.fields, trace_id, span_id)
    start = time.time_ns()
    status = 0
    try:
        with _ctx.use(ctx):
            yield span_id
    except BaseException as exc:
        status = ERROR_LEVEL
        attributes = {**attributes, "exception.type": type(exc).__name__}
        raise
    finally:
        with guard():
            client = _core._client
            if client is not None:
                end = time.time_ns()
                attrs = {**attributes, "duration": (end - start) / 1e9}
                client.emit(
                    Record(
                        SPAN,
                        start,
                        name,
                        "",
                        status,
                        client.redactor.attributes(attrs),
                        client.resource,
                        base.session_id,
                        trace_id,
                        span_id,
                        base.span_id,
                        end,
                    )
                )


def traced(name: str | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator form of :func:`span` (the span is named after the function by default)."""

    def wrap(fn: Callable[P, R]) -> Callable[P, R]:
        span_name = name or fn.__qualname__

        @functools.wraps(fn)
        def inner(*args: P.args, **kwargs: P.kwargs) -> R:
            with span(span_name):
                return fn(*args, **kwargs)

        return inner

    return wrap
