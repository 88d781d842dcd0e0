"""The store as a :class:`~clisight.pipeline.base.Sink`: the only way records reach a store."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from clisight.types import Record

if TYPE_CHECKING:
    from clisight.store.base import Store


class StoreSink:
    """Writes batches to a store opened lazily, in the writer thread, on the first batch.

    Opening lazily keeps ``clisight.init()`` cheap: the SQLite file, its pragmas and migrations
    cost the host program nothing until there is something to write.  The store's code is
    imported by the constructor, so the writer thread never imports.
    """

    def __init__(self, url: str, name: str = "store") -> None:
        # Import now, in the caller's thread, never in the writer: a writer thread inside an import
        # when another thread forks leaves the child waiting on that import's lock forever.
        import clisight.store  # noqa: F401

        self.url = url
        self.name = name
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            from clisight.store import open_store

            self._store = open_store(self.url)
        return self._store

    def write(self, batch: Sequence[Record]) -> None:
        self.store.write_batch(batch)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def after_fork(self) -> None:
        if self._store is not None:
            self._store.after_fork()
