"""How well the shipped detector's NAB score holds up on transformed copies of the development subset.

Not tuning: the shipped defaults and threshold are run unchanged on the 28 dev series rescaled,
shifted, trimmed or thinned (every 2nd / 3rd point, i.e. 10- and 15-minute data with half / a third
of the rows), to show what depends on the series' cadence and length.  Windows are mapped by time.
Usage: python bench/bench_nab_robustness.py [NAB_DIR]
"""

from __future__ import annotations

import bisect
import sys
import time
from pathlib import Path
from typing import Any

from clisight.detect._nabscore import scored_points
from clisight.detect.nab import NabFile, load_corpus, run_benchmark

DEFAULT_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "nab"


def transform(f: NabFile, step: int = 1, scale: float = 1.0, offset: float = 0.0, drop: int = 0) -> NabFile:
    ts = f.timestamps[::step][drop:]
    vs = [v * scale + offset for v in f.values[::step]][drop:]
    rows = []
    for start, end in f.windows:
        a = bisect.bisect_left(ts, f.timestamps[start])
        b = bisect.bisect_right(ts, f.timestamps[end]) - 1
        if b >= a:
            rows.append((a, b))
    return NabFile(f.name, ts, vs, rows, scored_points(len(ts), rows))


def main() -> None:
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DIR
    if not (data / "windows.json").exists():
        sys.exit(f"NAB development subset not found at {data}")
    files = load_corpus(data)
    print(f"# shipped detector on transformed dev series; {time.strftime('%Y-%m-%d')}")
    cases: dict[str, dict[str, Any]] = {
        "as is": {},
        "values x1000 + 50": {"scale": 1000.0, "offset": 50.0},
        "first 300 rows dropped": {"drop": 300},
        "every 2nd point (10 min)": {"step": 2},
        "every 3rd point (15 min)": {"step": 3},
    }
    print(f"{'series':28} {'standard':>9} {'low FP':>8} {'low FN':>8}")
    for label, kwargs in cases.items():
        scores = run_benchmark([transform(f, **kwargs) for f in files]).scores
        print(
            f"{label:28} {scores['standard']:9.1f} {scores['reward_low_FP_rate']:8.1f} "
            f"{scores['reward_low_FN_rate']:8.1f}"
        )


if __name__ == "__main__":
    main()
