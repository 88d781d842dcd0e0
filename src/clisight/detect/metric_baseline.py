"""``AnomalyDetector``: the seed project's metric-dictionary detector, kept source-compatible.

It learns a moving baseline per metric name (the last ``window`` values) and reports a metric as
anomalous when it is more than ``anomaly_threshold`` standard deviations from the baseline mean.  While a
metric has fewer than ``min_samples`` baseline values a standard deviation means nothing, so the detector
falls back to the deviation relative to the baseline mean (and says so in the finding).  A floor on the
standard deviation (``rel_std`` of the mean) keeps a constant baseline from alarming on noise.

Typical metrics: ``response_time`` (unusual response times), ``error_rate`` (high error rates), request or
command counts (abnormal usage), ``cpu_percent`` / ``memory_mb`` (resource spikes), failed logins
(security anomalies).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from typing import Any

__all__ = ["AnomalyDetector"]


class AnomalyDetector:
    """Baseline-learning z-score detector over dictionaries of named metrics.

    >>> import asyncio
    >>> d = AnomalyDetector()
    >>> d.update_baseline({"response_time": 1.5})
    >>> asyncio.run(d.analyze_metrics({"response_time": 15.0}))[0][:46]
    'response_time 15.0 is 9.0 sigma above baseline'
    """

    def __init__(
        self,
        anomaly_threshold: float = 2.0,
        window: int = 100,
        min_samples: int = 5,
        rel_std: float = 0.01,
    ) -> None:
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window!r}")
        self.anomaly_threshold = anomaly_threshold
        self.window = window
        self.min_samples = min_samples
        self.rel_std = rel_std
        self.baseline_metrics: dict[str, deque[float]] = {}

    def update_baseline(self, new_metrics: Mapping[str, Any]) -> None:
        """Add one sample per numeric metric to its moving baseline (non-numeric values are ignored)."""
        for name, value in new_metrics.items():
            number = _as_number(value)
            if number is None:
                continue
            series = self.baseline_metrics.get(name)
            if series is None:
                series = self.baseline_metrics[name] = deque(maxlen=self.window)
            series.append(number)

    def baseline(self, name: str) -> tuple[float, float | None, int]:
        """``(mean, standard deviation or None while too short, sample count)`` of one metric."""
        values = self.baseline_metrics.get(name)
        if not values:
            raise KeyError(name)
        n = len(values)
        mean = math.fsum(values) / n
        if n < max(self.min_samples, 2):
            return mean, None, n
        var = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
        return mean, max(math.sqrt(var), self.rel_std * abs(mean), 1e-12), n

    def check(self, current_metrics: Mapping[str, Any]) -> list[str]:
        """Synchronous :meth:`analyze_metrics`."""
        findings: list[str] = []
        for name, value in current_metrics.items():
            number = _as_number(value)
            if number is None or not self.baseline_metrics.get(name):
                continue
            mean, sd, n = self.baseline(name)
            if sd is None:
                scale = abs(mean)
                how = (
                    f" (relative deviation: the baseline has {n} sample{'s' if n != 1 else ''}, "
                    f"too few for a standard deviation)"
                )
            else:
                scale = sd
                how = ""
            diff = number - mean
            if diff == 0.0:
                continue
            sigmas = math.inf if scale == 0.0 else abs(diff) / scale
            if sigmas <= self.anomaly_threshold:
                continue
            side = "above" if diff > 0 else "below"
            size = "infinitely many" if sigmas == math.inf else f"{sigmas:.1f}"
            findings.append(f"{name} {_fmt(number)} is {size} sigma {side} baseline {_fmt(mean)}{how}")
        return findings

    async def analyze_metrics(self, current_metrics: Mapping[str, Any]) -> list[str]:
        """Readable findings for every metric more than ``anomaly_threshold`` sigma from its baseline."""
        return self.check(current_metrics)

    def to_state(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot of the settings and baselines."""
        return {
            "kind": "seed",
            "version": 1,
            "params": {
                "anomaly_threshold": self.anomaly_threshold,
                "window": self.window,
                "min_samples": self.min_samples,
                "rel_std": self.rel_std,
            },
            "state": {"baseline_metrics": {k: list(v) for k, v in self.baseline_metrics.items()}},
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> AnomalyDetector:
        """Rebuild from :meth:`to_state` output."""
        if state.get("kind") != "seed" or state.get("version") != 1:
            raise ValueError(f"not an AnomalyDetector state: kind={state.get('kind')!r}")
        obj = cls(**state["params"])
        for name, values in state["state"]["baseline_metrics"].items():
            obj.baseline_metrics[name] = deque((float(v) for v in values), maxlen=obj.window)
        return obj


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _fmt(x: float) -> str:
    text = f"{x:.6g}"
    return text if any(c in text for c in ".en") else text + ".0"
