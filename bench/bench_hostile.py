"""Caller cost of hostile log calls: a 10 MB message, a 10 MB field, and text built to slow the
redaction patterns down, at the default ``max_field_chars`` (16 384).

The promise: a value is cut to the limit before any scan, and every pattern is linear, so a 10 MB
message costs the caller under 5 ms.  Printed: milliseconds per call in the calling thread (the
best of 7 rounds, so a busy machine shows the cost of the call, not of its neighbours).
Usage: python bench/bench_hostile.py
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import git_rev, machine

MB10 = 10_000_000
CASES: dict[str, str] = {
    "10 MB plain text": ("hello world " * (MB10 // 12 + 1))[:MB10],
    "10 MB one long run": "x" * MB10,
    "10 MB base64": ("aB3/" * (MB10 // 4))[:MB10],
    "10 MB 'eyJ-' repeated": "eyJ-" * (MB10 // 4),
    "10 MB 'aws ' repeated": "aws " * (MB10 // 4),
    "10 MB e-mail-like": ("a." * (MB10 // 2)) + "@",
}


def best_ms(fn: Callable[[], None], rounds: int = 7) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) * 1000


def main() -> None:
    import clisight
    from clisight.testing import MemorySink

    print(f"# caller cost of hostile log calls; {machine()}; {time.strftime('%Y-%m-%d')}; rev {git_rev()}")
    clisight.init(service="bench", sinks=[MemorySink()], store="none", queue_size=1_000_000)
    log = clisight.get_logger("api")
    print(f"{'input':28} {'as message ms':>14} {'as field ms':>12}")
    for name, text in CASES.items():
        log.info(text[:20_000], body=text[:20_000])  # compile the patterns it needs, untimed
        as_message = best_ms(lambda: log.info(text))  # noqa: B023 (called before the loop moves on)
        as_field = best_ms(lambda: log.info("payload", body=text))  # noqa: B023
        print(f"{name:28} {as_message:14.3f} {as_field:12.3f}")
    clisight.shutdown()


if __name__ == "__main__":
    main()
