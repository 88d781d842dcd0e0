"""Streaming anomaly detectors, the seed's ``AnomalyDetector``, security rules and the NAB scorer.

Pure math: nothing here imports another part of clisight.  Every single-series detector has
``update(timestamp, value) -> score`` with the score in ``[0, 1]`` (``>= DEFAULT_THRESHOLD`` is an
anomaly), and ``to_state()`` / ``from_state(state)`` with a JSON-serialisable state.
"""

from clisight.detect._base import Detector, StateError, squash
from clisight.detect._registry import (
    DEFAULT_DETECTOR,
    DETECTORS,
    default_threshold,
    detector_from_state,
    has_alert_level,
    make_detector,
)
from clisight.detect.detectors import (
    BinomialRateDetector,
    CusumDetector,
    EwmaDetector,
    MadDetector,
    SeasonalDetector,
    ZScoreDetector,
)
from clisight.detect.ensemble import CombinedDetector, EnsembleDetector
from clisight.detect.metric_baseline import AnomalyDetector
from clisight.detect.novelty import DEFAULT_THRESHOLD, NoveltyDetector
from clisight.detect.security import SecurityFinding, SecurityMonitor

__all__ = [
    "DEFAULT_DETECTOR",
    "DEFAULT_THRESHOLD",
    "DETECTORS",
    "AnomalyDetector",
    "BinomialRateDetector",
    "CombinedDetector",
    "CusumDetector",
    "Detector",
    "EnsembleDetector",
    "EwmaDetector",
    "MadDetector",
    "NoveltyDetector",
    "SeasonalDetector",
    "SecurityFinding",
    "SecurityMonitor",
    "StateError",
    "ZScoreDetector",
    "default_threshold",
    "detector_from_state",
    "has_alert_level",
    "make_detector",
    "squash",
]
