"""Where alerting keeps its state: alert states, transitions (history) and silences, as key-value
state of the store (``save_state`` / ``claim_state`` / ``state_items``), read and written here so
that ``clisight.alerts`` reaches the store only through the query layer.

Keys (values are JSON objects; ``clisight.alerts`` gives them types):

- ``alert:state:<rule>\\x1f<labels JSON>``: the current state of one alert (a rule and a label set);
  removed (:func:`drop_states`) when its rule is no longer configured or its series went quiet.
- ``alert:event:<rule>\\x1f<labels JSON>\\x1f<episode>\\x1f<state>``: one transition, written with
  :func:`claim_transition`: of evaluations racing over the same transition (two ``clisight alerts
  check`` at once) exactly one writes it, and only that one notifies.
- ``alert:notified:<rule>\x1f<labels JSON>\x1f<episode>\x1f<state>``: claimed by the one
  evaluation that sends the notification of that alert entering ``firing`` or ``resolved``.
- ``alert:silence:<id>``: a silence; a removed one is saved as ``null``.

Transitions and notification claims are history: the store's raw retention deletes them with the
records once they are older than its cutoff (``clisight.store.base.HISTORY_STATE_PREFIXES``).

Reads use the query's reader (read-only when opened from a URL), writes its writable store.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from clisight.query.service import Query

STATE_PREFIX: Final = "alert:state:"
EVENT_PREFIX: Final = "alert:event:"
SILENCE_PREFIX: Final = "alert:silence:"
NOTIFIED_PREFIX: Final = "alert:notified:"
_SEP: Final = "\x1f"


def alert_key(rule: str, labels: Mapping[str, str]) -> str:
    """The part of a key naming one alert: its rule and label set (labels sorted)."""
    return rule + _SEP + json.dumps(dict(sorted(labels.items())), ensure_ascii=False, separators=(",", ":"))


def load_states(query: Query) -> dict[str, dict[str, Any]]:
    """Every stored alert state by :func:`alert_key`."""
    return {
        key[len(STATE_PREFIX) :]: value
        for key, value in query.reader.state_items(STATE_PREFIX)
        if isinstance(value, dict)
    }


def save_state(query: Query, alert: str, value: Mapping[str, Any]) -> None:
    """Store the state of the alert named by :func:`alert_key`."""
    query.store.save_state(STATE_PREFIX + alert, dict(value))


def drop_states(query: Query, alerts: list[str]) -> int:
    """Remove the stored states of ``alerts`` (named by :func:`alert_key`); their history stays."""
    return query.store.delete_state([STATE_PREFIX + alert for alert in alerts]) if alerts else 0


def last_episodes(query: Query) -> dict[str, int]:
    """The last *ended* episode of each alert (one with a recorded transition to ``inactive`` or
    ``resolved``), by :func:`alert_key`.  An alert whose state was removed (always after its episode
    ended) and comes back goes on from there, so it never reuses the claims of an earlier episode;
    and evaluations racing to create it start the same episode, whose claims only one wins."""
    out: dict[str, int] = {}
    for key, _ in query.reader.state_items(EVENT_PREFIX):
        alert, _, state = key[len(EVENT_PREFIX) :].rpartition(_SEP)
        alert, _, episode = alert.rpartition(_SEP)
        if state in ("inactive", "resolved") and episode.isdigit():
            out[alert] = max(out.get(alert, 0), int(episode))
    return out


def claim_transition(query: Query, alert: str, episode: int, state: str, value: Mapping[str, Any]) -> bool:
    """Record a transition of ``alert`` into ``state`` in its ``episode`` unless another evaluation
    already did; True for the one evaluation that recorded it (and so notifies)."""
    key = f"{EVENT_PREFIX}{alert}{_SEP}{episode}{_SEP}{state}"
    return query.store.claim_state(key, dict(value))


def claim_notification(query: Query, alert: str, episode: int, state: str) -> bool:
    """Claim the one notification of ``alert`` entering ``state`` (firing, resolved) in ``episode``;
    True for the one evaluation that gets to send it."""
    return query.store.claim_state(f"{NOTIFIED_PREFIX}{alert}{_SEP}{episode}{_SEP}{state}", True)


def load_transitions(query: Query) -> list[dict[str, Any]]:
    """Every recorded transition, in no particular order."""
    return [value for _, value in query.reader.state_items(EVENT_PREFIX) if isinstance(value, dict)]


def load_silences(query: Query) -> list[dict[str, Any]]:
    """Every stored silence that was not removed (expired ones included)."""
    return [value for _, value in query.reader.state_items(SILENCE_PREFIX) if isinstance(value, dict)]


def save_silence(query: Query, silence_id: str, value: Mapping[str, Any] | None) -> None:
    """Store a silence (``None``: removed)."""
    query.store.save_state(SILENCE_PREFIX + silence_id, None if value is None else dict(value))


def load_silence(query: Query, silence_id: str) -> dict[str, Any] | None:
    """One silence, or None (never stored, or removed)."""
    found = query.store.load_state(SILENCE_PREFIX + silence_id)
    return found if isinstance(found, dict) else None
