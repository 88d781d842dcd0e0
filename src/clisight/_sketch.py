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
import math
import operator
import struct
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Final

_VERSION: Final = 1
_TINY: Final = sys.float_info.min  # smallest normal float: smaller magnitudes count as zero
_HUGE: Final = sys.float_info.max
_UNIT_SHIFT: Final = 1074  # sums are exact integers in units of 2**-1074, the smallest float step
_UNIT: Final = 1 << _UNIT_SHIFT
_NO_FLOOR: Final = -(1 << 62)  # below every bin index any accepted accuracy can produce
_PENDING: Final = 128  # values add() keeps before folding them into the exact sum
_MIN_ACCURACY: Final = 1e-6
_log: Final = math.log  # module-level names: add() runs once per record
_ceil: Final = math.ceil
_DOUBLE: Final = struct.Struct("<d")
_SUM_VARINT_BYTES: Final = 320  # an exact sum needs at most ~2170 bits: 2**(1024+1074) times a 64-bit count
_MAX_SUM_SHIFT: Final = 2200


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
      200 bytes) that :meth:`from_bytes` restores exactly; it records ``relative_accuracy``, so a
      reader can tell whether two encodings can be merged.  ``from_bytes`` raises only ``ValueError``.

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
        "_pending",
        "_pos",
        "_pos_floor",
        "_sum_units",
        "_zero",
    )

    def __init__(self, relative_accuracy: float = 0.01, max_bins: int = 2048) -> None:
        """``relative_accuracy`` in [1e-6, 1): 0.01 promises 1 %; ``max_bins`` (at least 1) per sign."""
        if not _MIN_ACCURACY <= relative_accuracy < 1.0:
            raise ValueError(
                f"relative_accuracy must be at least {_MIN_ACCURACY} and below 1, got {relative_accuracy!r}"
            )
        if operator.index(max_bins) < 1:
            raise ValueError(f"max_bins must be at least 1, got {max_bins!r}")
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
            elif x <= -_TINY:
                i = _ceil(_log(-x) * self._multiplier)
                if i < self._neg_floor:
                    i = self._neg_floor
                bins = self._neg
                bins[i] = bins.get(i, 0) + 1
                if len(bins) > self._max_bins:
                    self._neg_floor = _collapse(bins, self._max_bins)
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

        A different ``max_bins`` is allowed: this sketch keeps its own, collapsing if needed.
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
        _add_counts(self._pos, dict(other._pos))  # copies, so merging a sketch into itself works
        _add_counts(self._neg, dict(other._neg))
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
        if len(self._neg) > self._max_bins:
            self._neg_floor = _collapse(self._neg, self._max_bins)

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

        Layout (version 1): version byte; relative_accuracy (float64); varints max_bins, count; then, if
        count > 0: min, max (float64); the exact sum as zigzag mantissa and shift; zero count; the
        positive and the negative store, each as a bin count and delta-encoded (index, count) pairs.
        """
        out = bytearray((_VERSION,))
        out += _DOUBLE.pack(self._accuracy)
        _put_varint(out, self._max_bins)
        _put_varint(out, self._count)
        if self._count:
            out += _DOUBLE.pack(self._min)
            out += _DOUBLE.pack(self._max)
            units = self._exact_sum_units()
            shift = (units & -units).bit_length() - 1 if units else 0
            _put_varint(out, _zigzag(units >> shift))
            _put_varint(out, shift)
            _put_varint(out, self._zero)
            _put_store(out, self._pos)
            _put_store(out, self._neg)
        return bytes(out)

    @classmethod
    def from_bytes(cls, data: bytes) -> QuantileSketch:
        """The sketch :meth:`to_bytes` encoded; ``ValueError`` saying what is wrong for anything else."""
        reader = _Reader(bytes(data))
        version = reader.byte("version")
        if version != _VERSION:
            raise _corrupt(f"unknown version {version} (this clisight reads version {_VERSION})")
        accuracy = reader.double("relative_accuracy")
        max_bins = reader.varint("max_bins")
        try:
            sketch = cls(accuracy, max_bins)
        except ValueError as exc:
            raise _corrupt(str(exc)) from None
        count = reader.varint("count")
        if count:
            low, high = reader.double("min"), reader.double("max")
            if not -_HUGE <= low <= high <= _HUGE:
                raise _corrupt(f"min {low!r} and max {high!r} are not finite and ordered")
            mantissa = _unzigzag(reader.varint("sum", _SUM_VARINT_BYTES))
            shift = reader.varint("sum shift")
            if shift > _MAX_SUM_SHIFT:
                raise _corrupt(f"sum shift {shift} is out of range")
            zero = reader.varint("zero count")
            limits = sketch._index_limits()
            pos = _read_store(reader, "positive", max_bins, limits)
            neg = _read_store(reader, "negative", max_bins, limits)
            sum_units = mantissa << shift
            if count != zero + sum(pos.values()) + sum(neg.values()):
                raise _corrupt(f"count {count} is not the total of the bins")
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
        if reader.pos != len(reader.data):
            raise _corrupt(f"{len(reader.data) - reader.pos} unexpected bytes after the end")
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


def _zigzag(n: int) -> int:
    return n << 1 if n >= 0 else ((-n) << 1) - 1


def _unzigzag(n: int) -> int:
    return n >> 1 if not n & 1 else -((n + 1) >> 1)


def _put_varint(out: bytearray, n: int) -> None:
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _put_store(out: bytearray, bins: dict[int, int]) -> None:
    """Bin count, then the first index (zigzag) and its count, then per bin ``count << 1 | gapped``.

    Neighbouring bins (index one above the previous) cost one byte for counts below 64; a gapped bin
    is followed by its distance minus two.
    """
    _put_varint(out, len(bins))
    previous = None
    for index in sorted(bins):
        if previous is None:
            _put_varint(out, _zigzag(index))
            _put_varint(out, bins[index])
        elif index - previous == 1:
            _put_varint(out, bins[index] << 1)
        else:
            _put_varint(out, bins[index] << 1 | 1)
            _put_varint(out, index - previous - 2)
        previous = index


def _read_store(reader: _Reader, sign: str, max_bins: int, limits: tuple[int, int]) -> dict[int, int]:
    size = reader.varint(f"{sign} bin count")
    if size > max_bins:
        raise _corrupt(f"{size} {sign} bins, more than max_bins {max_bins}")
    bins: dict[int, int] = {}
    index = 0
    for n in range(size):
        if n == 0:
            index = _unzigzag(reader.varint(f"{sign} bin index"))
            count = reader.varint(f"{sign} bin count")
        else:
            word = reader.varint(f"{sign} bin")
            count = word >> 1
            index += reader.varint(f"{sign} bin gap") + 2 if word & 1 else 1
        if count < 1:
            raise _corrupt(f"a {sign} bin has count 0")
        if not limits[0] <= index <= limits[1]:
            raise _corrupt(f"{sign} bin index {index} is out of range")
        bins[index] = count
    return bins


def _corrupt(reason: str) -> ValueError:
    return ValueError(f"not a valid QuantileSketch encoding: {reason}")


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self, field: str) -> int:
        if self.pos >= len(self.data):
            raise _corrupt(f"truncated before the {field}")
        self.pos += 1
        return self.data[self.pos - 1]

    def double(self, field: str) -> float:
        if self.pos + 8 > len(self.data):
            raise _corrupt(f"truncated in the {field}")
        (x,) = _DOUBLE.unpack_from(self.data, self.pos)
        self.pos += 8
        return float(x)

    def varint(self, field: str, max_bytes: int = 10) -> int:
        result = shift = 0
        for _ in range(max_bytes):
            b = self.byte(field)
            result |= (b & 0x7F) << shift
            if b < 0x80:
                return result
            shift += 7
        raise _corrupt(f"the {field} is longer than {max_bytes} bytes")
