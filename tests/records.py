"""Record factories and store fixtures shared by the store and query tests (imported by their conftests)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from clisight.store import SqliteStore
from clisight.types import INFO, Record, Resource

SVC = Resource("svc", version="1.0", host="box", pid=42)


class Make:
    """Builds records the way the client API does, at times relative to ``now``."""

    def __init__(self) -> None:
        self.now = time.time_ns()

    def log(
        self,
        message: str = "hello",
        component: str = "app",
        severity: int = INFO,
        *,
        ago_s: float = 0,
        resource: Resource = SVC,
        session: str | None = None,
        **attributes: Any,
    ) -> Record:
        return Record(
            "log",
            self.now - int(ago_s * 1e9),
            component,
            message,
            severity,
            attributes,
            resource,
            session_id=session,
        )

    def event(
        self,
        name: str = "command",
        *,
        ago_s: float = 0,
        session: str | None = None,
        resource: Resource = SVC,
        **attributes: Any,
    ) -> Record:
        return Record(
            "event", self.now - int(ago_s * 1e9), name, "", 0, attributes, resource, session_id=session
        )

    def error(
        self,
        type_: str = "ValueError",
        message: str = "bad",
        stack: str = "",
        *,
        ago_s: float = 0,
        session: str | None = None,
    ) -> Record:
        return Record(
            "error",
            self.now - int(ago_s * 1e9),
            type_,
            message,
            17,
            {"stack": stack},
            SVC,
            session_id=session,
        )

    def span(self, name: str = "op", *, ago_s: float = 0) -> Record:
        start = self.now - int(ago_s * 1e9)
        return Record(
            "span",
            start,
            name,
            "",
            0,
            {"span.kind": "internal"},
            SVC,
            trace_id="t1",
            span_id="s1",
            end_ns=start + 1000,
        )

    def metric(self, name: str = "rss", value: float = 1.0, *, ago_s: float = 0) -> Record:
        return Record("metric", self.now - int(ago_s * 1e9), name, "", 0, {"unit": "By"}, SVC, value=value)

    def session(self, session_id: str, *, ago_s: float = 0, end: bool = False, **attributes: Any) -> Record:
        start = self.now - int(ago_s * 1e9)
        return Record(
            "session",
            start,
            session_id,
            "",
            0,
            attributes,
            SVC,
            session_id=session_id,
            end_ns=start + 5_000_000 if end else None,
        )


@pytest.fixture
def make() -> Make:
    return Make()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "clisight.db"


@pytest.fixture
def store(db_path: Path) -> Any:
    opened = SqliteStore(db_path)
    yield opened
    opened.close()
