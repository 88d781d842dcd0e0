"""Single-technique streaming detectors.

Each one scores a point against the baseline learned *before* it, then learns from it.  All share:

- ``warmup``: points learned before any non-zero score;
- ``min_std`` and ``rel_std``: the standard-deviation floor ``max(min_std, rel_std * |baseline|)``, so a
  constant baseline does not alarm on noise (and a 10x step on it always does);
- ``half``: the deviation (in floored standard deviations) that scores 0.5; scores are in ``[0, 1)``.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from datetime import UTC, datetime

from clisight.detect._base import StatefulDetector, squash

__all__ = [
    "BinomialRateDetector",
    "CusumDetector",
    "EwmaDetector",
    "MadDetector",
    "SeasonalDetector",
    "ZScoreDetector",
    "binomial_upper_tail",
]


def _floor(sd: float, level: float, min_std: float, rel_std: float) -> float:
    return max(sd, min_std, rel_std * abs(level))


class ZScoreDetector(StatefulDetector):
    """Welford running mean and variance over the whole history; score from the z-score."""

    __slots__ = ("count", "half", "m2", "mean", "min_std", "rel_std", "warmup")
    kind = "zscore"
    _params = ("warmup", "min_std", "rel_std", "half")
    _fields = ("count", "mean", "m2")

    def __init__(self, warmup: int = 30, min_std: float = 1e-9, rel_std: float = 0.01, half: float = 3.0):
        self.warmup = warmup
        self.min_std = min_std
        self.rel_std = rel_std
        self.half = half
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0

    def update(self, timestamp: float, value: float) -> float:
        count = self.count
        mean = self.mean
        score = 0.0
        if count >= self.warmup and count > 1:
            sd = _floor(math.sqrt(self.m2 / (count - 1)), mean, self.min_std, self.rel_std)
            score = squash(abs(value - mean) / sd, self.half)
        count += 1
        delta = value - mean
        mean += delta / count
        self.m2 += delta * (value - mean)
        self.count = count
        self.mean = mean
        return score


class EwmaDetector(StatefulDetector):
    """Exponentially weighted mean and variance (forgets with ``alpha``); score from the z-score."""

    __slots__ = ("alpha", "count", "half", "mean", "min_std", "rel_std", "var", "warmup")
    kind = "ewma"
    _params = ("alpha", "warmup", "min_std", "rel_std", "half")
    _fields = ("count", "mean", "var")

    def __init__(
        self,
        alpha: float = 0.02,
        warmup: int = 30,
        min_std: float = 1e-9,
        rel_std: float = 0.01,
        half: float = 3.0,
    ):
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha!r}")
        self.alpha = alpha
        self.warmup = warmup
        self.min_std = min_std
        self.rel_std = rel_std
        self.half = half
        self.count = 0
        self.mean = 0.0
        self.var = 0.0

    def update(self, timestamp: float, value: float) -> float:
        count = self.count
        if count == 0:
            self.mean = value
            self.count = 1
            return 0.0
        mean = self.mean
        score = 0.0
        if count >= self.warmup:
            sd = _floor(math.sqrt(self.var), mean, self.min_std, self.rel_std)
            score = squash(abs(value - mean) / sd, self.half)
        a = self.alpha
        d = value - mean
        self.mean = mean + a * d
        self.var = (1.0 - a) * (self.var + a * d * d)
        self.count = count + 1
        return score


class MadDetector(StatefulDetector):
    """Robust median / MAD over the last ``window`` points (spikes barely move the baseline)."""

    __slots__ = ("half", "min_std", "recent", "rel_std", "sorted_", "warmup", "window")
    kind = "mad"
    _params = ("window", "warmup", "min_std", "rel_std", "half")
    _fields = ("recent",)

    def __init__(
        self,
        window: int = 60,
        warmup: int = 30,
        min_std: float = 1e-9,
        rel_std: float = 0.01,
        half: float = 4.0,
    ):
        if window < 3:
            raise ValueError(f"window must be at least 3, got {window!r}")
        self.window = window
        self.warmup = min(warmup, window)
        self.min_std = min_std
        self.rel_std = rel_std
        self.half = half
        self.recent: list[float] = []  # oldest first
        self.sorted_: list[float] = []

    def _restored(self) -> None:
        self.sorted_ = sorted(self.recent)

    def update(self, timestamp: float, value: float) -> float:
        srt = self.sorted_
        n = len(srt)
        score = 0.0
        if n >= self.warmup and n > 0:
            med = _median(srt)
            mad = _median(sorted(abs(v - med) for v in srt)) * 1.4826
            score = squash(abs(value - med) / _floor(mad, med, self.min_std, self.rel_std), self.half)
        self.recent.append(value)
        insort(srt, value)
        if len(self.recent) > self.window:
            old = self.recent.pop(0)
            del srt[bisect_left(srt, old)]
        return score


def _median(srt: list[float]) -> float:
    n = len(srt)
    mid = n // 2
    return srt[mid] if n % 2 else 0.5 * (srt[mid - 1] + srt[mid])


class SeasonalDetector(StatefulDetector):
    """Hour-of-day and weekday-hour profiles (for usage that follows the clock).

    Each of the 24 hour slots and 168 weekday-hour slots keeps an EWMA mean and variance.  A point is
    scored against its weekday-hour slot once that slot has ``min_slot`` points, else against its hour
    slot, else against the overall EWMA.  ``utc_offset`` (seconds) shifts timestamps to local time.
    """

    __slots__ = (
        "alpha",
        "count",
        "half",
        "hour_count",
        "hour_mean",
        "hour_var",
        "mean",
        "min_slot",
        "min_std",
        "rel_std",
        "utc_offset",
        "var",
        "warmup",
        "week_count",
        "week_mean",
        "week_var",
    )
    kind = "seasonal"
    _params = ("alpha", "min_slot", "warmup", "min_std", "rel_std", "half", "utc_offset")
    _fields = (
        "count",
        "mean",
        "var",
        "hour_count",
        "hour_mean",
        "hour_var",
        "week_count",
        "week_mean",
        "week_var",
    )

    def __init__(
        self,
        alpha: float = 0.1,
        min_slot: int = 3,
        warmup: int = 30,
        min_std: float = 1e-9,
        rel_std: float = 0.05,
        half: float = 3.0,
        utc_offset: float = 0.0,
    ):
        self.alpha = alpha
        self.min_slot = min_slot
        self.warmup = warmup
        self.min_std = min_std
        self.rel_std = rel_std
        self.half = half
        self.utc_offset = utc_offset
        self.count = 0
        self.mean = 0.0
        self.var = 0.0
        self.hour_count = [0] * 24
        self.hour_mean = [0.0] * 24
        self.hour_var = [0.0] * 24
        self.week_count = [0] * 168
        self.week_mean = [0.0] * 168
        self.week_var = [0.0] * 168

    def update(self, timestamp: float, value: float) -> float:
        when = datetime.fromtimestamp(timestamp + self.utc_offset, UTC)
        h = when.hour
        w = when.weekday() * 24 + h
        score = 0.0
        if self.count >= self.warmup:
            if self.week_count[w] >= self.min_slot:
                mean, var = self.week_mean[w], self.week_var[w]
            elif self.hour_count[h] >= self.min_slot:
                mean, var = self.hour_mean[h], self.hour_var[h]
            else:
                mean, var = self.mean, self.var
            sd = _floor(math.sqrt(var), mean, self.min_std, self.rel_std)
            score = squash(abs(value - mean) / sd, self.half)
        a = self.alpha
        self.count, self.mean, self.var = _ew_step(self.count, self.mean, self.var, value, a)
        self.hour_count[h], self.hour_mean[h], self.hour_var[h] = _ew_step(
            self.hour_count[h], self.hour_mean[h], self.hour_var[h], value, a
        )
        self.week_count[w], self.week_mean[w], self.week_var[w] = _ew_step(
            self.week_count[w], self.week_mean[w], self.week_var[w], value, a
        )
        return score


def _ew_step(count: int, mean: float, var: float, value: float, alpha: float) -> tuple[int, float, float]:
    """One EWMA mean/variance step; the first few points use plain averaging so early slots settle fast."""
    count += 1
    a = max(alpha, 1.0 / count)
    d = value - mean
    return count, mean + a * d, (1.0 - a) * (var + a * d * d)


class CusumDetector(StatefulDetector):
    """Two-sided CUSUM for level shifts, on values standardised by a slowly learned baseline.

    ``drift`` (k) and ``limit`` (h) are in baseline standard deviations; ``limit`` scores 0.5.  After an
    alarm the sums reset and the baseline is relearned from the new level (``warmup`` points).  While
    it relearns, a jump of ``limit`` standard deviations in one point (measured against the mean
    learned so far, in the old baseline's scale ``relearn_sd`` until the new one is known) still
    fires: a second shift right after an alarm, or right after a false one, is not missed.
    """

    __slots__ = (
        "alpha",
        "count",
        "drift",
        "limit",
        "low",
        "mean",
        "min_std",
        "rel_std",
        "relearn_sd",
        "up",
        "var",
        "warmup",
    )
    kind = "cusum"
    _params = ("drift", "limit", "alpha", "warmup", "min_std", "rel_std")
    _fields = ("count", "mean", "var", "up", "low", "relearn_sd")

    def __init__(
        self,
        drift: float = 0.5,
        limit: float = 8.0,
        alpha: float = 0.005,
        warmup: int = 30,
        min_std: float = 1e-9,
        rel_std: float = 0.01,
    ):
        self.drift = drift
        self.limit = limit
        self.alpha = alpha
        self.warmup = warmup
        self.min_std = min_std
        self.rel_std = rel_std
        self.count = 0
        self.mean = 0.0
        self.var = 0.0
        self.up = 0.0
        self.low = 0.0
        self.relearn_sd = 0.0  # > 0 while relearning after an alarm: the scale scores are taken in

    def update(self, timestamp: float, value: float) -> float:
        count = self.count
        if count < self.warmup:
            score = 0.0
            if self.relearn_sd > 0.0 and count > 0:
                # Relearning after an alarm: only a jump of ``limit`` scale units in one point fires,
                # the scale being the old baseline's until three points give one of the new level's.
                scale = self.relearn_sd if count < 3 else max(self.relearn_sd, math.sqrt(self.var))
                jump = abs(value - self.mean) / scale
                if jump >= self.limit:
                    self.relearn_sd = scale
                    self.count, self.mean, self.var = 0, 0.0, 0.0
                    return squash(jump / self.limit, 1.0)
            self.count, self.mean, self.var = _ew_step(count, self.mean, self.var, value, 1.0 / (count + 1))
            return score
        mean = self.mean
        sd = _floor(math.sqrt(self.var), mean, self.min_std, self.rel_std)
        z = (value - mean) / sd
        k = self.drift
        up = max(0.0, self.up + z - k)
        low = max(0.0, self.low - z - k)
        score = squash(max(up, low) / self.limit, 1.0)
        if max(up, low) >= self.limit:
            # Relearn the level from the next point; the old scale scores jumps meanwhile.
            self.relearn_sd = sd
            self.count, self.mean, self.var, self.up, self.low = 0, 0.0, 0.0, 0.0, 0.0
            return score
        self.up, self.low = up, low
        # learn slowly, from the value clipped to 3 sd, so an excursion cannot drag the baseline along
        clipped = min(max(value, mean - 3.0 * sd), mean + 3.0 * sd)
        self.count, self.mean, self.var = _ew_step(count, mean, self.var, clipped, self.alpha)
        return score


def binomial_upper_tail(successes: float, trials: float, p: float) -> float:
    """``P(X >= successes)`` for ``X ~ Binomial(trials, p)`` (counts are rounded to integers)."""
    k = round(successes)
    n = round(trials)
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    if n > 20_000:  # normal approximation with continuity correction
        mu = n * p
        sd = math.sqrt(n * p * (1.0 - p))
        return 0.5 * math.erfc((k - 0.5 - mu) / (sd * math.sqrt(2.0)))
    log_pmf = (
        math.lgamma(n + 1)
        - math.lgamma(k + 1)
        - math.lgamma(n - k + 1)
        + k * math.log(p)
        + (n - k) * math.log1p(-p)
    )
    term = math.exp(log_pmf)
    total = term
    ratio = p / (1.0 - p)
    i = k
    while i < n and term > total * 1e-17:
        term *= (n - i) / (i + 1) * ratio
        total += term
        i += 1
    return min(1.0, total)


class BinomialRateDetector(StatefulDetector):
    """Error-rate detector: is the recent failure count unlikely under the learned baseline rate?

    ``update(timestamp, failures, total=1)`` takes a batch (a minute's counts, or one request with
    ``failures`` 0 or 1).  The last ``window`` batches are tested with a binomial upper tail against the
    rate learned from older batches (exponentially forgotten, with a weak prior of ``prior_rate``), so 1
    failure in 2 requests is not a "50% error rate" alarm.  The score is ``squash(-log10(p_value), half)``:
    with ``half=3`` a p-value of 0.001 scores 0.5.
    """

    __slots__ = (
        "base_failures",
        "base_total",
        "decay",
        "half",
        "pos",
        "prior_rate",
        "prior_weight",
        "recent_failures",
        "recent_total",
        "warmup_total",
        "window",
    )
    kind = "binomial"
    _params = ("window", "prior_rate", "prior_weight", "decay", "warmup_total", "half")
    _fields = ("base_failures", "base_total", "recent_failures", "recent_total", "pos")

    def __init__(
        self,
        window: int = 20,
        prior_rate: float = 0.01,
        prior_weight: float = 50.0,
        decay: float = 0.999,
        warmup_total: float = 50.0,
        half: float = 3.0,
    ):
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window!r}")
        self.window = window
        self.prior_rate = prior_rate
        self.prior_weight = prior_weight
        self.decay = decay
        self.warmup_total = warmup_total
        self.half = half
        self.base_failures = 0.0
        self.base_total = 0.0
        self.recent_failures = [0.0] * window
        self.recent_total = [0.0] * window
        self.pos = 0

    @property
    def baseline_rate(self) -> float:
        """The failure rate learned so far (prior included)."""
        w = self.prior_weight
        return (self.base_failures + w * self.prior_rate) / (self.base_total + w)

    def update(self, timestamp: float, value: float, total: float = 1.0) -> float:
        if value < 0 or total < 0 or value > total:
            raise ValueError(f"need 0 <= failures <= total, got failures={value!r} total={total!r}")
        i = self.pos
        old_f, old_t = self.recent_failures[i], self.recent_total[i]
        d = self.decay
        self.base_failures = self.base_failures * d + old_f
        self.base_total = self.base_total * d + old_t
        self.recent_failures[i] = value
        self.recent_total[i] = total
        self.pos = (i + 1) % self.window
        if self.base_total < self.warmup_total:
            return 0.0
        p_value = binomial_upper_tail(sum(self.recent_failures), sum(self.recent_total), self.baseline_rate)
        if p_value <= 0.0:
            return 1.0
        return squash(-math.log10(p_value), self.half)
