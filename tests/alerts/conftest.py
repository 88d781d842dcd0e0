"""Fixtures of the alert tests: a real SQLite store, records written at times of a fake clock."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from clisight.query import Query
from clisight.store import SqliteStore
from clisight.types import PERFORMANCE, Record, Resource

CLI = Resource("mycli", version="1.0", host="box", pid=7)
SECOND = 1_000_000_000
MINUTE = 60 * SECOND
T0 = 1_800_000_000 * SECOND  # a whole minute (1_800_000_000 is a multiple of 60)


class Clock:
    """The engine's injectable clock: nanoseconds, moved by the test."""

    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * SECOND)


def op(at: int, seconds: float, ok: bool = True, name: str = "chat", resource: Resource = CLI) -> Record:
    """One timed operation as PerformanceMonitor records it: a PERFORMANCE log with duration/success."""
    attrs = {"operation": name, "duration": seconds, "success": ok}
    return Record("log", at, "performance", f"{name} took {seconds:.3f}s", PERFORMANCE, attrs, resource)


def ops(
    start: int, end: int, every_s: float, seconds: float, fail: float = 0.0, seed: int = 0, name: str = "chat"
) -> list[Record]:
    """Operations every ``every_s`` seconds in [start, end), ``fail`` of them failed (seeded)."""
    rng = random.Random(seed)
    step = int(every_s * SECOND)
    return [
        op(t, seconds * (0.9 + 0.2 * rng.random()), rng.random() >= fail, name)
        for t in range(start, end, step)
    ]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "alerts.db")
    yield opened
    opened.close()


@pytest.fixture
def query(store: SqliteStore) -> Iterator[Query]:
    with Query(store) as q:
        yield q


@pytest.fixture
def clock() -> Clock:
    return Clock()
