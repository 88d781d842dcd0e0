"""The NAB scorer against hand-computed cases, plus properties of its math."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clisight.detect._nabscore import (
    PROFILES,
    normalised_score,
    optimise_threshold,
    probation_length,
    scaled_sigmoid,
    score_file,
    scored_points,
)

STANDARD = PROFILES["standard"]
LOW_FP = PROFILES["reward_low_FP_rate"]
LOW_FN = PROFILES["reward_low_FN_rate"]

# 100 rows -> probation 15; one window over rows 40..49 (10 rows wide)
N = 100
WINDOW = [(40, 49)]


def detections_at(*rows: int, n: int = N) -> list[float]:
    scores = [0.0] * n
    for r in rows:
        scores[r] = 1.0
    return scores


def raw(scores: list[float], profile=STANDARD, windows=WINDOW, n: int = N) -> float:
    return score_file(scores, 0.5, scored_points(n, windows), profile).raw


def test_probation_is_15_percent_capped_at_750_rows():
    assert probation_length(100) == 15
    assert probation_length(4032) == 604
    assert probation_length(1243) == 186
    assert probation_length(10_000) == 750


def test_scaled_sigmoid_hand_values():
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(-1.0) == pytest.approx(0.9866143, abs=1e-6)  # 2 / (1 + e^-5) - 1
    assert scaled_sigmoid(3.0) == pytest.approx(2 / (1 + math.exp(15)) - 1)
    assert scaled_sigmoid(3.01) == -1.0


def test_detection_on_first_row_of_window_earns_full_reward():
    assert raw(detections_at(40)) == pytest.approx(1.0)
    assert normalised_score(1.0, 1, STANDARD) == pytest.approx(100.0)


def test_detection_on_last_row_of_window_earns_little():
    # y = -(49 - 49 + 1) / 10 = -0.1; sigma(-0.1) = 2 / (1 + e^-0.5) - 1 = 0.2449187; / 0.9866143
    assert raw(detections_at(49)) == pytest.approx(0.248242, abs=1e-5)


def test_only_the_first_detection_in_a_window_counts():
    assert raw(detections_at(40, 45, 49)) == pytest.approx(1.0)
    # y = -(49 - 45 + 1) / 10 = -0.5: 2 / (1 + e^-2.5) - 1 = 0.8482836, / 0.9866143 = 0.859792
    assert raw(detections_at(45, 49)) == pytest.approx(0.859792, abs=1e-5)


def test_missed_window_costs_fn_weight_per_profile():
    none = [0.0] * N
    assert raw(none, STANDARD) == -1.0
    assert raw(none, LOW_FN) == -2.0
    assert normalised_score(-1.0, 1, STANDARD) == 0.0


def test_false_positive_before_any_window_costs_full_fp_weight():
    assert raw(detections_at(20), STANDARD) == pytest.approx(-1.0 - 0.11)
    assert raw(detections_at(20), LOW_FP) == pytest.approx(-1.0 - 0.22)


def test_false_positive_just_after_a_window_costs_less():
    # d = (51 - 49) / (10 - 1) = 0.2222; sigma = 2 / (1 + e^1.1111) - 1 = -0.504672; * 0.11 = -0.0555139
    assert raw(detections_at(40, 51)) == pytest.approx(1.0 - 0.0555139, abs=1e-6)
    # far past the window (d > 3) it costs the full weight
    assert raw(detections_at(40, 90)) == pytest.approx(1.0 - 0.11)


def test_detections_in_probation_are_not_scored():
    assert raw(detections_at(5, 10)) == -1.0


def test_file_without_windows_counts_only_false_positives():
    result = score_file(detections_at(50, 60), 0.5, scored_points(N, []), STANDARD)
    assert (result.raw, result.tp, result.fn, result.fp) == (pytest.approx(-0.22), 0, 0, 2)


def test_two_windows_hand_computed():
    windows = [(20, 29), (60, 69)]
    scores = detections_at(25, 35, 60)
    # window 1 at 25: y = -(29 - 25 + 1) / 10 = -0.5 -> 0.859792
    # FP at 35: d = (35 - 29) / 9 = 0.6667, sigma = 2 / (1 + e^3.3333) - 1 = -0.931109, * 0.11
    # window 2 at 60: 1.0
    expected = 0.859792 + 0.11 * -0.931109 + 1.0
    assert raw(scores, windows=windows) == pytest.approx(expected, abs=1e-5)
    # normalised over the two windows: 100 * (raw + 2) / 4
    assert normalised_score(expected, 2, STANDARD) == pytest.approx(100 * (expected + 2) / 4)


def test_optimise_threshold_picks_the_level_that_excludes_the_false_alarm():
    scores = [0.0] * N
    scores[40] = 0.9  # true detection
    scores[80] = 0.6  # false alarm
    pts = scored_points(N, WINDOW)
    threshold, best = optimise_threshold([(scores, pts)], STANDARD)
    assert threshold == 0.9
    assert best == pytest.approx(100.0)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0, 1), min_size=120, max_size=120),
    st.floats(0, 1),
    st.sampled_from(list(PROFILES.values())),
)
def test_scores_stay_between_null_minus_fps_and_perfect(scores, threshold, profile):
    windows = [(30, 44), (80, 94)]
    pts = scored_points(120, windows)
    result = score_file(scores, threshold, pts, profile)
    assert result.raw <= 2 * profile.tp_weight + 1e-9
    assert result.raw >= -2 * profile.fn_weight - profile.fp_weight * result.fp - 1e-9
    assert result.tp + result.fn == 2
    _threshold, best = optimise_threshold([(scores, pts)], profile)
    assert best >= normalised_score(result.raw, 2, profile) - 1e-9
