"""The seed's ``MonitoringDashboard``: a plain-text terminal view refreshed every 5 seconds.

::

    monitor = clisight.PerformanceMonitor(logger)
    dashboard = clisight.MonitoringDashboard(logger, monitor)
    task = asyncio.create_task(dashboard.start_dashboard())   # runs until stop() or cancel
    ...
    dashboard.stop()

Each frame shows CPU and memory (this process and the machine, with psutil; else the newest
samples in the store), the performance monitor's active operations, and the error rate: of the
operations this process timed, and of all operations the store saw in the last 15 minutes.  It
needs no Textual (``clisight top`` is the full dashboard).

It runs inside the host program, so it never raises into it: a frame that cannot be drawn is
skipped.  ``start_dashboard(duration=...)`` returns after that many seconds; ``stop()`` ends it
from any thread; cancelling the task ends it too (the ``CancelledError`` is the host's own and
propagates as usual).  When the stream is a terminal each frame replaces the previous one (the
seed cleared the screen); otherwise frames are appended, separated by a blank line.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
import time
from typing import IO, Any, Final

from clisight._safety import guard
from clisight._terminal import clean, seconds, size
from clisight.client import core as _core

DEFAULT_INTERVAL: Final = 5.0
STORE_WINDOW_S: Final = 900.0
SHOWN_OPERATIONS: Final = 8
PRIME_S: Final = 0.1
_CLEAR: Final = "\x1b[H\x1b[2J"  # cursor home, clear screen: our own sequence, never data


class MonitoringDashboard:
    """The seed's terminal dashboard over a logger and a :class:`clisight.PerformanceMonitor`."""

    def __init__(
        self,
        logger: Any = None,
        performance_monitor: Any = None,
        *,
        interval: float = DEFAULT_INTERVAL,
        stream: IO[str] | None = None,
    ) -> None:
        self.logger = logger
        self.performance_monitor = performance_monitor
        self.refresh_interval = interval
        self.stream = stream
        self.running = False
        self.frames = 0
        self._stop = threading.Event()
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._host: Any = None
        self._process: Any = None

    # -- running ----------------------------------------------------------------------------------
    async def start_dashboard(self, duration: float | None = None) -> None:
        """Draw a frame every ``refresh_interval`` seconds until :meth:`stop`, ``duration`` seconds
        or cancellation.  A second call while one runs returns at once."""
        if self.running:
            return
        self._stop.clear()
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        deadline = None if duration is None else time.monotonic() + max(float(duration), 0.0)
        self.running = True
        try:
            while not self._stop.is_set():
                self.display_dashboard()
                wait = self.refresh_interval
                if deadline is not None:
                    wait = min(wait, deadline - time.monotonic())
                    if wait <= 0:
                        break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=max(wait, 0.0))
        finally:
            self.running = False
            self._wake = None
            self._loop = None

    def stop(self) -> None:
        """End :meth:`start_dashboard` (from any thread); it returns after the frame it is drawing."""
        self._stop.set()
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nothing waits any more
                loop.call_soon_threadsafe(wake.set)

    def display_dashboard(self) -> None:
        """Draw one frame on the stream (standard output by default)."""
        with guard():
            stream = self.stream if self.stream is not None else sys.stdout
            frame = self.render()
            is_tty = False
            with contextlib.suppress(AttributeError, ValueError):
                is_tty = stream.isatty()
            stream.write((_CLEAR if is_tty else ("\n" if self.frames else "")) + frame + "\n")
            stream.flush()
            self.frames += 1

    # -- content ----------------------------------------------------------------------------------
    def get_metrics(self) -> dict[str, Any]:
        """The numbers of one frame: ``cpu_percent``, ``memory_percent`` (machine), ``process_cpu_percent``,
        ``process_memory_bytes``, ``active_operations`` (count) and ``active`` (id, type, seconds
        running), ``operations``, ``failed_operations``, ``error_rate`` (this process, None before
        any), ``store_error_rate`` and ``store_operations`` (the store's last 15 minutes, None
        without a running client) and ``source`` (``psutil`` or ``store``) of the CPU and memory."""
        metrics: dict[str, Any] = {
            "cpu_percent": None,
            "memory_percent": None,
            "process_cpu_percent": None,
            "process_memory_bytes": None,
            "source": None,
            "active_operations": 0,
            "active": [],
            "operations": 0,
            "failed_operations": 0,
            "error_rate": None,
            "store_error_rate": None,
            "store_operations": None,
        }
        with guard():
            self._machine(metrics)
        with guard():
            self._operations(metrics)
        with guard():
            self._store(metrics)
        return metrics

    def _machine(self, metrics: dict[str, Any]) -> None:
        if self._host is None:
            try:
                import psutil
            except ImportError:
                self._host = False
            else:
                self._host = psutil
                self._process = psutil.Process(os.getpid())
                psutil.cpu_percent(None)  # the first reading only starts the count:
                self._process.cpu_percent(None)
                time.sleep(PRIME_S)  # a first frame measured over no time at all would read 0 %
        if self._host:
            metrics["cpu_percent"] = float(self._host.cpu_percent(None))
            metrics["memory_percent"] = float(self._host.virtual_memory().percent)
            metrics["process_cpu_percent"] = float(self._process.cpu_percent(None))
            metrics["process_memory_bytes"] = int(self._process.memory_info().rss)
            metrics["source"] = "psutil"

    def _operations(self, metrics: dict[str, Any]) -> None:
        monitor = self.performance_monitor
        if monitor is None:
            return
        now = time.perf_counter()
        active = dict(getattr(monitor, "active_operations", {}) or {})
        metrics["active_operations"] = len(active)
        rows = []
        for op_id, started in active.items():
            kind, begun = started if isinstance(started, tuple) and len(started) == 2 else ("?", now)
            rows.append((str(op_id), str(kind), max(now - float(begun), 0.0)))
        rows.sort(key=lambda r: -r[2])
        metrics["active"] = rows
        stats = monitor.get_performance_stats() if hasattr(monitor, "get_performance_stats") else {}
        count = sum(int(s.get("count", 0)) for s in stats.values())
        failed = sum(int(s.get("failure_count", 0)) for s in stats.values())
        metrics["operations"], metrics["failed_operations"] = count, failed
        metrics["error_rate"] = failed / count if count else None

    def _store(self, metrics: dict[str, Any]) -> None:
        client = _core._client
        url = getattr(client, "store_url", None)
        if not url:
            return
        from clisight.query import Query, live

        with Query(url) as query:
            snap = live.snapshot(query, window_s=STORE_WINDOW_S)
        metrics["store_operations"] = snap.operations
        metrics["store_error_rate"] = snap.error_rate
        if metrics["source"] is None:
            found = {r.metric: r.now for r in snap.resources}
            if found:
                metrics["cpu_percent"] = found.get("system.cpu.utilization")
                metrics["memory_percent"] = found.get("system.memory.utilization")
                metrics["process_cpu_percent"] = found.get("process.cpu.utilization")
                rss = found.get("process.memory.rss")
                metrics["process_memory_bytes"] = None if rss is None else int(rss)
                metrics["source"] = "store"

    def render(self) -> str:
        """One frame as text (every value from the program or the store escaped)."""
        m = self.get_metrics()

        def pct(value: Any) -> str:
            return "-" if value is None else f"{value:.1f}%"

        lines = [f"=== clisight monitoring dashboard  {time.strftime('%H:%M:%S')} ==="]
        source = f" ({m['source']})" if m["source"] else " (pip install 'clisight[psutil]' to see it)"
        cpu, process_cpu = pct(m["cpu_percent"]), pct(m["process_cpu_percent"])
        lines.append(f"CPU usage:    {cpu} machine, {process_cpu} this process{source}")
        rss = m["process_memory_bytes"]
        lines.append(
            f"Memory usage: {pct(m['memory_percent'])} machine, "
            f"{'-' if rss is None else size(rss)} this process"
        )
        lines.append(f"Active operations: {m['active_operations']}")
        for op_id, kind, running in m["active"][:SHOWN_OPERATIONS]:
            lines.append(f"  {clean(kind, 30):<30} {clean(op_id, 24):<24} {seconds(running):>10}")
        if len(m["active"]) > SHOWN_OPERATIONS:
            lines.append(f"  ... and {len(m['active']) - SHOWN_OPERATIONS} more")
        rate = m["error_rate"]
        lines.append(
            f"Error rate:   {'-' if rate is None else f'{rate:.1%}'} "
            f"({m['failed_operations']} of {m['operations']} operations timed here)"
        )
        if m["store_operations"] is not None:
            store_rate = m["store_error_rate"]
            shown = "-" if store_rate is None else f"{store_rate:.1%}"
            minutes = int(STORE_WINDOW_S // 60)
            lines.append(f"Store, last {minutes} min: {shown} of {m['store_operations']} operations failed")
        return "\n".join(lines)


__all__ = ["MonitoringDashboard"]
