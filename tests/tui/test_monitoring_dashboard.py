"""The seed's ``MonitoringDashboard``: frames with CPU, memory, active operations and error rate,
refreshed on an interval, stoppable, and never raising into the program that runs it."""

from __future__ import annotations

import asyncio
import io
import threading
from pathlib import Path
from typing import Any

import pytest

import clisight
from clisight import _safety


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def monitor_with(active: int, ok: int, failed: int) -> Any:
    monitor = clisight.PerformanceMonitor()
    for i in range(ok + failed):
        monitor.start_operation(f"done-{i}", "query_time")
        monitor.end_operation(f"done-{i}", "query_time", success=i < ok)
    for i in range(active):
        monitor.start_operation(f"op-{i}", "connection_time")
    return monitor


def test_frames_show_active_operations_and_the_error_rate_every_interval() -> None:
    out = io.StringIO()
    dashboard = clisight.MonitoringDashboard(
        None, monitor_with(active=2, ok=3, failed=1), interval=0.05, stream=out
    )
    asyncio.run(asyncio.wait_for(dashboard.start_dashboard(duration=0.4), timeout=30))
    frames = out.getvalue().split("=== clisight monitoring dashboard")
    assert len(frames) - 1 == dashboard.frames >= 3
    last = frames[-1]
    assert "Active operations: 2" in last
    assert "connection_time" in last and "op-0" in last
    assert "Error rate:   25.0% (1 of 4 operations timed here)" in last
    assert "CPU usage:" in last and "Memory usage:" in last
    assert "\x1b" not in out.getvalue()  # not a terminal: frames are appended, never cleared


def test_stop_from_another_thread_ends_the_loop_promptly() -> None:
    out = io.StringIO()
    dashboard = clisight.MonitoringDashboard(None, None, interval=30.0, stream=out)

    async def main() -> float:
        loop = asyncio.get_running_loop()
        task = asyncio.create_task(dashboard.start_dashboard())
        while dashboard.frames == 0:
            await asyncio.sleep(0.01)
        await dashboard.start_dashboard()  # a second call while one runs returns at once
        started = loop.time()
        threading.Thread(target=dashboard.stop).start()
        await asyncio.wait_for(task, timeout=10)
        return loop.time() - started

    took = asyncio.run(main())
    assert took < 5  # the 30 s interval was cut short
    assert dashboard.frames == 1 and not dashboard.running


def test_cancelling_the_task_ends_it_with_the_hosts_own_cancellation() -> None:
    dashboard = clisight.MonitoringDashboard(None, None, interval=30.0, stream=io.StringIO())

    async def main() -> None:
        task = asyncio.create_task(dashboard.start_dashboard())
        while dashboard.frames == 0:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(asyncio.wait_for(main(), timeout=10))
    assert not dashboard.running


def test_on_a_terminal_each_frame_replaces_the_last_and_values_are_escaped() -> None:
    out = Tty()
    monitor = clisight.PerformanceMonitor()
    monitor.start_operation("id\x1b]0;title\x07", "[red]kind\x1b[2J")
    dashboard = clisight.MonitoringDashboard(None, monitor, stream=out)
    dashboard.display_dashboard()
    text = out.getvalue()
    assert text.startswith("\x1b[H\x1b[2J")  # our own clear, once per frame
    assert text.count("\x1b") == 2
    assert "[red]kind\\x1b[2J" in text and "id\\x1b]0;title\\x07" in text


def test_reads_the_error_rate_of_the_running_clients_store(tmp_path: Path) -> None:
    clisight.init(service="dash", store=tmp_path / "s.db")
    for ok in (True, False, False):
        try:
            with clisight.span("step"):
                if not ok:
                    raise RuntimeError("boom")
        except RuntimeError:
            pass
    clisight.flush(10)
    metrics = clisight.MonitoringDashboard(None, None).get_metrics()
    assert metrics["store_operations"] == 3
    assert metrics["store_error_rate"] == pytest.approx(2 / 3)


class BrokenMonitor:
    active_operations = property(lambda self: 1 / 0)

    def get_performance_stats(self) -> dict[str, Any]:
        raise RuntimeError("broken")


class BrokenStream(io.StringIO):
    def write(self, text: str) -> int:
        raise OSError("disk full")


def test_never_raises_into_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_safety, "_raise_internal", False)
    before = _safety.internal_errors()
    dashboard = clisight.MonitoringDashboard(object(), BrokenMonitor(), interval=0.01, stream=BrokenStream())
    asyncio.run(asyncio.wait_for(dashboard.start_dashboard(duration=0.1), timeout=10))
    assert dashboard.get_metrics()["active_operations"] == 0
    assert "Active operations: 0" in dashboard.render()
    assert _safety.internal_errors() > before  # counted, not raised
