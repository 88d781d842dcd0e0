"""Silences: an alert that matches one still changes state (and history records it), but notifies
nobody until the silence expires or is removed.

A silence names a rule (or ``None``: every rule) and label matchers (``{"service": "mycli"}``:
each label must equal the value; no matchers: every label set), with an expiry.  Stored in the
store (``clisight.query.alerts``), so ``clisight alerts silence`` in one shell silences what
``clisight serve`` evaluates in another.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from clisight.query import Query
from clisight.query import alerts as _stored


@dataclass(frozen=True, slots=True)
class Silence:
    """One silence: ``rule`` (None: any), ``matchers`` (label -> value), active until ``until_ns``."""

    id: str
    rule: str | None
    matchers: Mapping[str, str] = field(default_factory=dict)
    until_ns: int = 0
    comment: str = ""
    author: str = ""
    created_ns: int = 0

    def active(self, now_ns: int) -> bool:
        return now_ns < self.until_ns

    def matches(self, rule: str, labels: Mapping[str, str]) -> bool:
        """Whether this silence covers the alert of ``rule`` with ``labels`` (expiry aside)."""
        if self.rule is not None and self.rule != rule:
            return False
        return all(labels.get(key) == value for key, value in self.matchers.items())

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rule": self.rule,
            "matchers": dict(self.matchers),
            "until_ns": self.until_ns,
            "comment": self.comment,
            "author": self.author,
            "created_ns": self.created_ns,
        }


def _silence(value: Mapping[str, Any]) -> Silence | None:
    try:
        return Silence(
            id=str(value["id"]),
            rule=None if value.get("rule") is None else str(value["rule"]),
            matchers={str(k): str(v) for k, v in (value.get("matchers") or {}).items()},
            until_ns=int(value.get("until_ns") or 0),
            comment=str(value.get("comment") or ""),
            author=str(value.get("author") or ""),
            created_ns=int(value.get("created_ns") or 0),
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return None  # a damaged entry silences nothing


def list_silences(query: Query, now_ns: int | None = None) -> list[Silence]:
    """Every silence not removed, the latest expiry first; with ``now_ns``, only those active then."""
    found = [s for s in map(_silence, _stored.load_silences(query)) if s is not None]
    if now_ns is not None:
        found = [s for s in found if s.active(now_ns)]
    return sorted(found, key=lambda s: (-s.until_ns, s.id))


def add_silence(
    query: Query,
    rule: str | None,
    matchers: Mapping[str, str],
    until_ns: int,
    comment: str = "",
    author: str = "",
    *,
    now_ns: int | None = None,
) -> Silence:
    """Store a new silence and return it (its ``id`` is what :func:`remove_silence` takes)."""
    import time

    silence = Silence(
        id=os.urandom(6).hex(),
        rule=rule,
        matchers={str(k): str(v) for k, v in matchers.items()},
        until_ns=int(until_ns),
        comment=comment,
        author=author,
        created_ns=time.time_ns() if now_ns is None else now_ns,
    )
    _stored.save_silence(query, silence.id, silence.to_dict())
    return silence


def remove_silence(query: Query, silence_id: str) -> bool:
    """Remove a silence; False when there is none of that id (or it was removed already)."""
    if _stored.load_silence(query, silence_id) is None:
        return False
    _stored.save_silence(query, silence_id, None)
    return True
