"""Session and trace context carried by every record, in a ``ContextVar``.

The context is one immutable :class:`Context` object, so reading it on the hot path is a single
``ContextVar.get``; changing it builds a new one.  Threads and asyncio tasks inherit it the usual
``contextvars`` way.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, NamedTuple


class Context(NamedTuple):
    """Immutable; ``fields`` is never mutated in place (a change builds a new Context)."""

    session_id: str | None = None
    user_id: str | None = None
    fields: dict[str, Any] = {}
    trace_id: str | None = None
    span_id: str | None = None


EMPTY = Context()
current: ContextVar[Context] = ContextVar("clisight_context", default=EMPTY)
# The process-wide default when nothing was set in this context: the run's own session.
process_default: list[Context] = [EMPTY]


def get() -> Context:
    ctx = current.get()
    return process_default[0] if ctx is EMPTY else ctx


def new_session_id() -> str:
    """A random 128-bit session id, as 32 hex characters (the same shape as an OTLP trace id)."""
    return os.urandom(16).hex()


def new_span_id() -> str:
    return os.urandom(8).hex()


def hash_user(user: str) -> str:
    """A stable pseudonym for a user id: reports can count distinct users without storing who they are."""
    import hashlib  # only sessions with a user pay for it

    return "u_" + hashlib.sha256(user.encode("utf-8", "replace")).hexdigest()[:16]


def set_context(session_id: str | None = None, user_id: str | None = None, **fields: Any) -> Context:
    """Replace the current context's session id, user id and extra fields (in this context)."""
    base = get()
    ctx = base._replace(
        session_id=session_id or base.session_id or new_session_id(),
        user_id=user_id if user_id is not None else base.user_id,
        fields={**base.fields, **fields},
    )
    current.set(ctx)
    return ctx


@contextmanager
def use(ctx: Context) -> Iterator[Context]:
    token = current.set(ctx)
    try:
        yield ctx
    finally:
        current.reset(token)
