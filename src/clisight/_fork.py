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

Before all of them, the coordinator waits (at most ``WARM_UP_WAIT`` seconds) until no thread is
inside :func:`warming_up`, and holds new warm-ups back until the fork is done.  A thread inside an
import holds that module's import lock; a child forked at that moment would wait on it forever at
its next import of the module.  So the writer threads do all their importing in one warm-up when
they start (:func:`warming_up`), and nothing after it: the host program's thread never pays for
the store's code (``sqlite3``, ``orjson``, the schema), and no fork ever lands inside that import.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Final

from clisight._safety import record_internal_error

STORES: Final = 10
PIPELINES: Final = 20
CLIENT: Final = 30

WARM_UP_WAIT: Final = 5.0  # seconds a fork waits for warm-ups to finish; then it goes ahead anyway

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


class _WarmUps:
    """How many threads are inside a warm-up, and how many forks are under way (both under ``cond``)."""

    def __init__(self) -> None:
        self.cond = threading.Condition(threading.Lock())
        self.active = 0
        self.forking = 0


_warm_ups = _WarmUps()


@contextmanager
def warming_up() -> Iterator[None]:
    """Do the imports of a pipeline thread inside this block, and never import outside it.

    A fork waits until no thread is inside the block (so no child inherits a held import lock), and
    a block waits while a fork is under way; both waits are bounded by ``WARM_UP_WAIT`` seconds.
    """
    state = _warm_ups
    with state.cond:
        state.cond.wait_for(lambda: not state.forking, WARM_UP_WAIT)
        state.active += 1
    try:
        yield
    finally:
        with state.cond:
            state.active -= 1
            state.cond.notify_all()


def _wait_for_warm_ups() -> None:
    state = _warm_ups
    deadline = time.monotonic() + WARM_UP_WAIT
    with state.cond:
        state.forking += 1  # no warm-up starts from here until the fork is done
        while state.active and time.monotonic() < deadline:
            state.cond.wait(deadline - time.monotonic())


def _end_fork_in_parent() -> None:
    state = _warm_ups
    with state.cond:
        state.forking = max(0, state.forking - 1)
        state.cond.notify_all()


def _run(steps: list[tuple[int, Step]], reverse: bool = False) -> None:
    for _stage, fn in reversed(steps) if reverse else list(steps):
        try:
            fn()
        except Exception as exc:  # a fork hook must never raise into the forking code
            record_internal_error(exc)


def _before_fork() -> None:
    # First, before any step takes a lock: a warm-up ends by creating the objects (stores) the
    # steps below make safe, so they must see them.
    try:
        _wait_for_warm_ups()
    except Exception as exc:  # a fork hook must never raise into the forking code
        record_internal_error(exc)
    _run(_before, reverse=True)


def _after_fork_in_parent() -> None:
    _run(_in_parent)
    _end_fork_in_parent()


def _after_fork_in_child() -> None:
    global _warm_ups
    # First: the steps below start writer threads, whose warm-up must not wait on the parent's
    # state (its threads are gone here, and one of them may have held the lock at the fork).
    _warm_ups = _WarmUps()
    _run(_in_child)


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(
        before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
    )
