"""``StructuredLogger``: the seed project's JSONL logger, kept call-compatible, rebuilt on the pipeline.

What the seed got wrong and this version fixes:

- ``log_performance`` crashed: it logged at a PERFORMANCE level the ``logging`` module never had.
  Here PERFORMANCE is a real severity (11, between INFO and WARNING).
- It called ``logging.basicConfig`` and so took over the host program's root logger.  Nothing
  here touches ``logging`` configuration.
- ``user_id`` was declared on every entry but never set.  ``set_session_context(session_id, user_id)``
  now fills it on every later entry.
- Writes could block the caller without bound and were not rotated on error paths.  Entries now go
  through the same bounded queue and writer thread as the rest of clisight, to a JSONL file rotated
  at ``max_file_size`` (several processes may share the file), with secrets scrubbed first.  As in
  the seed, an entry is in the file when the call returns, but the wait is bounded
  (``write_timeout``); ``synchronous=False`` makes a call cost only the queueing.

Each line is a JSON object with the seed's ``LogEntry`` fields: ``timestamp``, ``level``,
``component``, ``message``, ``context``, ``session_id``, ``user_id``, ``performance_data``.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from time import time_ns
from typing import Any

from clisight._safety import guard
from clisight.client import context as _ctx
from clisight.pipeline.redact import PatternRedactor
from clisight.pipeline.writer import Pipeline
from clisight.types import ERROR_LEVEL, INFO, LOG, PERFORMANCE, WARNING, Record, Resource


@dataclass
class LogEntry:
    """The seed's entry shape (for code that builds or reads entries itself)."""

    timestamp: str
    level: str
    component: str
    message: str
    context: dict[str, Any] = field(default_factory=dict)
    session_id: str | None = None
    user_id: str | None = None
    performance_data: dict[str, Any] | None = None


class StructuredLogger:
    """JSON-lines logger with session context and rotation, compatible with the seed's API."""

    def __init__(
        self,
        log_path: str | os.PathLike[str],
        max_file_size: int = 50 * 1024 * 1024,
        *,
        synchronous: bool = True,
        write_timeout: float = 1.0,
    ) -> None:
        """``synchronous`` (the default, as the seed behaved): each entry is in the file when the call
        returns, waiting at most ``write_timeout`` seconds for the writer, so a dead disk never hangs
        the caller.  ``synchronous=False`` only queues entries (the pipeline's usual cost per call)."""
        from clisight.pipeline.jsonl import JsonlSink

        self.log_path = Path(log_path)
        self.max_file_size = max_file_size
        self.synchronous = synchronous
        self.write_timeout = write_timeout
        self.session_id: str | None = None
        self.user_id: str | None = None
        self.context: dict[str, Any] = {}
        self._redactor = PatternRedactor()
        self._resource = Resource(service=self.log_path.stem, host=os.uname().nodename, pid=os.getpid())
        self._pipeline = Pipeline([JsonlSink(self.log_path, max_bytes=max_file_size)])
        atexit.register(self._pipeline.shutdown, 1.0)

    def set_session_context(
        self, session_id: str | None = None, user_id: str | None = None, **context: Any
    ) -> str:
        """Every later entry carries this session id (generated when None), user id and context."""
        self.session_id = session_id or self.session_id or _ctx.new_session_id()
        if user_id is not None:
            self.user_id = user_id
        self.context.update(context)
        return self.session_id

    def _log(
        self,
        severity: int,
        component: str,
        message: str,
        context: dict[str, Any],
        performance_data: dict[str, Any] | None = None,
    ) -> None:
        with guard():
            attrs = {**self.context, **context}
            if self.user_id is not None:
                attrs["user_id"] = self.user_id
            if performance_data is not None:
                attrs["performance_data"] = performance_data
            red = self._redactor
            if self.session_id is None:
                self.session_id = _ctx.new_session_id()
            self._pipeline.emit(
                Record(
                    LOG,
                    time_ns(),
                    component,
                    red.message(str(message)),
                    severity,
                    red.attributes(attrs),
                    self._resource,
                    self.session_id,
                )
            )
            if self.synchronous:
                self._pipeline.flush(self.write_timeout)

    # Context may come as a dict (the seed's positional ``context``) and/or as keyword arguments.
    def log_info(
        self, component: str, message: str, context: Mapping[str, Any] | None = None, **fields: Any
    ) -> None:
        self._log(INFO, component, message, _merge(context, fields))

    def log_warning(
        self, component: str, message: str, context: Mapping[str, Any] | None = None, **fields: Any
    ) -> None:
        self._log(WARNING, component, message, _merge(context, fields))

    def log_error(
        self,
        component: str,
        message: str,
        error: BaseException | Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> None:
        if isinstance(error, Mapping):  # log_error(component, message, {"k": v})
            context = {**error, **(context or {})}
            error = None
        merged = _merge(context, fields)
        if error is not None:
            merged["error_type"] = type(error).__name__
            merged["error"] = str(error)
        self._log(ERROR_LEVEL, component, message, merged)

    def log_performance(
        self,
        component: str,
        operation: str,
        duration: float,
        context: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> None:
        """``operation`` in ``component`` took ``duration`` seconds."""
        perf = {"operation": operation, "duration": float(duration), **_merge(context, fields)}
        self._log(
            PERFORMANCE,
            component,
            f"{operation} took {duration * 1000:.1f} ms",
            {"operation": operation, "duration": float(duration)},
            perf,
        )

    def flush(self, timeout: float = 1.0) -> bool:
        return self._pipeline.flush(timeout)

    def close(self, timeout: float = 1.0) -> bool:
        return self._pipeline.shutdown(timeout)


def _merge(context: Mapping[str, Any] | None, fields: dict[str, Any]) -> dict[str, Any]:
    return {**context, **fields} if context else fields
