"""This machine's CPU and memory from psutil (optional), for views watching a local store."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final

MIN_GAP_S: Final = 0.25  # CPU use over a shorter span than this is mostly noise


@dataclass(frozen=True, slots=True)
class HostSample:
    """CPU in use since the previous sample (%), memory in use (%), and memory in use (bytes)."""

    cpu_percent: float
    memory_percent: float
    memory_used: int


class HostSampler:
    """Samples the machine with psutil; ``available`` is False when psutil is not installed."""

    def __init__(self) -> None:
        self._psutil: Any = None
        self._last = 0.0
        try:
            import psutil
        except ImportError:
            return
        self._psutil = psutil
        psutil.cpu_percent(None)  # the first reading only starts the count
        self._last = time.monotonic()

    @property
    def available(self) -> bool:
        return self._psutil is not None

    def sample(self) -> HostSample | None:
        """One sample, or None without psutil (or when psutil cannot read this machine).  Waits
        until :data:`MIN_GAP_S` has passed since the previous sample (call it off the UI thread)."""
        if self._psutil is None:
            return None
        wait = self._last + MIN_GAP_S - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self._last = time.monotonic()
        try:
            memory = self._psutil.virtual_memory()
            return HostSample(float(self._psutil.cpu_percent(None)), float(memory.percent), int(memory.used))
        except (OSError, RuntimeError, AttributeError):
            return None
