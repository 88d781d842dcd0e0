"""User journeys: ``clisight.track_user_journey(step, **properties)``.

A step is a ``journey:<step>`` usage event whose ``actor`` is the user's pseudonym (or, without a
user, the session id).  The actor is also written as the event's ``model`` attribute: that attribute
is the one dimension the store's event rollups keep (besides the name), so paths and funnels read
per-minute rollup cells of each step instead of scanning raw events (which have no index on their
name).  The query layer turns the steps into paths, funnels and retention cohorts
(``clisight.query.analytics``).  Off under ``DO_NOT_TRACK=1``; never raises.
"""

from __future__ import annotations

from typing import Any, Final

from clisight._safety import guard
from clisight.client import context as _ctx
from clisight.client import core as _core

PREFIX: Final = "journey:"


def track_user_journey(step: str, **properties: Any) -> None:
    """Record that the current user (``session(user=...)`` / ``set_session_context(user=...)``) or
    session reached ``step`` (``"signup"``, ``"first_chat"``...), with its properties."""
    with guard():
        client = _core._client
        if client is None or not client.usage:
            return
        ctx = _ctx.get()
        build = client.records
        name = step if isinstance(step, str) else str(step)
        actor = ctx.user_id or ctx.session_id or client.session_id
        attrs = build.merge(ctx, {**properties, "step": name, "actor": actor, "model": actor})
        client.emit(build.event(PREFIX + name, attrs, ctx))


__all__ = ["track_user_journey"]
