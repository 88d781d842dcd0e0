"""What every streaming detector shares: the protocol, state (de)serialisation and score squashing."""

from __future__ import annotations

import math
from typing import Any, ClassVar, Protocol, Self, runtime_checkable

__all__ = ["Detector", "StateError", "StatefulDetector", "squash"]

STATE_VERSION = 1


class StateError(ValueError):
    """A saved detector state cannot be restored (wrong kind, wrong version or damaged)."""


@runtime_checkable
class Detector(Protocol):
    """A streaming anomaly detector over one series.

    ``update`` is called once per point, in time order, with a finite value, and returns an anomaly
    score in ``[0, 1]`` (0 = normal).  The state is a JSON-serialisable dict so a long-lived baseline
    survives restarts.
    """

    def update(self, timestamp: float, value: float) -> float: ...

    def to_state(self) -> dict[str, Any]: ...


def squash(z: float, half: float) -> float:
    """Map a non-negative deviation ``z`` to ``[0, 1)``: 0 -> 0, ``half`` -> 0.5, large -> 1."""
    if z <= 0.0:
        return 0.0
    if z == math.inf:
        return 1.0
    z2 = z * z
    return z2 / (z2 + half * half)


class StatefulDetector:
    """Base class giving ``to_state`` / ``from_state`` from two lists of attribute names.

    ``_params`` are the constructor keyword arguments; ``_fields`` the learned state.  Values must be
    JSON-serialisable (numbers, None, lists, dicts with string keys); non-finite floats are avoided.
    """

    __slots__ = ()
    kind: ClassVar[str] = ""
    _params: ClassVar[tuple[str, ...]] = ()
    _fields: ClassVar[tuple[str, ...]] = ()

    def update(self, timestamp: float, value: float) -> float:
        """Score ``value`` (in ``[0, 1]``) against what was learned so far, then learn from it."""
        raise NotImplementedError

    @property
    def warmup_points(self) -> int:
        """How many leading points the detector only learns from: each of them scores 0.

        A series of this many points or fewer has nothing judged.  It is a lower bound: some detectors
        also wait on the data (a seasonal slot to fill, a window to pass), and one without a ``warmup``
        parameter reports 0.
        """
        warmup = getattr(self, "warmup", 0)
        return max(0, int(warmup)) if isinstance(warmup, int | float) else 0

    def to_state(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot: ``{"kind", "version", "params", "state"}``."""
        return {
            "kind": self.kind,
            "version": STATE_VERSION,
            "params": {name: _copy(getattr(self, name)) for name in self._params},
            "state": {name: _copy(getattr(self, name)) for name in self._fields},
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """Rebuild a detector from :meth:`to_state` output (raises :class:`StateError` if unusable)."""
        if not isinstance(state, dict) or state.get("kind") != cls.kind:
            got = state.get("kind") if isinstance(state, dict) else type(state).__name__
            raise StateError(f"state is for detector {got!r}, not {cls.kind!r}")
        if state.get("version") != STATE_VERSION:
            raise StateError(f"unsupported state version {state.get('version')!r} (expected {STATE_VERSION})")
        try:
            obj = cls(**state["params"])
            for name in cls._fields:
                setattr(obj, name, _copy(state["state"][name]))
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(f"damaged {cls.kind} state: {exc}") from exc
        obj._restored()
        return obj

    def _restored(self) -> None:
        """Hook: rebuild derived structures after :meth:`from_state`."""


def _copy(value: Any) -> Any:
    if isinstance(value, list):
        return [_copy(v) for v in value]
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    return value
