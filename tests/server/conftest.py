"""A live receiver on 127.0.0.1 (uvicorn in a thread), writing through a real pipeline into a real
SQLite file; the tests read what was stored through the query layer."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("uvicorn", reason="the server extra (uvicorn, starlette) is not installed")

import uvicorn

from clisight.pipeline.redact import PatternRedactor
from clisight.pipeline.store_sink import StoreSink
from clisight.pipeline.writer import Pipeline
from clisight.query import Filter, Query
from clisight.server.app import create_app


@dataclass
class Served:
    url: str
    store_url: str
    pipeline: Pipeline
    app: Any

    def stored(self, kind: str) -> list[dict[str, Any]]:
        """Everything of ``kind`` stored so far, after the pipeline has written what it holds."""
        assert self.pipeline.flush(timeout=10)
        with Query(self.store_url) as query:
            return [row for row in query.export(Filter(), kinds=(kind,))]


def serve(tmp_path: Path, **options: Any) -> Iterator[Served]:
    store_url = f"sqlite:///{tmp_path / 'served.db'}"
    pipeline = Pipeline([StoreSink(store_url)], queue_size=options.pop("queue_size", 20_000))
    query = Query(store_url)
    app = create_app(pipeline, PatternRedactor(), pipeline_stats=pipeline.stats, query=query, **options)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the test server did not start within 10 s"
        time.sleep(0.01)
    try:
        yield Served(f"http://127.0.0.1:{port}", store_url, pipeline, app)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        pipeline.shutdown(timeout=10)
        query.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    yield from serve(tmp_path)
