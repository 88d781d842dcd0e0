"""The third round's alternatives to :class:`~clisight.detect.novelty.NoveltyDetector`'s shipped
design (issue 9): an excursion channel, calibration on the series' own past surprise, and averaging
over the series' noise.  All are off by default; ``bench/nab_protocol.py`` compares them with the
shipped design, and docs/detect.md says why none is shipped.
"""

from __future__ import annotations

import itertools
import math

from clisight.detect._tails import _anscombe

__all__ = ["MAX_CONTEXTS", "NoveltyAlternatives"]

#: Contexts remembered at most; past that, new contexts still count as novel but are not stored.
MAX_CONTEXTS = 50_000

_SPAN = 64  # quantised levels are clipped into [0, 64) to build integer context keys
_ZERO = 32  # index of the lowest in-range bin
_PBINS_PER_DECADE = 4  # the calibration's histogram of -log10(p): quarter decades, 1 .. 1e-10
#: State fields added by the third round's options (a state saved before them lacks them).
_THIRD_ROUND = (
    *("outs", "ehist", "ehist_sum", "emean", "evar"),  # the excursion channel
    *("phist", "pseen"),  # calibration on the series' own past surprise
    *("ring", "ring_at", "ring_sum"),  # averaging over the noise
)


class NoveltyAlternatives:
    """The third round's options, mixed into ``NoveltyDetector``: the state they add lives in these slots,
    the parameters and the shipped design's state in ``NoveltyDetector``'s."""

    # the state these options add, and what every update sets
    __slots__ = (
        "_dist",
        "_last_ex",
        "_new_value",
        "ehist",
        "ehist_sum",
        "emean",
        "evar",
        "outs",
        "phist",
        "pseen",
        "ring",
        "ring_at",
        "ring_sum",
    )
    _dist: int
    _last_ex: int
    _new_value: bool
    ehist: list[int]
    ehist_sum: int
    emean: float
    evar: float
    outs: int
    phist: list[float]
    pseen: int
    ring: list[float]
    ring_at: int
    ring_sum: float

    # state and parameters of NoveltyDetector that these methods use
    buffer: list[list[float]]
    calibrate: float
    graded: bool
    hist: list[int]
    lag: list[list[int]]
    lo: float
    orders: int
    prev: list[int]
    prev2: list[int]
    probation: int
    seen: set[int]
    smooth: float
    stabilised: bool
    width: float
    _lag_slots: int
    _levels: int

    def _calibrated(self, p: float) -> float:
        """The larger of ``p`` and how often this series' own past points were as surprising
        (after Numenta's anomaly likelihood: a series that keeps doing this is not surprised by it)."""
        hist = self.phist
        self.pseen += 1
        if p >= 1.0:
            return p
        level = min(int(-math.log10(p) * _PBINS_PER_DECADE), len(hist) - 1)
        as_rare = 0.0
        for j in range(level, len(hist)):
            as_rare += hist[j]
        hist[level] += 1.0
        return max(p, as_rare / (self.pseen + self.probation * self.calibrate))

    def _smoothed(self, value: float) -> float:
        """The mean of the last ``span`` values (this one included)."""
        ring = self.ring
        self.ring_sum += value - ring[self.ring_at]
        ring[self.ring_at] = value
        self.ring_at = (self.ring_at + 1) % len(ring)
        return self.ring_sum / len(ring)

    def _learn_span(self) -> None:
        """Average as many points as it takes for the series' noise to fall below ``smooth`` bins
        (1 on a series whose noise is finer than its grid), and smooth the learning period with it."""
        raw = [v for _t, v in self.buffer]
        noise = _noise(raw)
        width = (max(raw) - min(raw)) / self._levels
        span = 1
        if width > 0.0 and noise > 0.0:
            span = max(1, min(len(self.hist), math.ceil((noise / (self.smooth * width)) ** 2)))
        self.ring = [raw[0]] * span
        self.ring_sum = raw[0] * span
        self.ring_at = 0
        for row in self.buffer:
            row[1] = self._smoothed(row[1])

    def _split_novelties(self, index: int, value: float) -> int:
        """As :meth:`_novelties` on one grid, but the novelties of contexts that touch a value beyond
        the learned range (this one, one of the two before, or yesterday's) go to ``_last_ex``, the
        excursion channel, and only the others are returned."""
        if self.stabilised:
            value = _anscombe(value)
        u = (value - self.lo) / self.width
        top = self._levels
        if u < 0.0:
            q0 = -1 - int(math.log2(1.0 - u))
        elif u >= top:
            q0 = top + int(math.log2(u - top + 1.0))
        else:
            q0 = int(u)
        out = q0 < 0 or q0 >= top
        dist = q0 - top + 1 if q0 >= top else (-q0 if q0 < 0 else 0)
        seen = self.seen
        orders = self.orders
        room = len(seen) < MAX_CONTEXTS
        q = q0 + _ZERO
        q = 0 if q < 0 else (_SPAN - 1 if q >= _SPAN else q)
        a = self.prev[0]
        b = self.prev2[0]
        outs = self.outs
        inner = 0
        ex = 0
        key = (1 << 24) | q
        if key not in seen:
            if out:
                ex += 1
            else:
                inner += 1
            if room:
                seen.add(key)
        self._new_value = bool(inner or ex)
        if a >= 0 and orders > 1:
            key = (2 << 24) | (a << 6) | q
            if key not in seen:
                if out or outs & 1:
                    ex += 1
                else:
                    inner += 1
                if room:
                    seen.add(key)
            if b >= 0 and orders > 2:
                key = (3 << 24) | (b << 12) | (a << 6) | q
                if key not in seen:
                    if out or outs:
                        ex += 1
                    else:
                        inner += 1
                    if room:
                        seen.add(key)
        if ex and dist > 1 and self.graded:
            ex += dist - 1
        slots = self._lag_slots
        if slots:
            j = index % slots
            lag = self.lag[0]
            d = lag[j]
            if d >= 0:
                key = (4 << 24) | (d << 6) | q
                if key not in seen:
                    if out or not _ZERO <= d < _ZERO + top:
                        ex += 1
                    else:
                        inner += 1
                    if room:
                        seen.add(key)
            if not (inner or ex) or d < 0:
                lag[j] = q
        self.prev2[0] = a
        self.prev[0] = q
        self.outs = ((outs << 1) | out) & 3
        self._dist = dist
        self._last_ex = ex
        return inner


def _noise(values: list[float]) -> float:
    """The series' point-to-point noise: the median absolute first difference over 0.954 (its value
    for Gaussian noise of standard deviation 1); blind to level shifts and bursts."""
    steps = sorted(abs(b - a) for a, b in itertools.pairwise(values))
    return steps[len(steps) // 2] / 0.954 if steps else 0.0
