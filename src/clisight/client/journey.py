"""User journeys: ``clisight.track_user_journey(step, **properties)``.

A step is a ``journey`` usage event with its ``step`` name; the query layer turns the steps of each
user (or, without a user, each session) into paths, funnels and retention cohorts
(``clisight.query.analytics``).  Off under ``DO_NOT_TRACK=1``; never raises.
"""

from __future__ import annotations

from typing import Any, Final

from clisight._safety import guard
from clisight.client import context as _ctx
from clisight.client import core as _core

EVENT: Final = "journey"


def track_user_journey(step: str, **properties: Any) -> None:
    """Record that the current user (``session(user=...)`` / ``set_session_context(user=...)``) or
    session reached ``step`` (``"signup"``, ``"first_chat"``...), with its properties."""
    with guard():
        client = _core._client
        if client is None or not client.usage:
            return
        ctx = _ctx.get()
        build = client.records
        attrs = build.merge(ctx, {**properties, "step": step if isinstance(step, str) else str(step)})
        client.emit(build.event(EVENT, attrs, ctx))


__all__ = ["track_user_journey"]
