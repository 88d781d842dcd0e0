"""QuantileSketch: quantiles within 1 % of the exact ones, merges that equal one sketch of everything,
bytes that round-trip exactly and never decode garbage into anything but ValueError."""

from __future__ import annotations

import itertools
import math
import random
import struct
import sys
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


@pytest.mark.parametrize("params", [{"relative_accuracy": 0.0}, {"relative_accuracy": 1.0}, {"max_bins": 0}])
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


def test_a_few_dozen_bins_take_well_under_200_bytes() -> None:
    rng = random.Random(3)
    sketch = QuantileSketch()
    sketch.add_many([rng.lognormvariate(math.log(0.05), 0.5) for _ in range(80)])

    assert 30 <= int(repr(sketch).rsplit("bins=", 1)[1].rstrip(")")) <= 60
    assert len(sketch.to_bytes()) < 200


def test_every_truncation_of_a_valid_encoding_is_rejected() -> None:
    for sketch in (QuantileSketch(), sketch_of([0.0, -3.0, 1.0, 2.0, 1e300, 1e-300, 2.0])):
        data = sketch.to_bytes()
        for end in range(len(data)):
            with pytest.raises(ValueError, match="truncated"):
                QuantileSketch.from_bytes(data[:end])


def test_unknown_version_and_trailing_bytes_are_rejected() -> None:
    data = sketch_of([1.0, 2.0]).to_bytes()

    with pytest.raises(ValueError, match="version 2"):
        QuantileSketch.from_bytes(b"\x02" + data[1:])
    with pytest.raises(ValueError, match="unexpected bytes"):
        QuantileSketch.from_bytes(data + b"\x00")


def varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def layout(
    accuracy: float = 0.01,
    max_bins: int = 2048,
    count: int = 2,
    low: float = 1.0,
    high: float = 2.0,
    sum_zigzag: int = 6,  # the exact sum 3.0 is 3 << 1074 units: mantissa 3 (zigzag 6), shift 1074
    zero: int = 0,
    # two bins: index 0 (zigzag 0) count 1; then count 1 with a gap (1 << 1 | 1), 35 - 2 indices on
    positive: bytes = bytes([2, 0, 1, 3, 33]),
    negative: bytes = bytes([0]),
) -> bytes:
    """Version 1 of the encoding, written out by hand: the sketch of [1.0, 2.0] unless told otherwise."""
    return (
        b"\x01"
        + struct.pack("<d", accuracy)
        + varint(max_bins)
        + varint(count)
        + struct.pack("<dd", low, high)
        + varint(sum_zigzag)
        + varint(1074)
        + varint(zero)
        + positive
        + negative
    )


def test_the_version_1_layout_does_not_change() -> None:
    # Stored sketches outlive the code that wrote them: a new layout needs a new version byte.
    assert sketch_of([1.0, 2.0]).to_bytes() == layout()
    assert QuantileSketch.from_bytes(layout()) == sketch_of([1.0, 2.0])


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ({"accuracy": 0.0}, "relative_accuracy"),
        ({"max_bins": 0}, "max_bins"),
        ({"max_bins": 1}, "more than max_bins"),
        ({"count": 3}, "not the total of the bins"),
        ({"sum_zigzag": 200}, "sum lies outside"),
        ({"low": 3.0}, "not finite and ordered"),
        ({"low": math.nan}, "not finite and ordered"),
        ({"low": -1.0}, "do not match the bins"),
        ({"zero": 1, "count": 3}, "do not match the bins"),
        ({"positive": bytes([2, 0, 0, 3, 33])}, "count 0"),
        ({"positive": bytes([1]) + varint(2 * 10**6) + bytes([2])}, "out of range"),
        ({"negative": bytes([5])}, "truncated"),
    ],
)
def test_inconsistent_encodings_are_rejected_with_the_reason(damage: dict[str, object], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        QuantileSketch.from_bytes(layout(**damage))  # type: ignore[arg-type]


HEADER = b"\x01" + struct.pack("<d", 0.01)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=64), st.binary(max_size=64).map(lambda tail: HEADER + tail)))
def test_arbitrary_bytes_decode_to_a_valid_sketch_or_raise_value_error(data: bytes) -> None:
    try:
        sketch = QuantileSketch.from_bytes(data)
    except ValueError:
        return
    assert QuantileSketch.from_bytes(sketch.to_bytes()) == sketch
    sketch.quantiles(QS)


@settings(max_examples=200, deadline=None)
@given(datasets(max_size=20), st.data())
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
