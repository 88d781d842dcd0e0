"""The default detector: novelty of coarse value contexts, scored against the series' own novelty rate.

:class:`NoveltyDetector` does three plain things per point, with no constant counted in points
except through the series' learning period ``probation`` (NAB's: 15 % of a series' rows, at most
750; the default 750 is what a live series of unknown length gets):

1. **Quantise** the value on a coarse grid: ``levels`` equal bins spanning the range seen during
   the learning period, and logarithmic bins (1, 2, 4, ... bin widths away) beyond it, so noise
   inside the usual range and the size of a heavy-tailed burst barely matter.
2. **Context novelty** (after the Contextual Anomaly Detector): the point's contexts are the last
   one, two and three quantised values, and, when the learning period spans two days or more, the
   pair (this value, the value one day earlier, unless that one was itself novel).  A context never
   seen before is one novelty.
3. **Self-normalised score** (after Numenta's anomaly likelihood): the novelties of the last
   ``probation / 60`` points are compared with the series' own recent counts: the score is the
   tail probability of seeing that many under a negative binomial with their mean and variance
   (novelties come in bursts; both forget over the learning period, and at least one novelty per
   learning period is expected), as ``log(p) / log(1e-10)`` clipped to ``[0, 1]``.  A noisy
   series, which keeps making new contexts, needs far more to alert than a clean one.  A new
   context beyond the learned range counts once more per doubling of its distance from it.

After an alert, scores stay below ``alert_level`` for ``probation / 6`` points, except for a point
twice as surprising (in log probability) as the one that alerted, or a new value four times as far
beyond the learned range as any in the incident: a stronger anomaly always gets through.

Memory is bounded: at most ``probation`` buffered values during learning, a day of quantised values,
and a context set capped at :data:`MAX_CONTEXTS`.  The state is JSON-serialisable.
"""

from __future__ import annotations

import math
from typing import Any, Self

from clisight.detect._base import StateError, StatefulDetector
from clisight.detect._novelty_alternatives import (
    _PBINS_PER_DECADE,
    _SPAN,
    _THIRD_ROUND,
    _ZERO,
    MAX_CONTEXTS,
    NoveltyAlternatives,
    _noise,
)
from clisight.detect._tails import _anscombe, _compound_tail, _count_tail, _poisson_tail

__all__ = ["DEFAULT_PROBATION", "DEFAULT_THRESHOLD", "MAX_CONTEXTS", "NoveltyDetector"]

#: The score at or above which a point is an anomaly; chosen by leave-one-category-out on the NAB
#: development subset (``bench/nab_protocol.py``).
DEFAULT_THRESHOLD = 0.16

#: The learning period of a series whose length is unknown: NAB's cap (750 rows).
DEFAULT_PROBATION = 750


_LOG_FLOOR = math.log(1e-10)  # tail probability that scores 1, as in Numenta's log-likelihood
_MAX_SIZE = 16  # the compound tail's size distribution lumps novel points with more novelties here


class NoveltyDetector(NoveltyAlternatives, StatefulDetector):
    """Context novelty on a coarse, range-relative grid, scored by the series' own novelty rate.

    ``probation`` is the one timescale (points learned from before any score; the recent window is
    ``probation * recent_fraction`` points, the mask after an alert ``probation * mask_fraction``, the
    count statistics forget over ``probation * memory``).  ``levels`` defaults to the cube root of
    ``probation``.  ``value_min`` / ``value_max`` fix the range instead of learning it (neither the
    NAB harness nor ``clisight detect`` passes them).  ``orders``, ``use_season`` and ``graded`` switch
    parts off, for the ablation in ``bench/nab_protocol.py``.

    The other parameters are design alternatives that issue 9's protocol compares with the shipped
    design (their defaults are the shipped design): ``grids`` overlapping grids offset by a
    ``1/grids`` bin (soft quantisation); ``trim`` learns the range from the ``trim`` and ``1 - trim``
    quantiles instead of the extremes; ``stabilise`` quantises the Anscombe square root of a series
    whose learning period is all non-negative integers; ``per_point`` counts a novel point once
    (plus its distance beyond the range) instead of once per novel context; ``min_window`` floors the
    recent window; ``tail`` is how the recent count is judged: ``"negbin"`` (shipped: mean and
    variance of the series' recent counts), ``"poisson"`` (mean only), ``"compound"`` (novel points
    as Poisson events whose sizes follow the series' own distribution, Panjer's recursion) or
    ``"either"`` (the smaller of the negbin and compound tails, Bonferroni-corrected); ``freeze``
    stops the count statistics learning during an alert and its mask.

    The third round's alternatives (all off by default; see docs/detect.md for why none is shipped):
    ``excursions`` counts the new contexts that touch a value beyond the learned range in a channel
    of their own, with its own mean and variance, and takes the smaller of the two channels' tails
    (Bonferroni-corrected; one grid and the negbin tail only); ``calibrate`` raises the tail
    probability to the fraction of the series' own past points that were as surprising, the
    learning period counting as ``calibrate`` learning periods of unsurprising points (after
    Numenta's anomaly likelihood); ``noise_bins`` makes no bin narrower than that many times the
    series' point-to-point noise; ``smooth`` scores the mean of as many recent points as it takes for
    that noise to fall below ``smooth`` bins (at most the recent window; 1 on a series whose noise is
    finer than its grid); ``ramp`` lets the learning period's count figures weigh as the half period
    they were measured on, so a long ``memory`` does not keep its still-discovering novelty rate.
    """

    __slots__ = (
        "_grids",
        "_lag_slots",
        "_last",
        "_levels",
        "_mask",
        "_window",
        "alert_level",
        "buffer",
        "calibrate",
        "count",
        "excursions",
        "first_time",
        "freeze",
        "graded",
        "grids",
        "hist",
        "hist_sum",
        "kmean",
        "kvar",
        "lag",
        "levels",
        "lo",
        "mask_far",
        "mask_fraction",
        "mask_left",
        "mask_p",
        "memory",
        "min_std",
        "min_window",
        "noise_bins",
        "orders",
        "per_point",
        "prev",
        "prev2",
        "probation",
        "ramp",
        "rate",
        "recent_fraction",
        "rel_std",
        "season_period",
        "seen",
        "sizes",
        "smooth",
        "stabilise",
        "stabilised",
        "step",
        "tail",
        "trim",
        "use_season",
        "value_max",
        "value_min",
        "width",
    )
    kind = "novelty"
    _params = (
        "probation",
        "levels",
        "alert_level",
        "value_min",
        "value_max",
        "season_period",
        "use_season",
        "rel_std",
        "min_std",
        "mask_fraction",
        "recent_fraction",
        "orders",
        "memory",
        "graded",
        "grids",
        "trim",
        "stabilise",
        "per_point",
        "min_window",
        "tail",
        "freeze",
        "excursions",
        "calibrate",
        "noise_bins",
        "smooth",
        "ramp",
    )
    _fields = (
        "count",
        "buffer",
        "lo",
        "width",
        "prev",
        "prev2",
        "hist",
        "hist_sum",
        "kmean",
        "kvar",
        "rate",
        "sizes",
        "mask_left",
        "mask_p",
        "mask_far",
        "first_time",
        "step",
        "lag",
        "seen",
        "stabilised",
        "outs",
        "ehist",
        "ehist_sum",
        "emean",
        "evar",
        "phist",
        "pseen",
        "ring",
        "ring_at",
        "ring_sum",
    )

    def __init__(
        self,
        probation: int = DEFAULT_PROBATION,
        levels: int | None = None,
        alert_level: float = DEFAULT_THRESHOLD,
        value_min: float | None = None,
        value_max: float | None = None,
        season_period: float = 86400.0,
        use_season: bool = True,
        rel_std: float = 0.01,
        min_std: float = 1e-9,
        mask_fraction: float = 1 / 6,
        recent_fraction: float = 1 / 60,
        orders: int = 3,
        memory: float = 1.0,
        graded: bool = True,
        grids: int = 1,
        trim: float = 0.0,
        stabilise: bool = False,
        per_point: bool = False,
        min_window: int = 1,
        tail: str = "negbin",
        freeze: bool = False,
        excursions: bool = False,
        calibrate: float = 0.0,
        noise_bins: float = 0.0,
        smooth: float = 0.0,
        ramp: bool = False,
    ) -> None:
        if probation < 2:
            raise ValueError(f"probation must be >= 2 points, got {probation!r}")
        if levels is not None and not 1 <= levels <= 24:
            raise ValueError(f"levels must be between 1 and 24, got {levels!r}")
        self.probation = int(probation)
        self.levels = levels
        # order-3 contexts number levels**3: as many as the learning period can show once each
        self._levels = int(levels) if levels is not None else max(3, round(self.probation ** (1 / 3)))
        self.alert_level = alert_level
        self.value_min = value_min
        self.value_max = value_max
        self.season_period = season_period
        self.use_season = use_season
        self.rel_std = rel_std
        self.min_std = min_std
        if not 1 <= orders <= 3:
            raise ValueError(f"orders must be 1, 2 or 3, got {orders!r}")
        self.mask_fraction = mask_fraction
        self.recent_fraction = recent_fraction
        self.orders = orders
        self.memory = memory
        self.graded = graded
        if not 1 <= grids <= 4:
            raise ValueError(f"grids must be between 1 and 4, got {grids!r}")
        if not 0.0 <= trim < 0.5:
            raise ValueError(f"trim must be in [0, 0.5), got {trim!r}")
        self.grids = int(grids)
        self._grids = tuple(g / self.grids for g in range(self.grids))
        self.trim = trim
        self.stabilise = stabilise
        self.stabilised = False
        self.per_point = per_point
        if tail not in ("negbin", "poisson", "compound", "either"):
            raise ValueError(f"tail must be 'negbin', 'poisson', 'compound' or 'either', got {tail!r}")
        if min_window < 1:
            raise ValueError(f"min_window must be >= 1 point, got {min_window!r}")
        if excursions and (per_point or tail != "negbin" or grids != 1):
            raise ValueError(
                "excursions=True works with one grid and the negbin tail of every novelty "
                "(grids=1, tail='negbin', per_point=False)"
            )
        for name, x in (("calibrate", calibrate), ("noise_bins", noise_bins), ("smooth", smooth)):
            if not 0.0 <= x < math.inf:
                raise ValueError(f"{name} must be a finite number >= 0 (0 switches it off), got {x!r}")
        self.tail = tail
        self.freeze = freeze
        self.excursions = excursions
        self.calibrate = calibrate
        self.noise_bins = noise_bins
        self.smooth = smooth
        self.ramp = ramp
        self.ring: list[float] = []  # the last `span` raw values, when smoothing
        self.ring_at = 0
        self.ring_sum = 0.0
        self.phist: list[float] = [0.0] * (10 * _PBINS_PER_DECADE + 1)
        self.pseen = 0
        self.min_window = min_window
        self._window = max(1, min_window, round(self.probation * recent_fraction))
        self._mask = max(1, round(self.probation * mask_fraction))
        self.count = 0
        self.buffer: list[list[float]] = []  # [timestamp, value] during the learning period
        self.lo = 0.0
        self.width = 0.0
        self.prev: list[int] = [-1] * self.grids
        self.prev2: list[int] = [-1] * self.grids
        self.hist: list[int] = [0] * self._window
        self.hist_sum = 0
        self.kmean = 0.0
        self.kvar = 0.0
        # the excursion channel: novelties of contexts touching a value beyond the learned range
        self.outs = 0  # bit 0: the previous value was beyond the range; bit 1: the one before
        self.ehist: list[int] = [0] * self._window
        self.ehist_sum = 0
        self.emean = 0.0
        self.evar = 0.0
        self._last_ex = 0
        # compound tail: novel points per point, and the distribution of a novel point's novelties
        self.rate = 0.0
        self.sizes: list[float] = [0.0] * (_MAX_SIZE + 1)
        self._last = 0
        self.mask_left = 0
        self.mask_p = 0.0
        self.mask_far = 0
        self.first_time: float | None = None
        self.step: float | None = None
        self.lag: list[list[int]] = []
        self.seen: set[int] = set()
        self._lag_slots = 0
        # set by every update: whether the point's value was never seen, and how many doublings of
        # the bin width it lies outside the learned range (0 inside)
        self._new_value = False
        self._dist = 0

    @property
    def warmup_points(self) -> int:
        return self.probation

    # -- state ---------------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        state = super().to_state()
        state["state"]["seen"] = sorted(self.seen)
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """Rebuild a detector from :meth:`to_state` output, including a state saved by the first
        release (one grid: scalar previous bins and a flat day of bins, no compound-tail fields)."""
        inner = state.get("state") if isinstance(state, dict) else None
        if isinstance(inner, dict) and not isinstance(inner.get("prev", []), list):
            inner = dict(inner)
            inner["prev"] = [inner["prev"]]
            inner["prev2"] = [inner.get("prev2", -1)]
            lag = inner.get("lag", [])
            inner["lag"] = [lag] if lag else []
            inner.setdefault("rate", 0.0)
            inner.setdefault("sizes", [0.0, 1.0] + [0.0] * (_MAX_SIZE - 1))
            inner.setdefault("stabilised", False)
            state = {**state, "state": inner}
        params = state.get("params") if isinstance(state, dict) else None
        if isinstance(inner, dict) and isinstance(params, dict) and any(n not in inner for n in _THIRD_ROUND):
            # a state saved before the third round's options: their fields start as a new detector's
            try:
                fresh = cls(**params)
            except (TypeError, ValueError) as exc:
                raise StateError(f"damaged {cls.kind} state: {exc}") from exc
            inner = {**{n: getattr(fresh, n) for n in _THIRD_ROUND}, **inner}
            state = {**state, "state": inner}
        return super().from_state(state)

    def _restored(self) -> None:
        self.seen = set(self.seen)
        self._lag_slots = len(self.lag[0]) if self.lag else 0

    # -- scoring -------------------------------------------------------------------------------
    def update(self, timestamp: float, value: float) -> float:
        n = self.count
        self.count = n + 1
        if n < self.probation:
            self.buffer.append([timestamp, value])
            if n + 1 == self.probation:
                self._learn_probation()
            return 0.0
        if self.ring:
            value = self._smoothed(value)
        p = self._observe(timestamp, value)
        if self.calibrate:
            p = self._calibrated(p)
        score = math.log(p) / _LOG_FLOOR if p < 1.0 else 0.0
        if score > 1.0:
            score = 1.0
        level = self.alert_level
        if self.mask_left > 0:
            self.mask_left -= 1
            # the same incident growing, or a weaker one, stays masked; through go a new value four
            # times as far from the learned range as any in the incident, and a point twice as
            # surprising (in log probability) as the one that alerted
            far = self.mask_far
            dist = self._dist
            if dist > far:
                self.mask_far = dist
            farther = self._new_value and dist >= far + 2
            if score >= level and not farther and math.log(p) > 2.0 * math.log(self.mask_p):
                return math.nextafter(level, 0.0)
        if score >= level:
            self.mask_left = self._mask
            self.mask_p = p
            self.mask_far = self._dist
        return score

    def _learn_probation(self) -> None:
        if self.smooth > 0.0:
            self._learn_span()
        values = [v for _t, v in self.buffer]
        if self.stabilise and all(v >= 0.0 and v == int(v) for v in values):
            # counts: quantise their square root (Anscombe), where Poisson noise has one spread
            self.stabilised = True
            values = [_anscombe(v) for v in values]
        ordered = sorted(values)
        cut = int(self.trim * len(ordered))
        lo = ordered[cut] if self.value_min is None else self._transform(self.value_min)
        hi = ordered[len(ordered) - 1 - cut] if self.value_max is None else self._transform(self.value_max)
        mid = abs(sum(values) / len(values))
        self.lo = lo
        self.width = max((hi - lo) / self._levels, self.rel_std * mid, self.min_std)
        if self.noise_bins > 0.0 and len(values) > 2:
            # no bin finer than ``noise_bins`` times the series' own point-to-point noise
            self.width = max(self.width, self.noise_bins * _noise(values))
        if self.use_season and len(self.buffer) >= 2:
            step = self.buffer[1][0] - self.buffer[0][0]
            if step > 0:
                slots = round(self.season_period / step)
                # the day-lag context needs the learning period to hold at least two days
                if 4 <= slots <= self.probation // 2:
                    self.step = step
                    self._lag_slots = slots
                    self.lag = [[-1] * slots for _ in range(self.grids)]
        self.first_time = self.buffer[0][0]
        buffer = self.buffer
        self.buffer = []
        # learn every context of the period, and the distribution of the recent novelty count
        # over its second half (the first half is still filling the context set)
        half = len(buffer) // 2
        late: list[int] = []
        late_ex: list[int] = []
        sizes = self.sizes
        events = 0
        for i, (_t, v) in enumerate(buffer):
            k = self._recent(i, v)
            if i >= half:
                late.append(k)
                late_ex.append(self.ehist_sum)
                if self._last:
                    events += 1
                    sizes[min(self._last, _MAX_SIZE)] += 1.0
        if events:
            self.sizes = [c / events for c in sizes]
        else:  # nothing novel late in the learning period: take every novelty as its own event
            sizes[1] = 1.0
        self.rate = events / len(late)
        mean = sum(late) / len(late)
        self.kmean = mean
        self.kvar = sum((k - mean) ** 2 for k in late) / len(late)
        if self.excursions:
            emean = sum(late_ex) / len(late_ex)
            self.emean = emean
            self.evar = sum((k - emean) ** 2 for k in late_ex) / len(late_ex)

    def _transform(self, value: float) -> float:
        return _anscombe(value) if self.stabilised else value

    def _novelties(self, index: int, value: float) -> int:
        """Count the point's contexts never seen before on each grid, and remember them."""
        if self.stabilised:
            value = _anscombe(value)
        u = (value - self.lo) / self.width
        top = self._levels
        if u < 0.0:
            q0 = -1 - int(math.log2(1.0 - u))
            inside = False
        elif u >= top:
            q0 = top + int(math.log2(u - top + 1.0))
            inside = False
        else:
            q0 = int(u)
            inside = True
        dist = q0 - top + 1 if q0 >= top else (-q0 if q0 < 0 else 0)
        seen = self.seen
        orders = self.orders
        room = len(seen) < MAX_CONTEXTS
        slots = self._lag_slots
        extra = dist - 1 if dist and self.graded else 0
        total = 0
        new_value = False
        prevs = self.prev
        prevs2 = self.prev2
        for g, offset in enumerate(self._grids):
            q = (int(u + offset) if inside else q0) + _ZERO
            q = 0 if q < 0 else (_SPAN - 1 if q >= _SPAN else q)
            tag = g << 20
            a = prevs[g]
            b = prevs2[g]
            novel = 0
            key = (1 << 24) | tag | q
            if key not in seen:
                novel = 1
                if g == 0:
                    new_value = True
                if room:
                    seen.add(key)
            if a >= 0 and orders > 1:
                key = (2 << 24) | tag | (a << 6) | q
                if key not in seen:
                    novel += 1
                    if room:
                        seen.add(key)
                if b >= 0 and orders > 2:
                    key = (3 << 24) | tag | (b << 12) | (a << 6) | q
                    if key not in seen:
                        novel += 1
                        if room:
                            seen.add(key)
            if novel and extra:
                # a new context beyond the learned range: one more novelty per doubling of the distance
                novel += extra
            if slots:
                j = index % slots
                lag = self.lag[g]
                d = lag[j]
                if d >= 0:
                    key = (4 << 24) | tag | (d << 6) | q
                    if key not in seen:
                        novel += 1
                        if room:
                            seen.add(key)
                if not novel or d < 0:  # a novel point is no reference for the same time tomorrow
                    lag[j] = q
            prevs2[g] = a
            prevs[g] = q
            if novel and self.per_point:
                novel = 1 + extra
            total += novel
        self._new_value = new_value
        self._dist = dist
        return total

    def _recent(self, index: int, value: float) -> int:
        """Learn the point; return the novelties of the last ``probation * recent_fraction`` points."""
        if self.excursions:
            k_new = self._split_novelties(index, value)
            ehist = self.ehist
            i = index % len(ehist)
            self.ehist_sum += self._last_ex - ehist[i]
            ehist[i] = self._last_ex
        else:
            k_new = self._novelties(index, value)
        self._last = k_new
        hist = self.hist
        i = index % len(hist)
        k = self.hist_sum + k_new - hist[i]
        hist[i] = k_new
        self.hist_sum = k
        return k

    def _observe(self, timestamp: float, value: float) -> float:
        """Tail probability of the recent novelty count against the series' own; then learn it."""
        k = self._recent(self.count - 1, value)
        window = len(self.hist)
        # never less than one novelty per learning period is expected
        mean = max(self.kmean, window / self.probation)
        tail = self.tail
        if k <= 0:
            p = 1.0
        elif tail == "negbin":
            p = _count_tail(k, mean, max(self.kvar, mean))
        elif tail == "poisson":
            p = _poisson_tail(k, mean)
        else:
            # novel points arrive as Poisson events, each with the series' own distribution of sizes
            p = _compound_tail(k, window * max(self.rate, 1.0 / self.probation), self.sizes)
            if tail == "either":  # the smaller of the two tails, Bonferroni-corrected
                p = min(1.0, 2.0 * min(p, _count_tail(k, mean, max(self.kvar, mean))))
        if self.excursions:
            # the excursion channel, judged against the series' own excursions; the smaller tail of
            # the two channels, Bonferroni-corrected
            e = self.ehist_sum
            pe = 1.0
            if e > 0:
                emean = max(self.emean, window / self.probation)
                pe = _count_tail(e, emean, max(self.evar, emean))
            p = min(1.0, 2.0 * min(p, pe))
            alpha = 1.0 / (self.probation * self.memory)
            if self.ramp:
                alpha = max(alpha, 1.0 / (self.count - self.probation + self.probation // 2))
            d = e - self.emean
            self.emean += alpha * d
            self.evar = (1.0 - alpha) * (self.evar + alpha * d * d)
        if self.freeze and (self.mask_left > 0 or (p < 1.0 and math.log(p) <= self.alert_level * _LOG_FLOOR)):
            # an incident (an alert and its mask) is not part of the series' normal novelty rate
            return p
        # mean and variance forget over the learning period (times ``memory``); with ``ramp``, the
        # learning period's own figures weigh as the half period they were measured on, so a long
        # memory does not keep its still-discovering novelty rate for long
        alpha = 1.0 / (self.probation * self.memory)
        if self.ramp:
            alpha = max(alpha, 1.0 / (self.count - self.probation + self.probation // 2))
        d = k - self.kmean
        self.kmean += alpha * d
        self.kvar = (1.0 - alpha) * (self.kvar + alpha * d * d)
        if tail == "negbin" or tail == "poisson":
            return p
        last = self._last
        self.rate += alpha * ((1.0 if last else 0.0) - self.rate)
        if last:
            # the size distribution forgets over as many novel points as the learning period has windows
            beta = window / self.probation
            sizes = self.sizes
            for j in range(1, _MAX_SIZE + 1):
                sizes[j] *= 1.0 - beta
            sizes[min(last, _MAX_SIZE)] += beta
        return p
