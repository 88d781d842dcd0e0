"""Helpers for tests, yours and ours: an in-memory sink and a fresh client per test.

::

    from clisight.testing import capture

    def test_my_command_logs_its_result():
        with capture() as sink:
            my_cli.main(["run"])
        assert any(r.body == "done" for r in sink.records)

    def test_my_command_reports_its_cost():
        with capture_store() as store:
            my_cli.main(["chat"])
        usage = clisight.query.Query(store).usage()
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clisight.types import Deadline, Record

if TYPE_CHECKING:
    from clisight.store.base import Store


class MemorySink:
    """A sink that keeps every record in a list (thread-safe).  ``fail``/``delay`` simulate a bad sink."""

    def __init__(self, name: str = "memory", *, fail: bool = False, delay: float = 0.0) -> None:
        self.name = name
        self.records: list[Record] = []
        self.batches = 0
        self.fail = fail
        self.delay = delay
        self._lock = threading.Lock()

    spool_dir: Path | None = None

    def open(self, deadline: Deadline | None = None) -> None:
        pass

    def write(self, batch: Sequence[Record], deadline: Deadline | None = None, key: str = "") -> None:
        if self.delay:
            threading.Event().wait(
                max(0.0, min(self.delay, deadline.remaining() if deadline else self.delay))
            )
        if self.fail:
            raise OSError("MemorySink told to fail")
        with self._lock:
            self.records.extend(batch)
            self.batches += 1

    def flush(self, deadline: Deadline | None = None) -> None:
        pass

    def close(self, deadline: Deadline | None = None) -> None:
        pass

    def after_fork(self) -> None:
        # Never take the old lock: the parent's writer thread may have held it at the fork, and
        # that thread does not exist here to release it.
        self._lock = threading.Lock()
        self.records = []

    def of_kind(self, kind: str) -> list[Record]:
        with self._lock:
            return [r for r in self.records if r.kind == kind]


@contextmanager
def _client_with(sink: Any, config: dict[str, Any]) -> Iterator[None]:
    """A fresh client whose only sink is ``sink``, for the block; any running client is shut down first."""
    from clisight.client import core

    core.shutdown(timeout=1.0)
    config.setdefault("store", "none")
    core.init(sinks=[sink], **config)
    try:
        yield
    finally:
        core.shutdown(timeout=5.0)


@contextmanager
def capture(**config: Any) -> Iterator[MemorySink]:
    """Run a block with a fresh clisight client whose only sink is a :class:`MemorySink`.

    Any client already running is shut down first; the block's records are flushed into the sink
    before the context exits.
    """
    sink = MemorySink()
    with _client_with(sink, config):
        yield sink


class _StoreWriter:
    """A sink onto a store the caller owns (and reads after the block), so it does not close it."""

    name = "store"

    def __init__(self, store: Store) -> None:
        self.store = store

    spool_dir: Path | None = None

    def open(self, deadline: Deadline | None = None) -> None:
        pass

    def write(self, batch: Sequence[Record], deadline: Deadline | None = None, key: str = "") -> None:
        self.store.write_batch(batch, deadline=deadline)

    def flush(self, deadline: Deadline | None = None) -> None:
        pass

    def close(self, deadline: Deadline | None = None) -> None:
        pass

    def after_fork(self) -> None:
        self.store.after_fork()


@contextmanager
def capture_store(**config: Any) -> Iterator[Store]:
    """Like :func:`capture`, into a fresh in-memory store (the real schema and queries, no file).

    Yields the store: read it after the block with ``clisight.query.Query(store)``.
    """
    from clisight.store import open_store

    store = open_store("memory://")
    with _client_with(_StoreWriter(store), config):
        yield store
