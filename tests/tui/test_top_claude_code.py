"""``clisight top`` (Textual's pilot) on what a real receiver stored from Claude Code over OTLP: a
session whose events stopped has ended, one still sending runs however long ago it started, and
clisight's own run (its session record names a command) runs until it ends, quiet or not."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from clisight.query import Query
from clisight.tui.app import TopApp
from tests.server.conftest import Served, serve
from tests.server.test_claude_code import SONNET, api_request, post_json, post_protobuf, request, value
from tests.tui.screen import screen_text, wait_until
from tests.tui.test_top_app import run_app

MINUTE_NS = 60 * 10**9


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    yield from serve(tmp_path)


def clisight_run(session: str, command: str, start_ns: int) -> ExportLogsServiceRequest:
    """What clisight's own OTLP exporter sends when a run starts: its session record, no end yet."""
    message = ExportLogsServiceRequest()
    resource_logs = message.resource_logs.add()
    resource_logs.resource.attributes.add(key="service.name", value=value("mycli"))
    resource_logs.resource.attributes.add(key="telemetry.sdk.name", value=value("clisight"))
    log = resource_logs.scope_logs.add().log_records.add(
        time_unix_nano=start_ns, event_name="clisight.session"
    )
    for key, item in (("session.id", session), ("command", command)):
        log.attributes.add(key=key, value=value(item))
    return message


def test_top_shows_a_claude_code_session_as_running_only_while_its_events_come(served: Served) -> None:
    now = time.time_ns()
    prompt = {"session.id": "cc-stopped", "event.name": "user_prompt", "prompt_length": "12"}
    post_json(
        served,
        request(
            (now - 10 * MINUTE_NS, "claude_code.user_prompt", prompt),
            (
                now - 9 * MINUTE_NS,
                "claude_code.api_request",
                api_request("cc-stopped", SONNET, (1, 2, 0, 0), "0.1"),
            ),
        ),
    )
    post_protobuf(
        served,
        request(
            (now - 120 * MINUTE_NS, "claude_code.user_prompt", prompt | {"session.id": "cc-working"}),
            (now - 10**9, "claude_code.api_request", api_request("cc-working", SONNET, (1, 2, 0, 0), "0.1")),
        ),
    )
    post_protobuf(served, clisight_run("run-deploy", "deploy", now - 10 * MINUTE_NS))
    assert served.pipeline.flush(timeout=10)
    with Query(served.store_url) as query:
        app = TopApp(query, host=False)

        async def check(pilot: Any) -> None:
            await pilot.press("5")
            await wait_until(pilot, lambda: app.panel == "active" and "cc-working" in screen_text(app))
            text = screen_text(app)
            assert "run-deploy" in text and "deploy" in text and "mycli" in text
            assert "cc-stopped" not in text
            assert "Active 2" in text

        run_app(app, check, size=(100, 30))


def test_top_says_a_claude_code_session_counts_while_its_records_come_when_none_does(served: Served) -> None:
    now = time.time_ns()
    api = api_request("cc-stopped", SONNET, (1, 2, 0, 0), "0.1")
    post_protobuf(served, request((now - 9 * MINUTE_NS, "claude_code.api_request", api)))
    assert served.pipeline.flush(timeout=10)
    with Query(served.store_url) as query:
        app = TopApp(query, host=False)

        async def check(pilot: Any) -> None:
            await pilot.press("5")
            await wait_until(pilot, lambda: "No runs in progress" in screen_text(app))
            text = " ".join(screen_text(app).split())
            assert "Claude Code's, while its records keep coming" in text and "cc-stopped" not in text

        run_app(app, check, size=(100, 30))
