"""The shipped detector on the NAB development subset (skipped when the data is absent)."""

from __future__ import annotations

import json

import pytest

from clisight.detect import DEFAULT_THRESHOLD
from clisight.detect.nab import load_corpus, main, run_benchmark

# Figures of the shipped default at its shipped threshold (bench/nab_protocol.py, bench/RESULTS.md);
# a change means the detector changed.
SHIPPED = {"standard": 73.3, "reward_low_FP_rate": 62.8, "reward_low_FN_rate": 78.5}


@pytest.fixture(scope="module")
def corpus(nab_path):
    return load_corpus(nab_path)


def test_corpus_has_the_28_series_and_36_windows(corpus):
    assert len(corpus) == 28
    assert sum(f.points.n_windows for f in corpus) == 36
    for f in corpus:
        for start, end in f.windows:
            assert 0 <= start <= end < len(f.values)


def test_default_detector_reaches_the_targets_at_the_shipped_threshold(corpus):
    result = run_benchmark(corpus, threshold=DEFAULT_THRESHOLD)
    assert result.scores["standard"] >= 72.0  # issue 9's targets
    assert result.scores["reward_low_FP_rate"] >= 62.0
    for profile, shipped in SHIPPED.items():
        assert result.scores[profile] == pytest.approx(shipped, abs=0.05)


def test_default_detector_is_silent_on_the_noiseless_series_without_anomalies(corpus):
    # (on the two noisy ones it raises a few false alarms: bench/RESULTS.md)
    quiet = ("art_daily_no_noise", "art_daily_perfect_square_wave", "art_flatline")
    result = run_benchmark([f for f in corpus if any(q in f.name for q in quiet)])
    assert len(result.per_file["standard"]) == 3
    assert all(r.fp == 0 for r in result.per_file["standard"].values())


def test_command_line_prints_scores_per_profile_and_per_file(nab_path, capsys):
    assert main([str(nab_path), "--detector", "zscore", "--threshold", "0.9"]) == 0
    out = capsys.readouterr().out
    assert "detector zscore" in out and "reward_low_FP_rate" in out
    assert "realAWSCloudwatch/ec2_cpu_utilization_24ae8d.csv" in out


def test_command_line_optimise_and_json(nab_path, capsys):
    assert main([str(nab_path), "--detector", "ewma", "--optimise", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert set(payload["scores"]) == {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}
    assert len(payload["files"]) == 28


def test_command_line_refuses_a_folder_without_windows(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path)])
    assert exc.value.code == 2
    assert "not a NAB data folder" in capsys.readouterr().err
