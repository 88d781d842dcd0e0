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
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

from clisight._fork import PIPELINES, register_fork_steps, warming_up
from clisight._safety import PIPELINE_THREADS, guard, record_internal_error
from clisight._values import clean_record, safe_str
from clisight.exceptions import SinkRejected, StoreError
from clisight.pipeline import spool as _spool
from clisight.pipeline.base import Sink
from clisight.pipeline.spool import MAX_BYTES as SPOOL_MAX_BYTES
from clisight.pipeline.spool import Spool
from clisight.types import Deadline, Record

BATCH_GROWTH = 16


class SinkStats(NamedTuple):
    """Counters of one sink: ``emitted == stored + dropped + spooled + queue_depth + in_flight`` at
    every read (``in_flight`` is the batch the writer holds; 0 once a flush returned)."""

    sink: str
    emitted: int
    stored: int
    dropped: int
    dropped_queue_full: int
    spooled: int
    errors: int
    queue_depth: int
    in_flight: int
    last_error: str | None

    def as_dict(self) -> dict[str, Any]:
        return self._asdict()


def _positional_arity(fn: Any) -> int | None:
    """How many positional arguments ``fn`` takes (``self`` excluded), or None when it takes any."""
    code = getattr(getattr(fn, "__func__", fn), "__code__", None)
    if code is None or code.co_flags & 0x04:  # not Python code, or *args
        return None
    return int(code.co_argcount) - (1 if hasattr(fn, "__self__") else 0)


def _write_call(sink: Sink) -> Callable[[Sequence[Record], Deadline, str], None]:
    """``sink.write`` called with what it accepts: a sink written for the earlier protocol
    (``write(batch)`` or ``write(batch, deadline)``) keeps working, without a failed call per batch."""
    write = sink.write
    arity = _positional_arity(write)
    if arity is None or arity >= 3:
        return write
    if arity == 2:
        return lambda batch, deadline, key: write(batch, deadline)
    return lambda batch, deadline, key: write(batch)


def _is_sink_down(exc: BaseException) -> bool:
    """True when a sink's failure is its destination's (disk, lock, network), not the batch's data."""
    return isinstance(exc, OSError | StoreError)


class Channel:
    """One sink's queue, writer thread and counters."""

    def __init__(
        self,
        sink: Sink,
        queue_size: int,
        batch_size: int,
        flush_interval: float,
        spool_max_bytes: int = SPOOL_MAX_BYTES,
    ) -> None:
        self.sink = sink
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.write = _write_call(sink)
        spool_dir = getattr(sink, "spool_dir", None)
        self.spool = Spool(spool_dir, spool_max_bytes) if spool_dir is not None else None
        # A sink whose destination is remote (an OTLP collector) spools what it could not send while
        # that destination was down, not only at exit; its next process sends it.
        self.spool_when_down = bool(getattr(sink, "spool_when_down", False))
        self._reset()

    def _reset(self) -> None:
        # Everything a forked child must not share with its parent lives here.
        self.queue: deque[Record] = deque()
        self.wake = threading.Event()
        self.lock = threading.Lock()  # guards the counters and the hand-over at exit
        self.flush_requests: list[threading.Event] = []
        self.popped = 0  # written under the lock
        self.stored = 0
        self.dropped_error = 0
        self.dropped_full = 0
        self.spooled = 0
        # Records went to the spool while the process runs (its destination was down): once a write
        # succeeds again, the sink sends them (replay) without waiting for the next process.
        self.spooled_while_running = False
        self.errors = 0
        self.last_error: str | None = None
        self.closed = False  # no more records are coming: drain and stop
        self.finished = False  # the writer has stopped; flush requests are answered at once
        self.spilling = False  # the exit deadline is near: what is not written now goes to the spool
        self.spilled = False  # the exiting thread has taken the queue to the spool
        self.deadline = Deadline()  # handed to the sink; brought forward at exit
        # The batch the sink holds, and its key: at the exit deadline the exiting thread may spool a
        # copy under the key, which the sink also remembers when it commits during the exit.
        self.inflight: Sequence[Record] | None = None
        self.inflight_key = ""
        self.abandoned_key = ""  # the in-flight batch the exiting thread spooled: not counted again
        self.batches = 0
        self.nonce = os.urandom(6).hex()
        self.thread: threading.Thread | None = None
        if self.spool is not None:
            self.spool.after_fork()

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
            full, spooled = self.dropped_full, self.spooled
        return SinkStats(
            sink=self.sink.name,
            emitted=popped + depth + full,
            stored=stored,
            dropped=full + dropped_error,
            dropped_queue_full=full,
            spooled=spooled,
            errors=self.errors,
            queue_depth=depth,
            in_flight=popped - stored - dropped_error - spooled,
            last_error=self.last_error,
        )

    def request_flush(self) -> threading.Event:
        done = threading.Event()
        with self.lock:
            if self.finished or self.thread is None:
                done.set()  # nothing will write any more: answer now rather than never
                return done
            self.flush_requests.append(done)
        self.wake.set()
        return done

    def _run(self) -> None:
        PIPELINE_THREADS.add(threading.get_ident())
        try:
            self._serve()
        finally:
            PIPELINE_THREADS.discard(threading.get_ident())

    def _serve(self) -> None:
        try:
            if self.spool is not None:
                with warming_up():  # this thread's only imports (the sink's are in its open)
                    _spool.warm_up()
            open_sink = getattr(self.sink, "open", None)  # optional for sinks of the earlier protocol
            if open_sink is not None:
                open_sink(self.deadline)
        except Exception as exc:  # the sink's failure: counted; its writes will say more
            with self.lock:
                self.errors += 1
                self.last_error = f"open: {type(exc).__name__}: {safe_str(exc)}"[:300]
        while True:
            self.wake.wait(self.flush_interval)
            self.wake.clear()
            with self.lock:
                requests, self.flush_requests = self.flush_requests, []
                closing = self.closed
            # Records queued before a flush request are in the queue now: draining covers them.
            self._drain()
            for done in requests:
                done.set()
            if closing:
                with self.lock:
                    # Stop only when no request came in since the snapshot: one that did is answered
                    # by the next turn of the loop, never left waiting for its whole timeout.
                    if not self.flush_requests and (not self.queue or self._out_of_time()):
                        self.finished = True
                        return

    def _drain(self) -> None:
        queue = self.queue
        while queue and not self._out_of_time():
            # A deep queue means the writer is falling behind (often because a busy host thread
            # holds the GIL and every sink call costs a GIL hand-off): take bigger batches, up to
            # BATCH_GROWTH x batch_size, so the hand-offs per record shrink as the load grows.
            size = max(self.batch_size, min(len(queue), self.batch_size * BATCH_GROWTH))
            # Only this thread pops (and spill(), under the same lock), so the records are there.
            # Under the lock, so stats() never sees records gone from the queue but not yet counted.
            pop = queue.popleft
            with self.lock:
                if self._out_of_time():
                    return
                batch = [pop() for _ in range(min(size, len(queue)))]
                self.popped += len(batch)
                self.batches += 1
                key = f"exit:{self.nonce}:{self.batches}"
                self.inflight, self.inflight_key = batch, key
            self._write(batch, key)

    def _write(self, batch: Sequence[Record], key: str) -> None:
        try:
            self.write(batch, self.deadline, key)
        except Exception as exc:
            self._recover(batch, exc, key)
        else:
            self._settle(key, stored=len(batch))
            if self.spooled_while_running and not self._out_of_time():
                self._replay_spool()

    def _replay_spool(self) -> None:
        """The destination is back: close this process's spool file (so it can be claimed) and let
        the sink send what is spooled.  Those records stay counted as spooled (the sink counts them
        as replayed), as when the next process sends them; what fails again stays on disk."""
        self.spooled_while_running = False
        replay = getattr(self.sink, "replay", None)
        if replay is None or self.spool is None:
            return
        self.spool.close()
        try:
            replay(self.deadline)
        except Exception as exc:  # the sink's failure: counted; the files wait for a later pass
            with self.lock:
                self.errors += 1
                self.last_error = f"replay: {type(exc).__name__}: {safe_str(exc)}"[:300]

    def _settle(self, key: str, stored: int = 0, dropped: int = 0, spooled: int = 0) -> None:
        """Count how the batch under ``key`` ended, unless the exiting thread has spooled (and
        counted) it already."""
        with self.lock:
            if key and self.abandoned_key == key:
                return
            self.stored += stored
            self.dropped_error += dropped
            self.spooled += spooled
            if self.inflight_key == key:
                self.inflight = None

    def abandon_inflight(self) -> int:
        """At the final exit deadline, from the exiting thread: spool a copy of the batch the sink
        still holds, under its key (stored once, whether the sink's write lands or not)."""
        with self.lock:
            batch, key = self.inflight, self.inflight_key
            if batch is None or self.spool is None:
                return 0
            self.inflight, self.abandoned_key = None, key
        return self._spool_or_drop(batch, key)

    def _recover(self, batch: Sequence[Record], exc: Exception, key: str) -> None:
        """A refused batch: isolate bad values (each costs only its own record), spool at exit, or drop."""
        with self.lock:
            self.errors += 1
            self.last_error = f"{type(exc).__name__}: {safe_str(exc)}"[:300]
        if _is_sink_down(exc):
            self._lose(batch, key)
            return
        if isinstance(exc, SinkRejected):  # refused for good: never sent again
            rejected = min(max(exc.rejected, 0), len(batch))
            self._settle(key, stored=len(batch) - rejected, dropped=rejected)
            return
        # The batch's data, not the sink: clean every value and retry, then halve to find the culprits.
        # The parts are written without the batch's key: it is settled here, not spooled whole.
        with self.lock:
            if self.abandoned_key == key:
                return  # the exiting thread spooled a copy already (serialised clean)
            self.inflight = None
        stored = 0
        pending = [[clean_record(r) for r in batch]]
        while pending:
            part = pending.pop()
            try:
                self.write(part, self.deadline, "")
            except Exception as again:
                if _is_sink_down(again):
                    self._lose(part + [r for p in pending for r in p])
                    break
                if len(part) == 1:
                    self._lose(part, spool=False)  # this record alone is unstorable: it costs only itself
                    continue
                half = len(part) // 2
                pending += [part[half:], part[:half]]
            else:
                stored += len(part)
        with self.lock:
            self.stored += stored

    def _out_of_time(self) -> bool:
        """The process is exiting and its deadline for writing has passed: stop taking batches."""
        return self.spilling or (self.closed and self.deadline.expired())

    def _lose(self, batch: Sequence[Record], key: str = "", spool: bool = True) -> None:
        """Records the sink did not take: spooled once the process is exiting (the exit deadline
        stopped them, or the sink failed for its destination's sake while the exit's flush ran) or,
        for a sink that asks, whenever its destination is down; else dropped."""
        out_of_time = self._out_of_time()
        # Shutdown has begun (``closed``): a refusal before the write deadline (a store that fails at
        # once rather than by waiting for its lock) has no later write of this process to retry it,
        # and at exit the batch is often every record the process queued: spool it.
        exiting = self.closed or out_of_time
        if spool and self.spool is not None and (exiting or self.spool_when_down):
            with self.lock:
                if out_of_time and not self.spilled and (not key or self.abandoned_key != key):
                    # Back to the front of the queue: the exiting thread spools it with the rest,
                    # in one fsync'd append.
                    self.queue.extendleft(reversed(batch))
                    self.popped -= len(batch)
                    if key and self.inflight_key == key:
                        self.inflight = None
                    return
            # The exiting thread has spooled already (or the destination is down): append ourselves,
            # under the batch's key (the exiting thread may also spool this batch as in flight; the
            # import stores one copy).
            if self.spool.append(batch, key or None):
                self._settle(key, spooled=len(batch))
                if not out_of_time:
                    self.spooled_while_running = True
                return
        self._settle(key, dropped=len(batch))

    def spill(self) -> int:
        """At the exit deadline, from the exiting thread: spool what the sink did not take."""
        with self.lock:
            self.spilling = self.spilled = True
            rest = list(self.queue)
            self.queue.clear()
            self.popped += len(rest)
        return self._spool_or_drop(rest) if rest else 0

    def _spool_or_drop(self, records: Sequence[Record], key: str | None = None) -> int:
        """Append ``records`` to the spool and count them spooled (or dropped, if the disk refused)."""
        spooled = self.spool is not None and self.spool.append(records, key)
        with self.lock:
            if spooled:
                self.spooled += len(records)
            else:
                self.dropped_error += len(records)
        return len(records) if spooled else 0


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
        spool_max_bytes: int = SPOOL_MAX_BYTES,
    ) -> None:
        self.channels = [Channel(s, queue_size, batch_size, flush_interval, spool_max_bytes) for s in sinks]
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

    def offer(self, records: Sequence[Record]) -> bool:
        """Queue all of ``records`` for every sink, or none of them: False (and nothing counted)
        when a queue has no room for them all, so a receiver can answer "retry later" instead of
        accepting records it would drop.  Safe against the writer threads, which only take records
        out; callers that offer concurrently must hold one lock (the server offers from one loop)."""
        n = len(records)
        if self.closed or any(len(ch.queue) + n > ch.queue_size for ch in self.channels):
            return False
        for ch in self.channels:
            ch.queue.extend(records)
            if len(ch.queue) >= ch.batch_size:
                ch.wake.set()
        return True

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

        True when every queued record was written (none spooled, none dropped by a refusing sink
        during the shutdown).  Near the deadline (the last fifth of it, at most
        0.25 s) whatever a sink has not taken is spilled to its spool file, for the next writer of
        that store to import (counted as ``spooled``); a sink without a spool counts it as dropped.
        A sink still busy at the deadline is left to its daemon thread and not closed: closing it
        could block on the very thing that makes it slow.
        """
        if self.closed:
            return True
        now = time.monotonic()
        timeout = max(0.0, timeout)
        deadline = now + timeout
        write_until = deadline - min(0.2 * timeout, 0.25)
        refused_before = [ch.dropped_error for ch in self.channels]
        for ch in self.channels:
            # Closed first: a write that fails once the deadline is brought forward is the exit's.
            ch.closed = True
            ch.deadline.at = write_until  # a write under way gives up waiting (a locked store) by then
        # A writer out of time answers the flush with records still queued: those count as not done.
        ok = self.flush(write_until - now) and not any(ch.queue for ch in self.channels)
        self.closed = True
        _live.discard(self)
        if not ok:
            # Writers stop taking batches and hand back the one a sink gave up on at write_until;
            # then what is left goes to the spool in one append per sink.
            for ch in self.channels:
                ch.spilling = True
                ch.wake.set()
            hand_back = write_until + (deadline - write_until) / 2
            for ch in self.channels:
                if ch.thread is not None:
                    ch.thread.join(max(0.0, hand_back - time.monotonic()))
            for ch in self.channels:
                ch.spill()
        for ch in self.channels:
            if ch.thread is not None:
                ch.thread.join(max(0.0, deadline - time.monotonic()))
                if ch.thread.is_alive():
                    ch.abandon_inflight()  # still in the sink: a keyed copy goes to the spool
            if ch.thread is None or not ch.thread.is_alive():
                with guard():
                    _close(ch.sink, Deadline(deadline))
                if ch.spool is not None:
                    ch.spool.close()
        return ok and all(
            ch.spooled == 0 and not ch.queue and ch.dropped_error == before
            for ch, before in zip(self.channels, refused_before, strict=True)
        )

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


def _close(sink: Sink, deadline: Deadline) -> None:
    if _positional_arity(sink.close) == 0:
        sink.close()  # the earlier protocol's close()
    else:
        sink.close(deadline)


_live: weakref.WeakSet[Pipeline] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    PIPELINE_THREADS.clear()  # the parent's threads do not exist here; their idents may be reused
    for pipeline in list(_live):
        pipeline._after_fork_in_child()


register_fork_steps(PIPELINES, after_in_child=_after_fork_in_child)
