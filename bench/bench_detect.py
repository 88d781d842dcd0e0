"""Throughput of clisight's streaming detectors, in points per second per series.

    .venv/bin/python bench/bench_detect.py [--points N] [--repeat R] [--nab DIR]

Feeds one synthetic series (noise, a daily cycle, spikes and a level shift; 5-minute timestamps) through
a fresh detector per run, calling ``update`` once per point as a live caller would, and prints the best
of ``--repeat`` runs.  Target: >= 100,000 points/s for the default detector.  With ``--nab`` (or when
the NAB development subset sits at ../shared/datasets/nab) it also prints the NAB scores of the default
detector at the shipped threshold.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import sys
import time
from pathlib import Path

from clisight.detect import DEFAULT_DETECTOR, DETECTORS, CombinedDetector, default_threshold, make_detector

TARGET = 100_000


def synthetic(n: int, seed: int = 1) -> tuple[list[float], list[float]]:
    rng = random.Random(seed)
    ts = [1_700_000_000.0 + 300.0 * i for i in range(n)]
    values = []
    for i in range(n):
        v = 50.0 + 10.0 * math.sin(2 * math.pi * i / 288) + rng.gauss(0.0, 2.0)
        if rng.random() < 0.002:
            v += 60.0
        if i > n // 2:
            v += 15.0
        values.append(v)
    return ts, values


def rate(make: object, ts: list[float], values: list[float], repeat: int) -> float:
    best = math.inf
    for _ in range(repeat):
        update = make().update  # type: ignore[operator]
        start = time.perf_counter()
        for t, v in zip(ts, values, strict=True):
            update(t, v)
        best = min(best, time.perf_counter() - start)
    return len(values) / best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--nab", type=Path, default=None, help="NAB development subset folder")
    args = parser.parse_args()
    ts, values = synthetic(args.points)
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs")
    print(f"{args.points:,} points per series, best of {args.repeat}")
    print(f"{'detector':28} {'points/s':>12}")
    default_rate = 0.0
    for name in sorted(DETECTORS):
        if name == "binomial":
            continue  # scores counts of failures, measured below with 0/1 outcomes
        n = args.points if name != "mad" else min(args.points, 50_000)  # O(window) per point
        r = rate(lambda name=name: make_detector(name), ts[:n], values[:n], args.repeat)
        if name == DEFAULT_DETECTOR:
            default_rate = r
        mark = " (default)" if name == DEFAULT_DETECTOR else ""
        print(f"{name + mark:28} {r:12,.0f}")
    outcomes = [1.0 if v > 100.0 else 0.0 for v in values]
    binomial = rate(lambda: make_detector("binomial"), ts, outcomes, args.repeat)
    print(f"{'binomial (0/1 outcomes)':28} {binomial:12,.0f}")
    parts = ("zscore", "ewma", "cusum")
    combo = rate(lambda: CombinedDetector([make_detector(n) for n in parts]), ts, values, args.repeat)
    print(f"{'combined zscore+ewma+cusum':28} {combo:12,.0f}")
    verdict = "meets" if default_rate >= TARGET else "MISSES"
    print(f"default detector {verdict} the {TARGET:,} points/s target")

    nab = args.nab or Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "nab"
    if (nab / "windows.json").is_file():
        from clisight.detect.nab import load_corpus, run_benchmark

        result = run_benchmark(load_corpus(nab), threshold=default_threshold())
        scores = ", ".join(f"{k} {v:.1f}" for k, v in result.scores.items())
        print(f"NAB development subset, threshold {default_threshold()}: {scores}")
    return 0 if default_rate >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
