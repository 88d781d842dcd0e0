"""The previous default detector: several cheap views of one series fused into one score in ``[0, 1]``.

:class:`EnsembleDetector` runs, in one plain-Python update loop with no per-point allocation:

- **level** (a la Numenta's anomaly likelihood): the means of a short and a medium recent window are
  compared with the mean and standard deviation of a long window, catching level shifts and bursts;
- **spike**: how far the value breaks out of a slowly decaying envelope of the series' recent range,
  relative to that range, so spikes the series has made before are not news again;
- **season**: once the series has shown a clear daily pattern (the residual against a per-time-of-day
  profile is much smaller than the series' own variance), the residual against that profile replaces
  the two views above, so a daily rise is not an anomaly but a missed one is;
- **cooldown**: after a point scores ``>= alert_level``, the next ``cooldown`` points are capped just
  below ``alert_level``: one incident, one alert.

Before ``warmup`` points every score is 0, and the standard deviation is floored at
``max(min_std, rel_std * |mean|)`` so a constant series never alarms.

:class:`CombinedDetector` combines any detectors' scores (max, mean or noisy-or).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from clisight.detect._base import StateError, StatefulDetector

__all__ = [
    "ENSEMBLE_THRESHOLD",
    "POINT_DEFAULTS",
    "REFERENCE_PROBATION",
    "CombinedDetector",
    "EnsembleDetector",
    "lengths_for_probation",
]

#: The threshold this detector's defaults were tuned for on the NAB development subset (it was the
#: default detector before :class:`~clisight.detect.novelty.NoveltyDetector`).
ENSEMBLE_THRESHOLD = 0.5

#: A score this close to 1 alerts even during a cooldown: the cooldown merges the alerts of one
#: incident, but must not hide a far larger one that follows (a false alarm just before a 10x step).
BREAKTHROUGH = 0.98

#: The learning period, in points, the point-counted defaults below were tuned for: NAB's
#: probation period (15 % of the rows) on its ~4,000-row development series.
REFERENCE_PROBATION = 600
#: The defaults counted in points.  The first three set what counts as one incident (the recent
#: windows compared with the baseline, and the quiet period after an alert) and
#: :func:`lengths_for_probation` scales them for shorter series; the baseline window and the
#: warm-up are sample sizes for the statistics, and keep their length.
POINT_DEFAULTS: dict[str, int] = {
    "short_window": 15,
    "density_window": 60,
    "cooldown": 450,
    "long_window": 1500,
    "warmup": 300,
}
_INCIDENT_LENGTHS = ("short_window", "density_window", "cooldown")


def lengths_for_probation(probation: int) -> dict[str, int]:
    """The incident-scale lengths for a series whose learning period is ``probation`` points.

    NAB tells every detector the probation period of the series it runs on (15 % of its rows, at
    most 750), and its anomaly windows are a fixed share of a file's rows.  So a series shorter than
    the development ones gets proportionally shorter recent windows and cooldown; longer series keep
    the tuned ones.  On the development series thinned to half or a third of their rows this takes
    the standard score from 51 / 41 to 64 / 60, and leaves the untouched series as they were
    (``bench/bench_nab_robustness.py``).
    """
    factor = min(1.0, max(probation, 1) / REFERENCE_PROBATION)
    return {name: max(1, round(POINT_DEFAULTS[name] * factor)) for name in _INCIDENT_LENGTHS}


class EnsembleDetector(StatefulDetector):
    """The default streaming detector (see the module docstring for what it combines)."""

    __slots__ = (
        "_density_gain",
        "_short_gain",
        "alert_level",
        "cooldown",
        "count",
        "density_buf",
        "density_power",
        "density_sum",
        "density_window",
        "envelope_decay",
        "first_time",
        "hi",
        "left",
        "level_half",
        "lo",
        "long_buf",
        "long_sum",
        "long_sumsq",
        "long_window",
        "min_std",
        "profile",
        "rel_std",
        "resid_var",
        "season_alpha",
        "season_gain",
        "season_half",
        "season_period",
        "season_ratio",
        "short_buf",
        "short_power",
        "short_sum",
        "short_window",
        "spike_half",
        "step",
        "value_mean",
        "value_var",
        "warmup",
    )
    kind = "ensemble"
    _params = (
        "long_window",
        "short_window",
        "density_window",
        "warmup",
        "cooldown",
        "alert_level",
        "level_half",
        "short_power",
        "density_power",
        "spike_half",
        "envelope_decay",
        "season_period",
        "season_alpha",
        "season_ratio",
        "season_half",
        "season_gain",
        "rel_std",
        "min_std",
    )
    _fields = (
        "count",
        "long_buf",
        "long_sum",
        "long_sumsq",
        "short_buf",
        "short_sum",
        "density_buf",
        "density_sum",
        "hi",
        "lo",
        "left",
        "first_time",
        "step",
        "profile",
        "resid_var",
        "value_mean",
        "value_var",
    )

    def __init__(
        self,
        long_window: int = POINT_DEFAULTS["long_window"],
        short_window: int = POINT_DEFAULTS["short_window"],
        density_window: int = POINT_DEFAULTS["density_window"],
        warmup: int = POINT_DEFAULTS["warmup"],
        cooldown: int = POINT_DEFAULTS["cooldown"],
        alert_level: float = ENSEMBLE_THRESHOLD,
        level_half: float = 1.6,
        short_power: float = 0.0,
        density_power: float = 0.0,
        spike_half: float = 0.25,
        envelope_decay: float = 0.0002,
        season_period: float = 86400.0,
        season_alpha: float = 0.3,
        season_ratio: float = 0.05,
        season_half: float = 5.0,
        season_gain: float = 0.01,
        rel_std: float = 0.05,
        min_std: float = 1e-9,
    ) -> None:
        if long_window < 2 or short_window < 1 or density_window < 1:
            raise ValueError("long_window must be >= 2 and short_window, density_window >= 1")
        self.long_window = long_window
        self.short_window = short_window
        self.density_window = density_window
        self.warmup = warmup
        self.cooldown = cooldown
        self.alert_level = alert_level
        self.level_half = level_half
        self.short_power = short_power
        self.density_power = density_power
        self.spike_half = spike_half
        self.envelope_decay = envelope_decay
        self.season_period = season_period
        self.season_alpha = season_alpha
        self.season_ratio = season_ratio
        self.season_half = season_half
        self.season_gain = season_gain
        self.rel_std = rel_std
        self.min_std = min_std
        # derived from the parameters, so not part of the state
        self._short_gain = float(short_window**short_power)
        self._density_gain = float(density_window**density_power)
        self.count = 0
        self.long_buf = [0.0] * long_window
        self.long_sum = 0.0
        self.long_sumsq = 0.0
        self.short_buf = [0.0] * short_window
        self.short_sum = 0.0
        self.density_buf = [0.0] * density_window
        self.density_sum = 0.0
        self.hi: float | None = None
        self.lo: float | None = None
        self.left = 0
        self.first_time: float | None = None
        self.step: float | None = None
        self.profile: list[float | None] | None = None
        self.resid_var = 0.0
        self.value_mean: float | None = None
        self.value_var = 0.0

    def update(self, timestamp: float, value: float) -> float:
        x = value
        n = self.count
        # short and density windows: ring buffers with running sums
        k = self.short_window
        i = n % k
        buf = self.short_buf
        short_sum = self.short_sum + x - buf[i]
        buf[i] = x
        self.short_sum = short_sum
        k2 = self.density_window
        i = n % k2
        buf = self.density_buf
        density_sum = self.density_sum + x - buf[i]
        buf[i] = x
        self.density_sum = density_sum

        # seasonal profile: residual against the same time of day
        season_score = 0.0
        seasonal = False
        profile = self.profile
        step = self.step
        if step is None:
            first = self.first_time
            if first is None:
                self.first_time = timestamp
            elif timestamp > first:
                step = self.step = timestamp - first
                slots = round(self.season_period / step)
                if 4 <= slots <= 5000:
                    profile = self.profile = [None] * slots
        if profile is not None and step is not None:
            slot = int((timestamp % self.season_period) / step) % len(profile)
            expected = profile[slot]
            gain = self.season_gain
            vm = self.value_mean
            if vm is None:
                vm = x
            d = x - vm
            value_var = self.value_var + gain * (d * d - self.value_var)
            vm += gain * d
            self.value_mean = vm
            self.value_var = value_var
            if expected is None:
                profile[slot] = x
            else:
                r = x - expected
                rv = self.resid_var
                seasonal = rv < self.season_ratio * value_var
                if seasonal and n >= self.warmup:
                    sd = max(math.sqrt(rv), self.rel_std * abs(vm), self.min_std)
                    z = r / sd
                    z *= z
                    h = self.season_half
                    season_score = z / (z + h * h)
                self.resid_var = rv + gain * (r * r - rv)
                profile[slot] = expected + self.season_alpha * r

        # level (short/medium window vs long window) and spike (envelope breakout)
        L = self.long_window
        m = n if n < L else L
        hi = self.hi
        lo = self.lo
        score = 0.0
        if n >= self.warmup and m > 0 and hi is not None and lo is not None:
            if seasonal:
                score = season_score
            else:
                mean = self.long_sum / m
                var = self.long_sumsq / m - mean * mean
                sd = math.sqrt(var) if var > 0.0 else 0.0
                floor = self.rel_std * abs(mean)
                if sd < floor:
                    sd = floor
                if sd < self.min_std:
                    sd = self.min_std
                z = abs(short_sum / (n + 1 if n + 1 < k else k) - mean) / sd * self._short_gain
                z2 = abs(density_sum / (n + 1 if n + 1 < k2 else k2) - mean) / sd * self._density_gain
                if z2 > z:
                    z = z2
                z *= z
                h = self.level_half
                score = z / (z + h * h)
                width = hi - lo
                if width < sd:
                    width = sd
                if x > hi:
                    e = (x - hi) / width
                elif x < lo:
                    e = (lo - x) / width
                else:
                    e = 0.0
                if e > 0.0:
                    e = e / (e + self.spike_half)
                    if e > score:
                        score = e
        # learn: envelope decays toward the long mean, long window ring buffer
        if hi is None or lo is None:
            self.hi = self.lo = x
        else:
            mean = self.long_sum / m if m else x
            a = self.envelope_decay
            self.hi = x if x > hi else hi - a * (hi - mean)
            self.lo = x if x < lo else lo + a * (mean - lo)
        j = n % L
        lbuf = self.long_buf
        if n >= L:
            old = lbuf[j]
            self.long_sum -= old
            self.long_sumsq -= old * old
        lbuf[j] = x
        self.long_sum += x
        self.long_sumsq += x * x
        self.count = n + 1
        if score > 1.0:
            score = 1.0
        level = self.alert_level
        if self.left > 0 and score < BREAKTHROUGH:
            self.left -= 1
            return score if score < level else math.nextafter(level, 0.0)
        if score >= level:
            self.left = self.cooldown
        return score


class CombinedDetector:
    """Any detectors' scores combined into one: ``"max"``, ``"mean"`` or ``"noisy_or"`` (1 - prod(1 - s))."""

    kind = "combined"

    def __init__(self, detectors: Sequence[StatefulDetector], how: str = "max") -> None:
        if how not in ("max", "mean", "noisy_or"):
            raise ValueError(f"how must be 'max', 'mean' or 'noisy_or', got {how!r}")
        if not detectors:
            raise ValueError("need at least one detector")
        self.detectors = list(detectors)
        self.how = how

    def update(self, timestamp: float, value: float) -> float:
        scores = [d.update(timestamp, value) for d in self.detectors]
        if self.how == "max":
            return max(scores)
        if self.how == "mean":
            return sum(scores) / len(scores)
        rest = 1.0
        for s in scores:
            rest *= 1.0 - s
        return 1.0 - rest

    def to_state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "version": 1,
            "params": {"how": self.how},
            "state": {"detectors": [d.to_state() for d in self.detectors]},
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> CombinedDetector:
        from clisight.detect._registry import detector_from_state

        if state.get("kind") != cls.kind:
            raise StateError(f"state is for detector {state.get('kind')!r}, not {cls.kind!r}")
        parts = [detector_from_state(s) for s in state["state"]["detectors"]]
        return cls(parts, how=state["params"]["how"])
