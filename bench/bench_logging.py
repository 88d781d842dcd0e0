"""Caller cost of one structured log call with three fields: clisight vs the peers, in one run.

Each library is set up the way a user would for structured output to a local file:

- clisight: ``clisight.init(store=<sqlite file>)``: the call queues; a writer thread stores in SQLite.
  The writer shares the GIL with the caller, so its work shows in the caller's time; the
  "null sink" row is the call alone (record, redaction, queue), with a writer that discards.
- stdlib logging: a FileHandler with a JSON formatter built on orjson (``extra=`` fields).
- structlog + orjson: JSONRenderer(serializer=orjson.dumps) to a BytesLogger on a file (its fast path).
- loguru: ``serialize=True`` to a file, and ``enqueue=True`` (its own background-thread mode).
- OpenTelemetry SDK: LoggerProvider + BatchLogRecordProcessor (the design our pipeline follows) with an
  exporter that discards, so only the SDK's own cost is measured.

Printed: microseconds per call in the calling thread (median of 5 rounds) and the ratio to clisight;
then "drained", the time per record including waiting for the background writer to finish.
Usage: python bench/bench_logging.py [N]
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).parent))
from _common import git_rev, machine, per_call_us

N = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
FIELDS = {"status": 200, "path": "/v1/messages", "duration_ms": 12.5}


def setup_clisight(tmp: Path) -> tuple[Callable[[], None], Callable[[], None]]:
    import clisight

    clisight.init(service="bench", store=str(tmp / "clisight.db"), queue_size=1_000_000)
    log = clisight.get_logger("api")
    log.info("warm up")
    clisight.flush(10)

    def call() -> None:
        log.info("request done", status=200, path="/v1/messages", duration_ms=12.5)

    return call, lambda: clisight.flush(120) and None


def setup_clisight_null(tmp: Path) -> tuple[Callable[[], None], Callable[[], None]]:
    import clisight

    class NullSink:
        name = "null"
        spool_dir = None

        def open(self, deadline: object = None) -> None:
            pass

        def write(self, batch: object, deadline: object = None) -> None:
            pass

        def flush(self, deadline: object = None) -> None:
            pass

        def close(self, deadline: object = None) -> None:
            pass

        def after_fork(self) -> None:
            pass

    clisight.shutdown()
    clisight.init(service="bench", sinks=[NullSink()], queue_size=1_000_000)
    log = clisight.get_logger("api")

    def call() -> None:
        log.info("request done", status=200, path="/v1/messages", duration_ms=12.5)

    return call, lambda: clisight.flush(120) and None


def setup_stdlib(tmp: Path) -> tuple[Callable[[], None], Callable[[], None]]:
    class JsonFormatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            return orjson.dumps(
                {
                    "time": record.created,
                    "level": record.levelname,
                    "logger": record.name,
                    "message": record.getMessage(),
                    "status": record.__dict__.get("status"),
                    "path": record.__dict__.get("path"),
                    "duration_ms": record.__dict__.get("duration_ms"),
                }
            ).decode()

    handler = logging.FileHandler(tmp / "stdlib.log")
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("bench.stdlib")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)

    def call() -> None:
        logger.info("request done", extra=FIELDS)

    return call, handler.flush


def setup_structlog(tmp: Path) -> tuple[Callable[[], None], Callable[[], None]]:
    import structlog

    fh = (tmp / "structlog.log").open("wb")
    structlog.configure(
        cache_logger_on_first_use=True,
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ],
        logger_factory=structlog.BytesLoggerFactory(fh),
    )
    log = structlog.get_logger("api")

    def call() -> None:
        log.info("request done", status=200, path="/v1/messages", duration_ms=12.5)

    return call, fh.flush


def setup_loguru(tmp: Path, enqueue: bool) -> tuple[Callable[[], None], Callable[[], None]]:
    from loguru import logger

    logger.remove()
    logger.add(tmp / f"loguru-{enqueue}.log", serialize=True, enqueue=enqueue)
    log = logger.bind(component="api")

    def call() -> None:
        log.info("request done", status=200, path="/v1/messages", duration_ms=12.5)

    def drain() -> None:
        logger.complete()

    return call, drain


def setup_otel(tmp: Path) -> tuple[Callable[[], None], Callable[[], None]]:
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogExporter, LogExportResult

    class Discard(LogExporter):
        def export(self, batch: object) -> LogExportResult:
            return LogExportResult.SUCCESS

        def shutdown(self) -> None:
            pass

        def force_flush(self, timeout_millis: int = 30_000) -> bool:
            return True

    provider = LoggerProvider()
    provider.add_log_record_processor(BatchLogRecordProcessor(Discard(), max_queue_size=1_000_000))
    handler = LoggingHandler(logger_provider=provider)
    logger = logging.getLogger("bench.otel")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)

    def call() -> None:
        logger.info("request done", extra=FIELDS)

    return call, lambda: provider.force_flush(120_000) and None


def main() -> None:
    print(
        f"# caller cost of one log call with 3 fields; N={N}; {machine()}; "
        f"{time.strftime('%Y-%m-%d')}; rev {git_rev()}"
    )
    results: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        setups: dict[str, Callable[[], tuple[Callable[[], None], Callable[[], None]]]] = {
            "clisight (sqlite)": lambda: setup_clisight(tmp),
            "clisight (null sink)": lambda: setup_clisight_null(tmp),
            "stdlib logging + json": lambda: setup_stdlib(tmp),
            "structlog + orjson": lambda: setup_structlog(tmp),
            "loguru serialize": lambda: setup_loguru(tmp, False),
            "loguru enqueue": lambda: setup_loguru(tmp, True),
            "opentelemetry sdk batch": lambda: setup_otel(tmp),
        }
        for name, setup in setups.items():
            call, drain = setup()
            caller = per_call_us(call, N)
            drain()  # the rounds above queued work: finish it before timing the drained run
            start = time.perf_counter()
            for _ in range(N):
                call()
            drain()
            drained = (time.perf_counter() - start) / N * 1e6
            results[name] = (caller, drained)
    base = results["clisight (sqlite)"][0]
    print(f"{'library':28} {'caller us/call':>15} {'x clisight':>11} {'drained us/rec':>15}")
    for name, (caller, drained) in results.items():
        print(f"{name:28} {caller:15.2f} {caller / base:11.2f} {drained:15.2f}")


if __name__ == "__main__":
    main()
