"""The :class:`Sink` protocol: where the writer thread hands batches of records."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from clisight.types import Record


@runtime_checkable
class Sink(Protocol):
    """A destination for records.  Called only from the pipeline's writer thread.

    ``write`` stores a whole batch or raises; the pipeline counts a raise as an error and the
    batch as dropped (it never retries forever and never lets the error reach the host program).
    ``after_fork`` runs in a forked child: drop inherited handles without closing them (closing a
    SQLite connection or file inherited from the parent can disturb the parent's locks).
    """

    name: str

    def write(self, batch: Sequence[Record]) -> None: ...

    def close(self) -> None: ...

    def after_fork(self) -> None: ...
