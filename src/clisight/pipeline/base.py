"""The :class:`Sink` protocol: where the writer thread hands batches of records.

Every call is handed a :class:`~clisight.types.Deadline` (or ``None``: no deadline), the way the
OpenTelemetry SDK hands its exporters the remaining shutdown time: a sink waiting on a lock, a busy
database or a network peer gives up at the deadline instead of holding the host program's exit.  The
pipeline brings the deadline of a write already under way forward when the process starts to exit.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from clisight.types import Deadline, Record


@runtime_checkable
class Sink(Protocol):
    """A destination for records.  Called only from the pipeline's writer thread (``after_fork`` and
    ``close`` excepted).

    - ``open`` runs once, in the writer thread, before the first batch: connect, migrate, take in
      what earlier processes spooled.  It keeps that work off the host program's path.  A raise is
      counted as an error; writes then try again.
    - ``write`` stores a whole batch or raises.  A raise is counted as an error: the pipeline then
      cleans the batch's values and retries once, isolating any record the sink still refuses, so
      one bad value costs only its own record; a batch that fails as a whole (a dead sink) is
      counted as dropped, or spooled at exit.  It never retries forever and never lets the error
      reach the host program.
    - ``key`` names the batch.  A sink that can store a marker with its data (the SQLite store)
      remembers the key when it commits while the process is exiting, and stores nothing for a key
      it has seen: the exiting thread may spool a copy of a batch still in flight at the deadline,
      and the copy must not be stored a second time when the original write did land.
    - ``flush`` pushes out anything the sink buffers itself; ``close`` releases its handles.
    - ``after_fork`` runs in a forked child: drop inherited handles without closing them (closing a
      SQLite connection or file inherited from the parent can disturb the parent's locks) and
      without taking any lock the parent's threads may have held at the fork.
    - ``spool_dir``: where records this sink could not take before the exit deadline are spilled
      (one append-only file per process) for the next writer to import, or ``None`` (they are
      counted as dropped).
    """

    name: str
    spool_dir: Path | None

    def open(self, deadline: Deadline | None = None) -> None: ...

    def write(self, batch: Sequence[Record], deadline: Deadline | None = None, key: str = "") -> None: ...

    def flush(self, deadline: Deadline | None = None) -> None: ...

    def close(self, deadline: Deadline | None = None) -> None: ...

    def after_fork(self) -> None: ...
