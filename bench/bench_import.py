"""Import time of ``clisight`` and of the peers, over a bare interpreter, in one run.

Each figure is the median wall time of ``python -c "import X"`` over R fresh interpreters minus
the median of ``python -c "pass"``.  Also printed: the cost of ``import clisight`` followed by the
first ``init()`` + log call (what a CLI pays at start-up).
Usage: python bench/bench_import.py [R]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import git_rev, machine

R = int(sys.argv[1]) if len(sys.argv) > 1 else 30

CASES = {
    "bare interpreter": "pass",
    "clisight": "import clisight",
    "clisight + init + 1 log": "import clisight; clisight.init(service='b', store='none'); "
    "clisight.get_logger('a').info('x', n=1)",
    "logging (stdlib)": "import logging",
    "structlog": "import structlog",
    "loguru": "import loguru",
    "opentelemetry sdk logs": "import opentelemetry.sdk._logs",
}


def timed(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    return (time.perf_counter() - start) * 1000


def main() -> None:
    print(
        f"# import time over a bare interpreter (ms, median of {R}); {machine()}; "
        f"{time.strftime('%Y-%m-%d')}; rev {git_rev()}"
    )
    samples: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(R):  # interleaved, so drift in machine load hits every case alike
        for name, code in CASES.items():
            samples[name].append(timed(code))
    bare = statistics.median(samples["bare interpreter"])
    print(f"{'import':28} {'ms over bare':>13}")
    for name in CASES:
        if name != "bare interpreter":
            print(f"{name:28} {statistics.median(samples[name]) - bare:13.1f}")
    print(f"{'(bare interpreter itself)':28} {bare:13.1f}")


if __name__ == "__main__":
    main()
