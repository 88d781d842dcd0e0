"""A sink that appends records as JSON lines to a size-rotated file, safe with many writing processes.

What a user may rely on:

- one line per record (see :mod:`clisight.pipeline.serialize` for its keys), each batch appended
  whole: lines from several processes (or several sinks) writing the same path never interleave
  and are never torn, even while they rotate the file;
- when appending a batch would take the file past ``max_bytes``, it is renamed ``<path>.1`` (older
  ones shift to ``.2`` ... up to ``backups``, the oldest is deleted; with ``gzip=True`` rotated files
  are ``<path>.N.gz``); a batch larger than ``max_bytes`` is still written, alone in a fresh file;
- a sidecar ``<path>.lock`` file is created next to the log and left there (deleting a lock file
  others may hold is what makes lock files unsafe);
- errors (disk full, permission denied) propagate from :meth:`JsonlSink.write` and leave no partial
  line behind; the pipeline counts the batch as dropped.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from clisight.exceptions import ConfigError
from clisight.pipeline.serialize import record_to_json
from clisight.types import Deadline, Record

_FLAGS: Final = os.O_APPEND | os.O_CREAT | os.O_WRONLY
# Level 6 packs our JSON lines ~18x at ~180 MiB/s: a 50 MiB rotation holds the lock about 0.3 s.
_GZIP_LEVEL: Final = 6

# Descriptors a forked child inherited and let go of: never closed there (see Sink.after_fork),
# kept referenced so nothing ever mistakes them for free.
_INHERITED_FDS: list[int] = []


_SQLITE_MAGIC: Final = b"SQLite format 3\x00"
_SQLITE_SIDE_FILES: Final = ("-wal", "-shm", "-journal")


def _is_database(path: str) -> bool:
    """True for a SQLite database file, or a file SQLite keeps beside one (``-wal``, ``-shm``...)."""
    bases = [path] + [path[: -len(s)] for s in _SQLITE_SIDE_FILES if path.endswith(s)]
    for base in bases:
        try:
            with open(base, "rb") as handle:
                if handle.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC:
                    return True
        except OSError:
            continue
    return False


class JsonlSink:
    """Append records to ``path`` as JSON lines, rotating by size.  Implements :class:`Sink`."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        max_bytes: int = 50 * 1024 * 1024,
        backups: int = 5,
        gzip: bool = False,
        name: str = "jsonl",
    ) -> None:
        if max_bytes <= 0:
            raise ConfigError("max_bytes", "JsonlSink()", max_bytes, "a positive number of bytes")
        if backups < 0:
            raise ConfigError("backups", "JsonlSink()", backups, "0 (rotation discards) or more")
        if gzip:
            # Import here, in the caller's thread: an import in the writer thread could hold an
            # import lock at the moment another thread forks, and the child would wait on it forever.
            import gzip as _gzip  # noqa: F401
        self.name = name
        self.path = os.fspath(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self.gzip = gzip
        self._lock_path = self.path + ".lock"
        self._fd: int | None = None
        self._lock_fd: int | None = None
        # flock is per open file description, not per thread: threads of one process must queue here.
        self._mutex = threading.Lock()

    spool_dir: Path | None = None  # appending is the whole job: there is nothing to spool for

    def open(self, deadline: Deadline | None = None) -> None:
        """Nothing to do ahead: the file is opened (and re-opened after rotation) by :meth:`write`."""

    def write(self, batch: Sequence[Record], deadline: Deadline | None = None, key: str = "") -> None:
        """Append the whole batch or raise, leaving the file as it was."""
        if not batch:
            return
        # Serialise before taking the lock so other processes wait only for the I/O.
        data = b"\n".join([record_to_json(r) for r in batch]) + b"\n"
        with self._mutex:
            lock_fd = self._lock_fd if self._lock_fd is not None else self._open_lock()
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            try:
                fd = self._current_fd()
                size = os.fstat(fd).st_size
                if size and size + len(data) > self.max_bytes:
                    self._rotate()
                    fd = self._open_log()
                    size = os.fstat(fd).st_size
                self._append(fd, data, size)
            finally:
                fcntl.flock(lock_fd, fcntl.LOCK_UN)

    def flush(self, deadline: Deadline | None = None) -> None:
        """Nothing to do: each batch is in the file when :meth:`write` returns."""

    def close(self, deadline: Deadline | None = None) -> None:
        """Release the file handles.  A later :meth:`write` reopens them."""
        with self._mutex:
            fds = (self._fd, self._lock_fd)
            self._fd = self._lock_fd = None
            for fd in fds:
                if fd is not None:
                    os.close(fd)

    def after_fork(self) -> None:
        """In a forked child: forget the parent's handles without closing them; reopen on next write."""
        for fd in (self._fd, self._lock_fd):
            if fd is not None:
                # Never flock or close the inherited lock fd: it shares the parent's open file
                # description, so the child would hold (or release) the parent's lock.
                _INHERITED_FDS.append(fd)
        self._fd = self._lock_fd = None
        # The parent's writer thread may have held the mutex at fork time; it does not exist here.
        self._mutex = threading.Lock()

    def _open_lock(self) -> int:
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        return self._lock_fd

    def _open_log(self) -> int:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if _is_database(self.path):
            # jsonl_path set to the store's own file (or its -wal): lines appended there would
            # corrupt the database.  The batch is dropped and counted, with this as the reason.
            raise OSError(
                errno.EINVAL,
                f"{self.path} is a SQLite database or one of its files (the store?), not a JSON lines "
                "file: nothing is appended to it; set jsonl_path to another file",
            )
        self._fd = os.open(self.path, _FLAGS, 0o644)
        return self._fd

    def _current_fd(self) -> int:
        """Our fd, reopened if another process rotated the file since we opened it (lock held)."""
        if self._fd is None:
            return self._open_log()
        try:
            on_disk = os.stat(self.path)
        except FileNotFoundError:
            return self._open_log()
        ours = os.fstat(self._fd)
        if (ours.st_ino, ours.st_dev) != (on_disk.st_ino, on_disk.st_dev):
            return self._open_log()
        return self._fd

    def _append(self, fd: int, data: bytes, size_before: int) -> None:
        view = memoryview(data)
        try:
            while view:
                written = os.write(fd, view)
                if written == 0:
                    raise OSError(errno.EIO, f"write to {self.path} made no progress")
                view = view[written:]
        except BaseException:
            # Every writer appends under the lock we hold, so cutting back removes only our torn tail.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size_before)
            raise

    def _backup(self, index: int, suffix: str = "") -> str:
        return f"{self.path}.{index}{suffix}"

    def _rotate(self) -> None:
        """Shift the backups and rename the live file to ``.1`` (lock held)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self.backups == 0:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            return
        # Only the contiguous run .1 .. .top-1 needs shifting; this keeps rotation cheap with many backups.
        top = 1
        while top <= self.backups and any(os.path.exists(self._backup(top, s)) for s in ("", ".gz")):
            top += 1
        if top > self.backups:
            top = self.backups
            for suffix in ("", ".gz"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._backup(top, suffix))
        for index in range(top - 1, 0, -1):
            # A plain .N can exist beside .gz ones if a compression failed; it shifts all the same.
            for suffix in ("", ".gz"):
                with contextlib.suppress(FileNotFoundError):
                    os.replace(self._backup(index, suffix), self._backup(index + 1, suffix))
        os.replace(self.path, self._backup(1))
        if self.gzip:
            self._compress(self._backup(1))

    def _compress(self, source: str) -> None:
        """Replace ``source`` by ``source.gz`` (lock held).

        Compressing under the lock is what makes it lossless: every writer checks, under the lock,
        that its fd is still the live file, so nothing can append to ``source`` while we read it,
        and no other rotation can shift it away half-compressed.  It runs before the batch is
        written, so a failure here drops that batch (counted) and keeps ``source`` uncompressed.
        """
        import gzip  # imported already by __init__ when gzip=True; this is a dict lookup

        target = source + ".gz"
        partial = target + ".partial"
        try:
            with open(source, "rb") as plain, gzip.open(partial, "wb", compresslevel=_GZIP_LEVEL) as packed:
                shutil.copyfileobj(plain, packed, 1024 * 1024)
            os.replace(partial, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(partial)
            raise
        os.unlink(source)
