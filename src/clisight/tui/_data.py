"""What one refresh of ``clisight top`` reads, in one call that never touches the terminal.

:func:`load` runs in a worker thread: the live snapshot (``clisight.query.live``), the services the
filter key cycles through, the firing alerts (``clisight.alerts``: the states the alert engine
stored at its last evaluation; ``top`` itself never evaluates or writes) and, when watching a local
store, this machine's CPU and memory.  A read that fails is reported in ``problem`` and the rest is
still shown.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from clisight.alerts import alert_statuses
from clisight.exceptions import ClisightError
from clisight.query import Query, live
from clisight.tui._host import HostSample, HostSampler


@dataclass(frozen=True, slots=True)
class FiringAlert:
    """An alert in the ``firing`` state (``clisight.alerts``), as the alerts panel shows it."""

    rule: str
    labels: str
    severity: str
    value: float | None
    threshold: float
    since_ns: int
    silenced: bool
    summary: str


@dataclass(frozen=True, slots=True)
class TopData:
    """Everything one refresh shows; ``alerts_evaluated_ns`` is None when no alert rule was ever
    evaluated on this store (``clisight alerts check``, ``clisight serve``'s scheduler)."""

    snapshot: live.LiveSnapshot | None
    services: tuple[str, ...]
    alerts: tuple[FiringAlert, ...]
    alerts_evaluated_ns: int | None
    host: HostSample | None
    problem: str | None
    read_seconds: float


def labels_text(labels: Mapping[str, str]) -> str:
    """``key=value, ...`` in key order."""
    return ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))


def firing_alerts(q: Query) -> tuple[tuple[FiringAlert, ...], int | None]:
    """The firing alerts (silenced ones included, marked) as last stored by the alert engine, and
    when the engine last evaluated (None: never, on this store)."""
    statuses = alert_statuses(q)
    evaluated = max((s.evaluated_ns for s in statuses), default=0) or None
    found = tuple(
        FiringAlert(
            s.rule,
            labels_text(s.labels),
            s.severity,
            s.value,
            s.threshold,
            s.since_ns,
            s.silenced,
            s.summary,
        )
        for s in statuses
        if s.state == "firing"
    )
    return found, evaluated


def load(
    q: Query, service: str | None, window_s: float, host: HostSampler | None, now_ns: int | None = None
) -> TopData:
    """One refresh (see the module doc).  Never raises for a store that cannot be read."""
    started = time.perf_counter()
    now = time.time_ns() if now_ns is None else now_ns
    snapshot: live.LiveSnapshot | None = None
    services: tuple[str, ...] = ()
    alerts: tuple[FiringAlert, ...] = ()
    evaluated = None
    problem = None
    try:
        snapshot = live.snapshot(q, service=service, window_s=window_s, now_ns=now)
        services = tuple(live.services(q, now))
        alerts, evaluated = firing_alerts(q)
    except Exception as error:  # a store being migrated, deleted or locked: say so, keep running
        # clisight's own errors already say what and where; anything else is named by its type
        known = isinstance(error, ClisightError) and str(error)
        problem = str(error) if known else f"cannot read the store: {type(error).__name__}: {error}"
    sample = host.sample() if host is not None else None
    return TopData(snapshot, services, alerts, evaluated, sample, problem, time.perf_counter() - started)
