"""A long-lived detector baseline survives a restart through the store (the kv_state table)."""

from __future__ import annotations

import math
import random
from pathlib import Path

from clisight.detect import AnomalyDetector, detector_from_state, make_detector
from clisight.query import Query


def test_a_detector_baseline_survives_a_restart_through_the_store(tmp_path: Path) -> None:
    db = tmp_path / "baselines.db"
    rng = random.Random(7)
    series = [10 + 3 * math.sin(i / 30) + rng.gauss(0, 0.5) for i in range(3000)]
    uninterrupted = make_detector("ensemble")
    first_run = make_detector("ensemble")
    for t, v in enumerate(series[:2000]):
        uninterrupted.update(t * 300.0, v)
        first_run.update(t * 300.0, v)
    with Query(db) as query:
        query.save_state("detector:latency:api", first_run.to_state())
    with Query(db) as query:  # a new process, later
        state = query.load_state("detector:latency:api")
    restored = detector_from_state(state)
    for t, v in enumerate(series[2000:], start=2000):
        assert restored.update(t * 300.0, v) == uninterrupted.update(t * 300.0, v)
    spike = 10 * max(series)
    assert restored.update(3000 * 300.0, spike) == uninterrupted.update(3000 * 300.0, spike)


def test_the_seed_detector_baseline_survives_a_restart_through_the_store(tmp_path: Path) -> None:
    detector = AnomalyDetector()
    for latency in (1.4, 1.5, 1.6, 1.5, 1.45):
        detector.update_baseline({"response_time": latency})
    with Query(tmp_path / "s.db") as query:
        query.save_state("seed", detector.to_state())
    with Query(tmp_path / "s.db") as query:
        restored = AnomalyDetector.from_state(query.load_state("seed"))
    assert restored.to_state() == detector.to_state()
