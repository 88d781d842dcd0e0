"""Evaluating the rules on a schedule, in a background thread: what ``clisight serve`` runs.

:class:`AlertScheduler` evaluates every ``interval`` seconds, re-reads the rules file when it
changes (a file with mistakes is logged and the rules in force are kept), and never lets an
error stop the schedule: it is logged (logger ``clisight.alerts``) and the next round runs.
:meth:`AlertScheduler.stop` ends the thread within its timeout and waits for notifications still
being sent, at most as long.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from clisight.alerts.engine import AlertEngine
from clisight.alerts.rules import RuleSet, load_rules
from clisight.exceptions import AlertRulesError
from clisight.query import Query

log = logging.getLogger("clisight.alerts")


class AlertScheduler:
    """Runs :meth:`AlertEngine.evaluate` every ``interval`` seconds in a daemon thread."""

    def __init__(
        self,
        query: Query,
        rules_path: Path,
        interval: float = 30.0,
        *,
        server_url: str = "",
        clock: Callable[[], int] = time.time_ns,
        thresholds: Mapping[str, float] | None = None,
    ) -> None:
        self.query = query
        self.rules_path = rules_path
        self.interval = interval
        self.server_url = server_url
        self.clock = clock
        self.thresholds = thresholds
        self.rounds = 0
        self.failures = 0
        self._stop = threading.Event()
        self._mtime: float | None = None
        self._engine: AlertEngine | None = None
        self._thread = threading.Thread(target=self._run, name="clisight-alerts", daemon=True)

    def start(self) -> AlertScheduler:
        """Check the rules file now (raising AlertRulesError if it has mistakes), then start."""
        self._engine = AlertEngine(self.query, self._load(), self.clock, server_url=self.server_url)
        self._thread.start()
        return self

    def _load(self) -> RuleSet:
        self._mtime = self.rules_path.stat().st_mtime
        return load_rules(self.rules_path, thresholds=self.thresholds)

    def _reload_if_changed(self) -> None:
        try:
            mtime = self.rules_path.stat().st_mtime
        except OSError:
            return  # the file went away: keep the rules in force
        if mtime == self._mtime:
            return
        try:
            rules = self._load()
        except (AlertRulesError, OSError) as exc:
            log.warning("alert rules not reloaded, the rules in force stay: %s", exc)
            return
        if self._engine is not None:
            self._engine.close(1.0)
        self._engine = AlertEngine(self.query, rules, self.clock, server_url=self.server_url)
        log.info("alert rules reloaded from %s", self.rules_path)

    def run_once(self) -> None:
        """One round: reload the file if it changed, evaluate; errors are logged and counted."""
        try:
            self._reload_if_changed()
            if self._engine is not None:
                self._engine.evaluate()
            self.rounds += 1
        except Exception as exc:  # a bad round (store busy, a bug) must not end the schedule
            self.failures += 1
            log.warning("alert evaluation failed: %s: %s", type(exc).__name__, exc)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            self._stop.wait(self.interval)

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop the schedule and wait for notifications, each at most ``timeout`` seconds; False if
        something was still running then."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        finished = not self._thread.is_alive()
        if self._engine is not None:
            finished = self._engine.close(timeout) and finished
        return finished
