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
from typing import Any

from clisight._safety import _raise_internal, guard, record_internal_error
from clisight.client import context as _ctx
from clisight.client.logger import _seconds
from clisight.client.records import RecordBuilder
from clisight.pipeline.redact import PatternRedactor, as_text
from clisight.pipeline.writer import Pipeline
from clisight.types import ERROR_LEVEL, INFO, PERFORMANCE, WARNING, Resource


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
        self._records = RecordBuilder(self._resource, self._redactor)
        self._pipeline = Pipeline([JsonlSink(self.log_path, max_bytes=max_file_size)])
        atexit.register(self._pipeline.shutdown, 1.0)

    def set_session_context(
        self, session_id: str | None = None, user_id: str | None = None, **context: Any
    ) -> str:
        """Every later entry carries this session id (generated when None), user id and context."""
        if session_id is not None and type(session_id) is not str:
            session_id = as_text(session_id)
        self.session_id = session_id or self.session_id or _ctx.new_session_id()
        if user_id is not None:
            self.user_id = user_id if type(user_id) is str else as_text(user_id)
        self.context.update(context)
        return self.session_id

    def _log(
        self,
        severity: int,
        component: object,
        message: object,
        contexts: tuple[object, ...],
        fields: dict[str, Any],
        extra: dict[str, Any] | None = None,
        performance: tuple[object, object] | None = None,
    ) -> None:
        # Everything user-given is turned into a record inside the try: no argument can raise.
        try:
            given: dict[str, Any] = {}
            for context in contexts:
                given.update(_mapping(context))
            given.update(fields)
            text = as_text(message)
            if performance is None:
                attrs = {**self.context, **given, **(extra or {})}
            else:
                # As in the seed: the timing is on the entry, the call's context in performance_data.
                operation, duration = as_text(performance[0]), performance[1]
                seconds = _seconds(duration)
                if seconds is None:
                    text = f"{operation} took {as_text(duration)}"
                    timing: dict[str, Any] = {"operation": operation, "duration_text": as_text(duration)}
                else:
                    text = f"{operation} took {seconds * 1000:.1f} ms"
                    timing = {"operation": operation, "duration": seconds}
                attrs = {**self.context, **timing, "performance_data": {**timing, **given}}
            if self.user_id is not None:
                attrs["user_id"] = self.user_id
            if self.session_id is None:
                self.session_id = _ctx.new_session_id()
            ctx = _ctx.Context(session_id=self.session_id)
            self._pipeline.emit(self._records.log(component, severity, text, attrs, ctx))
        except Exception as error:
            self._pipeline.count_lost()  # the entry is lost: counted as a drop
            record_internal_error(error)
            if _raise_internal:
                raise
        if self.synchronous:
            with guard():
                self._pipeline.flush(self.write_timeout)

    # Context may come as a dict (the seed's positional ``context``) and/or as keyword arguments.
    def log_info(
        self, component: str, message: str, context: Mapping[str, Any] | None = None, **fields: Any
    ) -> None:
        self._log(INFO, component, message, (context,), fields)

    def log_warning(
        self, component: str, message: str, context: Mapping[str, Any] | None = None, **fields: Any
    ) -> None:
        self._log(WARNING, component, message, (context,), fields)

    def log_error(
        self,
        component: str,
        message: str,
        error: BaseException | Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> None:
        if isinstance(error, Mapping):  # log_error(component, message, {"k": v})
            self._log(ERROR_LEVEL, component, message, (error, context), fields)
            return
        extra = None
        if error is not None:
            extra = {"error_type": type(error).__name__, "error": as_text(error)}
        self._log(ERROR_LEVEL, component, message, (context,), fields, extra)

    def log_performance(
        self,
        component: str,
        operation: str,
        duration: float,
        context: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> None:
        """``operation`` in ``component`` took ``duration`` seconds (a non-number is kept as text)."""
        self._log(PERFORMANCE, component, "", (context,), fields, performance=(operation, duration))

    def flush(self, timeout: float = 1.0) -> bool:
        return self._pipeline.flush(timeout)

    def close(self, timeout: float = 1.0) -> bool:
        return self._pipeline.shutdown(timeout)


def _mapping(context: object) -> dict[str, Any]:
    """A positional context as attributes: a mapping's items, anything else whole under "context"."""
    if context is None:
        return {}
    if isinstance(context, Mapping):
        return {k if type(k) is str else as_text(k): v for k, v in context.items()}
    return {"context": context}
