"""Spans: timed, nested operations.  Records inside a span carry its trace and span ids."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar, overload

from clisight._safety import _raise_internal, record_internal_error
from clisight.client import context as _ctx
from clisight.client import core as _core
from clisight.pipeline.redact import as_text
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
        client = _core._client
        if client is not None:
            try:
                end = time.time_ns()
                attrs = {**attributes, "duration": (end - start) / 1e9}
                client.emit(
                    Record(
                        SPAN,
                        start,
                        name if type(name) is str else as_text(name),
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
            except Exception as error:
                client.pipeline.count_lost()  # the span is lost: counted as a drop of every sink
                record_internal_error(error)
                if _raise_internal:
                    raise


@overload
def traced(name: Callable[P, R]) -> Callable[P, R]: ...


@overload
def traced(name: str | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def traced(name: Any = None) -> Any:
    """Decorator form of :func:`span` (the span is named after the function by default).

    Both ``@traced`` and ``@traced("name")`` work.
    """
    if callable(name) and not isinstance(name, str):
        return _wrap(name, None)
    return lambda fn: _wrap(fn, name)


def _wrap(fn: Callable[P, R], name: object) -> Callable[P, R]:
    if isinstance(name, str) and name:
        span_name = name
    elif name is None or isinstance(name, str):
        span_name = as_text(getattr(fn, "__qualname__", fn))
    else:
        span_name = as_text(name)

    @functools.wraps(fn)
    def inner(*args: P.args, **kwargs: P.kwargs) -> R:
        with span(span_name):
            return fn(*args, **kwargs)

    return inner
