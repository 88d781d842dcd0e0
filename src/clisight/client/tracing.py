"""Spans: timed, nested operations.  Records inside a span carry its trace and span ids.

``clisight.span(name, kind=..., **attributes)`` is a context manager (``with``/``async with``; it
gives the span id) and a decorator of functions and coroutine functions.  The current span lives in
the client's ``ContextVar``, so it follows threads started with a copied context and asyncio tasks,
and every log record written inside carries its ids.  A span whose block raises is marked failed
(``exception.type``, ``exception.message``) and the exception propagates.  A span longer than the
``thresholds`` limit of its name (or of its ``operation_type`` attribute) also writes a WARNING log
and an ``alert`` event.
"""

from __future__ import annotations

import functools
import inspect
import os
import random
from collections.abc import Callable
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, overload

from clisight._safety import _raise_internal, record_internal_error
from clisight.client import context as _ctx
from clisight.client import core as _core
from clisight.client.performance import check_threshold
from clisight.client.records import RecordBuilder
from clisight.pipeline.redact import NullRedactor, as_text
from clisight.types import ERROR_LEVEL, SPAN, Record, Resource

# Ids and time for a span opened before init(): the builder's defaults, with nothing to redact.
_FALLBACK = RecordBuilder(Resource(""), NullRedactor())
_get_ctx = _ctx.current.get
_set_ctx = _ctx.current.set
_reset_ctx = _ctx.current.reset
_process_default = _ctx.process_default
_EMPTY = _ctx.EMPTY
_Context = _ctx.Context
_new = tuple.__new__
_urandom = os.urandom
_randbytes = random.randbytes  # reseeded in a forked child by the random module itself

P = ParamSpec("P")
R = TypeVar("R")


class span:
    """Time a block (or every call of a function) as a span; nested spans share the trace."""

    __slots__ = ("_base", "_start", "_token", "attributes", "kind", "name", "span_id", "trace_id")

    def __init__(self, name: str, /, kind: str = "internal", **attributes: Any) -> None:
        self.name = name
        self.kind = kind
        self.attributes = attributes
        self.span_id: str | None = None
        self.trace_id: str | None = None

    def set(self, **attributes: Any) -> None:
        """Add attributes to the span while it runs (later values win)."""
        self.attributes = {**self.attributes, **attributes}

    # -- context manager ------------------------------------------------------------------------
    # The hot path: RecordBuilder.span inlined (tests/client/test_tracing.py pins the two to the same
    # records), and ids from ``random.randbytes`` when the builder's id source is the default one.
    def __enter__(self) -> str:
        base = _get_ctx()
        if base is _EMPTY:
            base = _process_default[0]
        client = _core._client
        build = client.records if client is not None else _FALLBACK
        try:
            if build.random_bytes is _urandom:
                span_id = _randbytes(8).hex()
                trace_id = base.trace_id or _randbytes(16).hex()
            else:
                span_id = build.new_span_id()
                trace_id = base.trace_id or build.new_trace_id()
            start = build.clock()
        except Exception as error:  # an injected id source or clock that fails: ids of our own
            record_internal_error(error)
            if _raise_internal:
                raise
            span_id, trace_id, start = _FALLBACK.new_span_id(), _FALLBACK.new_trace_id(), _FALLBACK.clock()
        self._base = base
        self.span_id = span_id
        self.trace_id = trace_id
        self._token = _set_ctx(
            _new(_Context, (base.session_id, base.user_id, base.fields, trace_id, span_id))
        )
        self._start = start
        return span_id

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            _reset_ctx(self._token)
        except ValueError:  # exited in another context than it was entered in (a generator, a callback)
            _set_ctx(self._base)
        client = _core._client
        if client is None:
            return
        try:
            base = self._base
            start = self._start
            end = client.records.clock()
            status = 0
            attrs = {**base.fields, **self.attributes} if base.fields else self.attributes.copy()
            if exc is not None:
                status = ERROR_LEVEL
                attrs["exception.type"] = type(exc).__name__
                attrs["exception.message"] = as_text(exc)[:1000]
            kind = self.kind
            if type(kind) is not str or kind != "internal":
                attrs["span.kind"] = kind if type(kind) is str else as_text(kind)
            if base.user_id is not None:
                attrs["user_id"] = base.user_id
            attrs["duration"] = (end - start) / 1e9
            name = self.name
            record = _new(
                Record,
                (
                    SPAN,
                    start,
                    name if type(name) is str else as_text(name),
                    "",
                    status,
                    client.redactor.attributes(attrs),
                    client.resource,
                    base.session_id,
                    self.trace_id,
                    self.span_id,
                    base.span_id,
                    end,
                    None,
                ),
            )
            client.emit(record)
            client.breadcrumbs.append(record)
            thresholds = client.thresholds
            if thresholds and (record.name in thresholds or "operation_type" in attrs):
                check_threshold(client, record.name, (end - start) / 1e9, attrs, base)
        except Exception as error:
            client.pipeline.count_lost()  # the span is lost: counted as a drop of every sink
            record_internal_error(error)
            if _raise_internal:
                raise

    async def __aenter__(self) -> str:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    # -- decorator -----------------------------------------------------------------------------
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Every call of ``fn`` (a function or a coroutine function) runs in a new span like this one."""
        name, kind, attributes = self.name, self.kind, self.attributes
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with span(name, kind, **attributes):
                    return await fn(*args, **kwargs)

            return run_async  # type: ignore[return-value]

        @functools.wraps(fn)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            with span(name, kind, **attributes):
                return fn(*args, **kwargs)

        return run


@overload
def traced(name: Callable[P, R]) -> Callable[P, R]: ...


@overload
def traced(name: str | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def traced(name: Any = None) -> Any:
    """Decorator form of :func:`span` (the span is named after the function by default).

    Both ``@traced`` and ``@traced("name")`` work, on functions and coroutine functions.
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
    return span(span_name)(fn)
