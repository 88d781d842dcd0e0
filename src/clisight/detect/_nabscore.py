"""The Numenta Anomaly Benchmark scoring rules, written from the dataset README.

Everything here works on row indices: a file is ``n`` rows, its anomaly windows are ``(start, end)``
row ranges (inclusive) and a detector's output is one score per row.  A row is a detection when its
score is ``>= threshold``.

- The first ``min(floor(0.15 * n), 750)`` rows are a probation period and are not scored.
- Inside a window only the first detection counts: ``tp_weight * sigma(y) / sigma(-1)`` with
  ``y = -(end - i + 1) / width``.
- A window without a detection costs ``-fn_weight``.
- A detection outside every window costs ``fp_weight * sigma(d)`` where ``d`` is the distance past the
  end of the previous window over ``(previous width - 1)``; with no previous window it costs ``-fp_weight``.
- Normalised score: ``100 * (raw - null) / (perfect - null)`` over the whole corpus.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "PROFILES",
    "CostProfile",
    "FileResult",
    "ScoredPoints",
    "normalised_score",
    "optimise_threshold",
    "probation_length",
    "scaled_sigmoid",
    "score_file",
    "scored_points",
]


@dataclass(frozen=True, slots=True)
class CostProfile:
    """Weights of one NAB application profile."""

    name: str
    tp_weight: float
    fn_weight: float
    fp_weight: float


PROFILES: dict[str, CostProfile] = {
    "standard": CostProfile("standard", 1.0, 1.0, 0.11),
    "reward_low_FP_rate": CostProfile("reward_low_FP_rate", 1.0, 1.0, 0.22),
    "reward_low_FN_rate": CostProfile("reward_low_FN_rate", 1.0, 2.0, 0.11),
}


def scaled_sigmoid(y: float) -> float:
    """NAB's ``sigma(y) = 2 / (1 + exp(5y)) - 1``, pinned to -1 for ``y > 3``."""
    if y > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


_MAX_TP = scaled_sigmoid(-1.0)


def probation_length(n_rows: int) -> int:
    """Rows at the start of a file that are not scored."""
    return min(math.floor(0.15 * n_rows), 750)


@dataclass(frozen=True, slots=True)
class ScoredPoints:
    """Per-row scoring facts of one file, independent of the detector and the profile.

    ``window[i]`` is the window number of scored row ``first + i`` (or -1 outside every window);
    ``tp_value[i]`` the unweighted reward of a detection there (``sigma(y) / sigma(-1)``);
    ``fp_value[i]`` the unweighted cost of a false detection there (``sigma(d)``, negative).
    """

    first: int
    n_windows: int  # windows that reach past the probation period (the ones scored)
    n_listed: int  # every window of the file, numbering ``window``
    window: tuple[int, ...]
    tp_value: tuple[float, ...]
    fp_value: tuple[float, ...]


def scored_points(n_rows: int, windows: Sequence[tuple[int, int]]) -> ScoredPoints:
    """Precompute what a detection on each scored row of a file would earn or cost."""
    first = probation_length(n_rows)
    ordered = sorted(windows)
    window_of: list[int] = []
    tp_value: list[float] = []
    fp_value: list[float] = []
    k = 0  # next window not yet passed
    prev_end = -1
    prev_width = 0
    counted = sum(1 for _s, e in ordered if e >= first)
    for i in range(n_rows):
        while k < len(ordered) and ordered[k][1] < i:
            prev_end = ordered[k][1]
            prev_width = ordered[k][1] - ordered[k][0] + 1
            k += 1
        inside = k < len(ordered) and ordered[k][0] <= i <= ordered[k][1]
        if i < first:
            continue
        if inside:
            s, e = ordered[k]
            width = e - s + 1
            window_of.append(k)
            tp_value.append(scaled_sigmoid(-(e - i + 1) / width) / _MAX_TP)
            fp_value.append(0.0)
        else:
            window_of.append(-1)
            tp_value.append(0.0)
            if prev_end < 0 or prev_width <= 1:
                fp_value.append(-1.0)
            else:
                fp_value.append(scaled_sigmoid((i - prev_end) / (prev_width - 1)))
    return ScoredPoints(first, counted, len(ordered), tuple(window_of), tuple(tp_value), tuple(fp_value))


@dataclass(frozen=True, slots=True)
class FileResult:
    """Raw NAB score of one file under one profile, with its confusion counts."""

    raw: float
    tp: int  # windows detected
    fn: int  # windows missed
    fp: int  # detections outside every window


def score_file(
    scores: Sequence[float], threshold: float, points: ScoredPoints, profile: CostProfile
) -> FileResult:
    """Raw NAB score of a detector's per-row ``scores`` on one file."""
    best: dict[int, float] = {}
    fp_sum = 0.0
    fp_count = 0
    first = points.first
    for j, win in enumerate(points.window):
        if scores[first + j] < threshold:
            continue
        if win >= 0:
            if win not in best:  # rewards only grow earlier; the first detection is the best one
                best[win] = points.tp_value[j]
        else:
            fp_sum += points.fp_value[j]
            fp_count += 1
    tp_sum = sum(best.values())
    missed = points.n_windows - len(best)
    raw = profile.tp_weight * tp_sum - profile.fn_weight * missed + profile.fp_weight * fp_sum
    return FileResult(raw, len(best), missed, fp_count)


def normalised_score(raw_total: float, n_windows: int, profile: CostProfile) -> float:
    """``100 * (raw - null) / (perfect - null)`` for a corpus with ``n_windows`` windows."""
    null = -profile.fn_weight * n_windows
    perfect = profile.tp_weight * n_windows
    if perfect == null:
        return 0.0
    return 100.0 * (raw_total - null) / (perfect - null)


def optimise_threshold(
    files: Sequence[tuple[Sequence[float], ScoredPoints]], profile: CostProfile
) -> tuple[float, float]:
    """The threshold maximising the normalised corpus score, and that score (one sweep over scores)."""
    entries: list[tuple[float, int, float]] = []  # score, corpus-wide window id or -1, value
    window_base = 0
    n_windows = 0
    for scores, pts in files:
        first = pts.first
        for j, win in enumerate(pts.window):
            s = scores[first + j]
            if win >= 0:
                entries.append((s, window_base + win, pts.tp_value[j]))
            else:
                entries.append((s, -1, pts.fp_value[j]))
        window_base += pts.n_listed
        n_windows += pts.n_windows
    entries.sort(key=lambda e: -e[0])
    best_by_window: dict[int, float] = {}
    tp_sum = 0.0
    fp_sum = 0.0
    best_threshold = math.inf
    best_raw = -profile.fn_weight * n_windows
    i = 0
    while i < len(entries):
        level = entries[i][0]
        while i < len(entries) and entries[i][0] == level:
            _s, win, value = entries[i]
            if win >= 0:
                old = best_by_window.get(win)
                if old is None or value > old:
                    best_by_window[win] = value
                    tp_sum += value - (old or 0.0)
            else:
                fp_sum += value
            i += 1
        missed = n_windows - len(best_by_window)
        raw = profile.tp_weight * tp_sum - profile.fn_weight * missed + profile.fp_weight * fp_sum
        if raw > best_raw:
            best_raw = raw
            best_threshold = level
    return best_threshold, normalised_score(best_raw, n_windows, profile)
