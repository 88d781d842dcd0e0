"""Usage analytics: sessions and named events.  Off under ``DO_NOT_TRACK=1`` (logs stay on)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from clisight._safety import guard
from clisight.client import context as _ctx
from clisight.client import core as _core
from clisight.pipeline.redact import as_text


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
        build = client.records
        client.emit(build.event(event, build.merge(ctx, properties), ctx))


def set_session_context(session_id: str | None = None, user: object = None, **context: Any) -> str:
    """Set the session (and user, and fields) of every later record in this context; returns the
    session id (the run's own session when not given).  The user is stored as a pseudonym (a salted
    hash); any value is accepted, and one that cannot be turned into text is ignored.

    Under ``DO_NOT_TRACK=1`` (or ``usage=False``) records carry neither a session nor a user (the
    fields still apply); the id is returned all the same.
    """
    client = _core._client
    session_id = _session_id(session_id)
    if not _tracking(client):
        base = _ctx.get()
        _ctx.current.set(base._replace(fields={**base.fields, **context}))
        return session_id or _ctx.new_session_id()
    user_id = _ctx.hash_user(user)
    ctx = _ctx.set_context(session_id, user_id, **context)
    assert ctx.session_id is not None
    with guard():
        if client is None:
            pass
        elif ctx.session_id != client.session_id:
            client.session_record(
                ctx.session_id,
                client.records.clock(),
                user_id=user_id,
                attributes={"parent_session": client.session_id},
            )
        elif user_id is not None:  # the run's own session learns who ran it
            client.session_record(client.session_id, client.started_ns, user_id=user_id)
    return ctx.session_id


def set_command(path: str) -> None:
    """Name this run's command path, e.g. ``set_command("mycli db migrate")`` (click's
    ``ctx.command_path``); stored as given in the run's session.

    By default a run's command is the program name only: clisight cannot tell a subcommand from a
    value in argv (``mycli alice@example.com``), so argv words are never stored.
    """
    with guard():
        client = _core._client
        if client is not None:
            client.session_record(client.session_id, client.started_ns, attributes={"command": str(path)})


@contextmanager
def session(session_id: str | None = None, user: object = None, **context: Any) -> Iterator[str]:
    """A session (a conversation, a command run) around a block: every record inside carries its id.

    Yields the session id (generated when not given).  On exit the session's end time, duration and
    exit code (0, or 1 when the block raised) are recorded.  ``user`` is stored as a pseudonym, as
    in :func:`set_session_context`.  Under ``DO_NOT_TRACK=1`` (or ``usage=False``) nothing of the
    session is recorded and records inside carry no session or user; the id is yielded all the same.
    """
    base = _ctx.get()
    sid = _session_id(session_id) or _ctx.new_session_id()
    client = _core._client
    if not _tracking(client):
        with _ctx.use(base._replace(fields={**base.fields, **context})):
            yield sid
        return
    user_id = _ctx.hash_user(user) or base.user_id
    ctx = _ctx.Context(sid, user_id, {**base.fields, **context}, base.trace_id, base.span_id)
    start = client.records.clock() if client is not None else time.time_ns()
    if client is not None:
        with guard():
            client.session_record(sid, start, user_id=user_id, attributes=_session_attrs(context))
    exit_code = 1
    try:
        with _ctx.use(ctx):
            yield sid
        exit_code = 0
    finally:
        client = _core._client
        if client is not None:
            with guard():
                end = client.records.clock()
                # The block's own fields first: exit_code and duration are clisight's (reserved).
                attributes = {**_session_attrs(context), "exit_code": exit_code}
                attributes["duration"] = (end - start) / 1e9
                client.session_record(sid, start, end, user_id=user_id, attributes=attributes)


def _session_id(given: object) -> str | None:
    """A caller's session id as text (any object is accepted; its text is the id)."""
    if given is None or type(given) is str:
        return given
    return as_text(given)


def _tracking(client: _core.Client | None) -> bool:
    # With no client yet, a context set now must not carry a user into a later DO_NOT_TRACK run.
    if client is not None:
        return client.usage
    return os.environ.get("DO_NOT_TRACK", "").strip() in ("", "0")


def _session_attrs(context: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in context.items() if isinstance(v, str | int | float | bool)}
