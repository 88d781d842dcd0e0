"""QuantileSketch: quantiles within 1 % of the exact ones, merges that equal one sketch of everything,
bytes that round-trip exactly and never decode garbage into anything but ValueError."""

from __future__ import annotations

import itertools
import math
import random
import struct
import sys
import tracemalloc
import zlib
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clisight._sketch import QuantileSketch

ACCURACY = 0.01
SLACK = 1e-9  # log and exp round; the promise holds up to that
QS = [0.0, 0.001, 0.01, 0.05, 0.1, 0.25, 0.33, 0.5, 0.66, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0]

magnitudes = st.one_of(
    st.floats(1e-6, 1e9),
    st.floats(-6.0, 9.0).map(lambda e: 10.0**e),  # spread evenly over the decades
)
values = st.one_of(magnitudes, magnitudes.map(lambda x: -x), st.just(0.0), st.just(-0.0))
any_finite = st.floats(allow_nan=False, allow_infinity=False, allow_subnormal=False)


@st.composite
def datasets(
    draw: st.DrawFn, elements: st.SearchStrategy[float] = values, max_size: int = 150
) -> list[float]:
    """A list of values with some of them repeated."""
    base = draw(st.lists(elements, min_size=1, max_size=max_size))
    return base + draw(st.lists(st.sampled_from(base), max_size=len(base)))


def exact_quantile(data: list[float], q: float) -> float:
    """The documented rank: the value at 0-based rank floor(q * (n - 1)) of the sorted values."""
    ordered = sorted(data)
    return ordered[math.floor(q * (len(ordered) - 1))]


def exact_sum(data: list[float]) -> float:
    total = sum(Fraction(x) for x in data)
    try:
        return float(total)
    except OverflowError:
        return math.inf if total > 0 else -math.inf


def sketch_of(data: list[float], **params: float) -> QuantileSketch:
    sketch = QuantileSketch(**params)  # type: ignore[arg-type]
    for x in data:
        sketch.add(x)
    return sketch


def assert_within_accuracy(sketch: QuantileSketch, data: list[float], qs: list[float] = QS) -> None:
    for q, got in zip(qs, sketch.quantiles(qs), strict=True):
        want = exact_quantile(data, q)
        assert got is not None
        if abs(want) < sys.float_info.min:  # zero and subnormals are counted as zero
            assert abs(got - want) < sys.float_info.min, (q, want, got)
        else:
            assert abs(got - want) <= ACCURACY * abs(want) * (1 + SLACK), (q, want, got)


# -- accuracy -----------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(datasets())
def test_every_quantile_is_within_one_percent_of_the_exact_one(data: list[float]) -> None:
    sketch = sketch_of(data)

    assert_within_accuracy(sketch, data)
    assert sketch.quantiles(QS) == [sketch.quantile(q) for q in QS]


@settings(max_examples=100, deadline=None)
@given(datasets(any_finite, max_size=60))
def test_accuracy_holds_over_the_whole_float_range(data: list[float]) -> None:
    sketch = QuantileSketch()
    sketch.add_many(data)

    assert_within_accuracy(sketch, data)


@settings(max_examples=100, deadline=None)
@given(datasets())
def test_count_sum_min_max_are_exact_and_quantiles_ordered(data: list[float]) -> None:
    sketch = sketch_of(data)

    assert sketch.count == len(data)
    assert sketch.sum == exact_sum(data)
    assert sketch.min == min(data)
    assert sketch.max == max(data)
    assert sketch.quantile(0.0) == min(data)
    assert sketch.quantile(1.0) == max(data)
    answers = sketch.quantiles(QS)
    assert answers == sorted(answers)  # type: ignore[type-var]
    assert all(min(data) <= a <= max(data) for a in answers)  # type: ignore[operator]


def test_the_median_of_four_values_is_the_lower_middle_one() -> None:
    sketch = sketch_of([1.0, 2.0, 3.0, 4.0])

    assert sketch.quantile(0.5) == pytest.approx(2.0, rel=ACCURACY)
    assert sketch.quantile(0.99) == pytest.approx(3.0, rel=ACCURACY)


def test_lognormal_latencies_keep_their_tail() -> None:
    rng = random.Random(7)
    data = [rng.lognormvariate(math.log(0.05), 1.2) for _ in range(20_000)]
    sketch = QuantileSketch()
    sketch.add_many(data)

    assert_within_accuracy(sketch, data)


def test_values_below_the_smallest_normal_float_count_as_zero() -> None:
    data = [5e-324, -1e-310, 0.0, 1.0]
    sketch = sketch_of(data)

    assert sketch.min == -1e-310
    assert sketch.quantile(0.34) == 0.0  # rank 1: the subnormal 5e-324 sorts after -1e-310 and 0.0
    assert_within_accuracy(sketch, data)


def test_positive_and_negative_zero_give_the_same_sketch() -> None:
    a = sketch_of([0.0, -0.0, 1.0])
    b = sketch_of([-0.0, 0.0, 1.0])

    assert a.to_bytes() == b.to_bytes()
    assert math.copysign(1.0, a.min) == 1.0  # type: ignore[arg-type]


def test_repeated_add_equals_adding_one_at_a_time() -> None:
    once = QuantileSketch()
    once.add(0.25, count=3)
    once.add(-7.0, count=2)
    once.add(0.0, count=4)

    assert once.to_bytes() == sketch_of([0.25] * 3 + [-7.0] * 2 + [0.0] * 4).to_bytes()


def test_add_many_accepts_any_iterable_and_ints() -> None:
    assert QuantileSketch.merged([]) == QuantileSketch()
    from_ints = QuantileSketch()
    from_ints.add_many(iter([1, 2, 3, -4, 0]))

    assert from_ints == sketch_of([1.0, 2.0, 3.0, -4.0, 0.0])


def test_sum_beyond_float_range_is_infinite_and_exact_again_when_it_comes_back() -> None:
    sketch = sketch_of([1e308, 1e308])
    assert sketch.sum == math.inf

    sketch.add(-1e308)
    assert sketch.sum == 1e308
    batch = QuantileSketch()
    batch.add_many([1e308, 1e308, -1e308])
    assert batch == sketch


# -- bad input ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 10**400])
def test_nan_and_infinities_are_rejected_and_change_nothing(bad: float) -> None:
    sketch = sketch_of([1.0, 2.0])
    before = sketch.to_bytes()

    with pytest.raises(ValueError, match="finite"):
        sketch.add(bad)
    with pytest.raises(ValueError, match="finite"):
        sketch.add(bad, count=3)
    with pytest.raises(ValueError, match="finite"):
        sketch.add_many([5.0, bad, 6.0])
    assert sketch.to_bytes() == before


def test_both_infinities_in_one_batch_are_rejected() -> None:
    with pytest.raises(ValueError, match="finite"):
        QuantileSketch().add_many([math.inf, -math.inf])


@pytest.mark.parametrize("count", [0, -1])
def test_count_must_be_at_least_one(count: int) -> None:
    with pytest.raises(ValueError, match="count"):
        QuantileSketch().add(1.0, count=count)


@pytest.mark.parametrize("q", [-0.01, 1.01, math.nan])
def test_q_outside_zero_to_one_is_rejected(q: float) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        sketch_of([1.0]).quantile(q)


@pytest.mark.parametrize(
    "params", [{"relative_accuracy": 0.0}, {"relative_accuracy": 1.0}, {"max_bins": 0}, {"max_bins": 2**32}]
)
def test_parameters_out_of_range_are_rejected(params: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        QuantileSketch(**params)  # type: ignore[arg-type]


def test_empty_sketch() -> None:
    sketch = QuantileSketch()

    assert (sketch.count, sketch.sum, sketch.min, sketch.max) == (0, 0.0, None, None)
    assert sketch.quantile(0.5) is None
    assert sketch.quantiles([0.0, 1.0]) == [None, None]
    assert QuantileSketch.from_bytes(sketch.to_bytes()) == sketch
    sketch.merge(QuantileSketch())
    assert sketch == QuantileSketch()
    assert QuantileSketch.merged([None, QuantileSketch().to_bytes()]) == QuantileSketch()
    assert "count=0" in repr(sketch)


# -- merging ------------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    data=datasets(),
    cuts=st.lists(st.integers(0, 10**6), max_size=4),
    rng=st.randoms(use_true_random=False),
    max_bins=st.sampled_from([2048, 8, 1]),
)
def test_merging_sketches_of_parts_gives_the_sketch_of_the_whole(
    data: list[float], cuts: list[int], rng: random.Random, max_bins: int
) -> None:
    whole = sketch_of(data, max_bins=max_bins)
    shuffled = list(data)
    rng.shuffle(shuffled)
    bounds = sorted({0, len(shuffled), *(c % (len(shuffled) + 1) for c in cuts)})
    parts = []
    for start, end in itertools.pairwise(bounds):
        part = QuantileSketch(max_bins=max_bins)
        part.add_many(shuffled[start:end])
        parts.append(part)
    rng.shuffle(parts)

    merged = QuantileSketch(max_bins=max_bins)
    for part in parts:
        merged.merge(part)
    from_bytes = QuantileSketch.merged([None, *(p.to_bytes() for p in parts)])

    assert merged.to_bytes() == whole.to_bytes()
    assert from_bytes.to_bytes() == whole.to_bytes()
    assert merged == whole
    assert merged.quantiles(QS) == whole.quantiles(QS)
    assert merged.sum == exact_sum(data)


def test_merging_a_sketch_into_itself_doubles_it() -> None:
    sketch = sketch_of([1.5, -2.0, 0.0, 3.25])

    sketch.merge(sketch)

    assert sketch == sketch_of([1.5, -2.0, 0.0, 3.25] * 2)


def test_merging_different_accuracies_is_rejected() -> None:
    fine, coarse = sketch_of([1.0]), sketch_of([1.0], relative_accuracy=0.02)

    with pytest.raises(ValueError, match="relative_accuracy"):
        fine.merge(coarse)
    with pytest.raises(ValueError, match="relative_accuracy"):
        QuantileSketch.merged([fine.to_bytes(), coarse.to_bytes()])
    assert fine == sketch_of([1.0])


# -- bounded memory -----------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(high=st.lists(st.floats(1.0, 2.0), min_size=1, max_size=100), sign=st.sampled_from([1.0, -1.0]))
def test_collapsing_loses_accuracy_only_for_values_nearest_zero(high: list[float], sign: float) -> None:
    max_bins = 64
    small = [10.0 ** (-6 + 4 * k / 499) for k in range(500)]  # 1e-6 to 1e-2: about 460 bins
    data = [sign * x for x in small + high]
    sketch = QuantileSketch(max_bins=max_bins)
    sketch.add_many(data[:250])
    for x in data[250:]:
        sketch.add(x)

    assert sketch.count == len(data)
    assert sketch.sum == exact_sum(data)
    assert len(sketch.to_bytes()) < 4 * max_bins + 60  # ~460 bins would not fit
    large = [q for q in [k / 200 for k in range(201)] if abs(exact_quantile(data, q)) >= 1.0]
    assert large
    assert_within_accuracy(sketch, data, large)


# -- bytes --------------------------------------------------------------------------------------------


def spread(n: int, count: int = 1, start: float = 1.0) -> QuantileSketch:
    """``n`` neighbouring bins holding ``count`` values each, from ``start`` up."""
    sketch = QuantileSketch()
    gamma = (1 + ACCURACY) / (1 - ACCURACY)
    for i in range(n):
        sketch.add(start * 1.001 * gamma**i, count)
    return sketch


def day_of_durations(n: int, sigma: float, seed: int = 1) -> QuantileSketch:
    """What a store's day cell looks like: many lognormal durations."""
    rng = random.Random(seed)
    sketch = QuantileSketch()
    sketch.add_many([rng.lognormvariate(math.log(0.05), sigma) for _ in range(n)])
    return sketch


def bin_count(sketch: QuantileSketch) -> int:
    return int(repr(sketch).rsplit("bins=", 1)[1].rstrip(")"))


# Sketches that exercise every part of the encoding: empty, zeros only, both signs, counts of every
# width, gaps of more than a byte, collapsed stores, compressed bins.
SAMPLES = [
    QuantileSketch(),
    sketch_of([0.0, -0.0]),
    sketch_of([0.0, -3.0, 1.0, 2.0, 1e300, 1e-300, 2.0]),  # gaps of 2 bytes, a sum of 2000 bits
    sketch_of([1e-307, 1e307, -1e-307, -1e307]),  # gaps of 4 bytes
    sketch_of([1.0, -2.5, 7.0, 1e-3, 3.0], relative_accuracy=0.05, max_bins=2),  # collapsed
    spread(200),
    spread(30, count=300),  # counts of 2 bytes
    spread(40, count=70_000),  # of 4 bytes
    spread(5, count=2**40),  # of 8 bytes
    day_of_durations(20_000, 1.5),
]


@settings(max_examples=150, deadline=None)
@given(datasets(), st.sampled_from([0.01, 0.001, 0.05]))
def test_bytes_round_trip_exactly(data: list[float], accuracy: float) -> None:
    sketch = sketch_of(data, relative_accuracy=accuracy)

    copy = QuantileSketch.from_bytes(sketch.to_bytes())

    assert copy == sketch
    assert copy.to_bytes() == sketch.to_bytes()
    assert (copy.count, copy.sum, copy.min, copy.max) == (sketch.count, sketch.sum, sketch.min, sketch.max)
    assert copy.relative_accuracy == accuracy
    assert copy.quantiles(QS) == sketch.quantiles(QS)
    copy.add_many(data)
    sketch.add_many(data)
    assert copy == sketch
    assert copy.to_bytes() == sketch.to_bytes()


@settings(max_examples=150, deadline=None)
@given(
    first=datasets(max_size=40),
    later=st.lists(st.one_of(values, st.lists(values, max_size=30)), max_size=8),
    max_bins=st.sampled_from([2048, 12, 3, 1]),
)
def test_a_decoded_sketch_changed_in_any_way_encodes_like_a_new_one(
    first: list[float], later: list[float | list[float]], max_bins: int
) -> None:
    # A decoded sketch keeps what it decoded to encode faster; adding, merging and collapsing must all
    # leave it encoding exactly what a sketch built from scratch does.
    decoded = QuantileSketch.from_bytes(sketch_of(first, max_bins=max_bins).to_bytes())
    everything = list(first)
    for step, change in enumerate(later):
        if isinstance(change, float):
            decoded.add(change)
            everything.append(change)
        elif step % 2:
            decoded.add_many(change)
            everything += change
        else:
            part = QuantileSketch(max_bins=max_bins)
            part.add_many(change)
            decoded.merge(QuantileSketch.from_bytes(part.to_bytes()))
            everything += change
        assert decoded.to_bytes() == sketch_of(everything, max_bins=max_bins).to_bytes()
        decoded = QuantileSketch.from_bytes(decoded.to_bytes()) if step % 3 == 2 else decoded


def test_a_decoded_full_sketch_that_collapses_encodes_like_a_new_one() -> None:
    # Three bins, the most max_bins allows; a value between them makes a fourth, and the lowest is folded
    # into the next: as many bins as were decoded, but not the same ones.
    data = [1.0, 2.0, 4.0]
    decoded = QuantileSketch.from_bytes(sketch_of(data, max_bins=3).to_bytes())
    decoded.add(3.0)
    assert decoded.to_bytes() == sketch_of([*data, 3.0], max_bins=3).to_bytes()
    decoded = QuantileSketch.from_bytes(sketch_of([-x for x in data], max_bins=3).to_bytes())
    decoded.add_many([-3.0])
    assert decoded.to_bytes() == sketch_of([-x for x in [*data, 3.0]], max_bins=3).to_bytes()


@pytest.mark.parametrize("sketch", SAMPLES, ids=range(len(SAMPLES)))
def test_every_kind_of_sketch_round_trips(sketch: QuantileSketch) -> None:
    data = sketch.to_bytes()
    copy = QuantileSketch.from_bytes(data)

    assert copy == sketch
    assert copy.to_bytes() == data
    assert QuantileSketch.from_bytes(bytearray(data)) == QuantileSketch.from_bytes(memoryview(data)) == sketch
    assert copy.quantiles(QS) == sketch.quantiles(QS)


def test_sizes() -> None:
    # A few dozen bins (here 30 to 60, from 80 values) take about 130 bytes; 66 of them are the fixed
    # header, the rest the sum and the bins.
    rng = random.Random(3)
    sketch = QuantileSketch()
    sketch.add_many([rng.lognormvariate(math.log(0.05), 0.5) for _ in range(80)])
    assert 30 <= bin_count(sketch) <= 60
    assert len(sketch.to_bytes()) < 160

    # A day of durations: 50 bins of 200 000 values take about 180 bytes, 500 bins about 650.
    narrow, wide = day_of_durations(200_000, 0.125), day_of_durations(200_000, 1.2)
    assert 45 <= bin_count(narrow) <= 60
    assert len(narrow.to_bytes()) < 220
    assert 450 <= bin_count(wide) <= 550
    assert len(wide.to_bytes()) < 800

    # Neighbouring bins of equal counts compress to almost nothing.
    assert len(spread(500).to_bytes()) < 120


def test_every_truncation_of_a_valid_encoding_is_rejected() -> None:
    for sketch in SAMPLES:
        data = sketch.to_bytes()
        for end in range(len(data)):
            with pytest.raises(ValueError, match="truncated"):
                QuantileSketch.from_bytes(data[:end])


def test_unknown_versions_and_trailing_bytes_are_rejected() -> None:
    for sketch in SAMPLES:
        data = sketch.to_bytes()
        with pytest.raises(ValueError, match=r"unknown version 1 \(this clisight reads version 2\)"):
            QuantileSketch.from_bytes(b"\x01" + data[1:])
        with pytest.raises(ValueError, match="unknown version 3"):
            QuantileSketch.from_bytes(b"\x03" + data[1:])
        with pytest.raises(ValueError, match="1 unexpected bytes after the end"):
            QuantileSketch.from_bytes(data + b"\x00")


def test_a_sketch_too_large_to_encode_says_so() -> None:
    sketch = QuantileSketch()
    sketch.add(1.0, count=2**64)

    with pytest.raises(OverflowError, match="2\\*\\*64"):
        sketch.to_bytes()


EMPTY_HEADER = struct.Struct("<BBdIQ")  # version, flags, relative_accuracy, max_bins, count
BODY = struct.Struct("<ddQHHIIii")  # min, max, zeros, sum shift, sum length, bin counts, first indices


def layout(
    flags: int = 0x00,  # gap width code in bits 0-1, count width code in bits 2-3, 0x10: deflated
    accuracy: float = 0.01,
    max_bins: int = 2048,
    count: int = 2,
    low: float = 1.0,
    high: float = 2.0,
    zero: int = 0,
    shift: int = 1074,  # the exact sum 3.0 is 3 << 1074 units of 2**-1074
    mantissa: bytes = b"\x03",
    mantissa_size: int | None = None,
    pos_size: int = 2,
    neg_size: int = 0,
    pos_first: int = 0,  # 1.0 goes to bin 0
    neg_first: int = 0,
    bins: bytes = b"\x23\x01\x01",  # 2.0 goes to bin 35: one gap of 35, then two counts of 1
    deflate: bool = False,
) -> bytes:
    """Version 2 of the encoding, written out by hand: the sketch of [1.0, 2.0] unless told otherwise."""
    if deflate:
        bins = zlib.compress(bins, 9, -15)
        flags |= 0x10
    return (
        EMPTY_HEADER.pack(2, flags, accuracy, max_bins, count)
        + BODY.pack(
            low,
            high,
            zero,
            shift,
            len(mantissa) if mantissa_size is None else mantissa_size,
            pos_size,
            neg_size,
            pos_first,
            neg_first,
        )
        + mantissa
        + bins
    )


def test_the_version_2_layout_does_not_change() -> None:
    # Stored sketches outlive the code that wrote them: a new layout needs a new version byte.
    assert QuantileSketch().to_bytes() == EMPTY_HEADER.pack(2, 0, 0.01, 2048, 0)
    assert sketch_of([1.0, 2.0]).to_bytes() == layout()
    assert len(layout()) == 70
    assert QuantileSketch.from_bytes(layout()) == sketch_of([1.0, 2.0])

    # Both signs, zeros, counts two bytes wide: one plane of low bytes, then one of high bytes.
    mixed = QuantileSketch(relative_accuracy=0.01, max_bins=100)
    mixed.add(-3.0, count=300)  # bin 55 of the negative store
    mixed.add(1.0)
    mixed.add(0.0)
    expected = layout(
        flags=0x04,
        max_bins=100,
        count=302,
        low=-3.0,
        high=1.0,
        zero=1,
        mantissa=(-899).to_bytes(2, "little", signed=True),
        pos_size=1,
        neg_size=1,
        neg_first=55,
        bins=bytes([1, 300 & 0xFF, 0, 300 >> 8]),
    )
    assert mixed.to_bytes() == expected
    assert QuantileSketch.from_bytes(expected) == mixed

    # A count of 256 has a low byte of 0, and is no count of 0.
    heavy = QuantileSketch()
    heavy.add(1.0, count=256)
    heavy.add(2.0)
    expected = layout(flags=0x04, count=257, shift=1075, mantissa=b"\x81\x00", bins=b"\x23\x00\x01\x01\x00")
    assert heavy.to_bytes() == expected
    assert QuantileSketch.from_bytes(expected) == heavy

    # Bins that compress are deflated (the compressed bytes depend on zlib, what they inflate to does not).
    gamma = (1 + ACCURACY) / (1 - ACCURACY)
    values = [1.001 * gamma**i for i in range(100)]  # bins 1 to 100, one value each
    units = int(sum(Fraction(x) for x in values) * 2**1074)
    shift = (units & -units).bit_length() - 1
    mantissa = (units >> shift).to_bytes(((units >> shift).bit_length() + 8) // 8, "little", signed=True)
    run = QuantileSketch()
    run.add_many(values)
    data = run.to_bytes()
    head = layout(
        flags=0x10,
        count=100,
        low=values[0],
        high=values[-1],
        shift=shift,
        mantissa=mantissa,
        pos_size=100,
        pos_first=1,
        bins=b"",
    )
    assert data[: len(head)] == head
    assert zlib.decompress(data[len(head) :], -15) == b"\x01" * 99 + b"\x01" * 100  # 99 gaps, 100 counts
    assert len(data) < len(head) + 20


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ({"accuracy": 0.0}, "relative_accuracy"),
        ({"max_bins": 0}, "max_bins"),
        ({"max_bins": 1}, "2 positive bins, more than max_bins 1"),
        ({"neg_size": 2**20, "count": 2**40}, "more than max_bins"),
        ({"pos_size": 100_000, "max_bins": 200_000, "count": 2**40}, "more than there are bin indices"),
        ({"count": 3}, "count 3 is not the total of the bins"),
        ({"count": 1}, "count 1 is not the total of the bins"),
        ({"zero": 5, "count": 4}, "not the total of the bins"),
        ({"mantissa": b"\x64"}, "sum lies outside"),
        ({"mantissa": b"\xfd"}, "sum lies outside"),  # -3.0
        ({"shift": 5000}, "sum shift 5000 is out of range"),
        ({"mantissa_size": 300}, "sum takes 300 bytes"),
        ({"low": 3.0}, "not finite and ordered"),
        ({"low": math.nan}, "not finite and ordered"),
        ({"high": math.inf}, "not finite and ordered"),
        ({"low": -1.0}, "do not match the bins"),
        ({"low": -5.0, "high": 5.0}, "do not match the bins"),
        ({"zero": 1, "count": 3}, "do not match the bins"),
        ({"bins": b"\x23\x00\x02"}, "a bin has count 0"),
        # counts two bytes wide, 256 and 0: low bytes 0 and 0, high bytes 1 and 0
        ({"bins": b"\x23\x00\x00\x01\x00", "flags": 0x04, "count": 256}, "a bin has count 0"),
        ({"pos_first": 2 * 10**6}, "positive bin index 2000000 is out of range"),
        ({"pos_first": 35_400, "bins": b"\xff\x01\x01"}, "positive bin index 35655 is out of range"),
        ({"pos_first": -40_000}, "out of range"),
        ({"bins": b"\x00\x01\x01"}, "not increasing"),
        ({"neg_first": 5}, "negative bins are empty but start at index 5"),
        ({"flags": 0x20}, "unknown flags 0x20"),
        ({"pos_size": 3, "count": 3}, "truncated"),
        ({"flags": 0x01}, "truncated"),  # gaps two bytes wide: 4 bytes of bins needed
        ({"bins": b"\x23\x01\x01\x00"}, "1 unexpected bytes after the end"),
        ({"bins": b"\x23\x01\x01" + b"\x00" * 100_000, "deflate": True}, "inflate beyond the 3 bytes"),
        ({"bins": b"\x23\x01", "deflate": True}, "inflate to 2 bytes, not the 3"),
        ({"bins": b"\x07\x00", "flags": 0x10}, "compressed bins are damaged"),
    ],
)
def test_inconsistent_encodings_are_rejected_with_the_reason(damage: dict[str, object], reason: str) -> None:
    data = layout(**damage)  # type: ignore[arg-type]

    with pytest.raises(ValueError, match=reason):
        QuantileSketch.from_bytes(data)


def test_damaged_empty_encodings_are_rejected() -> None:
    with pytest.raises(ValueError, match="truncated before the version"):
        QuantileSketch.from_bytes(b"")
    with pytest.raises(ValueError, match="unknown flags 0x04"):
        QuantileSketch.from_bytes(EMPTY_HEADER.pack(2, 0x04, 0.01, 2048, 0))
    with pytest.raises(ValueError, match="max_bins"):
        QuantileSketch.from_bytes(EMPTY_HEADER.pack(2, 0, 0.01, 0, 0))


def test_deflated_bins_with_more_after_them_are_rejected() -> None:
    data = layout(deflate=True)
    assert QuantileSketch.from_bytes(data) == sketch_of([1.0, 2.0])

    with pytest.raises(ValueError, match="2 unexpected bytes after the end"):
        QuantileSketch.from_bytes(data + b"\x00\x01")


def test_a_decompression_bomb_is_stopped_at_the_declared_size() -> None:
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(1 << 20)
    bomb = deflater.compress(b"\x23\x01\x01") + b"".join(deflater.compress(zeros) for _ in range(64))
    data = layout(flags=0x10, bins=bomb + deflater.flush())  # 64 MB of zeros in about 64 kB
    assert len(data) < 100_000

    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="inflate beyond"):
            QuantileSketch.from_bytes(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * len(data) + 200_000  # copies of the input and zlib's window, not 64 MB


HEADER = EMPTY_HEADER.pack(2, 0, 0.01, 2048, 2)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=100),
        st.binary(max_size=100).map(lambda tail: HEADER + tail),
        st.binary(max_size=40).map(lambda tail: layout()[:-3] + tail),
        st.binary(max_size=40).map(lambda tail: layout(flags=0x10)[:-3] + tail),
    )
)
def test_arbitrary_bytes_decode_to_a_valid_sketch_or_raise_value_error(data: bytes) -> None:
    try:
        sketch = QuantileSketch.from_bytes(data)
    except ValueError:
        return
    assert QuantileSketch.from_bytes(sketch.to_bytes()) == sketch
    sketch.quantiles(QS)


@settings(max_examples=300, deadline=None)
@given(
    flags=st.integers(0, 0x1F),
    count=st.integers(0, 2**64 - 1),
    zero=st.integers(0, 4),
    pos_size=st.integers(0, 4),
    neg_size=st.integers(0, 4),
    pos_first=st.integers(-40_000, 40_000),
    neg_first=st.integers(-40_000, 40_000),
    low=st.floats(-10.0, 10.0),
    high=st.floats(-10.0, 10.0),
    mantissa=st.integers(-(2**70), 2**70),
    shift=st.integers(1000, 1100),
    bins=st.binary(max_size=40),
    deflate=st.booleans(),
)
def test_structured_garbage_decodes_to_a_valid_sketch_or_raises_value_error(
    mantissa: int, deflate: bool, flags: int, **fields: int | float | bytes
) -> None:
    data = layout(
        flags=flags & 0x0F,
        deflate=deflate,
        mantissa=mantissa.to_bytes((mantissa.bit_length() + 8) // 8, "little", signed=True),
        **fields,  # type: ignore[arg-type]
    )
    try:
        sketch = QuantileSketch.from_bytes(data)
    except ValueError:
        return
    assert QuantileSketch.from_bytes(sketch.to_bytes()) == sketch
    answers = sketch.quantiles(QS)
    assert all(sketch.min <= a <= sketch.max for a in answers)  # type: ignore[operator]


@settings(max_examples=200, deadline=None)
@given(st.one_of(datasets(max_size=20), datasets(magnitudes, max_size=300)), st.data())
def test_damaged_encodings_decode_to_a_valid_sketch_or_raise_value_error(
    data: list[float], draw: st.DataObject
) -> None:
    encoded = bytearray(sketch_of(data).to_bytes())
    for _ in range(draw.draw(st.integers(1, 3))):
        encoded[draw.draw(st.integers(0, len(encoded) - 1))] = draw.draw(st.integers(0, 255))
    try:
        sketch = QuantileSketch.from_bytes(bytes(encoded))
    except ValueError:
        return
    assert QuantileSketch.from_bytes(sketch.to_bytes()) == sketch
    answers = sketch.quantiles(QS)
    assert all(sketch.min <= a <= sketch.max for a in answers)  # type: ignore[operator]
