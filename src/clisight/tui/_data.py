"""What one refresh of ``clisight top`` reads, in one call that never touches the terminal.

:func:`load` runs in a worker thread: the live snapshot (``clisight.query.live``), the services the
filter key cycles through, the firing alert rules and, when watching a local store, this machine's
CPU and memory.  A read that fails is reported in ``problem`` and the rest is still shown.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from clisight.query import Query, live
from clisight.tui._host import HostSample, HostSampler


@dataclass(frozen=True, slots=True)
class FiringAlert:
    """An alert rule in the ``firing`` state (``clisight.alerts``)."""

    rule: str
    labels: str
    severity: str
    value: float | None
    threshold: float | None
    since_ns: int | None
    silenced: bool


@dataclass(frozen=True, slots=True)
class TopData:
    """Everything one refresh shows; ``alerts`` is None when alert rules are not available."""

    snapshot: live.LiveSnapshot | None
    services: tuple[str, ...]
    alerts: tuple[FiringAlert, ...] | None
    host: HostSample | None
    problem: str | None
    read_seconds: float


def _labels(labels: Any) -> str:
    if isinstance(labels, dict):
        return ", ".join(f"{k}={v}" for k, v in sorted(labels.items(), key=lambda kv: str(kv[0])))
    return "" if labels is None else str(labels)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def firing_alerts(q: Query) -> tuple[FiringAlert, ...] | None:
    """The firing alert rules (silenced ones included, marked), or None without ``clisight.alerts``."""
    try:
        from clisight.alerts import alert_statuses  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    found = []
    for status in alert_statuses(q):
        if str(getattr(status, "state", "")) != "firing":
            continue
        since = getattr(status, "since_ns", None)
        found.append(
            FiringAlert(
                str(getattr(status, "rule", "")),
                _labels(getattr(status, "labels", None)),
                str(getattr(status, "severity", "") or ""),
                _number(getattr(status, "value", None)),
                _number(getattr(status, "threshold", None)),
                since if isinstance(since, int) else None,
                bool(getattr(status, "silenced", False)),
            )
        )
    return tuple(found)


def load(
    q: Query, service: str | None, window_s: float, host: HostSampler | None, now_ns: int | None = None
) -> TopData:
    """One refresh (see the module doc).  Never raises for a store that cannot be read."""
    started = time.perf_counter()
    now = time.time_ns() if now_ns is None else now_ns
    snapshot: live.LiveSnapshot | None = None
    services: tuple[str, ...] = ()
    alerts: tuple[FiringAlert, ...] | None = None
    problem = None
    try:
        snapshot = live.snapshot(q, service=service, window_s=window_s, now_ns=now)
        services = tuple(live.services(q, now))
        alerts = firing_alerts(q)
    except Exception as error:  # a store being migrated, deleted or locked: say so, keep running
        problem = f"cannot read the store: {type(error).__name__}: {error}"
    sample = host.sample() if host is not None else None
    return TopData(snapshot, services, alerts, sample, problem, time.perf_counter() - started)
