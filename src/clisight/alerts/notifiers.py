"""Notifiers, and the dispatcher that runs them so none can block evaluation or another notifier.

A :class:`Notifier` has a ``name`` and ``send(payload, deadline)``: it delivers one notification
(a JSON-able dict, :func:`payload`) before ``deadline`` (a ``time.monotonic()`` value) or raises.
Kinds (``[notifier.NAME]`` tables of the rules file):

- ``webhook``: JSON POST to ``url`` (with ``headers``); connection errors, timeouts and 5xx
  answers are retried ``retries`` times (default 3) with exponential backoff from ``backoff``
  (default 1 s), all within ``deadline`` (default 30 s); a 4xx answer (or a redirect, which is not
  followed) is final.  Messages name the URL's host only: its path often holds a secret.
- ``command``: runs ``command`` (a program and its arguments; no shell) with the notification as
  JSON on stdin; killed after ``timeout`` (default 10 s); a non-zero exit is a failure.
- ``desktop``: ``notify-send`` (Linux) or ``osascript`` (macOS) where present; otherwise skipped,
  with one warning per process.
- ``log``: a WARNING log record (component ``clisight.alerts``) written to the store through the
  pipeline's store sink.

:class:`Dispatcher`: one worker thread and one bounded queue per notifier, so a notifier that
hangs holds up only its own queue (full: the notification is dropped and counted); each
notification carries a deadline, and :meth:`Dispatcher.flush` waits for the queues at most until a
deadline of its own.  Failures are logged (logger ``clisight.alerts``) and counted, never raised.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

from clisight.alerts.rules import SECOND_NS, NotifierSpec

log = logging.getLogger("clisight.alerts")

DEFAULT_DEADLINE_S: Final = 30.0
QUEUE_LIMIT: Final = 256


class Notifier(Protocol):
    """Delivers notifications; ``send`` raises on failure and returns by ``deadline``."""

    name: str

    def send(self, payload: Mapping[str, Any], deadline: float) -> None: ...


class NotifyFailed(Exception):
    """A notifier gave up on a notification (the message says why)."""


# -- webhook ----------------------------------------------------------------------------------
class WebhookNotifier:
    """JSON POST with retries on connection errors and 5xx, exponential backoff, never on 4xx."""

    def __init__(
        self,
        name: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 5.0,
        retries: int = 3,
        backoff_s: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = name
        self.url = url
        # Webhook URLs often carry their secret in the path (Slack's, Discord's): messages show the host.
        parts = urlsplit(url)
        self.shown = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/..." if parts.netloc else "the URL"
        self.headers = dict(headers or {})
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.sleep = sleep
        self.attempts = 0  # every POST tried, for tests and `clisight alerts check --json`

    def send(self, payload: Mapping[str, Any], deadline: float) -> None:
        import httpx

        body = json.dumps(payload, ensure_ascii=False).encode()
        headers = {"content-type": "application/json", "user-agent": "clisight-alerts", **self.headers}
        delay = self.backoff_s
        last = "no attempt made before the deadline"
        with httpx.Client(follow_redirects=False) as client:
            for attempt in range(self.retries + 1):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.attempts += 1
                try:
                    response = client.post(
                        self.url, content=body, headers=headers, timeout=min(self.timeout_s, left)
                    )
                except httpx.TransportError as exc:  # refused, reset, timed out: worth another try
                    last = type(exc).__name__ + (
                        f": {exc.__cause__ or exc}" if not isinstance(exc, httpx.TimeoutException) else ""
                    )
                else:
                    if response.status_code < 300:
                        return
                    last = f"HTTP {response.status_code}"
                    if (
                        response.status_code < 500
                    ):  # 4xx, and redirects (not followed): sending again won't help
                        raise NotifyFailed(f"webhook {self.name}: {self.shown} answered {last}; not retried")
                if attempt == self.retries or time.monotonic() + delay >= deadline:
                    break
                self.sleep(delay)
                delay *= 2
        raise NotifyFailed(
            f"webhook {self.name}: gave up on {self.shown} after {self.attempts} tries: {last}"
        )


# -- command ----------------------------------------------------------------------------------
class CommandNotifier:
    """Runs a program with the notification as JSON on stdin, killed after ``timeout_s``."""

    def __init__(self, name: str, argv: Sequence[str], timeout_s: float = 10.0) -> None:
        self.name = name
        self.argv = list(argv)
        self.timeout_s = timeout_s

    def send(self, payload: Mapping[str, Any], deadline: float) -> None:
        timeout = max(0.0, min(self.timeout_s, deadline - time.monotonic()))
        try:
            done = subprocess.run(
                self.argv,
                input=json.dumps(payload, ensure_ascii=False).encode(),
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise NotifyFailed(
                f"command {self.name}: {self.argv[0]} did not finish in {timeout:g} s; killed"
            ) from None
        except OSError as exc:
            raise NotifyFailed(f"command {self.name}: cannot run {self.argv[0]}: {exc}") from None
        if done.returncode != 0:
            err = done.stderr.decode(errors="replace").strip()[-300:]
            raise NotifyFailed(f"command {self.name}: {self.argv[0]} exited {done.returncode}: {err}")


# -- desktop ----------------------------------------------------------------------------------
_desktop_warned = threading.Event()


class DesktopNotifier:
    """notify-send or osascript where present; otherwise skipped with one warning per process."""

    def __init__(self, name: str, which: Callable[[str], str | None] = shutil.which) -> None:
        self.name = name
        self.which = which

    def send(self, payload: Mapping[str, Any], deadline: float) -> None:
        title = f"clisight: {payload.get('rule')} {payload.get('state')}"
        text = str(payload.get("summary") or payload.get("condition") or "")
        if self.which("notify-send"):
            argv = ["notify-send", "--app-name=clisight", title, text]
        elif self.which("osascript"):
            script = f"display notification {json.dumps(text)} with title {json.dumps(title)}"
            argv = ["osascript", "-e", script]
        else:
            if not _desktop_warned.is_set():
                _desktop_warned.set()
                log.warning(
                    "desktop notifier %s: neither notify-send nor osascript is here; skipped", self.name
                )
            return
        CommandNotifier(self.name, argv, timeout_s=5.0).send(payload, deadline)


# -- log --------------------------------------------------------------------------------------
class LogNotifier:
    """A WARNING log record (component ``clisight.alerts``) in the store at ``url``."""

    def __init__(self, name: str, url: str) -> None:
        self.name = name
        self.url = url

    def send(self, payload: Mapping[str, Any], deadline: float) -> None:
        from clisight.client.context import EMPTY
        from clisight.client.records import RecordBuilder
        from clisight.pipeline.redact import PatternRedactor
        from clisight.pipeline.store_sink import StoreSink
        from clisight.types import Deadline, Resource

        builder = RecordBuilder(Resource("clisight.alerts"), PatternRedactor())
        message = f"alert {payload.get('rule')} {payload.get('state')}: {payload.get('condition')}"
        attrs: dict[str, Any] = {
            f"alert.{k}": v for k, v in payload.items() if isinstance(v, str | int | float | bool)
        }
        attrs["alert.labels"] = dict(payload.get("labels") or {})
        record = builder.log("clisight.alerts", 13, message, attrs, EMPTY)
        sink = StoreSink(self.url, name="alerts")
        try:
            sink.write([record], Deadline(deadline))
        finally:
            sink.close(Deadline(time.monotonic() + 1.0))


def build_notifiers(specs: Mapping[str, NotifierSpec], store_url: str) -> dict[str, Notifier]:
    """The notifiers of a checked rules file (durations in its options are nanoseconds)."""
    out: dict[str, Notifier] = {}
    for name, spec in specs.items():
        opts = spec.options
        if spec.type == "webhook":
            out[name] = WebhookNotifier(
                name,
                str(opts["url"]),
                opts.get("headers"),
                timeout_s=opts.get("timeout", 5 * SECOND_NS) / SECOND_NS,
                retries=int(opts.get("retries", 3)),
                backoff_s=opts.get("backoff", SECOND_NS) / SECOND_NS,
            )
        elif spec.type == "command":
            out[name] = CommandNotifier(
                name, opts["command"], opts.get("timeout", 10 * SECOND_NS) / SECOND_NS
            )
        elif spec.type == "desktop":
            out[name] = DesktopNotifier(name)
        else:
            out[name] = LogNotifier(name, store_url)
    return out


def notifier_deadline_s(spec: NotifierSpec | None) -> float:
    """How long one notification of this notifier may take in all (its ``deadline``, default 30 s)."""
    if spec is None:
        return DEFAULT_DEADLINE_S
    return float(spec.options.get("deadline", DEFAULT_DEADLINE_S * SECOND_NS)) / SECOND_NS


# -- dispatch ---------------------------------------------------------------------------------
@dataclass
class DispatchStats:
    """Per notifier name: notifications sent, failed, dropped (queue full)."""

    sent: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # the latest failure messages (at most 50)


class _Worker:
    def __init__(self, notifier: Notifier, stats: DispatchStats, lock: threading.Lock) -> None:
        self.notifier = notifier
        self.stats = stats
        self.lock = lock
        self.queue: deque[tuple[Mapping[str, Any], float]] = deque()
        self.ready = threading.Condition(lock)
        self.busy = False
        self.closing = False
        self.thread = threading.Thread(target=self._run, name=f"clisight-notify-{notifier.name}", daemon=True)
        self.thread.start()

    def offer(self, payload: Mapping[str, Any], deadline: float) -> bool:
        with self.ready:
            if len(self.queue) >= QUEUE_LIMIT:
                return False
            self.queue.append((payload, deadline))
            self.ready.notify()
            return True

    def idle(self) -> bool:
        return not self.queue and not self.busy

    def _run(self) -> None:
        name = self.notifier.name
        while True:
            with self.ready:
                while not self.queue:
                    self.busy = False
                    self.ready.notify_all()
                    if self.closing:
                        return
                    self.ready.wait()
                payload, deadline = self.queue.popleft()
                self.busy = True
            try:
                if time.monotonic() >= deadline:
                    raise NotifyFailed(f"{name}: the notification's deadline passed before it could be sent")
                self.notifier.send(payload, deadline)
            except Exception as exc:  # a notifier's failure is its own: counted, logged, never raised
                message = (
                    str(exc) if isinstance(exc, NotifyFailed) else f"{name}: {type(exc).__name__}: {exc}"
                )
                log.warning("alert notification failed: %s", message)
                with self.lock:
                    self.stats.failed[name] = self.stats.failed.get(name, 0) + 1
                    self.stats.errors = [*self.stats.errors[-49:], message]
            else:
                with self.lock:
                    self.stats.sent[name] = self.stats.sent.get(name, 0) + 1


class Dispatcher:
    """Sends notifications through their notifiers, each notifier on a worker thread of its own."""

    def __init__(
        self, notifiers: Mapping[str, Notifier], deadlines: Mapping[str, float] | None = None
    ) -> None:
        self.notifiers = dict(notifiers)
        self.deadlines = dict(deadlines or {})
        self.stats = DispatchStats()
        self._lock = threading.Lock()
        self._workers: dict[str, _Worker] = {}

    def submit(self, names: Sequence[str], payload: Mapping[str, Any]) -> None:
        """Queue ``payload`` for each named notifier; returns at once."""
        for name in names:
            notifier = self.notifiers.get(name)
            if notifier is None:
                continue
            deadline = time.monotonic() + self.deadlines.get(name, DEFAULT_DEADLINE_S)
            worker = self._workers.get(name)
            if worker is None or worker.closing:
                worker = self._workers[name] = _Worker(notifier, self.stats, self._lock)
            if not worker.offer(payload, deadline):
                with self._lock:
                    self.stats.dropped[name] = self.stats.dropped.get(name, 0) + 1

    def close(self, timeout: float) -> bool:
        """:meth:`flush`, then let the worker threads end once their queues are empty."""
        finished = self.flush(timeout)
        for worker in list(self._workers.values()):
            with worker.ready:
                worker.closing = True
                worker.ready.notify_all()
        return finished

    def flush(self, timeout: float) -> bool:
        """Wait until every queued notification was sent or failed, at most ``timeout`` seconds;
        False if some notifier was still busy then (it goes on in its daemon thread)."""
        end = time.monotonic() + timeout
        for worker in list(self._workers.values()):
            with worker.ready:
                while not worker.idle():
                    left = end - time.monotonic()
                    if left <= 0:
                        return False
                    worker.ready.wait(left)
        return True
