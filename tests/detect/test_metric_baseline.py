"""The seed project's AnomalyDetector keeps its API and its own test."""

from __future__ import annotations

import asyncio
import json

import pytest

from clisight.detect import AnomalyDetector


def test_seed_own_test_two_anomalies_after_one_baseline_sample_and_none_for_the_baseline():
    detector = AnomalyDetector()
    assert detector.anomaly_threshold == 2.0
    baseline = {"response_time": 1.5, "error_rate": 0.02}
    detector.update_baseline(baseline)

    anomalies = asyncio.run(detector.analyze_metrics({"response_time": 15.0, "error_rate": 0.25}))
    assert len(anomalies) == 2
    assert anomalies[0].startswith("response_time 15.0 is 9.0 sigma above baseline 1.5")
    assert anomalies[1].startswith("error_rate 0.25 is 11.5 sigma above baseline 0.02")
    assert all("relative deviation" in a and "too few for a standard deviation" in a for a in anomalies)

    assert asyncio.run(detector.analyze_metrics(baseline)) == []


def test_with_enough_samples_the_finding_is_a_z_score():
    detector = AnomalyDetector(min_samples=5)
    for value in (1.0, 1.2, 0.8, 1.1, 0.9, 1.0):
        detector.update_baseline({"response_time": value})
    mean, sd, n = detector.baseline("response_time")
    assert n == 6 and sd is not None
    assert detector.check({"response_time": mean + 1.5 * sd}) == []
    (finding,) = detector.check({"response_time": mean - 2.5 * sd})
    assert "2.5 sigma below baseline" in finding and "relative" not in finding


def test_constant_baseline_does_not_alarm_on_noise():
    detector = AnomalyDetector()
    for _ in range(20):
        detector.update_baseline({"cpu_percent": 40.0})
    assert detector.check({"cpu_percent": 40.3}) == []
    assert detector.check({"cpu_percent": 80.0}) != []


def test_moving_baseline_forgets_old_values():
    detector = AnomalyDetector(window=10)
    for _ in range(10):
        detector.update_baseline({"requests": 100.0})
    for _ in range(10):
        detector.update_baseline({"requests": 500.0})
    assert detector.check({"requests": 500.0}) == []


def test_unknown_and_non_numeric_metrics_are_ignored():
    detector = AnomalyDetector()
    detector.update_baseline({"response_time": 1.0, "host": "a", "ok": True})
    assert detector.check({"response_time": 1.0, "host": "b", "ok": False, "other": 99}) == []


def test_zero_baseline_still_reports_a_departure():
    detector = AnomalyDetector()
    detector.update_baseline({"failed_logins": 0})
    (finding,) = detector.check({"failed_logins": 7})
    assert finding.startswith("failed_logins 7.0 is infinitely many sigma above baseline 0.0")


def test_state_round_trip():
    detector = AnomalyDetector(anomaly_threshold=3.0)
    detector.update_baseline({"response_time": 1.5})
    restored = AnomalyDetector.from_state(json.loads(json.dumps(detector.to_state())))
    assert restored.anomaly_threshold == 3.0
    assert restored.check({"response_time": 15.0}) == detector.check({"response_time": 15.0})
    with pytest.raises(ValueError):
        AnomalyDetector.from_state({"kind": "zscore"})
