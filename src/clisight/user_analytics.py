"""The seed project's ``UserAnalytics``, call-compatible, rebuilt on the client (writes) and the query
layer (reads).

::

    analytics = clisight.UserAnalytics("analytics.db")
    analytics.track_command_usage("chat", execution_time=1.2, success=True)
    analytics.track_conversation_metrics(message_count=12, total_tokens=5400, response_time=2.3)
    analytics.track_action("file_upload", {"size_kb": 120}, duration=0.4)
    insights = analytics.generate_usage_insights(days=7)

What the seed got wrong and is fixed here: every record carries a session id (the run's session, or
the one given), writes go through the bounded pipeline (scrubbed, never raising into the program), and
insights are computed from the store's rollups.

Where the data goes: ``UserAnalytics(path)`` starts clisight on that store when it is not running
yet; when the program already called ``clisight.init``, records go to the running client's store and
insights are read from it (``store`` says which).

``generate_usage_insights`` returns the seed's keys (the seed's code is not in this repository; the
keys follow its two tables, ``user_actions`` and ``session_metrics``, and are documented in
``docs/usage.md``): ``period_days``, ``session_id``, ``total_actions``, ``total_commands``,
``command_usage`` (per command: ``command``, ``usage_count``, ``avg_execution_time``,
``success_rate``), ``most_used_commands``, ``action_types`` (per type: ``action_type``, ``count``,
``avg_duration``, ``success_rate``), ``session_metrics`` (``conversations``,
``avg_message_count``, ``avg_tokens``, ``avg_response_time``, ``total_tokens``), ``insights``
(readable lines) and ``generated_at`` (ISO time).
"""

from __future__ import annotations

import dataclasses
import os
import time
from datetime import UTC, datetime
from typing import Any, Final

from clisight._safety import guard
from clisight.client import context as _ctx
from clisight.client import core as _core
from clisight.client.instrument import SPAN_PREFIX
from clisight.types import ERROR_LEVEL

ACTION_PREFIX: Final = "action:"
CONVERSATION_EVENT: Final = "conversation"


class UserAnalytics:
    """The seed's usage analytics API.  Every method is safe to call: none raises into the program."""

    def __init__(
        self, analytics_db_path: str | os.PathLike[str] = "analytics.db", session_id: str | None = None
    ) -> None:
        self.analytics_db_path = os.fspath(analytics_db_path)
        self.store: str | None = None
        self.session_id: str = session_id or _ctx.new_session_id()
        with guard():
            client = _core._client or _core.init(store=self.analytics_db_path)
            self.store = client.store_url
            if session_id is None:
                self.session_id = client.session_id
            else:
                from clisight.client.analytics import set_session_context

                set_session_context(session_id)

    # -- writes ---------------------------------------------------------------------------------
    def track_action(
        self, action_type: str, action_data: Any = None, duration: float = 0, success: bool = True
    ) -> None:
        """A user action (``action:<type>`` event) with its data, duration (seconds) and outcome."""
        with guard():
            client = self._client()
            if client is None:
                return
            fields: dict[str, Any] = {"action_type": str(action_type), "success": bool(success)}
            fields["duration"] = _seconds(duration)
            if isinstance(action_data, dict):
                fields.update({f"data.{k}": v for k, v in action_data.items()})
            elif action_data is not None:
                fields["data"] = action_data
            ctx = self._ctx()
            build = client.records
            client.emit(build.event(ACTION_PREFIX + str(action_type), build.merge(ctx, fields), ctx))

    def track_command_usage(self, command: str, execution_time: float, success: bool) -> None:
        """A command run: a ``command:<command>`` operation (counted, timed, failed when not success)."""
        with guard():
            client = self._client()
            if client is None:
                return
            build = client.records
            end = build.clock()
            start = end - int(_seconds(execution_time) * 1e9)
            ctx = self._ctx()
            attrs = build.merge(ctx, {"command": str(command), "success": bool(success)})
            span = build.span(
                SPAN_PREFIX + str(command),
                start,
                end,
                0 if success else ERROR_LEVEL,
                attrs,
                ctx,
                ctx.trace_id or build.new_trace_id(),
                build.new_span_id(),
            )
            client.emit(span)

    def track_conversation_metrics(self, message_count: int, total_tokens: int, response_time: float) -> None:
        """One conversation: a ``conversation`` event and the ``conversation.messages``,
        ``conversation.tokens`` and ``conversation.response_time`` metrics (trends read these)."""
        with guard():
            client = self._client()
            if client is None:
                return
            ctx = self._ctx()
            build = client.records
            values = {
                "message_count": _number(message_count),
                "total_tokens": _number(total_tokens),
                "response_time": _seconds(response_time),
            }
            event = {**values, "duration": values["response_time"]}
            client.emit(build.event(CONVERSATION_EVENT, build.merge(ctx, event), ctx))
            now = build.clock()
            for name, key in (
                ("messages", "message_count"),
                ("tokens", "total_tokens"),
                ("response_time", "response_time"),
            ):
                attrs = build.merge(ctx, {"type": "gauge", "unit": "s" if key == "response_time" else "1"})
                client.emit(build.metric(f"conversation.{name}", values[key], attrs, ctx, now))

    # -- reads ----------------------------------------------------------------------------------
    def generate_usage_insights(self, days: int = 7) -> dict[str, Any]:
        """The seed's insight report over the last ``days`` (keys in the module docstring)."""
        from clisight.query import Query
        from clisight.query import analytics as qa
        from clisight.store.base import Selection

        report: dict[str, Any] = {
            "period_days": days,
            "session_id": self.session_id,
            "total_actions": 0,
            "total_commands": 0,
            "command_usage": [],
            "most_used_commands": [],
            "action_types": [],
            "session_metrics": {},
            "insights": [],
            "generated_at": datetime.now(UTC).isoformat(),
        }
        with guard():
            _core.flush(5.0)
            target = self.store or self.analytics_db_path
            now = time.time_ns()
            with Query(target) as query:
                store = query.reader
                sel = Selection(since_ns=now - int(float(days) * 86_400e9), until_ns=now)
                commands = qa.command_stats(store, sel)
                report["command_usage"] = [
                    {
                        "command": c.command,
                        "usage_count": c.runs,
                        "avg_execution_time": c.mean,
                        "success_rate": round(1 - c.error_rate, 6),
                    }
                    for c in commands
                ]
                report["total_commands"] = sum(c.runs for c in commands)
                report["most_used_commands"] = [c.command for c in commands[:5]]
                actions = []
                for row in store.aggregate("event", sel, ("name",), ("count", "sum:duration")):
                    name = str(row["name"])
                    if name.startswith(ACTION_PREFIX) and row["count"]:
                        actions.append(
                            (name[len(ACTION_PREFIX) :], int(row["count"]), float(row["sum:duration"] or 0))
                        )
                failed = _failed_actions(store, sel, [a[0] for a in actions])
                report["action_types"] = [
                    {
                        "action_type": kind,
                        "count": count,
                        "avg_duration": round(total / count, 9),
                        "success_rate": round(1 - failed.get(kind, 0) / count, 6),
                    }
                    for kind, count, total in sorted(actions, key=lambda a: (-a[1], a[0]))
                ]
                report["total_actions"] = sum(a[1] for a in actions)
                convo = qa.conversations(store, sel)
                convo.pop("trend", None)
                report["session_metrics"] = convo
                found = qa.insights(store, float(days), now)
                report["insights"] = [f.message for f in found.findings]
                if commands:
                    top = commands[0]
                    report["insights"].insert(0, f"most used command: {top.command} ({top.runs} runs)")
                    slowest = max(commands, key=lambda c: c.mean)
                    report["insights"].insert(
                        1, f"slowest command: {slowest.command} (average {slowest.mean:.3g}s)"
                    )
        return report

    # -- helpers --------------------------------------------------------------------------------
    def _client(self) -> _core.Client | None:
        client = _core._client
        return client if client is not None and client.usage else None

    def _ctx(self) -> _ctx.Context:
        ctx = _ctx.get()
        return ctx if ctx.session_id is not None else ctx._replace(session_id=self.session_id)


def _failed_actions(store: Any, sel: Any, kinds: list[str]) -> dict[str, int]:
    """Failed actions per type, from the raw rows of each type (the rollups keep no outcome)."""
    from clisight.query.analytics import _iter_rows

    failed: dict[str, int] = {}
    for kind in kinds:
        rows = _iter_rows(store, "event", dataclasses.replace(sel, name=ACTION_PREFIX + kind))
        failed[kind] = sum(1 for row in rows if (row.get("attributes") or {}).get("success") is False)
    return failed


def _seconds(value: object) -> float:
    number = _number(value)
    return float(number) if number >= 0 else 0.0


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            value = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return 0.0
    number = float(value)
    return number if number == number and abs(number) != float("inf") else 0.0


__all__ = ["UserAnalytics"]
