"""Holding a backend's live stores across ``fork``, the same way for every backend.

No thread may be inside a database library at fork (its mutexes would stay locked forever in the
child), and a child must not inherit a batch half applied.  Before a fork, each store's writer lock
is taken (bounded wait), the reads under way are let finish while new ones wait (a store with a
read pool has a ``_gate`` condition and an ``_active`` count), and the backend's ``prepare`` step
runs (SQLite closes its connections there).  After the fork the parent lets everything go; the
child calls every store's ``after_fork``.  Registered with ``clisight._fork`` at the STORES stage.
"""

from __future__ import annotations

import functools
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from clisight._fork import STORES, register_fork_steps


class Held(Protocol):
    """What a store offers to be held across fork."""

    _lock: threading.RLock

    def after_fork(self) -> None: ...


S = TypeVar("S", bound=Held)


class ForkHold(Generic[S]):
    """The live stores of one backend and their fork steps."""

    def __init__(
        self,
        timeout: float,
        prepare: Callable[[S], None] | None = None,
        in_child: Callable[[], None] | None = None,
    ) -> None:
        self.live: weakref.WeakSet[S] = weakref.WeakSet()
        self.pending = threading.Event()  # set from just before a fork until just after it
        self._held: list[S] = []
        self._timeout = timeout
        self._prepare = prepare
        self._in_child = in_child
        register_fork_steps(
            STORES, before=self._before, after_in_parent=self._in_parent, after_in_child=self._child
        )

    def add(self, store: S) -> None:
        self.live.add(store)

    def lock(self, store: S) -> threading.RLock:
        """``store``'s writer lock, after letting a pending fork take it first (a thread releasing
        and retaking the lock in a loop would starve the forking thread)."""
        if self.pending.is_set():
            give_up = time.monotonic() + 1.0
            while self.pending.is_set() and time.monotonic() < give_up:
                time.sleep(0.0005)
        return store._lock

    def wait_for_fork(self, gate: threading.Condition) -> None:
        """Called with ``gate`` held by a reader about to start: wait (bounded) while a fork is pending."""
        if self.pending.is_set():
            gate.wait_for(lambda: not self.pending.is_set(), timeout=1.0)

    def _before(self) -> None:
        self.pending.set()
        for store in list(self.live):
            if not store._lock.acquire(timeout=self._timeout):
                continue
            self._held.append(store)
            gate: Any = getattr(store, "_gate", None)
            if gate is not None:
                gate.acquire()
                gate.wait_for(functools.partial(_no_reads, store), timeout=self._timeout)
            if self._prepare is not None:
                self._prepare(store)

    def _in_parent(self) -> None:
        self.pending.clear()
        while self._held:
            store = self._held.pop()
            gate: Any = getattr(store, "_gate", None)
            if gate is not None:
                gate.notify_all()
                gate.release()
            store._lock.release()

    def _child(self) -> None:
        self._held.clear()  # after_fork gives each store fresh locks
        self.pending.clear()
        if self._in_child is not None:
            self._in_child()
        for store in list(self.live):
            store.after_fork()


def _no_reads(store: Any) -> bool:
    return bool(store._active == 0)
