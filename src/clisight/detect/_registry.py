"""Detectors by name, and rebuilding any detector from its saved state."""

from __future__ import annotations

from typing import Any

from clisight.detect._base import StateError, StatefulDetector
from clisight.detect._nabscore import probation_length
from clisight.detect.detectors import (
    BinomialRateDetector,
    CusumDetector,
    EwmaDetector,
    MadDetector,
    SeasonalDetector,
    ZScoreDetector,
)
from clisight.detect.ensemble import ENSEMBLE_THRESHOLD, EnsembleDetector, lengths_for_probation
from clisight.detect.novelty import DEFAULT_THRESHOLD, NoveltyDetector

__all__ = [
    "DEFAULT_DETECTOR",
    "DETECTORS",
    "MIN_PROBATION",
    "default_threshold",
    "detector_from_state",
    "has_alert_level",
    "make_detector",
]

#: Name of the default detector (the one the NAB figures and ``clisight detect`` use).
DEFAULT_DETECTOR = "novelty"

#: The shortest learning period a known series length gives the default detector (the warm-up most
#: other detectors use): NAB's rule alone would let a 40-point file learn from 6.
MIN_PROBATION = 30

#: The score the single-technique detectors give at their ``half`` deviation.
_HALF_SCORE = 0.5

#: Every single-series detector by name.
DETECTORS: dict[str, type[StatefulDetector]] = {
    cls.kind: cls
    for cls in (
        NoveltyDetector,
        EnsembleDetector,
        ZScoreDetector,
        EwmaDetector,
        MadDetector,
        SeasonalDetector,
        CusumDetector,
        BinomialRateDetector,
    )
}


def make_detector(
    name: str = DEFAULT_DETECTOR, series_length: int | None = None, **params: Any
) -> StatefulDetector:
    """A new detector by name (see :data:`DETECTORS`), with optional constructor parameters.

    ``series_length``, when the whole series is known in advance (a CSV file, a benchmark file),
    sets the learning period of the detectors that have one to NAB's ``min(15 % of the rows, 750)``
    (the default detector's ``probation``; without it a live series gets 750); parameters given
    explicitly win.
    """
    try:
        cls = DETECTORS[name]
    except KeyError:
        raise ValueError(f"unknown detector {name!r}; choose one of {', '.join(sorted(DETECTORS))}") from None
    if series_length is not None and cls is NoveltyDetector:
        params = {"probation": max(MIN_PROBATION, probation_length(series_length)), **params}
    if series_length is not None and cls is EnsembleDetector:
        params = {**lengths_for_probation(probation_length(series_length)), **params}
    return cls(**params)


def default_threshold(name: str = DEFAULT_DETECTOR) -> float:
    """The threshold a detector's scores are compared with unless told otherwise.

    The default detector's was chosen by the development protocol (``bench/nab_protocol.py``); the
    ensemble's was tuned with its defaults; the single-technique detectors score 0.5 at ``half``.
    """
    if name == NoveltyDetector.kind:
        return DEFAULT_THRESHOLD
    if name == EnsembleDetector.kind:
        return ENSEMBLE_THRESHOLD
    return _HALF_SCORE


def has_alert_level(name: str) -> bool:
    """Whether the detector takes an ``alert_level`` (its cooldown is keyed to it).

    Such a detector should be built with ``alert_level`` equal to the threshold its scores are compared
    with: during the cooldown after an alert its scores are capped just below ``alert_level``.
    """
    cls = DETECTORS.get(name)
    return cls is not None and "alert_level" in cls._params


def detector_from_state(state: dict[str, Any]) -> StatefulDetector:
    """Rebuild whichever detector saved ``state`` (with ``to_state()``)."""
    kind = state.get("kind") if isinstance(state, dict) else None
    cls = DETECTORS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise StateError(f"unknown detector kind {kind!r} in saved state")
    return cls.from_state(state)
