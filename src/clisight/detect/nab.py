"""Run detectors on a Numenta Anomaly Benchmark folder and score them.

Usage::

    python -m clisight.detect.nab DATA_DIR [--detector NAME] [--threshold T | --optimise] [--files]

``DATA_DIR`` holds ``data/<category>/<file>.csv`` (columns ``timestamp,value``) and ``windows.json``.
Prints the normalised score per cost profile and, with ``--files``, the raw score and counts per file.
The scoring rules live in :mod:`clisight.detect._nabscore`.
"""

from __future__ import annotations

import argparse
import bisect
import csv
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from clisight.detect._base import Detector
from clisight.detect._nabscore import (
    PROFILES,
    CostProfile,
    FileResult,
    ScoredPoints,
    normalised_score,
    optimise_threshold,
    score_file,
    scored_points,
)
from clisight.detect._registry import (
    DEFAULT_DETECTOR,
    DETECTORS,
    default_threshold,
    has_alert_level,
    make_detector,
)
from clisight.detect.novelty import DEFAULT_THRESHOLD

__all__ = [
    "ALERT_LEVEL_GRID",
    "BenchmarkResult",
    "NabFile",
    "load_corpus",
    "main",
    "parse_time",
    "run_benchmark",
]


def parse_time(text: str) -> float:
    """``"YYYY-MM-DD HH:MM:SS[.ffffff]"`` (UTC) to epoch seconds."""
    return datetime.fromisoformat(text.strip()).replace(tzinfo=UTC).timestamp()


@dataclass(frozen=True, slots=True)
class NabFile:
    """One benchmark series with its windows as inclusive row ranges."""

    name: str
    timestamps: list[float]
    values: list[float]
    windows: list[tuple[int, int]]
    points: ScoredPoints


def load_corpus(data_dir: Path) -> list[NabFile]:
    """Every file listed in ``windows.json``, sorted by name."""
    windows = json.loads((data_dir / "windows.json").read_text())
    files: list[NabFile] = []
    for name in sorted(windows):
        ts: list[float] = []
        vs: list[float] = []
        with (data_dir / "data" / name).open(newline="") as fh:
            reader = csv.reader(fh)
            next(reader)
            for row in reader:
                ts.append(parse_time(row[0]))
                vs.append(float(row[1]))
        rows: list[tuple[int, int]] = []
        for start, end in windows[name]:
            rows.append(
                (bisect.bisect_left(ts, parse_time(start)), bisect.bisect_right(ts, parse_time(end)) - 1)
            )
        files.append(NabFile(name, ts, vs, rows, scored_points(len(ts), rows)))
    return files


@dataclass(frozen=True, slots=True)
class BenchmarkResult:
    """Scores of one detector on a corpus at one threshold (or the best threshold per profile)."""

    detector: str
    threshold: float | None  # None when optimised per profile
    scores: dict[str, float]  # profile -> normalised score
    thresholds: dict[str, float]  # profile -> threshold used
    per_file: dict[str, dict[str, FileResult]]  # profile -> file -> result
    points_per_second: float


def run_detector(
    factory: Callable[[NabFile], Detector], files: Sequence[NabFile]
) -> tuple[list[list[float]], float]:
    """Every file's per-row scores (a fresh detector per file, from ``factory(file)``) and the
    throughput in points per second."""
    out: list[list[float]] = []
    total = 0
    elapsed = 0.0
    for f in files:
        update = factory(f).update
        start = time.perf_counter()
        out.append([update(t, v) for t, v in zip(f.timestamps, f.values, strict=True)])
        elapsed += time.perf_counter() - start
        total += len(f.values)
    return out, total / elapsed if elapsed > 0 else float("inf")


#: Alert levels tried by ``--optimise`` for detectors whose cooldown is keyed to their alert level.
ALERT_LEVEL_GRID = tuple(round(0.04 + 0.02 * i, 2) for i in range(44))


def run_benchmark(
    files: Sequence[NabFile],
    detector: str = DEFAULT_DETECTOR,
    threshold: float | None = DEFAULT_THRESHOLD,
    factory: Callable[[], Detector] | None = None,
) -> BenchmarkResult:
    """Score ``detector`` at ``threshold`` (or, with ``threshold=None``, at the best one per profile).

    A detector with an ``alert_level`` is built with ``alert_level=threshold``; optimising it re-runs it
    at every level of :data:`ALERT_LEVEL_GRID`.  Other detectors run once and the threshold is swept.
    """
    if factory is None and has_alert_level(detector):
        levels = ALERT_LEVEL_GRID if threshold is None else (threshold,)
        runs = [
            _score_run(
                detector,
                files,
                *run_detector(_factory(detector, alert_level=lv), files),
                lv,
            )
            for lv in levels
        ]
        best = {p: max(runs, key=lambda r: r.scores[p]) for p in PROFILES}
        return BenchmarkResult(
            detector,
            threshold,
            {p: best[p].scores[p] for p in PROFILES},
            {p: best[p].thresholds[p] for p in PROFILES},
            {p: best[p].per_file[p] for p in PROFILES},
            sum(r.points_per_second for r in runs) / len(runs),
        )
    given = factory
    scores, speed = run_detector((lambda f: given()) if given else _factory(detector), files)
    return _score_run(detector, files, scores, speed, threshold)


def _factory(detector: str, **params: Any) -> Callable[[NabFile], Detector]:
    # As in NAB's own harness, a detector knows the length (so the probation period) of its series.
    return lambda f: make_detector(detector, series_length=len(f.values), **params)


def _score_run(
    detector: str, files: Sequence[NabFile], scores: list[list[float]], speed: float, threshold: float | None
) -> BenchmarkResult:
    n_windows = sum(f.points.n_windows for f in files)
    results: dict[str, float] = {}
    used: dict[str, float] = {}
    per_file: dict[str, dict[str, FileResult]] = {}
    for name, profile in PROFILES.items():
        t = threshold
        if t is None:
            t, _ = optimise_threshold([(s, f.points) for s, f in zip(scores, files, strict=True)], profile)
        file_results = {
            f.name: score_file(s, t, f.points, profile) for s, f in zip(scores, files, strict=True)
        }
        raw = sum(r.raw for r in file_results.values())
        results[name] = normalised_score(raw, n_windows, profile)
        used[name] = t
        per_file[name] = file_results
    return BenchmarkResult(detector, threshold, results, used, per_file, speed)


def _format(result: BenchmarkResult, files: bool) -> str:
    lines = [f"detector {result.detector}: {result.points_per_second:,.0f} points/s"]
    lines.append(f"{'profile':22} {'threshold':>9} {'score':>7}")
    for name, score in result.scores.items():
        t = result.thresholds[name]
        shown = "never" if t == float("inf") else f"{t:.4f}"  # never firing scored best
        lines.append(f"{name:22} {shown:>9} {score:7.1f}")
    if files:
        profile: CostProfile = PROFILES["standard"]
        lines.append("")
        lines.append(
            f"per file ({profile.name} profile): raw score, windows detected/missed, false positives"
        )
        for fname, r in result.per_file[profile.name].items():
            lines.append(f"  {fname:60} {r.raw:7.3f}  tp={r.tp} fn={r.fn} fp={r.fp}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m clisight.detect.nab",
        description="Score a clisight detector on a Numenta Anomaly Benchmark folder.",
    )
    parser.add_argument("data_dir", type=Path, help="folder with data/ and windows.json")
    parser.add_argument(
        "--detector",
        default=DEFAULT_DETECTOR,
        choices=sorted(DETECTORS),
        help="detector to run (default: %(default)s)",
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--threshold",
        type=float,
        default=None,
        help=f"detection threshold (default: the detector's own, {DEFAULT_THRESHOLD} for {DEFAULT_DETECTOR})",
    )
    group.add_argument(
        "--optimise", action="store_true", help="report the best threshold per profile instead"
    )
    parser.add_argument("--no-files", dest="files", action="store_false", help="omit the per-file table")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    if not (args.data_dir / "windows.json").is_file():
        parser.error(f"{args.data_dir} has no windows.json: not a NAB data folder")
    if args.optimise:
        threshold = None
    else:
        threshold = default_threshold(args.detector) if args.threshold is None else args.threshold
    result = run_benchmark(load_corpus(args.data_dir), args.detector, threshold)
    if args.json:
        payload = {
            "detector": result.detector,
            "scores": result.scores,
            "thresholds": result.thresholds,
            "points_per_second": result.points_per_second,
            "files": {
                name: {"raw": r.raw, "tp": r.tp, "fn": r.fn, "fp": r.fp}
                for name, r in result.per_file["standard"].items()
            },
        }
        print(json.dumps(payload, indent=2))
    else:
        print(_format(result, args.files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
