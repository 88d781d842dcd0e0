"""Spans: timed, nested operations.  Records inside a span carry its trace and span ids."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar, overload

from clisight._safety import _raise_internal, record_internal_error
from clisight.client import context as _ctx
from clisight.client import core as _core
from clisight.client.records import RecordBuilder
from clisight.pipeline.redact import NullRedactor, as_text
from clisight.types import ERROR_LEVEL, Resource

# Ids and time for a span opened before init(): the builder's defaults, with nothing to redact.
_FALLBACK = RecordBuilder(Resource(""), NullRedactor())

P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def span(name: str, **attributes: Any) -> Iterator[str]:
    """Time a block as a span; nested spans share the trace.  Yields the span id.

    An exception escaping the block marks the span as an error (and still propagates).
    """
    base = _ctx.get()
    client = _core._client
    build = client.records if client is not None else _FALLBACK
    span_id = build.new_span_id()
    trace_id = base.trace_id or build.new_trace_id()
    ctx = _ctx.Context(base.session_id, base.user_id, base.fields, trace_id, span_id)
    start = build.clock()
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
                build = client.records
                client.emit(
                    build.span(
                        name,
                        start,
                        build.clock(),
                        status,
                        build.merge(base, attributes),
                        base,
                        trace_id,
                        span_id,
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
