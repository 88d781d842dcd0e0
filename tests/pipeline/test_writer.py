"""The pipeline's promises, in one process: accounting, bounds, failing and slow sinks."""

from __future__ import annotations

import threading
import time

from clisight.pipeline.writer import Pipeline
from clisight.testing import MemorySink
from clisight.types import LOG, Record, Resource

RES = Resource("test")


def rec(i: int) -> Record:
    return Record(LOG, i, "c", f"m{i}", 9, {"i": i}, RES)


def test_every_record_reaches_the_sink_in_order() -> None:
    sink = MemorySink()
    pipe = Pipeline([sink], queue_size=100_000, batch_size=100, flush_interval=0.05)
    for i in range(5000):
        pipe.emit(rec(i))
    assert pipe.flush(5.0)
    assert [r.time_ns for r in sink.records] == list(range(5000))
    assert sink.batches >= 4  # batches of at most 16 x batch_size
    stats = pipe.stats()[0]
    assert (stats.emitted, stats.stored, stats.dropped, stats.queue_depth) == (5000, 5000, 0, 0)
    pipe.shutdown(1.0)


def test_full_queue_drops_and_counts_without_blocking() -> None:
    sink = MemorySink(delay=0.2)  # a slow sink: the queue fills while it sleeps
    pipe = Pipeline([sink], queue_size=100, batch_size=50, flush_interval=0.01)
    start = time.monotonic()
    for i in range(10_000):
        pipe.emit(rec(i))
    assert time.monotonic() - start < 1.0  # the caller never waited on the sink
    assert pipe.flush(10.0)
    stats = pipe.stats()[0]
    assert stats.dropped_queue_full > 0
    assert stats.emitted == 10_000
    assert stats.emitted == stats.stored + stats.dropped
    assert len(sink.records) == stats.stored
    pipe.shutdown(1.0)


def test_block_policy_waits_for_room_instead_of_dropping() -> None:
    sink = MemorySink(delay=0.01)
    pipe = Pipeline(
        [sink], queue_size=50, batch_size=50, flush_interval=0.01, overflow="block", block_timeout=5.0
    )
    for i in range(2000):
        pipe.emit(rec(i))
    assert pipe.flush(10.0)
    stats = pipe.stats()[0]
    assert stats.dropped == 0 and stats.stored == 2000
    pipe.shutdown(1.0)


def test_failing_sink_counts_errors_and_drops_its_batches_only() -> None:
    bad, good = MemorySink("bad", fail=True), MemorySink("good")
    pipe = Pipeline([bad, good], queue_size=10_000, batch_size=100, flush_interval=0.01)
    for i in range(1000):
        pipe.emit(rec(i))
    assert pipe.flush(5.0)
    by_name = {s.sink: s for s in pipe.stats()}
    assert by_name["bad"].errors >= 1 and by_name["bad"].dropped == 1000 and by_name["bad"].stored == 0
    assert by_name["bad"].last_error is not None and "told to fail" in by_name["bad"].last_error
    assert by_name["good"].stored == 1000 and len(good.records) == 1000
    pipe.shutdown(1.0)


def test_flush_returns_at_its_deadline_when_a_sink_hangs() -> None:
    hung = MemorySink("hung", delay=30)
    pipe = Pipeline([hung], queue_size=100, batch_size=10, flush_interval=0.01)
    pipe.emit(rec(1))
    time.sleep(0.05)  # the writer is now inside the hanging write
    pipe.emit(rec(2))
    start = time.monotonic()
    assert pipe.flush(0.3) is False
    assert pipe.shutdown(0.3) is False
    assert time.monotonic() - start < 1.5


def test_many_threads_emitting_at_once_are_all_accounted() -> None:
    sink = MemorySink()
    pipe = Pipeline([sink], queue_size=1000, batch_size=100, flush_interval=0.005)

    def burst(offset: int) -> None:
        for i in range(20_000):
            pipe.emit(rec(offset + i))

    threads = [threading.Thread(target=burst, args=(k * 100_000,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert pipe.flush(10.0)
    stats = pipe.stats()[0]
    assert stats.emitted == 80_000
    assert stats.stored + stats.dropped == 80_000
    assert len(sink.records) == stats.stored
    assert len({r.time_ns for r in sink.records}) == stats.stored  # no record written twice
    pipe.shutdown(1.0)


def test_counters_add_up_at_every_read_while_records_flow() -> None:
    sink = MemorySink(delay=0.001)
    pipe = Pipeline([sink], queue_size=500, batch_size=50, flush_interval=0.001)
    stop = threading.Event()

    def produce() -> None:
        i = 0
        while not stop.is_set():
            pipe.emit(rec(i))
            i += 1

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        for _ in range(2000):  # read while the writer pops, writes and counts
            s = pipe.stats()[0]
            assert s.emitted == s.stored + s.dropped + s.queue_depth + s.in_flight
            assert s.in_flight >= 0
    finally:
        stop.set()
        producer.join(10)
    assert pipe.flush(10)
    final = pipe.stats()[0]
    assert final.in_flight == 0 and final.emitted == final.stored + final.dropped
    pipe.shutdown(1.0)


def test_what_a_sink_logs_through_a_root_logging_handler_never_loops_back() -> None:
    """A sink's library logging (an HTTP client's debug lines) reaches a root LoggingHandler from the
    writer thread: it must not be queued again, or every batch would make another."""
    import logging

    import clisight

    class ChattySink(MemorySink):
        def write(self, batch: object, deadline: object = None) -> None:
            logging.getLogger("httpclient").warning("sent a batch")
            super().write(batch)  # type: ignore[arg-type]

    sink = ChattySink()
    clisight.init(sinks=[sink])
    handler = clisight.LoggingHandler()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        logging.getLogger("app").warning("from the host")
        for _ in range(3):
            assert clisight.flush(5.0)
        bodies = [r.body for r in sink.records if r.kind == "log"]
        assert bodies == ["from the host"]
        assert sink.batches <= 3
    finally:
        root.removeHandler(handler)


def test_a_sink_written_for_the_earlier_protocol_keeps_working() -> None:
    """write(batch) and close() without deadlines, no open, flush or spool_dir: every record stored,
    no error per batch."""

    class OldSink:
        name = "old"

        def __init__(self) -> None:
            self.records: list[Record] = []
            self.closed = False

        def write(self, batch: list[Record]) -> None:
            self.records.extend(batch)

        def close(self) -> None:
            self.closed = True

        def after_fork(self) -> None:
            pass

    class DeadlineOnlySink(OldSink):
        def write(self, batch: list[Record], deadline: object = None) -> None:  # type: ignore[override]
            self.records.extend(batch)

    sinks = [OldSink(), DeadlineOnlySink()]
    pipe = Pipeline(sinks, batch_size=100, flush_interval=0.01)  # type: ignore[list-item]
    for i in range(1000):
        pipe.emit(rec(i))
    assert pipe.shutdown(5.0)
    for sink, stats in zip(sinks, pipe.stats(), strict=True):
        assert len(sink.records) == 1000 and sink.closed
        assert (stats.stored, stats.errors, stats.dropped) == (1000, 0, 0)
