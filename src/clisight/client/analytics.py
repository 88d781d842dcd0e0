"""Usage analytics: sessions and named events.  Off under ``DO_NOT_TRACK=1`` (logs stay on)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from clisight.client import context as _ctx
from clisight.client import core as _core
from clisight.client._safety import guard
from clisight.types import EVENT, Record


def track(event: str, **properties: Any) -> None:
    """Record a usage event (``command``, ``llm.request``, ``tool.call``...) with its properties.

    For LLM calls use ``track("llm.request", model=..., input_tokens=..., output_tokens=...,
    cache_read_tokens=..., cost_usd=..., duration=...)``: ``clisight report`` totals these per model.
    """
    with guard():
        client = _core._client
        if client is None or not client.usage:
            return
        ctx = _ctx.get()
        props = {**ctx.fields, **properties} if ctx.fields else properties
        if ctx.user_id is not None:
            props["user_id"] = ctx.user_id
        client.emit(
            Record(
                EVENT,
                time.time_ns(),
                event,
                "",
                0,
                client.redactor.attributes(props),
                client.resource,
                ctx.session_id,
                ctx.trace_id,
                ctx.span_id,
            )
        )


def set_session_context(session_id: str | None = None, user: str | None = None, **context: Any) -> str:
    """Set the session (and user, and fields) of every later record in this context; returns the
    session id (generated when not given).  The user id is stored as a pseudonym (a hash)."""
    user_id = _ctx.hash_user(user) if user else None
    ctx = _ctx.set_context(session_id, user_id, **context)
    assert ctx.session_id is not None
    with guard():
        client = _core._client
        if client is not None and session_id != client.session_id:
            client.session_record(
                ctx.session_id, start_ns=time.time_ns(), user_id=user_id, parent_session=client.session_id
            )
    return ctx.session_id


@contextmanager
def session(session_id: str | None = None, user: str | None = None, **context: Any) -> Iterator[str]:
    """A session (a conversation, a command run) around a block: every record inside carries its id.

    Yields the session id (generated when not given).  On exit the session's end time, duration and
    exit code (0, or 1 when the block raised) are recorded.
    """
    base = _ctx.get()
    user_id = _ctx.hash_user(user) if user else base.user_id
    sid = session_id or _ctx.new_session_id()
    ctx = _ctx.Context(sid, user_id, {**base.fields, **context}, base.trace_id, base.span_id)
    start = time.time_ns()
    client = _core._client
    if client is not None:
        with guard():
            client.session_record(sid, start_ns=start, user_id=user_id, **_session_attrs(context))
    exit_code = 1
    try:
        with _ctx.use(ctx):
            yield sid
        exit_code = 0
    finally:
        client = _core._client
        if client is not None:
            with guard():
                end = time.time_ns()
                client.session_record(
                    sid,
                    start_ns=start,
                    end_ns=end,
                    user_id=user_id,
                    exit_code=exit_code,
                    duration=(end - start) / 1e9,
                    **_session_attrs(context),
                )


def _session_attrs(context: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in context.items() if isinstance(v, str | int | float | bool)}
