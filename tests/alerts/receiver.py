"""A real webhook receiver on 127.0.0.1 for the alert tests: records every POST, answers as told."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """POSTs received (``bodies``), answering with ``statuses`` in turn (then 200), each after
    ``delay`` seconds."""

    def __init__(self, statuses: list[int] | None = None, delay: float = 0.0) -> None:
        self.statuses = list(statuses or [])
        self.delay = delay
        self.bodies: list[dict[str, Any]] = []
        self.times: list[float] = []
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        self.url = ""

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The bodies once at least ``count`` arrived (or whatever arrived by ``timeout``)."""
        end = time.monotonic() + timeout
        with self.arrived:
            while len(self.bodies) < count and time.monotonic() < end:
                self.arrived.wait(end - time.monotonic())
            return list(self.bodies)

    def posts(self) -> int:
        with self.lock:
            return len(self.times)


@contextmanager
def webhook_receiver(statuses: list[int] | None = None, delay: float = 0.0) -> Iterator[Receiver]:
    receiver = Receiver(statuses, delay)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            if receiver.delay:
                time.sleep(receiver.delay)
            with receiver.arrived:
                receiver.times.append(time.monotonic())
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                if status < 400:
                    receiver.bodies.append(json.loads(body))
                receiver.arrived.notify_all()
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
