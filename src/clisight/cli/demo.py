"""``clisight demo``: write a realistic AI-assistant CLI workload to a store, through the client.

The live sessions use the same functions ``clisight.init``, ``clisight.session``, ``clisight.span``,
``clisight.track`` and ``clisight.get_logger`` are (imported from their modules for mypy's sake).

Most sessions are spread over the past days: they run through the same API on a simulated clock
(the client's record builder takes its clock and id source as parameters), so every record is built,
scrubbed and queued exactly as a program's would be.  The newest sessions run at the current time.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Final

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from clisight import _config
from clisight.cli._common import CommandError, FiniteFloatRange, console, open_store, resolve_store_url
from clisight.cli._workload import INCIDENT, NORMAL, CommandFailed, Session
from clisight.client import analytics, metrics, tracing
from clisight.client import logger as client_logger
from clisight.client.core import flush, get_client, init, shutdown
from clisight.client.instrument import SPAN_PREFIX as COMMAND_PREFIX
from clisight.client.performance import check_threshold
from clisight.types import (
    CRITICAL,
    DEBUG,
    ERROR_LEVEL,
    INFO,
    WARNING,
)

SERVICE: Final = "claude-cli"
LIVE_SESSIONS: Final = 3  # the newest sessions, recorded through the public API at the current time
FLUSH_TIMEOUT: Final = 60.0


class SimulatedClock:
    """A clock the demo sets and advances: the client's record builder reads it instead of the time."""

    def __init__(self) -> None:
        self.now_ns = 0

    def __call__(self) -> int:
        return self.now_ns


class ApiRecorder:
    """The public client API.  On a :class:`SimulatedClock` (past sessions; the client's builder reads
    the same clock) a simulated wait advances it; at the current time, waits are not slept."""

    def __init__(self, clock: SimulatedClock | None = None) -> None:
        self.clock = clock

    _METHODS: Final = {
        DEBUG: "debug",
        INFO: "info",
        WARNING: "warning",
        ERROR_LEVEL: "error",
        CRITICAL: "critical",
    }

    @contextmanager
    def session(self, session_id: str, user: str, command: str) -> Iterator[None]:
        # The command runs in a ``command:<path>`` span with its exit code, as clisight.instrument
        # records a real program's commands: insights' and perf's command tables read these.
        with analytics.session(session_id, user=user, command=command):
            run = tracing.span(COMMAND_PREFIX + command, command=command, options="")
            with run:
                try:
                    yield
                except CommandFailed:
                    run.set(exit_code=1)
                    raise
                run.set(exit_code=0)

    @contextmanager
    def span(self, name: str, **attributes: Any) -> Iterator[None]:
        with tracing.span(name, **attributes):
            yield

    def log(self, component: str, severity: int, message: str, **fields: Any) -> None:
        logger = client_logger.get_logger(component)
        getattr(logger, self._METHODS[severity])(message, **fields)

    def performance(self, component: str, operation: str, duration: float, **fields: Any) -> None:
        client_logger.get_logger(component).log_performance(operation, duration, **fields)

    def exception(self, component: str, message: str, exc: BaseException, **fields: Any) -> None:
        # Called inside the except block that caught ``exc``, so logger.exception sees it.
        client_logger.get_logger(component).exception(message, **fields)

    def track(self, event: str, **properties: Any) -> None:
        analytics.track(event, **properties)

    def advance(self, seconds: float) -> None:
        if self.clock is not None:
            self.clock.now_ns += int(seconds * 1e9)


DEMO_THRESHOLDS: Final = "llm.request=45,conversation.turn=90,context.compact=5.5,memory_usage=500"
_MB: Final = 1024 * 1024


def sample_resources(rng: random.Random, incident: bool) -> None:
    """What the resource sampler writes at the end of a session (as gauges, through the public API):
    a CLI of 80-200 MB resident, more during the incident (retried requests keep their buffers)."""
    rss = rng.uniform(80, 200) * _MB * (2.8 if incident and rng.random() < 0.5 else 1.0)
    values = {
        "process.cpu.utilization": ("%", rng.uniform(2, 35) * (2 if incident else 1)),
        "process.memory.rss": ("By", rss),
        "process.threads": ("1", float(rng.randint(3, 9))),
        "process.open_files": ("1", float(rng.randint(4, 30))),
        "system.cpu.utilization": ("%", rng.uniform(5, 60)),
        "system.memory.utilization": ("%", rng.uniform(35, 80)),
    }
    for name, (unit, value) in values.items():
        metrics.gauge(name, unit=unit).set(value)
    client = get_client()
    if client is not None:  # the sampler's own check, on the simulated sample
        check_threshold(
            client, "memory_usage", rss / _MB, None, limit=client.thresholds.get("memory_usage"), unit="MB"
        )


def session_starts(rng: random.Random, count: int, days: float, now_ns: int) -> list[int]:
    """``count`` start times over the last ``days`` (busier in working hours), oldest first,
    all at least 15 minutes before ``now_ns``."""
    hour_weight = [0.06] * 7 + [0.4, 0.8] + [1.0] * 10 + [0.6, 0.5, 0.4, 0.25, 0.1]
    earliest, latest = now_ns - int(days * 86_400e9), now_ns - int(900e9)
    starts: list[int] = []
    while len(starts) < count:
        candidate = rng.randint(earliest, latest)
        if rng.random() < hour_weight[datetime.fromtimestamp(candidate / 1e9).hour]:
            starts.append(candidate)
    return sorted(starts)


EPILOG = """\b
Examples:
  clisight demo                           200 sessions over 7 days into the configured store
  clisight demo --store /tmp/demo.db --sessions 50 --seed 7
  clisight demo --store /tmp/demo.db && clisight report --store /tmp/demo.db

The same --seed writes the same workload (times are relative to now).  During a simulated
incident (a stretch of sessions a few days ago) the API is mostly overloaded and slow, so
reports and detectors have something to find.  The demo run itself counts as one more session.
"""


@click.command(epilog=EPILOG)
@click.option(
    "--store",
    metavar="URL",
    default=None,
    help="Store to write to: sqlite:///path, a file path (default: the configured store).",
)
@click.option(
    "--sessions",
    "n_sessions",
    type=click.IntRange(1, 100_000),
    default=200,
    show_default=True,
    help="How many sessions to simulate.",
)
@click.option(
    "--days",
    type=FiniteFloatRange(0.1, 365),
    default=7.0,
    show_default=True,
    help="Spread the sessions over this many past days.",
)
@click.option("--seed", type=int, default=None, help="Random seed, for a reproducible workload.")
def demo(store: str | None, n_sessions: int, days: float, seed: int | None) -> None:
    """Write a simulated AI-assistant CLI workload.

    Sessions of a "claude-cli" by several users over the past days: commands, conversation turns,
    tool calls, LLM requests with tokens and cost, rate limits, timeouts and retries, slow operations.
    Everything goes through the client pipeline, so secrets in it are scrubbed like any record.
    """
    url = resolve_store_url(store)
    open_store(url, must_exist=False, writes=True).query.close()  # an unknown scheme, another program's file
    config = _config.resolve({"service": SERVICE, "store": url})
    if config["disabled"]:
        raise CommandError(
            f"clisight is disabled ({config.source('disabled')}): the demo would write nothing"
        )
    if get_client() is not None:
        raise CommandError("clisight is already running in this process; the demo needs its own client")
    seed = random.SystemRandom().randrange(1_000_000) if seed is None else seed

    # Limits the simulated workload crosses now and then, so `clisight perf` has breaches to show;
    # sampling is off: the demo writes simulated resource samples of its sessions instead.
    client = init(
        service=SERVICE, store=url, overflow="block", thresholds=DEMO_THRESHOLDS, resource_sampling="off"
    )
    resources = random.Random(seed + 3)
    workload, times, ids = random.Random(seed), random.Random(seed + 1), random.Random(seed + 2)
    past = max(n_sessions - LIVE_SESSIONS, 0)
    starts = session_starts(times, past, days, time.time_ns())
    incident = range(int(past * 0.62), int(past * 0.62) + max(past // 25, 1))  # contiguous in time
    clock, build = SimulatedClock(), client.records
    err = console(stderr=True)
    columns = (TextColumn("simulating sessions"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as progress:
            task = progress.add_task("demo", total=n_sessions)
            for index in range(n_sessions):
                if index < past:
                    # The real API on a simulated clock, with ids from the seeded generator.
                    clock.now_ns = starts[index]
                    build.clock, build.random_bytes = clock, ids.randbytes
                    recorder = ApiRecorder(clock)
                    Session(workload, recorder, INCIDENT if index in incident else NORMAL).run()
                    sample_resources(resources, index in incident)
                else:
                    build.clock, build.random_bytes = time.time_ns, os.urandom
                    Session(workload, ApiRecorder()).run()
                    sample_resources(resources, False)
                progress.advance(task)
        flush(FLUSH_TIMEOUT)
    finally:
        shutdown(timeout=FLUSH_TIMEOUT)
    stats = client.pipeline.stats()
    stored = sum(s.stored for s in stats)
    failures = [s for s in stats if s.errors or s.dropped]
    if failures:
        lost = sum(s.dropped for s in failures)
        raise CommandError(f"the store lost {lost} records: {failures[0].last_error or 'queue full'}")
    if not config["usage"]:
        click.echo(
            f"note: usage events are off ({config.source('usage')}); only logs, spans and errors "
            "were written",
            err=True,
        )
    where = client.store_url
    click.echo(f"Wrote {stored:,} records ({n_sessions} sessions over {days:g} days, seed {seed}) to {where}")
    hint = "clisight report" + ("" if store is None else f" --store {store}")
    click.echo(f"Next: {hint}")
