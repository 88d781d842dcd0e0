"""A mergeable quantile sketch: p50, p95, p99 of any number of values in bounded memory.

:class:`QuantileSketch` counts values in bins whose width grows with their magnitude (the DDSketch
idea), so a quantile it returns is within a *relative* error of the exact one whatever the other
values are: at the default 1 %, a p99 of 250 ms comes back between 247.5 and 252.5 ms.

Values ``x`` with ``|x|`` at least the smallest normal float (about 2.2e-308) go to bin
``ceil(log(|x|) / log(gamma))`` with ``gamma = (1 + a) / (1 - a)``, in one store for positive and one for
negative values; smaller magnitudes (zero, subnormals) go to a zero bin.  Bin ``i`` holds magnitudes in
``(gamma**(i-1), gamma**i]`` and answers with ``(1 - a) * gamma**i``, which is within ``a`` of every one
of them.
"""

from __future__ import annotations

import heapq
import itertools
import math
import operator
import struct
import sys
import zlib
from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import Final

_VERSION: Final = 2
_TINY: Final = sys.float_info.min  # smallest normal float: smaller magnitudes count as zero
_HUGE: Final = sys.float_info.max
_UNIT_SHIFT: Final = 1074  # sums are exact integers in units of 2**-1074, the smallest float step
_UNIT: Final = 1 << _UNIT_SHIFT
_NO_FLOOR: Final = -(1 << 62)  # below every bin index any accepted accuracy can produce
_PENDING: Final = 128  # values add() keeps before folding them into the exact sum
_MIN_ACCURACY: Final = 1e-6
_log: Final = math.log  # module-level names: add() runs once per record
_ceil: Final = math.ceil
_MAX_MAX_BINS: Final = (1 << 32) - 1
# The encoding: a fixed header, then (when count > 0) a fixed body, the exact sum, the bins.
_HEAD: Final = struct.Struct("<BBdIQ")  # version, flags, relative_accuracy, max_bins, count
# min, max, zero count, sum shift, sum length, positive / negative bin counts and first indices
_BODY: Final = struct.Struct("<ddQHHIIii")
_MAX_SUM_BYTES: Final = 280  # an exact sum needs at most ~2170 bits: 2**(1024+1074) times a 64-bit count
_MAX_SUM_SHIFT: Final = 2200
_COMPRESSED: Final = 0x10  # flag: the bins part is raw deflate; the low nibble holds two width codes
_KNOWN_FLAGS: Final = 0x1F
_COMPRESS_FROM: Final = 64  # bins parts shorter than this are never worth compressing
# Array typecodes of 1, 2, 4 and 8 bytes, indexed by width code (log2 of the width).
_TYPECODES: Final = tuple(next(c for c in "BHILQ" if array(c).itemsize == 1 << k) for k in range(4))
_BIG_ENDIAN: Final = sys.byteorder == "big"  # the encoding is little-endian


class QuantileSketch:
    """Approximate quantiles of a stream of floats, mergeable and serialisable.

    What you may rely on:

    - **Accuracy.** ``quantile(q)`` is within ``relative_accuracy * |x|`` of ``x``, the value at 0-based
      rank ``floor(q * (count - 1))`` of the sorted values (the *lower* quantile: ``q=0.5`` of four
      values is the second).  Every result lies in ``[min, max]``; ``q=0`` and ``q=1`` return them
      exactly.  Magnitudes below the smallest normal float (about 2.2e-308) are counted as 0.0.
    - **Bounded memory.** Each sign keeps at most ``max_bins`` bins; at 1 % the default 2048 bins span
      17 orders of magnitude.  Past that, the bins of smallest magnitude (nearest zero, for positive and
      negative values alike) are folded into one, so accuracy is lost only for the values nearest zero
      and never for the largest ones; ``count``, ``sum``, ``min`` and ``max`` stay exact.
    - **Exact merges.** The state depends only on the values added (as a multiset) and the two
      parameters, never on their order or on how they were split: merging sketches of the parts
      gives the same sketch, byte for byte, as one sketch of the whole, collapsed or not, provided
      all have the same ``max_bins``.  ``sum`` is kept exactly and rounded once, when read.
    - **Compact bytes.** :meth:`to_bytes` gives a versioned encoding (a few dozen bins take well under
      200 bytes, 500 bins of a day's durations well under 1000) that :meth:`from_bytes` restores
      exactly; it records ``relative_accuracy``, so a reader can tell whether two encodings can be
      merged.  ``from_bytes`` raises only ``ValueError``.  Both do their per-bin work in C (arrays,
      ``zlib``), so a stored sketch of hundreds of bins is decoded, merged into and encoded again in
      well under a millisecond.

    Values must be finite: NaN and infinities raise ``ValueError``.  A sketch is not thread-safe;
    one thread should own it, or callers must hold a lock.
    """

    __slots__ = (
        "_accuracy",
        "_count",
        "_log_gamma",
        "_log_rep",
        "_max",
        "_max_bins",
        "_min",
        "_multiplier",
        "_neg",
        "_neg_floor",
        "_neg_gaps",
        "_pending",
        "_pos",
        "_pos_floor",
        "_pos_gaps",
        "_sum_units",
        "_zero",
    )

    def __init__(self, relative_accuracy: float = 0.01, max_bins: int = 2048) -> None:
        """``relative_accuracy`` in [1e-6, 1): 0.01 promises 1 %; ``max_bins`` (1 to 2**32 - 1) per sign."""
        if not _MIN_ACCURACY <= relative_accuracy < 1.0:
            raise ValueError(
                f"relative_accuracy must be at least {_MIN_ACCURACY} and below 1, got {relative_accuracy!r}"
            )
        if not 1 <= operator.index(max_bins) <= _MAX_MAX_BINS:
            raise ValueError(f"max_bins must be at least 1 and at most {_MAX_MAX_BINS}, got {max_bins!r}")
        self._accuracy = float(relative_accuracy)
        self._max_bins = operator.index(max_bins)
        self._log_gamma = math.log1p(self._accuracy) - math.log1p(-self._accuracy)
        self._multiplier = 1.0 / self._log_gamma
        self._log_rep = math.log1p(-self._accuracy)  # a bin answers with (1 - a) * gamma**i
        self._count = 0
        self._sum_units = 0
        self._pending: list[float] = []
        self._min = math.inf  # min and max are meaningful only while count > 0
        self._max = -math.inf
        self._zero = 0
        self._pos: dict[int, int] = {}
        self._neg: dict[int, int] = {}  # keyed by the index of |x|
        # Once a store has been collapsed, its lowest index: lower indices fold straight into it.
        self._pos_floor = _NO_FLOOR
        self._neg_floor = _NO_FLOOR
        # A decoded store's dict holds its bins in index order, and these are the gaps between them
        # (when each fits a byte): to_bytes reuses them as long as no bin was added (the dict would be
        # longer) and none folded (a collapse drops them).  A store's usual cycle (decode, merge a
        # few values into bins it has, encode) then needs neither a sort nor the gaps again.
        self._pos_gaps: bytes | None = None
        self._neg_gaps: bytes | None = None

    # -- adding ---------------------------------------------------------------------------------------

    def add(self, value: float, count: int = 1) -> None:
        """Add ``value`` (``count`` times, ``count >= 1``); ``ValueError`` for NaN or an infinity."""
        x = value if type(value) is float else _finite(value)
        if count != 1:
            self._add_repeated(x, count)
            return
        # No separate finiteness check on this path: an infinity overflows math.ceil, NaN fails every
        # comparison and lands in the last branch.
        try:
            if x >= _TINY:
                i = _ceil(_log(x) * self._multiplier)
                if i < self._pos_floor:
                    i = self._pos_floor
                bins = self._pos
                bins[i] = bins.get(i, 0) + 1
                if len(bins) > self._max_bins:
                    self._pos_floor = _collapse(bins, self._max_bins)
                    self._pos_gaps = None
            elif x <= -_TINY:
                i = _ceil(_log(-x) * self._multiplier)
                if i < self._neg_floor:
                    i = self._neg_floor
                bins = self._neg
                bins[i] = bins.get(i, 0) + 1
                if len(bins) > self._max_bins:
                    self._neg_floor = _collapse(bins, self._max_bins)
                    self._neg_gaps = None
            elif x == x:
                self._zero += 1
                x += 0.0  # -0.0 becomes 0.0, so min and max do not depend on which zero came first
            else:
                raise OverflowError
        except OverflowError:
            raise ValueError(f"QuantileSketch values must be finite numbers, got {x!r}") from None
        self._count += 1
        if x < self._min:
            self._min = x
        if x > self._max:
            self._max = x
        pending = self._pending
        pending.append(x)
        if len(pending) >= _PENDING:
            self._fold_pending()

    def _add_repeated(self, x: float, count: int) -> None:
        x = _finite(x)
        count = operator.index(count)
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count!r}")
        if abs(x) >= _TINY:
            bins, floor = (self._pos, self._pos_floor) if x > 0 else (self._neg, self._neg_floor)
            i = max(math.ceil(math.log(abs(x)) * self._multiplier), floor)
            bins[i] = bins.get(i, 0) + count
            self._settle()
        else:
            self._zero += count
            x += 0.0
        self._count += count
        self._sum_units += _units(x) * count
        self._min = min(self._min, x)
        self._max = max(self._max, x)

    def add_many(self, values: Iterable[float]) -> None:
        """Add every value; all or nothing: ``ValueError`` (and no change) if one is NaN or infinite."""
        batch = values if type(values) is list else list(values)
        if not batch:
            return
        try:
            total = math.fsum(batch)  # in C; also tells whether every value is finite
        except OverflowError:  # the running sum left float range, or an int too large for a float
            batch = [_finite(v) for v in batch]
            units = sum(map(_units, batch))
        except ValueError:  # fsum met both infinities
            raise ValueError("QuantileSketch values must be finite numbers, got inf and -inf") from None
        else:
            if not -_HUGE <= total <= _HUGE:
                bad = next(v for v in batch if not math.isfinite(v))
                raise ValueError(f"QuantileSketch values must be finite numbers, got {bad!r}")
            units = _exact_units(batch, total)
        low = float(min(batch)) + 0.0
        high = float(max(batch)) + 0.0
        log, ceil, multiplier = _log, _ceil, self._multiplier
        pos, pos_floor = self._pos, self._pos_floor
        pos_get = pos.get
        zero = 0
        if low >= _TINY:  # the usual case (durations, sizes): every value positive
            for x in batch:
                i = ceil(log(x) * multiplier)
                if i < pos_floor:
                    i = pos_floor
                pos[i] = pos_get(i, 0) + 1
        else:
            neg, neg_floor = self._neg, self._neg_floor
            neg_get = neg.get
            for x in batch:
                if x >= _TINY:
                    i = ceil(log(x) * multiplier)
                    if i < pos_floor:
                        i = pos_floor
                    pos[i] = pos_get(i, 0) + 1
                elif x <= -_TINY:
                    i = ceil(log(-x) * multiplier)
                    if i < neg_floor:
                        i = neg_floor
                    neg[i] = neg_get(i, 0) + 1
                else:
                    zero += 1
        self._settle()  # once per batch: the state is the same as collapsing after every value
        self._zero += zero
        self._count += len(batch)
        self._sum_units += units
        if low < self._min:
            self._min = low
        if high > self._max:
            self._max = high

    def merge(self, other: QuantileSketch) -> None:
        """Add everything ``other`` holds; ``ValueError`` if its ``relative_accuracy`` differs.

        A different ``max_bins`` is allowed: this sketch keeps its own, collapsing if needed.  The cost
        grows with the bins of ``other`` only (unless this sketch must collapse), so folding a few new
        values into a large stored sketch is cheap.
        """
        if not isinstance(other, QuantileSketch):
            raise TypeError(f"can only merge a QuantileSketch, not {type(other).__name__}")
        if other._accuracy != self._accuracy:
            raise ValueError(
                f"cannot merge sketches of different relative_accuracy ({self._accuracy!r} and "
                f"{other._accuracy!r}): their bins do not line up"
            )
        if not other._count:
            return
        # O(bins of other) whatever the size of this one: the store's usual merge is a few bins into many.
        # Merging a sketch into itself reads copies, so the bins do not change under the loop reading them.
        _add_counts(self._pos, other._pos if other is not self else dict(other._pos))
        _add_counts(self._neg, other._neg if other is not self else dict(other._neg))
        self._settle()
        units = other._exact_sum_units()  # first: other may be self, with values pending
        self._zero += other._zero
        self._count += other._count
        self._sum_units += units
        self._min = min(self._min, other._min)
        self._max = max(self._max, other._max)

    @classmethod
    def merged(cls, sketches: Iterable[QuantileSketch | bytes | None]) -> QuantileSketch:
        """One new sketch of everything in ``sketches``: bytes are decoded, ``None`` skipped.

        The result takes its parameters from the first sketch; an empty input gives an empty default
        sketch.  ``ValueError`` if bytes are not a valid encoding or accuracies differ.
        """
        result: QuantileSketch | None = None
        for item in sketches:
            if item is None:
                continue
            sketch = cls.from_bytes(item) if isinstance(item, bytes | bytearray | memoryview) else item
            if result is None:
                result = cls(sketch._accuracy, sketch._max_bins)
            result.merge(sketch)
        return result if result is not None else cls()

    def _settle(self) -> None:
        """Collapse either store that holds more than max_bins bins."""
        if len(self._pos) > self._max_bins:
            self._pos_floor = _collapse(self._pos, self._max_bins)
            self._pos_gaps = None
        if len(self._neg) > self._max_bins:
            self._neg_floor = _collapse(self._neg, self._max_bins)
            self._neg_gaps = None

    def _fold_pending(self) -> None:
        self._sum_units += _exact_units(self._pending)
        self._pending.clear()

    def _exact_sum_units(self) -> int:
        if self._pending:
            self._fold_pending()
        return self._sum_units

    # -- reading --------------------------------------------------------------------------------------

    @property
    def relative_accuracy(self) -> float:
        """The accuracy promised for every quantile, e.g. 0.01 for 1 %."""
        return self._accuracy

    @property
    def max_bins(self) -> int:
        """How many bins each sign keeps before the ones nearest zero are folded together."""
        return self._max_bins

    @property
    def count(self) -> int:
        """How many values were added (exact)."""
        return self._count

    @property
    def sum(self) -> float:
        """The sum of the values, exact until rounded once to a float (±inf beyond float range)."""
        try:
            return self._exact_sum_units() / _UNIT  # int / int rounds correctly
        except OverflowError:
            return math.inf if self._sum_units > 0 else -math.inf

    @property
    def min(self) -> float | None:
        """The smallest value added (exact), or None when empty."""
        return self._min if self._count else None

    @property
    def max(self) -> float | None:
        """The largest value added (exact), or None when empty."""
        return self._max if self._count else None

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile (``0 <= q <= 1``) within the relative accuracy; None when empty."""
        return self.quantiles((q,))[0]

    def quantiles(self, qs: Sequence[float]) -> list[float | None]:
        """:meth:`quantile` for each of ``qs``, in their order, from one pass over the bins."""
        wanted = [_checked_q(q) for q in qs]
        n = self._count
        out: list[float | None] = [None] * len(wanted)
        if not n:
            return out
        bins = self._bins_in_order()
        seen = sign = index = 0
        for j in sorted(range(len(wanted)), key=wanted.__getitem__):
            q = wanted[j]
            if q == 0.0:
                out[j] = self._min
                continue
            if q == 1.0:
                out[j] = self._max
                continue
            rank = int(q * (n - 1))
            while seen <= rank:
                in_bin, sign, index = next(bins)
                seen += in_bin
            value = sign * self._bin_value(index) if sign else 0.0
            out[j] = min(max(value, self._min), self._max)
        return out

    def _bins_in_order(self) -> Iterator[tuple[int, int, int]]:
        """(count, sign, index) of every bin from the most negative value to the most positive."""
        neg, pos = self._neg, self._pos
        for i in sorted(neg, reverse=True):
            yield neg[i], -1, i
        if self._zero:
            yield self._zero, 0, 0
        for i in sorted(pos):
            yield pos[i], 1, i

    def _bin_value(self, index: int) -> float:
        try:
            return math.exp(index * self._log_gamma + self._log_rep)
        except OverflowError:  # the top bin's answer can exceed the largest float: clamped to max
            return math.inf

    # -- bytes ----------------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The sketch in a compact, versioned encoding that :meth:`from_bytes` restores exactly.

        The same sketch always gives the same bytes (with a given zlib), however its values were added
        or merged.  ``OverflowError`` if it holds 2**64 values or more.

        Layout (version 2, little-endian): version byte; flags byte; relative_accuracy (float64);
        max_bins (uint32); count (uint64).  Nothing follows when count is 0.  Otherwise: min, max
        (float64); zero count (uint64); the exact sum as ``mantissa << shift``: shift (uint16) and the
        mantissa's length (uint16); per sign, positive then negative, its bin count (uint32) and lowest
        index (int32); the mantissa (signed, that many bytes); then the bins part: the gaps between
        consecutive indices (each sign's bins after its first) and the counts (positive bins, then
        negative, each sign in index order), each as an array of unsigned integers whose width (1, 2,
        4 or 8 bytes) the flags' low nibble gives, gaps in bits 0-1 and counts in bits 2-3 (log2 of the
        width).  Flag 0x10 says the bins part is raw deflate (``zlib``, ``wbits=-15``), used when that
        is shorter.
        """
        count = self._count
        if count >> 64:
            raise OverflowError(f"cannot encode a QuantileSketch of {count} values: the limit is 2**64 - 1")
        if not count:
            return _HEAD.pack(_VERSION, 0, self._accuracy, self._max_bins, 0)
        units = self._exact_sum_units()
        shift = (units & -units).bit_length() - 1 if units else 0
        mantissa = units >> shift
        sum_bytes = mantissa.to_bytes((mantissa.bit_length() + 8) // 8, "little", signed=True)
        pos_first, pos_gaps, pos_counts = _sorted_bins(self._pos, self._pos_gaps)
        neg_first, neg_gaps, neg_counts = _sorted_bins(self._neg, self._neg_gaps)
        if isinstance(pos_gaps, bytes) and isinstance(neg_gaps, bytes):
            gap_code, gaps = 0, pos_gaps + neg_gaps
        else:
            gap_code, gaps = _pack([*pos_gaps, *neg_gaps], 1)
        counts = pos_counts + neg_counts
        # The largest count is at least the average: no need to try widths too narrow for that.
        total = count - self._zero
        count_code, packed_counts = _pack(counts, _width_code(-(-total // len(counts))) if counts else 0)
        flags = gap_code | count_code << 2
        bins = gaps + packed_counts
        if len(bins) >= _COMPRESS_FROM:
            deflated = zlib.compress(bins, 1, -15)
            if len(deflated) < len(bins):
                bins = deflated
                flags |= _COMPRESSED
        return b"".join(
            (
                _HEAD.pack(_VERSION, flags, self._accuracy, self._max_bins, count),
                _BODY.pack(
                    self._min,
                    self._max,
                    self._zero,
                    shift,
                    len(sum_bytes),
                    len(pos_counts),
                    len(neg_counts),
                    pos_first,
                    neg_first,
                ),
                sum_bytes,
                bins,
            )
        )

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> QuantileSketch:
        """The sketch :meth:`to_bytes` encoded; ``ValueError`` saying what is wrong for anything else."""
        data = bytes(data)
        if not data:
            raise _corrupt("truncated before the version")
        if data[0] != _VERSION:
            raise _corrupt(f"unknown version {data[0]} (this clisight reads version {_VERSION})")
        if len(data) < _HEAD.size:
            raise _corrupt("truncated in the header")
        _, flags, accuracy, max_bins, count = _HEAD.unpack_from(data)
        try:
            sketch = cls(accuracy, max_bins)
        except ValueError as exc:
            raise _corrupt(str(exc)) from None
        if flags & ~_KNOWN_FLAGS or (flags and not count):
            raise _corrupt(f"unknown flags {flags:#04x}")
        if not count:
            _check_end(data, _HEAD.size)
            return sketch
        body_end = _HEAD.size + _BODY.size
        if len(data) < body_end:
            raise _corrupt("truncated in the header")
        low, high, zero, shift, sum_size, pos_size, neg_size, pos_first, neg_first = _BODY.unpack_from(
            data, _HEAD.size
        )
        if not -_HUGE <= low <= high <= _HUGE:
            raise _corrupt(f"min {low!r} and max {high!r} are not finite and ordered")
        if shift > _MAX_SUM_SHIFT:
            raise _corrupt(f"sum shift {shift} is out of range")
        if sum_size > _MAX_SUM_BYTES:
            raise _corrupt(f"the sum takes {sum_size} bytes, more than {_MAX_SUM_BYTES}")
        bins_start = body_end + sum_size
        if len(data) < bins_start:
            raise _corrupt("truncated in the sum")
        sum_units = int.from_bytes(data[body_end:bins_start], "little", signed=True) << shift
        limits = sketch._index_limits()
        for size, sign in ((pos_size, "positive"), (neg_size, "negative")):
            if size > max_bins:
                raise _corrupt(f"{size} {sign} bins, more than max_bins {max_bins}")
            if size > limits[1] - limits[0] + 1:
                raise _corrupt(f"{size} {sign} bins, more than there are bin indices")
        if zero + pos_size + neg_size > count:  # every bin holds at least one value
            raise _corrupt(
                f"count {count} is not the total of the bins: {zero} zeros and "
                f"{pos_size + neg_size} bins hold more"
            )
        # The bins part: gaps, then counts, each an array of the width its flag bits give.
        gap_code, count_code = flags & 3, flags >> 2 & 3
        gap_bytes = (max(pos_size - 1, 0) + max(neg_size - 1, 0)) << gap_code
        bins_size = gap_bytes + ((pos_size + neg_size) << count_code)
        if flags & _COMPRESSED:
            bins = _inflate(data[bins_start:], bins_size)
        else:
            if len(data) < bins_start + bins_size:
                raise _corrupt("truncated in the bins")
            _check_end(data, bins_start + bins_size)
            bins = data[bins_start:]
        if count != zero + _total(bins[gap_bytes:], count_code):
            raise _corrupt(f"count {count} is not the total of the bins")
        gaps = _unpack(gap_code, bins[:gap_bytes])
        counts = _unpack(count_code, bins[gap_bytes:])
        split = max(pos_size - 1, 0)
        pos = _bins_from(pos_first, gaps[:split], counts[:pos_size], limits, "positive")
        neg = _bins_from(neg_first, gaps[split:], counts[pos_size:], limits, "negative")
        if not count * _units(low) <= sum_units <= count * _units(high):
            raise _corrupt("sum lies outside count * [min, max]")
        if (
            (pos and high < _TINY)
            or (not pos and high >= _TINY)
            or (neg and low > -_TINY)
            or (not neg and low <= -_TINY)
            or (zero and not (low < _TINY and high > -_TINY))
        ):
            raise _corrupt("min and max do not match the bins")
        sketch._count, sketch._sum_units, sketch._zero = count, sum_units, zero
        sketch._min, sketch._max = low + 0.0, high + 0.0
        sketch._pos, sketch._neg = pos, neg
        if isinstance(gaps, bytes):  # gaps of one byte each: kept for to_bytes
            sketch._pos_gaps = gaps[:split] if pos else None
            sketch._neg_gaps = gaps[split:] if neg else None
        return sketch

    def _index_limits(self) -> tuple[int, int]:
        """The lowest and highest bin index a finite value can have at this accuracy."""
        return (
            math.ceil(math.log(_TINY) * self._multiplier),
            math.ceil(math.log(_HUGE) * self._multiplier),
        )

    # -- comparing ------------------------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, QuantileSketch):
            return NotImplemented
        return (
            self._accuracy == other._accuracy
            and self._max_bins == other._max_bins
            and self._count == other._count
            and self._zero == other._zero
            and self._pos == other._pos
            and self._neg == other._neg
            and (not self._count or (self._min == other._min and self._max == other._max))
            and self._exact_sum_units() == other._exact_sum_units()
        )

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return (
            f"QuantileSketch(relative_accuracy={self._accuracy!r}, max_bins={self._max_bins}, "
            f"count={self._count}, min={self.min!r}, max={self.max!r}, "
            f"bins={len(self._pos) + len(self._neg) + (1 if self._zero else 0)})"
        )


# -- helpers ------------------------------------------------------------------------------------------


def _finite(value: float) -> float:
    """``value`` as a float; ``ValueError`` if it is NaN, infinite or too large for a float."""
    try:
        x = float(value)
    except OverflowError:
        raise ValueError(f"QuantileSketch values must be finite numbers, got {value!r}") from None
    if not -_HUGE <= x <= _HUGE:
        raise ValueError(f"QuantileSketch values must be finite numbers, got {x!r}")
    return x


def _checked_q(q: float) -> float:
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile q must be between 0 and 1, got {q!r}")
    return float(q)


def _units(x: float) -> int:
    """``x`` exactly, as a whole number of 2**-1074."""
    numerator, denominator = x.as_integer_ratio()  # denominator is a power of two, at most 2**1074
    return numerator << (_UNIT_SHIFT + 1 - denominator.bit_length())


def _exact_units(values: list[float], first: float | None = None) -> int:
    """The exact sum of finite ``values``, in units of 2**-1074.

    ``fsum`` rounds the exact sum once; subtracting what it returned and summing again yields the
    rounding error, and so on until nothing is left: usually two or three passes, all in C.
    """
    rest = list(values)
    total = 0
    try:
        part = math.fsum(rest) if first is None else first
        while part:
            total += _units(part)
            rest.append(-part)
            part = math.fsum(rest)
    except OverflowError:  # partial sums beyond float range: one value at a time, still exact
        return sum(_units(float(v)) for v in values)
    return total


def _add_counts(bins: dict[int, int], counts: dict[int, int]) -> None:
    """Add ``counts`` into ``bins``: O(len(counts)), however many bins there are.

    A plain loop: for the store's merges of a few bins into many it beats every C-level alternative
    tried (``dict.update`` over ``zip``/``map``), and it stays ahead at hundreds of bins.
    """
    get = bins.get
    for index, count in counts.items():
        bins[index] = get(index, 0) + count


def _collapse(bins: dict[int, int], max_bins: int) -> int:
    """Fold the lowest indices of ``bins`` into the lowest one kept, so ``max_bins`` remain.

    Returns that index, the store's new floor.  Which bins survive depends only on the set of indices
    ever seen (the ``max_bins`` highest), which is what keeps merges independent of order.
    """
    lowest = heapq.nsmallest(len(bins) - max_bins + 1, bins)
    floor = lowest.pop()
    bins[floor] += sum(bins.pop(index) for index in lowest)
    return floor


def _sorted_bins(bins: dict[int, int], gaps: bytes | None) -> tuple[int, bytes | list[int], tuple[int, ...]]:
    """The lowest index (0 if none), the gaps between the indices and the counts, all in index order.

    The gaps come as bytes when they fit, else as a list.  ``gaps``, if not None, are those of a dict in
    index order (see ``QuantileSketch.__init__``), still valid if the dict has as many bins.
    """
    if gaps is not None and len(gaps) + 1 == len(bins):
        return next(iter(bins)), gaps, tuple(bins.values())
    if not bins:
        return 0, b"", ()
    indices = sorted(bins)  # the bins of a decoded sketch are in order already, which sorts in one pass
    counts = operator.itemgetter(*indices)(bins) if len(indices) > 1 else (bins[indices[0]],)
    differences = map(operator.sub, indices[1:], indices)
    try:
        return indices[0], bytes(differences), counts  # gaps nearly always fit a byte
    except ValueError:
        return indices[0], list(map(operator.sub, indices[1:], indices)), counts


def _width_code(largest: int) -> int:
    """log2 of the fewest bytes (1, 2, 4 or 8) that hold ``largest``, a non-negative int below 2**64."""
    return 0 if largest < 0x100 else 1 if largest < 0x10000 else 2 if largest >> 32 == 0 else 3


def _pack(values: Sequence[int], narrowest: int) -> tuple[int, bytes]:
    """The width code of the narrowest array (of ``narrowest`` or wider) that holds ``values``, and its bytes.

    The bytes of a wider array are sent plane by plane (every first byte, then every second...): the
    high planes of small counts are mostly zeros, which zlib compresses much better than interleaved.
    Trying each width in turn costs less than finding the largest value first: a failed conversion
    usually stops early, and the store's counts mostly fit the first width tried.
    """
    if narrowest == 0:
        try:
            return 0, bytes(values)  # faster than an array
        except ValueError:
            narrowest = 1
    for code in range(narrowest, 4):
        try:
            packed = array(_TYPECODES[code], values)
        except OverflowError:
            continue
        if _BIG_ENDIAN:
            packed.byteswap()
        data = packed.tobytes()
        width = 1 << code
        return code, b"".join([data[plane::width] for plane in range(width)])
    raise OverflowError("a bin count of 2**64 or more cannot be encoded")


def _unpack(code: int, data: bytes) -> Sequence[int]:
    """The values :func:`_pack` gave ``data`` for, with width code ``code``."""
    if not code:
        return data
    width, size = 1 << code, len(data) >> code
    interleaved = bytearray(len(data))
    for plane in range(width):
        interleaved[plane::width] = data[plane * size : (plane + 1) * size]
    unpacked = array(_TYPECODES[code])
    unpacked.frombytes(interleaved)
    if _BIG_ENDIAN:
        unpacked.byteswap()
    return unpacked


def _total(data: bytes, code: int) -> int:
    """The sum of the values in ``data``, packed by :func:`_pack` with ``code``; ``ValueError`` if one is 0.

    Straight from the planes: a value is 0 where every plane has a 0 byte, and the sum is each plane's
    sum of bytes in its place, so no int is made per value.
    """
    size = len(data) >> code
    planes = [data[plane * size : (plane + 1) * size] for plane in range(1 << code)]
    nonzero = 0
    for plane in planes:
        nonzero |= int.from_bytes(plane, "little")
    if 0 in nonzero.to_bytes(size, "little"):
        raise _corrupt("a bin has count 0")
    return sum(sum(plane) << 8 * k for k, plane in enumerate(planes))


def _inflate(data: bytes, size: int) -> bytes:
    """The ``size`` bytes ``data`` deflates; never more than ``size + 1`` of them are produced."""
    inflater = zlib.decompressobj(-15)
    try:
        bins = inflater.decompress(data, size + 1)  # a bound, so a decompression bomb stops here
    except zlib.error as exc:
        raise _corrupt(f"the compressed bins are damaged ({exc})") from None
    if len(bins) > size:
        raise _corrupt(f"the compressed bins inflate beyond the {size} bytes the header declares")
    if not inflater.eof:
        raise _corrupt("truncated in the compressed bins")
    if inflater.unused_data:
        raise _corrupt(f"{len(inflater.unused_data)} unexpected bytes after the end")
    if len(bins) < size:
        raise _corrupt(
            f"the compressed bins inflate to {len(bins)} bytes, not the {size} the header declares"
        )
    return bins


def _bins_from(
    first: int, gaps: Sequence[int], counts: Sequence[int], limits: tuple[int, int], sign: str
) -> dict[int, int]:
    if not counts:
        if first:
            raise _corrupt(f"the {sign} bins are empty but start at index {first}")
        return {}
    indices = list(itertools.accumulate(gaps, initial=first))
    for index in (indices[0], indices[-1]):
        if not limits[0] <= index <= limits[1]:
            raise _corrupt(f"{sign} bin index {index} is out of range")
    bins = dict(zip(indices, counts, strict=True))
    if len(bins) < len(indices):  # gaps are never negative: only a gap of 0 repeats an index
        raise _corrupt(f"{sign} bin indices are not increasing (a gap of 0)")
    return bins


def _check_end(data: bytes, end: int) -> None:
    if len(data) > end:
        raise _corrupt(f"{len(data) - end} unexpected bytes after the end")


def _corrupt(reason: str) -> ValueError:
    return ValueError(f"not a valid QuantileSketch encoding: {reason}")
