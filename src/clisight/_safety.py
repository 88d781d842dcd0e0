"""The one never-raise guard for every place clisight runs inside the host program.

Hooks, atexit, signal handlers, the logging bridge and the writer thread all run their bodies
inside :func:`guard`.  An internal error is counted (``internal_errors`` in
``clisight.pipeline_stats()``) and swallowed, so the host program never sees it.  Under the
project's own test suite (``CLISIGHT_RAISE_INTERNAL=1``, set by ``tests/conftest.py``) the same
guard re-raises, so our bugs surface in tests and never in users' programs.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

_raise_internal = os.environ.get("CLISIGHT_RAISE_INTERNAL", "") == "1"
# Idents of the pipeline's own threads (writers, retention).  What they log (a sink's library
# logging through a root LoggingHandler) must not re-enter the pipeline: that would feed on itself.
PIPELINE_THREADS: set[int] = set()
_errors = [0]
_last: list[str] = []


def internal_errors() -> int:
    """How many internal errors the guard has swallowed in this process."""
    return _errors[0]


def last_internal_error() -> str | None:
    """A one-line description of the most recent swallowed error, for ``clisight doctor``."""
    return _last[-1] if _last else None


def record_internal_error(exc: BaseException) -> None:
    _errors[0] += 1
    _last[:] = [f"{type(exc).__name__}: {exc}"[:300]]
    if os.environ.get("CLISIGHT_DEBUG") == "1":
        with contextlib.suppress(Exception):  # stderr may be closed at exit
            print(f"clisight internal error: {type(exc).__name__}: {exc}", file=sys.stderr)


@contextmanager
def guard() -> Iterator[None]:
    """Run a block that must never raise into the host program."""
    try:
        yield
    except Exception as exc:
        record_internal_error(exc)
        if _raise_internal:
            raise
