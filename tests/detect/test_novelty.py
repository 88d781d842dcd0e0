"""The default detector: context novelty scored against the series' own novelty, with bounded state."""

from __future__ import annotations

import json
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clisight.detect import (
    DEFAULT_DETECTOR,
    DEFAULT_THRESHOLD,
    NoveltyDetector,
    StateError,
    default_threshold,
    detector_from_state,
    make_detector,
)
from clisight.detect._registry import MIN_PROBATION
from clisight.detect._tails import _anscombe, _compound_tail, _count_tail, _poisson_tail
from clisight.detect.novelty import DEFAULT_PROBATION, MAX_CONTEXTS

T0 = 1_700_000_000.0
HOUR = 3600.0


def daily(n: int, noise: float, seed: int, shift_at: int | None = None, shift: float = 0.0) -> list[float]:
    rng = random.Random(seed)
    values = []
    for i in range(n):
        v = 200.0 + 30.0 * math.sin(2 * math.pi * i / 24) + rng.gauss(0.0, noise)
        if shift_at is not None and i >= shift_at:
            v += shift
        values.append(v)
    return values


def alerts(detector: NoveltyDetector, values: list[float], step: float = HOUR) -> list[int]:
    level = detector.alert_level
    return [i for i, v in enumerate(values) if detector.update(T0 + step * i, v) >= level]


def test_it_is_the_default_and_its_threshold_is_the_shipped_one():
    assert DEFAULT_DETECTOR == "novelty"
    assert default_threshold() == DEFAULT_THRESHOLD == NoveltyDetector().alert_level


def test_the_learning_period_follows_a_known_length_as_in_nab():
    assert make_detector("novelty", series_length=4000).warmup_points == 600  # 15 %
    assert make_detector("novelty", series_length=100_000).warmup_points == 750  # NAB's cap
    assert make_detector("novelty", series_length=40).warmup_points == MIN_PROBATION
    assert make_detector("novelty").warmup_points == DEFAULT_PROBATION  # a live series
    assert make_detector("novelty", series_length=4000, probation=99).warmup_points == 99


def test_nothing_scores_during_the_learning_period_even_a_huge_jump():
    detector = NoveltyDetector(probation=50)
    scores = [detector.update(T0 + i, 1.0 if i < 25 else 1e9) for i in range(50)]
    assert scores == [0.0] * 50


def test_a_level_shift_in_an_hourly_daily_pattern_alerts_once_at_the_shift():
    values = daily(3000, 0.0, 1, shift_at=2000, shift=80.0)
    detector = make_detector("novelty", series_length=3000)
    assert alerts(detector, values) == [2000]


@pytest.mark.parametrize("seed", range(4))
def test_with_noise_the_shift_is_still_reported_once_within_its_incident(seed):
    values = daily(3000, 4.0, seed, shift_at=2000, shift=80.0)
    found = alerts(make_detector("novelty", series_length=3000), values)
    assert [i for i in found if 2000 <= i < 2100] == [2000]


def test_a_spike_on_a_quiet_series_is_found_at_once():
    rng = random.Random(3)
    values = [10.0 + rng.gauss(0, 0.3) for _ in range(2000)]
    values[1100] = 30.0
    found = alerts(NoveltyDetector(probation=600), values, step=300.0)
    assert any(1100 <= i <= 1101 for i in found)


def test_a_far_larger_anomaly_is_not_hidden_by_the_mask_of_a_smaller_one():
    rng = random.Random(5)
    values = [100.0 + rng.gauss(0, 1.0) for _ in range(1000)]
    values[800] = 130.0  # alerts and masks what follows
    for i in range(830, 840):
        values[i] = 10_000.0  # far beyond anything in the first incident
    detector = NoveltyDetector(probation=600)
    found = alerts(detector, values, step=300.0)
    assert 800 in found
    assert any(830 <= i < 835 for i in found)


def test_the_mask_merges_one_incident_into_one_alert():
    values = daily(1200, 0.0, 2, shift_at=900, shift=50.0)
    for i in range(900, 1200, 3):
        values[i] += 5.0  # the new level is also noisier: new contexts for a while
    found = alerts(NoveltyDetector(probation=300), values)
    assert [i for i in found if i >= 900][:1] == [900]
    assert len([i for i in found if 900 <= i < 950]) == 1


def test_state_is_bounded_and_json_after_a_long_noisy_series():
    rng = random.Random(9)
    detector = NoveltyDetector(probation=200)
    for i in range(20_000):
        detector.update(T0 + 60.0 * i, rng.paretovariate(1.1))  # heavy tails: many new values
    state = detector.to_state()
    assert len(state["state"]["seen"]) <= MAX_CONTEXTS
    assert state["state"]["buffer"] == []  # the learning period's values are not kept
    assert len(json.dumps(state)) < 2_000_000


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), split=st.integers(1, 900), probation=st.integers(2, 400))
def test_state_round_trips_before_during_and_after_learning(seed, split, probation):
    rng = random.Random(seed)
    values = [50 + 10 * rng.random() + (40 if 600 < i < 620 else 0) for i in range(1000)]
    original = NoveltyDetector(probation=probation)
    for i, v in enumerate(values[:split]):
        original.update(T0 + 300.0 * i, v)
    restored = detector_from_state(json.loads(json.dumps(original.to_state())))
    for i, v in enumerate(values[split:], start=split):
        assert restored.update(T0 + 300.0 * i, v) == original.update(T0 + 300.0 * i, v)


@settings(max_examples=30, deadline=None)
@given(
    values=st.lists(st.floats(-1e12, 1e12), min_size=1, max_size=300),
    probation=st.integers(2, 50),
)
def test_scores_stay_between_0_and_1(values, probation):
    detector = NoveltyDetector(probation=probation)
    for i, v in enumerate(values):
        assert 0.0 <= detector.update(T0 + i, v) <= 1.0


@settings(max_examples=50, deadline=None)
@given(k=st.integers(1, 60), mean=st.floats(0.01, 20.0), extra=st.just(0.0) | st.floats(1e-3, 50.0))
def test_count_tail_matches_the_summed_distribution(k, mean, extra):
    var = mean + extra
    if extra == 0.0:
        pmf = [math.exp(-mean + i * math.log(mean) - math.lgamma(i + 1)) for i in range(400)]
    else:
        r = mean * mean / (var - mean)
        pi = 1.0 - mean / var
        pmf = [
            math.exp(
                math.lgamma(i + r)
                - math.lgamma(r)
                - math.lgamma(i + 1)
                + r * math.log1p(-pi)
                + i * math.log(pi)
            )
            for i in range(4000)
        ]
    head = 1.0 - sum(pmf[:k])
    expected = head if head > 1e-6 else sum(pmf[k:])  # whichever sum is accurate
    got = _count_tail(k, mean, var)
    assert got == pytest.approx(expected, rel=1e-5, abs=1e-12) or (expected < 1e-290 and got <= 1e-290)


def test_poisson_tail_far_out_is_not_zero():
    assert 0.0 < _poisson_tail(200, 0.01) < 1e-300 * 10


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="probation"):
        NoveltyDetector(probation=1)
    with pytest.raises(ValueError, match="levels"):
        NoveltyDetector(levels=0)
    with pytest.raises(ValueError, match="orders"):
        NoveltyDetector(orders=4)


# -- the design alternatives issue 9's protocol compares (bench/nab_protocol.py) --------------------
ALTERNATIVES = [
    {"grids": 2},
    {"stabilise": True},
    {"trim": 0.01},
    {"per_point": True, "tail": "poisson", "min_window": 5},
    {"tail": "compound"},
    {"tail": "compound", "grids": 3},
    {"tail": "compound", "freeze": True},
    {"tail": "either"},
    # third round
    {"excursions": True},
    {"excursions": True, "stabilise": True},
    {"calibrate": 1.0},
    {"noise_bins": 1.0},
    {"smooth": 0.5},
    {"excursions": True, "smooth": 0.5},
    {"memory": 4.0, "ramp": True},
]


def counts_series(n: int, seed: int) -> list[float]:
    """Integer counts (so ``stabilise`` engages) with a daily rhythm and a burst at 600-620."""
    rng = random.Random(seed)
    return [
        float(round(20 + 8 * math.sin(i / 12) + 3 * rng.random() + (60 if 600 < i < 620 else 0)))
        for i in range(n)
    ]


@pytest.mark.parametrize("params", ALTERNATIVES, ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()))
@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**16), split=st.integers(1, 900), probation=st.integers(2, 300))
def test_every_alternative_round_trips_its_state(params, seed, split, probation):
    values = counts_series(1000, seed)
    original = NoveltyDetector(probation=probation, **params)
    for i, v in enumerate(values[:split]):
        original.update(T0 + HOUR * i, v)
    restored = detector_from_state(json.loads(json.dumps(original.to_state())))
    for i, v in enumerate(values[split:], start=split):
        assert restored.update(T0 + HOUR * i, v) == original.update(T0 + HOUR * i, v)


@pytest.mark.parametrize("params", ALTERNATIVES, ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()))
def test_every_alternative_finds_a_10x_step_and_is_silent_on_a_constant(params):
    level = 0.3  # the alternatives' step-1 thresholds lie between 0.16 and 0.44
    quiet = NoveltyDetector(probation=200, alert_level=level, **params)
    assert not [i for i in range(3000) if quiet.update(T0 + 300.0 * i, 7.0) >= level]
    rng = random.Random(5)
    values = [100.0 + rng.gauss(0, 2.0) for _ in range(1500)] + [
        1000.0 + rng.gauss(0, 20.0) for _ in range(50)
    ]
    step = NoveltyDetector(probation=200, alert_level=level, **params)
    found = [i for i, v in enumerate(values) if step.update(T0 + 300.0 * i, v) >= level]
    assert any(1500 <= i < 1505 for i in found)


@settings(max_examples=50, deadline=None)
@given(
    k=st.integers(1, 40),
    mu=st.floats(0.01, 5.0),
    weights=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=6).filter(lambda w: sum(w) > 0.01),
)
def test_compound_tail_matches_the_convolved_distribution(k, mu, weights):
    sizes = [0.0] + [w / sum(weights) for w in weights]
    # P(S = s) by summing over the number of events n: Poisson(n) times the n-fold convolution of sizes
    dist = [1.0] + [0.0] * k  # sizes convolved 0 times
    pmf = [0.0] * (k + 1)
    n = 0
    while True:
        weight = math.exp(-mu + n * math.log(mu) - math.lgamma(n + 1))
        for s in range(k + 1):
            pmf[s] += weight * dist[s]
        if weight < 1e-18 or n > 200:
            break
        dist = [
            sum(dist[s - j] * sizes[j] for j in range(1, min(s, len(sizes) - 1) + 1)) for s in range(k + 1)
        ]
        n += 1
    expected = max(1.0 - sum(pmf[:k]), 1e-12)
    assert _compound_tail(k, mu, sizes) == pytest.approx(expected, rel=1e-6, abs=1e-11)


@given(a=st.floats(-1e9, 1e9), b=st.floats(-1e9, 1e9))
def test_anscombe_is_increasing_and_continuous_at_zero(a, b):
    if a < b:
        assert _anscombe(a) <= _anscombe(b)
    assert _anscombe(-1e-12) == pytest.approx(_anscombe(0.0))
    assert _anscombe(9.0 - 0.375) == pytest.approx(6.0)


def test_stabilise_engages_only_on_non_negative_integer_learning_periods():
    counts = NoveltyDetector(probation=50, stabilise=True)
    floats = NoveltyDetector(probation=50, stabilise=True)
    for i in range(60):
        counts.update(T0 + i, float(i % 7))
        floats.update(T0 + i, i % 7 + 0.5)
    assert counts.stabilised and not floats.stabilised


def test_the_alternatives_bad_parameters_are_refused():
    for bad, match in (
        ({"grids": 0}, "grids"),
        ({"trim": 0.5}, "trim"),
        ({"tail": "gauss"}, "tail"),
        ({"min_window": 0}, "min_window"),
        ({"excursions": True, "grids": 2}, "excursions"),
        ({"excursions": True, "tail": "compound"}, "excursions"),
        ({"calibrate": -1.0}, "calibrate"),
        ({"noise_bins": math.inf}, "noise_bins"),
        ({"smooth": math.nan}, "smooth"),
    ):
        with pytest.raises(ValueError, match=match):
            NoveltyDetector(**bad)


def test_a_state_saved_before_the_alternatives_existed_still_restores():
    values = daily(1200, 3.0, 4)
    original = NoveltyDetector(probation=300)
    for i, v in enumerate(values[:700]):
        original.update(T0 + HOUR * i, v)
    state = json.loads(json.dumps(original.to_state()))
    # the format of the first release: one grid, so scalars and a flat day of bins, and no
    # compound-tail or stabilisation fields
    old = state["state"]
    old["prev"], old["prev2"], old["lag"] = old["prev"][0], old["prev2"][0], old["lag"][0]
    for name in ("rate", "sizes", "stabilised", *THIRD_ROUND_FIELDS):
        del old[name]
    for name in (*SECOND_ROUND_PARAMS, *THIRD_ROUND_PARAMS):
        del state["params"][name]
    restored = detector_from_state(state)
    for i, v in enumerate(values[700:], start=700):
        assert restored.update(T0 + HOUR * i, v) == original.update(T0 + HOUR * i, v)


SECOND_ROUND_PARAMS = ("grids", "trim", "stabilise", "per_point", "min_window", "tail", "freeze")
THIRD_ROUND_FIELDS = (
    *("outs", "ehist", "ehist_sum", "emean", "evar", "phist", "pseen", "ring", "ring_at", "ring_sum"),
)
THIRD_ROUND_PARAMS = ("excursions", "calibrate", "noise_bins", "smooth", "ramp")


def test_a_state_saved_before_the_third_round_still_restores():
    values = daily(1200, 3.0, 6)
    original = NoveltyDetector(probation=300)
    for i, v in enumerate(values[:700]):
        original.update(T0 + HOUR * i, v)
    state = json.loads(json.dumps(original.to_state()))
    for name in THIRD_ROUND_FIELDS:
        del state["state"][name]
    for name in THIRD_ROUND_PARAMS:
        del state["params"][name]
    restored = detector_from_state(state)
    for i, v in enumerate(values[700:], start=700):
        assert restored.update(T0 + HOUR * i, v) == original.update(T0 + HOUR * i, v)


def test_a_damaged_state_of_the_third_round_says_so():
    state = NoveltyDetector(probation=30).to_state()
    del state["state"]["outs"]
    state["params"]["probation"] = 1
    with pytest.raises(StateError, match="damaged novelty state"):
        detector_from_state(state)


def bursty(n: int, seed: int, bursts: bool) -> list[float]:
    """Noisy values in 40-60 and, if ``bursts``, a 1-3 point burst far above them every ~150 points."""
    rng = random.Random(seed)
    values = [50.0 + rng.uniform(-10.0, 10.0) for _ in range(n)]
    if bursts:
        burst = random.Random(seed + 1)
        for at in range(400, n - 3, 150):
            for i in range(at, at + burst.randint(1, 3)):
                values[i] += 100.0 * burst.paretovariate(1.5)
    return values


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_the_excursion_channel_keeps_bursts_out_of_the_in_range_count(seed):
    """A point beyond the learned range, and the two after it, add nothing to the in-range count:
    their new contexts go to the excursion channel and its own statistics."""
    detector = NoveltyDetector(probation=300, excursions=True)
    beyond: list[bool] = []
    excursion_novelties = 0
    for i, v in enumerate(bursty(2000, seed, True)):
        detector.update(T0 + 300.0 * i, v)
        if i < 300:
            continue
        top = detector.lo + detector.width * detector._levels
        beyond.append(not detector.lo <= v < top)
        if any(beyond[-3:]):
            assert detector._last == 0
        excursion_novelties += detector._last_ex
    assert excursion_novelties > 0 and detector.emean > 0.0


@settings(max_examples=15, deadline=None)
@given(values=st.lists(st.floats(-1e6, 1e6), min_size=60, max_size=400), probation=st.integers(2, 50))
def test_calibration_never_raises_a_score(values, probation):
    """The score calibrated on the series' own past surprise is never above the model's (no alert
    level is reached, so no mask differs between the two)."""
    plain = NoveltyDetector(probation=probation, alert_level=2.0)
    calibrated = NoveltyDetector(probation=probation, alert_level=2.0, calibrate=1.0)
    for i, v in enumerate(values):
        assert calibrated.update(T0 + i, v) <= plain.update(T0 + i, v)


def test_calibration_quiets_a_series_that_keeps_doing_the_same_thing():
    values = bursty(6000, 3, True)
    plain = NoveltyDetector(probation=600, alert_level=2.0)
    calibrated = NoveltyDetector(probation=600, alert_level=2.0, calibrate=1.0)
    late = [(plain.update(T0 + i, v), calibrated.update(T0 + i, v)) for i, v in enumerate(values)][3000:]
    assert sum(c for _p, c in late) < sum(p for p, _c in late)


def test_averaging_engages_only_where_the_noise_is_coarser_than_the_grid():
    clean = [100.0 + 50.0 * (i // 100 % 2) for i in range(1000)]  # a square wave: no point-to-point noise
    plain, smoothed = NoveltyDetector(probation=300), NoveltyDetector(probation=300, smooth=0.5)
    assert [plain.update(T0 + i, v) for i, v in enumerate(clean)] == [
        smoothed.update(T0 + i, v) for i, v in enumerate(clean)
    ]
    assert len(smoothed.ring) == 1
    rng = random.Random(2)
    noisy = NoveltyDetector(probation=300, smooth=0.5)
    for i in range(400):
        noisy.update(T0 + i, float(rng.randint(0, 4)))  # small counts: noise as wide as the range
    assert 1 < len(noisy.ring) <= len(noisy.hist)


def test_bins_are_no_finer_than_the_noise_when_asked():
    rng = random.Random(3)
    values = [rng.gauss(0.0, 10.0) for _ in range(400)]
    plain, floored = NoveltyDetector(probation=300), NoveltyDetector(probation=300, noise_bins=2.0)
    for i, v in enumerate(values):
        plain.update(T0 + i, v)
        floored.update(T0 + i, v)
    assert plain.width < floored.width
    assert floored.width == pytest.approx(2.0 * 10.0, rel=0.25)


def test_with_ramp_a_long_memory_lets_go_of_the_learning_periods_discovery_rate():
    """The learning period's second half is still finding new contexts; with ``ramp`` its figures
    weigh as the half period they were measured on, so the mean follows the quieter series sooner."""
    values = daily(4000, 4.0, 8)
    slow = NoveltyDetector(probation=300, memory=4.0)
    ramped = NoveltyDetector(probation=300, memory=4.0, ramp=True)
    for i, v in enumerate(values):
        slow.update(T0 + HOUR * i, v)
        ramped.update(T0 + HOUR * i, v)
        if i == 299:
            assert ramped.kmean == slow.kmean > 0.0
    assert ramped.kmean < slow.kmean
