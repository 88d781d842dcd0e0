"""``clisight serve`` and its dashboard: the URL it prints, and ``--ui-port`` (the seed's 8080)."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

pytest.importorskip("jinja2", reason="the server extra is not installed")

from tests.cli.clirun import CLISIGHT, run_clisight
from tests.cli.test_serve_cli import free_port


def _wait(port: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, proc.communicate(timeout=10)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            assert time.monotonic() < deadline, f"nothing listened on {port} within 30 s"
            time.sleep(0.1)


def test_serve_prints_the_dashboard_url_and_serves_it_on_the_ui_port_too(tmp_path: Path) -> None:
    port, ui_port = free_port(), free_port()
    proc = subprocess.Popen(
        [
            str(CLISIGHT),
            "serve",
            "--port",
            str(port),
            "--ui-port",
            str(ui_port),
            "--store",
            str(tmp_path / "s.db"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait(port, proc)
        _wait(ui_port, proc)
        for p in (port, ui_port):
            page = httpx.get(f"http://127.0.0.1:{p}/", timeout=10)
            assert page.status_code == 200 and "<h1>Overview</h1>" in page.text
            assert "default-src 'self'" in page.headers["content-security-policy"]
        # OTLP sent to either port lands in the same store, and shows on the dashboard.
        body = (
            b'{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"via the ui port"}}]}]}]}'
        )
        sent = httpx.post(
            f"http://127.0.0.1:{ui_port}/v1/logs", content=body, headers={"content-type": "application/json"}
        )
        assert sent.status_code == 200
        deadline = time.monotonic() + 10
        while "via the ui port" not in httpx.get(f"http://127.0.0.1:{port}/logs", timeout=10).text:
            assert time.monotonic() < deadline, "the line did not show within 10 s"
            time.sleep(0.2)
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert f"Dashboard: http://127.0.0.1:{ui_port}/" in stderr
    assert f"REST API:  http://127.0.0.1:{port}/api/v1/" in stderr


def test_serve_says_when_the_ui_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        proc = run_clisight(
            "serve",
            "--port",
            str(free_port()),
            "--ui-port",
            str(taken),
            "--store",
            str(tmp_path / "x.db"),
            timeout=30,
        )
    assert proc.returncode != 0
    assert f"could not listen on 127.0.0.1:{taken}" in proc.stderr and "Traceback" not in proc.stderr


def test_serve_stops_promptly_with_a_live_tail_open(tmp_path: Path) -> None:
    """An open Server-Sent Events stream (a browser on the logs page) does not hold Ctrl-C up."""
    import threading

    port = free_port()
    proc = subprocess.Popen(
        [str(CLISIGHT), "serve", "--port", str(port), "--store", str(tmp_path / "s.db")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    opened = threading.Event()

    def follow() -> None:
        try:
            with httpx.stream("GET", f"http://127.0.0.1:{port}/logs/stream", timeout=30) as stream:
                for _ in stream.iter_lines():
                    opened.set()
        except httpx.HTTPError:
            pass  # the server closed the stream: what this test waits for

    reader = threading.Thread(target=follow, daemon=True)
    try:
        _wait(port, proc)
        reader.start()
        assert opened.wait(10), "the stream did not open"
        stopping = time.monotonic()
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == 0, stderr
    assert time.monotonic() - stopping < 15
    reader.join(timeout=10)
    assert not reader.is_alive()
