"""The one fork coordinator: what clisight does around ``os.fork``, in a stated order.

Each part registers its steps with a stage number instead of calling ``os.register_at_fork`` itself
(whose order would be the order modules happen to be imported in).  In the child, steps run by
stage, lowest first; before the fork, highest first (the reverse, so the lowest stage is prepared
last and released first):

1. ``STORES``: connections are parked, locks replaced (no SQLite state may cross a fork);
2. ``PIPELINES``: every channel gets a fresh queue, lock, event and counters, its sink drops the
   parent's handles, and the writer thread is started again (on stores already safe to use);
3. ``CLIENT``: the run's resource gets the child's pid; ``multiprocessing`` children get an exit hook.

A step that fails is counted as an internal error; the steps after it still run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Final

from clisight._safety import record_internal_error

STORES: Final = 10
PIPELINES: Final = 20
CLIENT: Final = 30

Step = Callable[[], None]
_before: list[tuple[int, Step]] = []
_in_parent: list[tuple[int, Step]] = []
_in_child: list[tuple[int, Step]] = []


def register_fork_steps(
    stage: int,
    *,
    before: Step | None = None,
    after_in_parent: Step | None = None,
    after_in_child: Step | None = None,
) -> None:
    """Run these functions around every fork of this process, at ``stage`` (see the module doc)."""
    for steps, fn in ((_before, before), (_in_parent, after_in_parent), (_in_child, after_in_child)):
        if fn is not None:
            steps.append((stage, fn))
            steps.sort(key=lambda step: step[0])


def _run(steps: list[tuple[int, Step]], reverse: bool = False) -> None:
    for _stage, fn in reversed(steps) if reverse else list(steps):
        try:
            fn()
        except Exception as exc:  # a fork hook must never raise into the forking code
            record_internal_error(exc)


def _before_fork() -> None:
    _run(_before, reverse=True)


def _after_fork_in_parent() -> None:
    _run(_in_parent)


def _after_fork_in_child() -> None:
    _run(_in_child)


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(
        before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
    )
