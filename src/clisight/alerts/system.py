"""The seed's ``AlertingSystem``, kept by name and signature, evaluating through the alert engine.

``AlertingSystem(logger=None, performance_monitor=None)`` has the seed's ``alert_thresholds``
(``query_time`` 10 s, ``connection_time`` 5 s, ``memory_usage`` 500 MB; the performance monitor's
own thresholds when one is given, else the ``thresholds`` configuration parameter).  Each threshold
is one of the engine's default rules (:func:`clisight.alerts.rules.default_rules`), enabled here:

- :meth:`AlertingSystem.check_alerts` flushes what this program queued (at most 1 s), evaluates them
  against the store (the one ``clisight.init`` writes to, else the configured one, unless given)
  and returns the firing alerts as dicts;
  transitions land in ``clisight alerts history``.
- :meth:`AlertingSystem.check_thresholds` compares values you pass (``{"query_time": 12.5}``) with
  the same rules, without a store.

Neither ever raises into the program that calls it (errors are counted as clisight's own, and an
empty list returned); both append what fired to ``alert_history`` and, given a ``logger`` (a
``clisight.Logger``, a ``logging.Logger``, anything with ``warning(message)``), warn through it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from clisight._safety import guard
from clisight.alerts.rules import SEED_DEFAULTS, RuleSet, default_rules
from clisight.exceptions import ClisightError

log = logging.getLogger("clisight.alerts")
_DEFAULTS = {"query_time": 10.0, "connection_time": 5.0, "memory_usage": 500.0}


class AlertingSystem:
    """The seed's alerting system: thresholds, checked through the alert engine's default rules."""

    def __init__(self, logger: Any = None, performance_monitor: Any = None) -> None:
        self.logger = logger
        self.performance_monitor = performance_monitor
        self.alert_thresholds: dict[str, float] = dict(_DEFAULTS)
        self.alert_history: list[dict[str, Any]] = []
        with guard():
            found = getattr(performance_monitor, "alert_thresholds", None)
            if isinstance(found, Mapping):
                self.alert_thresholds.update({str(k): float(v) for k, v in found.items()})
            else:
                from clisight import _config

                config = _config.resolve(strict=False)
                self.alert_thresholds.update(_config.threshold_pairs(config["thresholds"]))

    def rules(self) -> RuleSet:
        """The thresholds as the engine's default rules, all enabled."""
        known = {k: v for k, v in self.alert_thresholds.items() if k in SEED_DEFAULTS}
        return RuleSet(tuple(default_rules(known, enable=tuple(known))), {}, "<AlertingSystem>")

    def check_thresholds(self, metrics: Mapping[str, float]) -> list[dict[str, Any]]:
        """The thresholds that ``metrics`` (name -> seconds, or MB for ``memory_usage``) are above."""
        fired: list[dict[str, Any]] = []
        with guard():
            for rule in self.rules().enabled:
                value = metrics.get(rule.name)
                if isinstance(value, int | float) and rule.crossed(float(value)):
                    fired.append(self._alert(rule.name, float(value), rule.threshold, rule.summary))
            self._record(fired)
        return fired

    def check_alerts(
        self, store: str | None = None, clock: Callable[[], int] = time.time_ns
    ) -> list[dict[str, Any]]:
        """Evaluate the thresholds against the store's recent records; the firing alerts."""
        fired: list[dict[str, Any]] = []
        with guard():
            from clisight import _config
            from clisight.alerts.engine import AlertEngine
            from clisight.client import core
            from clisight.query import Query

            core.flush(1.0)  # this program's own recent operations count too
            # The store this program writes to (clisight.init's), else the configured one.
            config = core._client.config if core._client is not None else _config.resolve(strict=False)
            url = store if store is not None else core.store_url(config["store"])
            if url is None:
                return fired
            try:
                with Query(url) as query:
                    engine = AlertEngine(query, self.rules(), clock)
                    for status in engine.evaluate():
                        if status.state == "firing":
                            fired.append(
                                self._alert(status.rule, status.value, status.threshold, status.summary)
                            )
            except ClisightError as exc:  # no store yet, a database down: nothing to check, not a bug
                log.warning("AlertingSystem.check_alerts: cannot read the store: %s", exc)
                return fired
            self._record(fired)
        return fired

    def _record(self, fired: list[dict[str, Any]]) -> None:
        """Keep what fired in ``alert_history`` and, as the seed did, warn through ``logger``."""
        self.alert_history.extend(fired)
        warn = getattr(self.logger, "warning", None)
        if callable(warn):
            for alert in fired:
                warn(f"alert {alert['type']}: {alert['message']} (value {alert['value']:g})")

    @staticmethod
    def _alert(name: str, value: float | None, threshold: float, summary: str) -> dict[str, Any]:
        return {
            "type": name,
            "value": value,
            "threshold": threshold,
            "message": summary,
            "timestamp": time.time(),
        }
