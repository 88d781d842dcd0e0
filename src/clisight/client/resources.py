"""The sampler thread: every ``resource_interval`` seconds (default 5) it collects the metric
counters and, with psutil installed (``pip install 'clisight[psutil]'``), samples the process and
the system as gauges:

================================  =====  ==========================================
metric                            unit   what
================================  =====  ==========================================
``process.cpu.utilization``       %      CPU of this process since the last sample
``process.memory.rss``            By     resident memory
``process.threads``               1      threads
``process.open_files``            1      open files
``system.cpu.utilization``        %      CPU of the machine since the last sample
``system.memory.utilization``     %      memory of the machine in use
================================  =====  ==========================================

``resource_sampling``: ``auto`` (default) takes the first sample after one interval, so a run
shorter than that pays nothing (psutil is not even imported); ``on`` samples at start as well;
``off`` samples nothing (counters are still collected at flush and exit).  A resident memory over
the ``memory_usage`` threshold (MB) raises an alert.

The thread is a daemon, imports only inside a fork warm-up, is started again in a forked child,
stops at shutdown, and never raises: a failing sample is counted as an internal error and skipped.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Any, Final

from clisight import _fork
from clisight._safety import guard
from clisight.client import context as _ctx

MB: Final = 1024 * 1024
_sampler: list[Sampler | None] = [None]
_lock = threading.Lock()


class Sampler:
    """One client's background collection (see the module doc)."""

    def __init__(self, client: Any, interval: float, resources: str) -> None:
        self.client = client
        self.interval = interval
        self.resources = resources  # auto, on or off
        self.stopped = threading.Event()
        self.samples = 0
        self._psutil: Any = None
        self._check_threshold: Any = None
        self._process: Any = None
        self._pid = 0
        self.thread = threading.Thread(target=self._run, name="clisight-sampler", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """Stop, and wait for a sample under way (at most half the exit deadline, so a stuck sample
        never holds the exit): nothing is emitted after this."""
        self.stopped.set()
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(min(5.0, max(0.1, self.client.exit_timeout / 2)))

    def _run(self) -> None:
        if self.resources == "on":
            with guard():
                self.sample()
        while not self.stopped.wait(self.interval):
            with guard():
                self.client.run_steps(self.client.flush_steps)
            if self.resources != "off":
                with guard():
                    self.sample()

    def _load(self) -> bool:
        if self._psutil is None:
            # Every import of this thread, in one warm-up: a fork landing inside an import would
            # leave the child a half-initialised module (its writer then fails to import the store).
            with _fork.warming_up():
                from clisight.client import performance

                self._check_threshold = performance.check_threshold
                try:
                    import psutil
                except ImportError:
                    self.resources = "off"  # not installed: nothing to sample, ever
                    return False
            self._psutil = psutil
        if self._process is None or self._pid != os.getpid():
            self._pid = os.getpid()
            self._process = self._psutil.Process(self._pid)
            self._process.cpu_percent(None)  # the first reading only starts the count
            self._psutil.cpu_percent(None)
        return True

    def sample(self) -> dict[str, float]:
        """Take one sample and write it as gauges; the values written."""
        if not self._load():
            return {}
        psutil, process = self._psutil, self._process
        values: dict[str, float] = {}
        with process.oneshot():
            values["process.cpu.utilization"] = float(process.cpu_percent(None))
            values["process.memory.rss"] = float(process.memory_info().rss)
            values["process.threads"] = float(process.num_threads())
            with contextlib.suppress(psutil.AccessDenied, OSError):
                values["process.open_files"] = float(len(process.open_files()))
        values["system.cpu.utilization"] = float(psutil.cpu_percent(None))
        values["system.memory.utilization"] = float(psutil.virtual_memory().percent)
        client = self.client
        ctx = _ctx.process_default[0]
        build = client.records
        units = {"process.memory.rss": "By", "process.threads": "1", "process.open_files": "1"}
        for name, value in values.items():
            attrs = {"type": "gauge", "unit": units.get(name, "%")}
            client.emit(build.metric(name, value, attrs, ctx))
        self.samples += 1
        limit = client.thresholds.get("memory_usage")
        if limit is not None:
            self._check_threshold(
                client, "memory_usage", values["process.memory.rss"] / MB, None, ctx, limit=limit, unit="MB"
            )
        return values


def ensure_sampler(client: Any) -> Sampler | None:
    """Start ``client``'s sampler thread unless it runs (or sampling is off and nothing asks)."""
    with _lock:
        current = _sampler[0]
        if current is not None and current.client is client and current.thread.is_alive():
            return current
        sampler = Sampler(client, client.config["resource_interval"], client.config["resource_sampling"])
        _sampler[0] = sampler
        client.stop_steps.append(sampler.stop)
        sampler.start()
        return sampler


def start_for(client: Any) -> None:
    """What ``init()`` does: start the sampler unless ``resource_sampling`` is off."""
    if client.config["resource_sampling"] != "off":
        ensure_sampler(client)


def current() -> Sampler | None:
    return _sampler[0]


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()
    old = _sampler[0]
    if old is None or old.stopped.is_set():
        return
    from clisight.client import core  # loaded: the sampler came from its client

    client = core._client
    _sampler[0] = None
    if client is old.client:
        with guard():
            ensure_sampler(client)


_fork.register_fork_steps(_fork.CLIENT + 1, after_in_child=_after_fork_in_child)
