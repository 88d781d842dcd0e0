"""The spool: records the exit deadline could not write, kept on disk for the next writer.

What a user may rely on:

- A process whose sink cannot take everything before ``exit_timeout`` (a store locked by many
  writers, a slow disk) appends what is left to its own file in ``<store>.spool/`` (one file per
  process, named ``<pid>-<time>-<random>.jsonl``, created 0600, appended whole and fsync'd), and
  counts those records as ``spooled``, not dropped.
- A file being appended to is never imported from under its writer: the writer holds an exclusive
  ``flock`` on it from before it gets its importable name until it closes it (or exits), and an
  importer skips a file it cannot lock.  (Without ``fcntl``, only this process's own open files are
  known and skipped.)
- The next writer of that store (any process that writes to it, or ``clisight doctor --repair``)
  imports every spool file it finds, each exactly once: a file is claimed by an atomic rename,
  imported in chunks, and every chunk is written in the same transaction as a marker naming it,
  so an importer that dies half-way leaves the rest to the next one and nothing is stored twice.
- A line torn by a crash mid-append is skipped (and counted); the file's other lines are kept.
- A spool file never grows past ``max_bytes`` (config ``spool_max_bytes``, 256 MiB by default): a
  batch that would take it past is refused, and its records are counted as dropped, so a destination
  that stays down for days cannot fill the disk.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final, NamedTuple

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from clisight.types import Deadline, Record

SUFFIX: Final = ".jsonl"
CLAIMED: Final = ".claimed"
PARTIAL: Final = ".partial"  # a file made but not yet locked: importers leave it alone
CHUNK: Final = 5_000  # records per import transaction
BATCH_KEY: Final = "clisight.spool.batch"  # a header line: the next N records are one keyed batch
_FLAGS: Final = os.O_APPEND | os.O_CREAT | os.O_WRONLY
MAX_BYTES: Final = 256 * 1024 * 1024  # per spool file (one per process and sink)
_CREATE_TRIES: Final = 100  # a folder removed under us again and again is a bug elsewhere: give up
# Spool files this process has open for appending: never imported from under their writer.
_WRITING: set[str] = set()


def warm_up() -> None:
    """Import what appending and importing need (orjson, the serializer): in a writer's warm-up
    (``clisight._fork.warming_up``), never on the host program's path.  The functions below import
    them again, which after this is a lookup in ``sys.modules``."""
    import orjson  # noqa: F401

    from clisight.pipeline import serialize  # noqa: F401


def spool_dir_for(store_path: Path) -> Path:
    """The spool directory of the store file ``store_path``: beside it, named after it."""
    return store_path.with_name(store_path.name + ".spool")


class Spool:
    """One process's spool file in ``directory`` (created on the first append)."""

    def __init__(self, directory: Path, max_bytes: int = MAX_BYTES) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._fd: int | None = None
        self.path: Path | None = None
        self.last_error: OSError | None = None  # why the last refused append was refused

    def after_fork(self) -> None:
        """In a forked child: a file of its own.  The inherited descriptor is closed: it shares the
        parent's ``flock`` (which stays held while the parent's descriptor is open), and a child
        that outlives the parent would otherwise keep the parent's file locked, unimported."""
        self._lock = threading.Lock()
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = None
        self.path = None
        _WRITING.clear()

    def close(self) -> None:
        """Stop appending: the file becomes importable, by this process too."""
        with self._lock:
            if self._fd is not None:
                with contextlib.suppress(OSError):
                    os.close(self._fd)
                self._fd = None
                _WRITING.discard(str(self.path))

    def _make(self, path: Path) -> int:
        """Make ``path`` (and the folder if need be).  An importer in another process removes the
        folder once it has emptied it (``import_spool``): when that falls between our ``mkdir`` and
        ``open``, make the folder again rather than refuse the records."""
        for _ in range(_CREATE_TRIES - 1):
            try:
                # (mkdir's exist_ok raises FileExistsError too when the folder goes right after)
                self.directory.mkdir(parents=True, exist_ok=True)
                return os.open(path, _FLAGS, 0o600)
            except (FileNotFoundError, FileExistsError):
                continue
        self.directory.mkdir(parents=True, exist_ok=True)
        return os.open(path, _FLAGS, 0o600)

    def _create(self, name: str) -> tuple[Path, int]:
        """Create this process's spool file ``name``, locked: made under a name importers skip,
        locked, then renamed to its importable name (the lock goes with the open file)."""
        path = self.directory / name
        if fcntl is None:
            return path, self._make(path)
        partial = self.directory / (name + PARTIAL)
        fd = self._make(partial)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # nobody else knows the file yet: immediate
            os.rename(partial, path)  # the folder cannot go: the file keeps it non-empty
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                partial.unlink()
            raise
        return path, fd

    def append(self, records: Sequence[Record], key: str | None = None) -> bool:
        """Append ``records`` durably; False (nothing half-written is left) if the disk refused them.

        With ``key``, the records are a batch a sink may have stored under that key already (it was
        in flight at the exit deadline): the import stores them under the same key, so only once.
        """
        if not records:
            return True
        import orjson

        from clisight.pipeline.serialize import record_to_json  # see warm_up()

        head = orjson.dumps({BATCH_KEY: key, "records": len(records)}) + b"\n" if key else b""
        data = head + b"".join([record_to_json(r) + b"\n" for r in records])
        with self._lock:
            try:
                if self._fd is None:
                    name = f"{os.getpid()}-{time.time_ns()}-{os.urandom(4).hex()}{SUFFIX}"
                    self.path, self._fd = self._create(name)
                    _WRITING.add(str(self.path))
                size = os.fstat(self._fd).st_size
                if size + len(data) > self.max_bytes:
                    raise OSError(
                        errno.EFBIG,
                        f"spool file full ({size:,} bytes; this batch {len(data):,}; "
                        f"limit spool_max_bytes = {self.max_bytes:,})",
                        str(self.path),
                    )
                view = memoryview(data)
                try:
                    while view:
                        view = view[os.write(self._fd, view) :]
                    os.fsync(self._fd)
                except OSError:
                    with contextlib.suppress(OSError):
                        os.ftruncate(self._fd, size)  # the file is ours alone: cut our torn tail
                    raise
            except OSError as error:
                self.last_error = error
                return False
        return True


def _store(
    write: Callable[[Sequence[Record], str], bool],
    chunk: list[Record],
    keyed: tuple[str, int] | None,
    base: str,
    index: int,
) -> int:
    """Store one chunk under its batch's key, or the file's chunk key; the records stored."""
    key = keyed[0] if keyed is not None else f"spool:{base}:{index}"
    return len(chunk) if write(chunk, key) else 0


class SpoolImport(NamedTuple):
    """What one import pass did."""

    files: int
    records: int
    torn_lines: int


def pending(directory: Path | None) -> tuple[int, int]:
    """(files, records) waiting in a spool directory; (0, 0) when there is none."""
    if directory is None or not directory.is_dir():
        return 0, 0
    files = records = 0
    for path in directory.iterdir():
        if path.name.endswith(SUFFIX) or CLAIMED in path.name:
            files += 1
            with contextlib.suppress(OSError), path.open("rb") as handle:
                records += sum(1 for line in handle if line.strip() and BATCH_KEY.encode() not in line)
    return files, records


def _claimable(directory: Path) -> Iterator[Path]:
    """Spool files nobody is importing: unclaimed ones, and claims left by an importer that died."""
    for path in sorted(directory.iterdir()):
        name = path.name
        if name.endswith(SUFFIX):
            if str(path) not in _WRITING:  # not one this process is still appending to
                yield path
        elif CLAIMED in name:
            owner = name.rsplit(CLAIMED + "-", 1)[-1]
            if owner.isdigit() and not _alive(int(owner)):
                yield path


def _claim(path: Path, claimed: Path) -> int | None:
    """Open ``path`` and rename it to ``claimed``, holding its lock; None if its writer still holds
    the lock (it is being appended to) or another importer got there first."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(path, claimed)  # atomic: of several importers, one wins
    except OSError:
        os.close(fd)
        return None
    return fd


def _sweep_partials(directory: Path) -> None:
    """Remove files a writer made but died before naming (they hold nothing: the name comes first)."""
    for path in directory.glob("*" + PARTIAL):
        owner = path.name.split("-", 1)[0]
        if owner.isdigit() and not _alive(int(owner)):
            with contextlib.suppress(OSError):
                path.unlink()


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def import_spool(
    directory: Path | None,
    write: Callable[[Sequence[Record], str], bool],
    deadline: Deadline | None = None,
) -> SpoolImport:
    """Import every spool file in ``directory`` through ``write(records, once_key)``, exactly once.

    ``write`` must store the records and remember ``once_key`` in one transaction, and store nothing
    (returning False) for a key it has seen before, as ``SqliteStore.write_batch(once_key=...)`` does.
    Stops between files at ``deadline``; the rest waits for the next writer.
    """
    files = records = torn = 0
    if directory is None or not directory.is_dir():
        return SpoolImport(0, 0, 0)
    import orjson  # see warm_up()

    from clisight.pipeline.serialize import dict_to_record

    for path in _claimable(directory):
        if deadline is not None and deadline.expired():
            break
        base = path.name.split(CLAIMED, 1)[0].removesuffix(SUFFIX)
        claimed = path.with_name(f"{base}{CLAIMED}-{os.getpid()}")
        fd = _claim(path, claimed)
        if fd is None:
            continue
        chunk: list[Record] = []
        index = 0
        try:
            with os.fdopen(fd, "rb") as handle:  # closing it lets the lock go
                keyed: tuple[str, int] | None = None  # (key, records left) inside a keyed batch
                for line in handle:
                    if not line.strip():
                        continue
                    try:
                        item = orjson.loads(line)
                        if isinstance(item, dict) and BATCH_KEY in item:
                            # A keyed batch starts: what came before goes in under the file's key.
                            if chunk:
                                records += _store(write, chunk, keyed, base, index)
                                index, chunk = index + 1, []
                            keyed = (str(item[BATCH_KEY]), int(item["records"]))
                            continue
                        chunk.append(dict_to_record(item))
                    except Exception:  # a line cut by a crash mid-append, or not ours: skip it
                        torn += 1
                        continue
                    if keyed is not None and len(chunk) >= keyed[1]:
                        records += _store(write, chunk, keyed, base, index)
                        index, chunk, keyed = index + 1, [], None
                    elif keyed is None and len(chunk) >= CHUNK:
                        records += _store(write, chunk, None, base, index)
                        index, chunk = index + 1, []
                if chunk:
                    records += _store(write, chunk, keyed, base, index)
        except BaseException:
            # Give the file back for a later pass; the markers of the chunks written so far keep
            # them from being stored twice.
            with contextlib.suppress(OSError):
                os.rename(claimed, path.with_name(base + SUFFIX))
            raise
        claimed.unlink()
        files += 1
    with contextlib.suppress(OSError):
        _sweep_partials(directory)
        if not any(directory.iterdir()):
            directory.rmdir()
    return SpoolImport(files, records, torn)
