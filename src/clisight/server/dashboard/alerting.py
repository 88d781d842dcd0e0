"""The alerts page's reads and forms, over the stable API of :mod:`clisight.alerts`.

The rules are evaluated by ``clisight serve`` (its scheduler, when a rules file exists) or by
``clisight alerts check``; this page shows the states they stored, the transitions and the
silences, and adds or removes silences.  Everything a form sends is checked here, with a clear
message for what is wrong.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Final

import orjson

from clisight._terminal import period
from clisight.alerts import (
    AlertStatus,
    AlertTransition,
    Silence,
    add_silence,
    alert_history,
    alert_statuses,
    list_silences,
    remove_silence,
)
from clisight.query import Query

HOUR_NS: Final = 3600 * 10**9
MAX_SILENCE_HOURS: Final = 24 * 90
HISTORY_NS: Final = 7 * 24 * HOUR_NS
AUTHOR: Final = "dashboard"
MAX_TEXT: Final = 500


class AlertsView:
    """Rule states, history and silences, as the alerts page shows them."""

    def __init__(self, query: Query) -> None:
        self.query = query

    def states(self) -> list[AlertStatus]:
        """Every alert's last state; one a silence covers now shows as silenced at once (the engine
        notes it too, at its next evaluation)."""
        silences = self.silences()
        return [
            s
            if s.silenced or not any(x.matches(s.rule, s.labels) for x in silences)
            else dataclasses.replace(s, silenced=True)
            for s in alert_statuses(self.query)
        ]

    def firing(self) -> list[AlertStatus]:
        return [s for s in self.states() if s.state == "firing"]

    def silences(self) -> list[Silence]:
        return list_silences(self.query, now_ns=time.time_ns())

    def history(self) -> list[AlertTransition]:
        return alert_history(self.query, since_ns=time.time_ns() - HISTORY_NS, limit=50)

    def silence_from_form(self, form: dict[str, str]) -> Silence:
        """A silence of ``rule`` (and the alert's ``matchers``, JSON) for ``hours``, with a comment."""
        rule = form.get("rule", "").strip()
        if not rule or len(rule) > MAX_TEXT:
            raise ValueError("say which rule to silence (the form's rule field is empty or too long)")
        hours_text = form.get("hours", "")
        try:
            hours = float(hours_text)
        except ValueError:
            hours = -1.0
        if not 0 < hours <= MAX_SILENCE_HOURS:
            raise ValueError(
                f"a silence lasts from a few minutes to {period(MAX_SILENCE_HOURS * 3600)}, "
                f"not {hours_text!r}"
            )
        matchers = _matchers(form.get("matchers", "") or "{}")
        comment = form.get("comment", "")[:MAX_TEXT]
        until = time.time_ns() + int(hours * HOUR_NS)
        return add_silence(self.query, rule, matchers, until, comment=comment, author=AUTHOR)

    def unsilence_from_form(self, form: dict[str, str]) -> None:
        silence_id = form.get("silence_id", "").strip()
        if not silence_id or not remove_silence(self.query, silence_id):
            raise ValueError(f"no silence {silence_id!r}: it may have been removed already")


def _matchers(text: str) -> dict[str, str]:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError("the silence's matchers must be a JSON object of label names to values")
    return {k[:MAX_TEXT]: v[:MAX_TEXT] for k, v in value.items()}


def matchers_json(status: AlertStatus) -> str:
    """The labels of an alert, as the silence form carries them."""
    return orjson.dumps(dict(status.labels), option=orjson.OPT_SORT_KEYS).decode()


def value_text(value: float | None) -> str:
    return "no data" if value is None else f"{value:.4g}"


def describe(item: Any) -> str:
    """``rule {label=value, ...}`` for an alert, a transition or a silence."""
    labels = getattr(item, "labels", None) or getattr(item, "matchers", None) or {}
    inner = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return f"{{{inner}}}" if inner else ""
