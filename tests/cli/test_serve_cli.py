"""``clisight serve`` as users run it: the installed command in a subprocess, on 127.0.0.1."""

from __future__ import annotations

import os
import queue
import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import orjson
import pytest

pytest.importorskip("uvicorn", reason="the server extra is not installed")

from clisight.query import Filter, Query
from tests.cli.clirun import CLISIGHT, run_clisight, serve_on_any_port


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def claude_code_logs() -> bytes:
    """What Claude Code's telemetry sends: events as log records named by their body, no severity."""

    def attr(key: str, value: dict[str, object]) -> dict[str, object]:
        return {"key": key, "value": value}

    record = {
        "timeUnixNano": str(time.time_ns()),
        "body": {"stringValue": "claude_code.api_request"},
        "attributes": [
            attr("session.id", {"stringValue": "cc-session-1"}),
            attr("model", {"stringValue": "claude-sonnet-4-5"}),
            attr("input_tokens", {"intValue": "1200"}),
            attr("output_tokens", {"intValue": "340"}),
            attr("cost_usd", {"doubleValue": 0.0087}),
        ],
    }
    resource = {"attributes": [attr("service.name", {"stringValue": "claude-code"})]}
    return orjson.dumps(
        {
            "resourceLogs": [
                {
                    "resource": resource,
                    "scopeLogs": [{"scope": {"name": "com.anthropic.claude_code"}, "logRecords": [record]}],
                }
            ]
        }
    )


def test_serve_receives_claude_code_events_and_writes_them_before_it_stops(tmp_path: Path) -> None:
    port, db = free_port(), tmp_path / "served.db"
    proc = subprocess.Popen(
        [str(CLISIGHT), "serve", "--port", str(port), "--store", str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "CLISIGHT_HOME": str(tmp_path / "home")},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.communicate(timeout=10)
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, "clisight serve did not listen within 30 s"
                time.sleep(0.05)
        answer = httpx.post(
            f"http://127.0.0.1:{port}/v1/logs",
            content=claude_code_logs(),
            headers={"Content-Type": "application/json"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert f"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:{port}" in stderr
    assert "CLAUDE_CODE_ENABLE_TELEMETRY=1" in stderr
    assert "1 records accepted, 1 stored, 0 dropped" in stderr
    with Query(f"sqlite:///{db}") as query:
        [event] = list(query.export(Filter(), kinds=("event",)))
    # Claude Code's API call is stored once, as the LLM usage event every usage report reads.
    assert (event["name"], event["service"], event["session_id"]) == (
        "llm.request",
        "claude-code",
        "cc-session-1",
    )
    assert event["attributes"]["otel.event_name"] == "claude_code.api_request"
    assert event["attributes"]["input_tokens"] == 1200 and event["attributes"]["cost_usd"] == 0.0087


def test_serve_refuses_a_public_address_without_a_token(tmp_path: Path) -> None:
    proc = run_clisight("serve", "--host", "0.0.0.0", "--store", str(tmp_path / "x.db"), timeout=30)
    assert proc.returncode == 2
    assert "--token" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "x.db").exists()


def test_serve_says_when_the_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = run_clisight("serve", "--port", str(port), "--store", str(tmp_path / "x.db"), timeout=30)
    assert proc.returncode == 1
    assert f"could not listen on 127.0.0.1:{port} (Address already in use)" in proc.stderr
    # One line says it: no banner first, no uvicorn log line, no "stopped" summary, no store made.
    assert "Traceback" not in proc.stderr and "ERROR:" not in proc.stderr
    assert "OTLP/HTTP" not in proc.stderr and "stopped;" not in proc.stderr
    assert not (tmp_path / "x.db").exists()


def test_serve_on_port_0_prints_the_port_it_got_and_answers_there(tmp_path: Path) -> None:
    proc, lines, reader = serve_on_any_port(tmp_path)
    try:
        line = ""
        while not line.startswith("REST API:"):
            line = lines.get(timeout=30)  # the banner comes once the port is bound
        url = line.split()[-1]
        port = int(url.split(":")[2].split("/")[0])
        assert port != 0
        answer = httpx.get(f"{url}health", timeout=10)
        assert answer.status_code == 200, answer.text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        reader.join(timeout=10)
    shown = "".join(lines.queue)
    assert f"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:{port}" in shown and ":0" not in shown


def banner_of(lines: queue.Queue[str]) -> str:
    """The banner's lines up to the SDK's endpoint (queue.Empty if it does not come in time)."""
    said = []
    while not said or "OTEL_EXPORTER_OTLP_ENDPOINT=" not in said[-1]:
        said.append(lines.get(timeout=30))
    return "".join(said)


@pytest.mark.parametrize("allow_host", [None, "otel.internal"])
def test_serve_on_all_interfaces_prints_a_name_other_machines_can_use_and_accepts_it(
    tmp_path: Path, allow_host: str | None
) -> None:
    token = secrets.token_hex(16)
    more = ("--host", "0.0.0.0", *(("--allow-host", allow_host) if allow_host else ()))
    proc, lines, reader = serve_on_any_port(tmp_path, *more, env={"CLISIGHT_TOKEN": token})
    try:
        said = banner_of(lines)
        endpoint = said.split("OTEL_EXPORTER_OTLP_ENDPOINT=")[1].split()[0]
        name, port = endpoint.removeprefix("http://").rsplit(":", 1)
        assert name == (allow_host or socket.gethostname()) and "127.0.0.1" not in endpoint
        assert (
            f"Dashboard: http://{name}:{port}/" in said and f"REST API:  http://{name}:{port}/api/v1/" in said
        )
        assert (
            "Listening on all interfaces (0.0.0.0)" in said and f"http://127.0.0.1:{port} works too" in said
        )
        # The name printed is one the server accepts (a client of another machine sends it as Host).
        answer = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/health",
            headers={"Host": f"{name}:{port}", "Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        other = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/health",
            headers={"Host": f"evil.example:{port}", "Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert other.status_code == 403  # any other name is still refused
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        reader.join(timeout=10)


def test_serve_on_loopback_prints_loopback_urls_and_no_note(tmp_path: Path) -> None:
    proc, lines, reader = serve_on_any_port(tmp_path)
    try:
        said = banner_of(lines)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        reader.join(timeout=10)
    assert "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:" in said and "all interfaces" not in said


# Put first on PYTHONPATH of a serve, this holds each of its worker processes at birth until the
# file GO exists: the test decides when serve may finish starting, so its signal lands while serve
# starts, every time.  (multiprocessing starts a worker as `python -c ... --multiprocessing-fork`.)
HOLD_WORKERS = """
import os, sys, time
if "--multiprocessing-fork" in sys.argv:
    deadline = time.monotonic() + 60
    while not os.path.exists(GO) and time.monotonic() < deadline:
        time.sleep(0.02)
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_while_serve_starts_stops_it_with_one_line_and_status_0(
    tmp_path: Path, signum: signal.Signals
) -> None:
    hold = tmp_path / "hold"
    hold.mkdir()
    go = tmp_path / "go"
    (hold / "sitecustomize.py").write_text(f"GO = {str(go)!r}\n{HOLD_WORKERS}")
    path = os.pathsep.join([str(hold), *filter(None, [os.environ.get("PYTHONPATH")])])
    proc, lines, reader = serve_on_any_port(tmp_path, workers=2, env={"PYTHONPATH": path}, own_group=True)
    try:
        line = lines.get(timeout=60)  # printed before it opens the store and starts its workers
        assert line.startswith("clisight serve: starting on 127.0.0.1:") and "2 worker processes" in line
        if signum == signal.SIGINT:
            os.killpg(proc.pid, signum)  # a Ctrl-C signals the whole group: the workers too
        else:
            proc.send_signal(signum)  # `kill PID`
        go.touch()  # only now may the workers start
        assert proc.wait(timeout=60) == 0
    finally:
        go.touch()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        reader.join(timeout=10)
    said = "".join(lines.queue)
    assert said == "clisight serve: stopped while starting; nothing was received\n"  # no banner, no traceback
    deadline = time.monotonic() + 30
    while True:  # and no worker is left behind (multiprocessing's resource tracker exits last)
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, "a process of serve's group outlived it"
        time.sleep(0.05)
