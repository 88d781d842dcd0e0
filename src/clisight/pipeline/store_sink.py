"""The store as a :class:`~clisight.pipeline.base.Sink`: the only way records reach a store."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from clisight import _config
from clisight._fork import warming_up
from clisight._safety import PIPELINE_THREADS, guard
from clisight.exceptions import StoreError
from clisight.pipeline import spool
from clisight.pipeline.spool import SpoolImport, import_spool, spool_dir_for
from clisight.store import backend_of, open_store, store_path

if TYPE_CHECKING:
    from clisight.store.base import Store
    from clisight.types import Deadline, Record

RETENTION_EVERY_NS = 24 * 3600 * 10**9
RETENTION_STATE_KEY = "retention.last_run_ns"


class StoreSink:
    """Writes batches to a store whose file is opened lazily, in the writer thread, on the first batch.

    Opening lazily keeps ``clisight.init()`` cheap: the store's code (``sqlite3``, ``orjson``, the
    schema), the SQLite file, its pragmas and migrations cost the host program's thread nothing.
    The constructor only checks the URL (raising ``UnsupportedStoreURL``); :meth:`open`, first
    thing in the writer thread, imports the store's code in one warm-up that forks wait for
    (``clisight._fork.warming_up``), then connects.  After that the writer imports nothing.

    Retention runs automatically: after a write, at most once a day per store (the time of the
    last run is kept in the store, so many short-lived processes share one schedule), records
    older than ``retention_days`` are deleted and the file is trimmed to ``retention_max_mb``.
    Zero turns either limit off.  The pass runs in a daemon thread with its own connection, so a
    large store never holds up the writer (or the flush at exit); it deletes in short transactions,
    so a process that exits mid-pass leaves a consistent file and the next run finishes the work.

    A batch the store refuses for its own sake while the program runs (locked past its timeout by
    other writers, a disk error, a file that is not a database) is spooled, not dropped: the next
    writer imports it once the store takes writes again (up to ``spool_max_bytes``; beyond, dropped
    and counted).
    """

    spool_when_down = True

    def __init__(
        self,
        url: str,
        name: str = "store",
        retention_days: float = 0.0,
        retention_max_mb: float = 0.0,
        rollup_days: tuple[float, float, float] = (90.0, 400.0, 730.0),
    ) -> None:
        self.url = url
        self.name = name
        self.retention_days = retention_days
        self.rollup_days = rollup_days  # minute, hour and day rollups
        # Check the URL now: an unknown scheme is an error the caller can see (UnsupportedStoreURL),
        # not a silent dropped batch.  The store itself is made in the writer's warm-up.
        path = store_path(url)
        # The automatic size cap is for a file on this machine; a database server's size is its
        # owners' to manage (`clisight vacuum --max-mb` still applies one when asked).
        self.retention_bytes = int(retention_max_mb * 1024 * 1024) if path is not None else 0
        self._store: Store | None = None
        self._next_retention_check = 0 if (retention_days or retention_max_mb) else None
        self.retention_thread: threading.Thread | None = None
        # Beside the store's file (resolved as SqliteStore resolves it); for a database server, in
        # this machine's data dir under a name made from the URL; an in-memory store has none.
        self.spool_dir: Path | None = None
        # The store's file (None for a database server or memory): other sinks must not write it.
        self.file: Path | None = None
        if path is not None and str(path) != ":memory:":
            self.file = path.expanduser().resolve()
            self.spool_dir = spool_dir_for(self.file)
        elif backend_of(url) == "postgresql":
            import hashlib  # here, not at the top: the constructor runs on the caller's path

            digest = hashlib.sha256(url.strip().encode()).hexdigest()[:16]
            self.spool_dir = spool_dir_for(_config.default_store_path().parent / f"postgresql-{digest}")
        self._spool_checked = False
        self.spool_imported = 0

    @classmethod
    def from_config(cls, url: str, config: _config.Config) -> StoreSink:
        """The sink for ``url`` with the configuration's retention settings."""
        return cls(
            url,
            retention_days=config["retention_days"],
            retention_max_mb=config["retention_max_mb"],
            rollup_days=(config["rollup_minute_days"], config["rollup_hour_days"], config["rollup_day_days"]),
        )

    @property
    def store(self) -> Store:
        if self._store is None:
            # Importing the store's code (the first time) and registering the store for the fork
            # hooks: one warm-up, which a fork waits for (see clisight._fork).
            with warming_up():
                spool.warm_up()
                self._store = open_store(self.url)
        return self._store

    def open(self, deadline: Deadline | None = None) -> None:
        """Import the store's code, connect and migrate, then import what earlier processes spooled.

        Runs first thing in the writer thread, off the host program's path.
        """
        self.store.migrate()
        self._spool_checked = True
        self.import_spool(deadline)

    def write(self, batch: Sequence[Record], deadline: Deadline | None = None, key: str = "") -> None:
        if not self._spool_checked:
            self._spool_checked = True
            self.import_spool(deadline)
        self.store.write_batch(batch, deadline=deadline, exit_key=key)
        if self._next_retention_check is not None and time.monotonic_ns() >= self._next_retention_check:
            self._next_retention_check = time.monotonic_ns() + RETENTION_EVERY_NS
            self.retention_thread = threading.Thread(
                target=self._retain_in_background, name="clisight-retention", daemon=True
            )
            self.retention_thread.start()

    def _retain_in_background(self) -> None:
        PIPELINE_THREADS.add(threading.get_ident())
        try:
            with guard():  # the batch is stored; a retention failure is ours to count, not the sink's
                store = open_store(self.url)
                try:
                    self.retain_if_due(store=store)
                finally:
                    store.close()
        finally:
            PIPELINE_THREADS.discard(threading.get_ident())  # idents are reused by later threads

    def retain_if_due(self, now_ns: int | None = None, store: Store | None = None) -> bool:
        """Apply retention if the store's last run is a day old or more; True if it ran."""
        store = store or self.store
        now_ns = time.time_ns() if now_ns is None else now_ns
        last = store.load_state(RETENTION_STATE_KEY)
        if isinstance(last, int) and now_ns - last < RETENTION_EVERY_NS:
            return False
        # Claim the run first, so other processes starting now skip it.
        store.save_state(RETENTION_STATE_KEY, now_ns)
        from clisight.store.base import RetentionPolicy

        minute, hour, day = self.rollup_days
        store.apply_retention(RetentionPolicy(self.retention_days, minute, hour, day, self.retention_bytes))
        return True

    def import_spool(self, deadline: Deadline | None = None) -> SpoolImport:
        """Import the records earlier processes spooled for this store (each exactly once).

        Runs on this sink's first write, so the next writer of a store takes in what the last ones
        could not write before their exit deadline; ``clisight doctor --repair`` calls it directly.
        """
        if self.spool_dir is None or not self.spool_dir.is_dir():
            return SpoolImport(0, 0, 0)
        store = self.store

        def write(records: Sequence[Record], once_key: str) -> bool:
            return store.write_batch(records, deadline=deadline, once_key=once_key)

        try:
            done = import_spool(self.spool_dir, write, deadline)
        except (StoreError, OSError):
            self._spool_checked = False  # the store is busy or the disk refused: try with the next batch
            return SpoolImport(0, 0, 0)
        self.spool_imported += done.records
        return done

    def replay(self, deadline: Deadline | None = None) -> None:
        """The store took a write again after batches were spooled in this run: import them now
        (the pipeline closed this process's spool file first), not only in the next process."""
        self._spool_checked = True
        self.import_spool(deadline)

    def flush(self, deadline: Deadline | None = None) -> None:
        """Nothing to do: every write is committed before it returns."""

    def close(self, deadline: Deadline | None = None) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def after_fork(self) -> None:
        if self._store is not None:
            self._store.after_fork()
