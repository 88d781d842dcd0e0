"""Streaming detectors: warm-up, std floor, steps, spikes and state that survives a restart."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clisight.detect import (
    DETECTORS,
    BinomialRateDetector,
    CombinedDetector,
    CusumDetector,
    EnsembleDetector,
    EwmaDetector,
    MadDetector,
    SeasonalDetector,
    StateError,
    ZScoreDetector,
    default_threshold,
    detector_from_state,
    make_detector,
    squash,
)
from clisight.detect.detectors import binomial_upper_tail

VALUE_DETECTORS = sorted(name for name in DETECTORS if name != "binomial")
STEP_WITHIN = 5
T0 = 1_700_000_000.0
HALF = 0.5  # what the single-technique detectors (and the ensemble) score at their alert level


def warmup_of(name: str) -> int:
    return make_detector(name).warmup_points or 30


def series(level: float, n: int, noise: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [level * (1.0 + noise * rng.gauss(0.0, 1.0)) for _ in range(n)]


@pytest.mark.parametrize("name", VALUE_DETECTORS)
@settings(max_examples=25, deadline=None)
@given(level=st.one_of(st.just(0.0), st.floats(-1e6, 1e6, allow_nan=False)))
def test_constant_series_never_fires_after_warmup(name, level):
    detector = make_detector(name)
    for i in range(warmup_of(name) + 400):
        score = detector.update(T0 + 60.0 * i, level)
        assert score < default_threshold(name)


@pytest.mark.parametrize("name", VALUE_DETECTORS)
@settings(max_examples=25, deadline=None)
@given(
    level=st.floats(1e-3, 1e6) | st.floats(-1e6, -1e-3),
    noise=st.floats(0.0, 0.05),
    seed=st.integers(0, 2**16),
)
def test_a_10x_step_always_fires_within_a_few_points(name, level, noise, seed):
    detector = make_detector(name)
    before = warmup_of(name) + 100
    values = series(level, before, noise, seed) + series(10 * level, STEP_WITHIN, noise, seed + 1)
    scores = [detector.update(T0 + 60.0 * i, v) for i, v in enumerate(values)]
    assert max(scores[before:]) >= default_threshold(name)


@pytest.mark.parametrize("name", VALUE_DETECTORS)
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), split=st.integers(1, 700))
def test_state_survives_a_json_round_trip(name, seed, split):
    rng = random.Random(seed)
    values = [50 + 10 * rng.random() + (40 if 500 < i < 520 else 0) for i in range(800)]
    original = make_detector(name)
    for i, v in enumerate(values[:split]):
        original.update(T0 + 300.0 * i, v)
    restored = detector_from_state(json.loads(json.dumps(original.to_state())))
    for i, v in enumerate(values[split:], start=split):
        assert restored.update(T0 + 300.0 * i, v) == original.update(T0 + 300.0 * i, v)


@pytest.mark.parametrize("name", VALUE_DETECTORS)
@settings(max_examples=15, deadline=None)
@given(st.lists(st.floats(-1e9, 1e9), min_size=1, max_size=400))
def test_scores_are_always_between_0_and_1(name, values):
    short = {"probation": 5} if name == "novelty" else {"warmup": 5}
    detector = make_detector(name, **short)
    for i, v in enumerate(values):
        assert 0.0 <= detector.update(T0 + 60.0 * i, v) <= 1.0


def test_warmup_silences_even_a_huge_jump():
    detector = ZScoreDetector(warmup=10)
    scores = [detector.update(float(i), 1.0 if i < 5 else 1000.0) for i in range(10)]
    assert scores == [0.0] * 10


def test_spike_fires_once_and_the_ensemble_then_cools_down():
    detector = EnsembleDetector()
    values = series(100.0, 1000, 0.02, 1)
    values[700] = values[701] = 400.0
    scores = [detector.update(T0 + 300.0 * i, v) for i, v in enumerate(values)]
    fired = [i for i, s in enumerate(scores) if s >= HALF]
    assert fired == [700]


def test_ensemble_learns_a_daily_pattern_and_flags_a_missed_rise():
    def daily(i: int) -> float:
        return 80.0 if (i % 288) >= 144 else 20.0

    rng = random.Random(7)
    values = [daily(i) + rng.gauss(0, 1) for i in range(288 * 8)]
    quiet = EnsembleDetector()
    assert max(quiet.update(T0 + 300.0 * i, v) for i, v in enumerate(values)) < HALF
    for i in range(288 * 6 + 144, 288 * 6 + 200):
        values[i] = 20.0 + rng.gauss(0, 1)  # the rise that did not happen
    detector = EnsembleDetector()
    scores = [detector.update(T0 + 300.0 * i, v) for i, v in enumerate(values)]
    fired = [i for i, s in enumerate(scores) if s >= HALF]
    assert fired and 288 * 6 + 144 <= fired[0] < 288 * 6 + 160


def test_ewma_forgets_an_old_level():
    detector = EwmaDetector(alpha=0.1, warmup=10)
    for i in range(100):
        detector.update(float(i), 10.0 + (i % 2))
    for i in range(100, 200):
        detector.update(float(i), 50.0 + (i % 2))
    assert detector.update(200.0, 50.5) < HALF


def test_mad_ignores_an_isolated_outlier_in_its_baseline():
    detector = MadDetector(window=50, warmup=20)
    values = series(10.0, 60, 0.01, 3)
    values[30] = 1000.0
    for i, v in enumerate(values):
        detector.update(float(i), v)
    assert detector.update(61.0, 10.05) < HALF
    assert detector.update(62.0, 13.0) >= HALF


def test_seasonal_knows_busy_hours_from_quiet_ones():
    detector = SeasonalDetector(min_slot=3, warmup=24)
    rng = random.Random(5)
    for day in range(21):
        for hour in range(24):
            busy = 9 <= hour < 18
            detector.update(T0 + day * 86400 + hour * 3600, (100.0 if busy else 5.0) + rng.gauss(0, 2))
    day = 21
    assert detector.update(T0 + day * 86400 + 10 * 3600, 101.0) < HALF  # busy at 10:00: normal
    assert detector.update(T0 + day * 86400 + 3 * 3600, 100.0) >= HALF  # busy at 03:00: not


def test_cusum_catches_a_small_sustained_shift_a_zscore_misses():
    rng = random.Random(11)
    values = [10.0 + rng.gauss(0, 1) for _ in range(300)] + [11.5 + rng.gauss(0, 1) for _ in range(100)]
    cusum = CusumDetector(warmup=50)
    zscore = ZScoreDetector(warmup=50)
    c = [cusum.update(float(i), v) for i, v in enumerate(values)]
    z = [zscore.update(float(i), v) for i, v in enumerate(values)]
    assert max(c[300:]) >= HALF
    assert max(c[:300]) < HALF
    assert max(z[300:]) < 0.9


def test_binomial_one_error_in_two_requests_is_not_an_alarm():
    detector = BinomialRateDetector(window=1)
    for i in range(100):
        detector.update(float(i), 2.0 if i % 10 == 0 else 0.0, 100.0)  # ~0.2 % errors
    assert detector.update(100.0, 1.0, 2.0) < HALF
    assert detector.update(101.0, 30.0, 100.0) >= HALF


def test_binomial_per_request_outcomes_flag_a_burst_of_failures():
    detector = BinomialRateDetector(window=20)
    rng = random.Random(2)
    scores = [detector.update(float(i), 1.0 if rng.random() < 0.01 else 0.0) for i in range(2000)]
    assert max(scores[200:]) < HALF
    burst = [detector.update(float(2000 + i), 1.0 if i % 2 == 0 else 0.0) for i in range(20)]
    assert max(burst) >= HALF


def test_binomial_tail_matches_hand_values():
    assert binomial_upper_tail(1, 2, 0.02) == pytest.approx(1 - 0.98**2)
    assert binomial_upper_tail(2, 2, 0.5) == pytest.approx(0.25)
    assert binomial_upper_tail(0, 5, 0.1) == 1.0
    assert binomial_upper_tail(6, 5, 0.1) == 0.0
    assert binomial_upper_tail(60_000, 100_000, 0.5) < 1e-100


def test_binomial_rejects_more_failures_than_requests():
    with pytest.raises(ValueError, match="failures"):
        BinomialRateDetector().update(0.0, 3.0, 2.0)


@given(st.floats(0, 1e6), st.floats(0.1, 100))
def test_squash_is_monotone_and_half_at_half(z, half):
    assert 0.0 <= squash(z, half) < 1.0 or z == float("inf")
    assert squash(half, half) == pytest.approx(0.5)
    assert squash(z + 1.0, half) >= squash(z, half)


def test_combined_detector_takes_the_max_and_round_trips():
    combined = CombinedDetector([ZScoreDetector(warmup=5), MadDetector(window=10, warmup=5)])
    for i in range(20):
        combined.update(float(i), 1.0 + 0.01 * (i % 3))
    state = json.loads(json.dumps(combined.to_state()))
    restored = CombinedDetector.from_state(state)
    assert restored.update(21.0, 5.0) == combined.update(21.0, 5.0) >= HALF


def test_state_of_another_kind_is_refused():
    state = ZScoreDetector().to_state()
    with pytest.raises(StateError, match="zscore"):
        EwmaDetector.from_state(state)
    with pytest.raises(StateError, match="unknown detector kind"):
        detector_from_state({"kind": "nope"})
    state["version"] = 99
    with pytest.raises(StateError, match="version"):
        ZScoreDetector.from_state(state)


def test_unknown_detector_name_lists_the_choices():
    with pytest.raises(ValueError, match="ensemble"):
        make_detector("nope")


def test_incident_lengths_follow_a_short_series_and_stay_for_long_ones() -> None:
    from clisight.detect.ensemble import POINT_DEFAULTS, lengths_for_probation

    long_series = make_detector("ensemble", series_length=20_000)
    default = make_detector("ensemble")
    assert long_series.to_state()["params"] == default.to_state()["params"]
    short = make_detector("ensemble", series_length=1600)  # probation 240 of the reference 600
    params = short.to_state()["params"]
    assert params["cooldown"] == round(POINT_DEFAULTS["cooldown"] * 0.4)
    assert params["short_window"] == round(POINT_DEFAULTS["short_window"] * 0.4)
    assert params["long_window"] == POINT_DEFAULTS["long_window"]  # a sample size: kept
    assert make_detector("ensemble", series_length=1600, cooldown=99).to_state()["params"]["cooldown"] == 99
    assert lengths_for_probation(0)["short_window"] >= 1


@pytest.mark.parametrize(
    ("name", "level", "noise", "seed"),
    [
        ("ensemble", -8.088502078248961, 0.01803595339939622, 29450),  # found by the property above
        ("ensemble", 91.32195150620208, 0.02271696756276273, 33955),
        ("cusum", 1.0, 0.03125, 253),
    ],
)
def test_a_false_alarm_just_before_a_10x_step_does_not_hide_it(name, level, noise, seed):
    detector = make_detector(name)
    before = warmup_of(name) + 100
    values = series(level, before, noise, seed) + series(10 * level, STEP_WITHIN, noise, seed + 1)
    scores = [detector.update(T0 + 60.0 * i, v) for i, v in enumerate(values)]
    assert max(scores[:before]) >= default_threshold(name)  # the false alarm is there
    assert max(scores[before:]) >= default_threshold(name)
