"""The write pipeline: bounded queues and background writer threads.

The caller's whole cost is :meth:`Pipeline.emit`: a length check and a ``deque.append`` per sink.
Each sink has its own :class:`Channel` (queue, writer thread, counters), so a slow or dead sink
never delays another.  A writer wakes when its queue reaches ``batch_size`` or every
``flush_interval`` seconds, and writes batches of ``batch_size`` records, larger (up to 16x) when
its queue is deep.

Promises (tested in ``tests/pipeline``):

- **Bounded**: a full queue drops the new record and counts it (``overflow="drop"``), or makes the
  caller wait at most ``block_timeout`` seconds for room (``overflow="block"``), then drops and counts.
- **Accounted**: for every sink, ``emitted == stored + dropped + queued + in flight`` at every read;
  a batch the sink refuses is counted in ``errors`` (one per failed batch) and its records in ``dropped``.
- **Deadlined**: :meth:`Pipeline.flush` returns within its timeout whatever the sinks do.
- **Fork-safe**: :func:`_after_fork_in_child` gives every channel in a forked child a fresh queue,
  event, counters and thread; the parent's queued records stay the parent's to write.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from clisight.client._safety import guard, record_internal_error
from clisight.pipeline.base import Sink
from clisight.types import Record

BATCH_GROWTH = 16


class SinkStats(NamedTuple):
    """Counters of one sink: ``emitted == stored + dropped + queue_depth + in_flight`` at every read
    (``in_flight`` is the batch the writer holds; 0 once a flush returned)."""

    sink: str
    emitted: int
    stored: int
    dropped: int
    dropped_queue_full: int
    errors: int
    queue_depth: int
    in_flight: int
    last_error: str | None

    def as_dict(self) -> dict[str, Any]:
        return self._asdict()


class Channel:
    """One sink's queue, writer thread and counters."""

    def __init__(self, sink: Sink, queue_size: int, batch_size: int, flush_interval: float) -> None:
        self.sink = sink
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self._reset()

    def _reset(self) -> None:
        # Everything a forked child must not share with its parent lives here.
        self.queue: deque[Record] = deque()
        self.wake = threading.Event()
        self.lock = threading.Lock()  # guards the rare counters touched outside the writer thread
        self.flush_requests: list[threading.Event] = []
        self.popped = 0  # these four: written by the writer thread, under the lock
        self.stored = 0
        self.dropped_error = 0
        self.dropped_full = 0
        self.errors = 0
        self.last_error: str | None = None
        self.closed = False
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(
            target=self._run, name=f"clisight-writer-{self.sink.name}", daemon=True
        )
        self.thread.start()

    def count_drop(self, n: int = 1) -> None:
        with self.lock:
            self.dropped_full += n

    def stats(self) -> SinkStats:
        with self.lock:  # one consistent snapshot of everything the writer and the callers count
            depth = len(self.queue)
            popped, stored, dropped_error = self.popped, self.stored, self.dropped_error
            full = self.dropped_full
        return SinkStats(
            sink=self.sink.name,
            emitted=popped + depth + full,
            stored=stored,
            dropped=full + dropped_error,
            dropped_queue_full=full,
            errors=self.errors,
            queue_depth=depth,
            in_flight=popped - stored - dropped_error,
            last_error=self.last_error,
        )

    def request_flush(self) -> threading.Event:
        done = threading.Event()
        with self.lock:
            self.flush_requests.append(done)
        self.wake.set()
        return done

    def _run(self) -> None:
        while True:
            self.wake.wait(self.flush_interval)
            self.wake.clear()
            with self.lock:
                requests, self.flush_requests = self.flush_requests, []
            # Records queued before a flush request are in the queue now: draining covers them.
            self._drain()
            for done in requests:
                done.set()
            if self.closed:
                return

    def _drain(self) -> None:
        queue = self.queue
        while queue:
            # A deep queue means the writer is falling behind (often because a busy host thread
            # holds the GIL and every sink call costs a GIL hand-off): take bigger batches, up to
            # BATCH_GROWTH x batch_size, so the hand-offs per record shrink as the load grows.
            size = max(self.batch_size, min(len(queue), self.batch_size * BATCH_GROWTH))
            # Only this thread pops, so at least min(size, len(queue)) records are there to take.
            # Under the lock, so stats() never sees records gone from the queue but not yet counted.
            pop = queue.popleft
            with self.lock:
                batch = [pop() for _ in range(min(size, len(queue)))]
                self.popped += len(batch)
            self._write(batch)

    def _write(self, batch: Sequence[Record]) -> None:
        try:
            self.sink.write(batch)
        except Exception as exc:
            # A sink failure is the sink's, not ours: count it, drop the batch, keep going.
            with self.lock:
                self.errors += 1
                self.dropped_error += len(batch)
                self.last_error = f"{type(exc).__name__}: {exc}"[:300]
        else:
            with self.lock:
                self.stored += len(batch)


class Pipeline:
    """Fan-out of records to sinks through one bounded :class:`Channel` each."""

    def __init__(
        self,
        sinks: Iterable[Sink],
        *,
        queue_size: int = 20_000,
        batch_size: int = 512,
        flush_interval: float = 0.5,
        overflow: str = "drop",
        block_timeout: float = 1.0,
    ) -> None:
        self.channels = [Channel(s, queue_size, batch_size, flush_interval) for s in sinks]
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.block = overflow == "block"
        self.block_timeout = block_timeout
        self.closed = False
        for channel in self.channels:
            channel.start()
        if len(self.channels) == 1:
            self.emit = self._emit_one  # type: ignore[method-assign]
        _live.add(self)

    def _emit_one(self, record: Record) -> None:
        # emit() specialised for the common single-sink case: one less loop on the hot path.
        ch = self.channels[0]
        queue = ch.queue
        n = len(queue)
        if n < ch.queue_size:
            queue.append(record)
            if n == ch.batch_size:
                ch.wake.set()
        else:
            self._overflow(ch, record)

    def emit(self, record: Record) -> None:
        """Queue one record for every sink.  Never blocks unless ``overflow="block"``; never raises."""
        for ch in self.channels:
            queue = ch.queue
            n = len(queue)
            if n < ch.queue_size:
                queue.append(record)
                if n == ch.batch_size:
                    ch.wake.set()
            else:
                self._overflow(ch, record)

    def _overflow(self, ch: Channel, record: Record) -> None:
        if self.block and not ch.closed:
            deadline = time.monotonic() + self.block_timeout
            while len(ch.queue) >= ch.queue_size and time.monotonic() < deadline:
                ch.wake.set()
                time.sleep(0.0005)
            if len(ch.queue) < ch.queue_size:
                ch.queue.append(record)
                return
        ch.count_drop()

    def count_lost(self, n: int = 1) -> None:
        """Count ``n`` records that failed before reaching the queue as dropped by every sink, so
        emitted = stored + dropped + queued holds for records the client could not even build."""
        for ch in self.channels:
            ch.count_drop(n)

    def flush(self, timeout: float = 1.0) -> bool:
        """Write everything queued so far; True if every sink finished within ``timeout`` seconds."""
        if self.closed:
            return True
        deadline = time.monotonic() + max(0.0, timeout)
        waits = [ch.request_flush() for ch in self.channels if ch.thread is not None]
        ok = True
        for done in waits:
            ok = done.wait(max(0.0, deadline - time.monotonic())) and ok
        return ok

    def shutdown(self, timeout: float = 1.0) -> bool:
        """Flush within ``timeout``, stop the writers and close the sinks that finished.

        A sink still busy at the deadline is left to its daemon thread and not closed: closing
        it could block on the very thing that makes it slow.
        """
        if self.closed:
            return True
        deadline = time.monotonic() + max(0.0, timeout)
        for ch in self.channels:
            ch.closed = True
        ok = self.flush(timeout)
        self.closed = True
        _live.discard(self)
        for ch in self.channels:
            if ch.thread is not None:
                ch.thread.join(max(0.0, deadline - time.monotonic()))
            if ch.thread is None or not ch.thread.is_alive():
                with guard():
                    ch.sink.close()
        return ok

    def stats(self) -> list[SinkStats]:
        return [ch.stats() for ch in self.channels]

    def _after_fork_in_child(self) -> None:
        for ch in self.channels:
            ch._reset()
            try:
                ch.sink.after_fork()
            except Exception as exc:
                record_internal_error(exc)
            if not self.closed:
                ch.start()


_live: weakref.WeakSet[Pipeline] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for pipeline in list(_live):
        pipeline._after_fork_in_child()


def flush_all(timeout: float) -> bool:
    """Flush every live pipeline in this process within one shared deadline."""
    deadline = time.monotonic() + timeout
    ok = True
    for pipeline in list(_live):
        ok = pipeline.flush(max(0.0, deadline - time.monotonic())) and ok
    return ok


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
