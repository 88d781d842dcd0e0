"""The OTLP/HTTP exporter: a sink that sends batches to any OpenTelemetry backend or Collector.

Records become OTLP the way ``clisight serve`` reads them back (``clisight.server.otlp``):

========  ============================================================================================
record    OTLP
========  ============================================================================================
span      a span (ids from hex, ``span.kind``, error status, ``span.events``)
log       a log record; its component is the instrumentation scope
event     a log record with ``event_name`` (the event's name)
error     a log record with ``event_name`` ``exception`` and ``exception.type|message|stacktrace``
session   a log record with ``event_name`` ``clisight.session``
metric    a point of a sum (``counter``: monotonic; ``updowncounter``), a histogram (when the
          record carries its buckets) or a gauge (everything else)
========  ============================================================================================

Every record's session id travels as the ``session.id`` attribute.

Configuration follows the OpenTelemetry exporter variables, which explicit arguments override:
``OTEL_EXPORTER_OTLP_ENDPOINT`` (a base URL, ``/v1/<signal>`` appended), the per-signal
``OTEL_EXPORTER_OTLP_{TRACES,LOGS,METRICS}_ENDPOINT`` (used as given), ``..._HEADERS``
(``key=value,...``, URL-encoded), ``..._TIMEOUT`` (milliseconds) and ``..._COMPRESSION`` (``gzip``
or ``none``).

Delivery follows the OTLP/HTTP specification: 429, 502, 503 and 504 and connection failures are
retried with exponential backoff and jitter, honouring ``Retry-After``, within the pipeline's
deadline; every other status (400 included) is never retried: the records are counted dropped
(:class:`~clisight.exceptions.SinkRejected`), as are those a ``partial_success`` names.  When the
backend stays down, the batch goes to this sink's spool (if it has one), and is sent by the same
process as soon as a later batch gets through (the backend is back), or else by the next process
with the same spool, first: at least once (a batch cut off mid-replay may arrive twice).
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from clisight.exceptions import SinkRejected
from clisight.types import ERROR, EVENT, LOG, METRIC, SESSION, SPAN, Deadline, Record, Resource, severity_name

SIGNALS: Final = ("traces", "logs", "metrics")
RETRYABLE: Final = frozenset({429, 502, 503, 504})
DEFAULT_ENDPOINT: Final = "http://localhost:4318"
MAX_ATTEMPTS: Final = 6
MAX_BACKOFF_S: Final = 30.0
_SPAN_KINDS: Final = {"internal": 1, "server": 2, "client": 3, "producer": 4, "consumer": 5}
_DROPPED_SPAN_KEYS: Final = frozenset({"span.kind", "span.events", "duration"})
_METRIC_KEYS: Final = frozenset({"type", "unit", "temporality", "histogram"})


def _env(env: Mapping[str, str], signal: str, name: str) -> str | None:
    return env.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_{name}") or env.get(f"OTEL_EXPORTER_OTLP_{name}")


def parse_headers(text: str) -> dict[str, str]:
    """``OTEL_EXPORTER_OTLP_HEADERS``: ``key=value`` pairs separated by commas, URL-encoded."""
    import urllib.parse

    headers = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            headers[urllib.parse.unquote(key.strip())] = urllib.parse.unquote(value.strip())
    return headers


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    import email.utils

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, float(when.timestamp()) - (time.time() if now is None else now))


def backoff(attempt: int, rng: Callable[[], float] = random.random) -> float:
    """Exponential backoff with jitter: about 0.5, 1, 2, 4... seconds (each +-50 %), at most 30 s."""
    return min(MAX_BACKOFF_S, 0.5 * 2.0**attempt) * (0.5 + rng())


# ----------------------------------------------------------------------------------- encoding


def _any_value(target: Any, value: Any, depth: int = 0) -> None:
    if value is None:
        return
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        if -(2**63) <= value < 2**63:
            target.int_value = value
        else:
            target.string_value = str(value)
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, str):
        target.string_value = value
    elif isinstance(value, list | tuple) and depth < 8:
        array = target.array_value
        for item in value:
            _any_value(array.values.add(), item, depth + 1)
    elif isinstance(value, dict) and depth < 8:
        _key_values(target.kvlist_value.values, value, depth + 1)
    elif isinstance(value, bytes):
        target.bytes_value = value
    else:
        target.string_value = str(value)


def _key_values(
    target: Any, attrs: Mapping[str, Any], depth: int = 0, skip: frozenset[str] = frozenset()
) -> None:
    for key, value in attrs.items():
        if key not in skip:
            kv = target.add()
            kv.key = str(key)
            _any_value(kv.value, value, depth)


def _id(text: str | None, size: int) -> bytes:
    if not text:
        return b""
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        return b""
    return raw if len(raw) == size else b""


def _resource(target: Any, resource: Resource) -> None:
    attrs: dict[str, Any] = {"service.name": resource.service or "unknown_service"}
    if resource.version:
        attrs["service.version"] = resource.version
    if resource.host:
        attrs["host.name"] = resource.host
    if resource.pid:
        attrs["process.pid"] = resource.pid
    attrs["telemetry.sdk.name"] = resource.sdk
    _key_values(target.attributes, attrs)


def _with_session(record: Record) -> dict[str, Any]:
    attrs = dict(record.attributes) if record.attributes else {}
    if record.session_id:
        attrs["session.id"] = record.session_id
    return attrs


def encode(records: Sequence[Record]) -> dict[str, tuple[bytes, int]]:
    """A batch as OTLP export requests: ``{signal: (protobuf body, items in it)}``."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    traces, logs, metrics = (
        ExportTraceServiceRequest(),
        ExportLogsServiceRequest(),
        ExportMetricsServiceRequest(),
    )
    counts = dict.fromkeys(SIGNALS, 0)
    scopes: dict[tuple[str, Resource, str], Any] = {}

    def scope(signal: str, resource: Resource, name: str) -> Any:
        key = (signal, resource, name)
        found = scopes.get(key)
        parent: Any
        if found is None:
            if signal == "traces":
                parent = traces.resource_spans.add()
                found = parent.scope_spans.add()
            elif signal == "logs":
                parent = logs.resource_logs.add()
                found = parent.scope_logs.add()
            else:
                parent = metrics.resource_metrics.add()
                found = parent.scope_metrics.add()
            _resource(parent.resource, resource)
            found.scope.name = name
            scopes[key] = found
        return found

    for record in records:
        kind = record.kind
        if kind == SPAN:
            _span(scope("traces", record.resource, "clisight").spans.add(), record)
            counts["traces"] += 1
        elif kind == METRIC:
            _metric(scope("metrics", record.resource, "clisight").metrics.add(), record)
            counts["metrics"] += 1
        elif kind in (LOG, EVENT, ERROR, SESSION):
            component = record.name if kind == LOG else "clisight"
            _log(scope("logs", record.resource, component).log_records.add(), record)
            counts["logs"] += 1
    out = {}
    for signal, request in (("traces", traces), ("logs", logs), ("metrics", metrics)):
        if counts[signal]:
            out[signal] = (request.SerializeToString(), counts[signal])
    return out


def _span(span: Any, record: Record) -> None:
    attrs = _with_session(record)
    span.trace_id = _id(record.trace_id, 16)
    span.span_id = _id(record.span_id, 8)
    span.parent_span_id = _id(record.parent_span_id, 8)
    span.name = record.name
    span.start_time_unix_nano = record.time_ns
    span.end_time_unix_nano = record.end_ns if record.end_ns is not None else record.time_ns
    span.kind = _SPAN_KINDS.get(str(attrs.get("span.kind", "")), 0)
    if record.severity >= 17:
        span.status.code = 2
        message = attrs.get("status.message") or attrs.get("exception.type")
        if message:
            span.status.message = str(message)
    events = attrs.get("span.events")
    if isinstance(events, list):
        for item in events:
            if isinstance(item, dict):
                event = span.events.add()
                event.name = str(item.get("name", ""))
                when = item.get("time_ns")
                event.time_unix_nano = when if type(when) is int and when >= 0 else record.time_ns
                if isinstance(item.get("attributes"), dict):
                    _key_values(event.attributes, item["attributes"])
    _key_values(span.attributes, attrs, skip=_DROPPED_SPAN_KEYS | {"status.message"})


def _log(log: Any, record: Record) -> None:
    attrs = _with_session(record)
    log.time_unix_nano = log.observed_time_unix_nano = record.time_ns
    if record.trace_id:
        log.trace_id = _id(record.trace_id, 16)
        log.span_id = _id(record.span_id, 8)
    if record.kind == LOG:
        log.severity_number = max(0, min(record.severity, 24))
        log.severity_text = severity_name(record.severity)
        log.body.string_value = record.body
    elif record.kind == EVENT:
        log.event_name = record.name
    elif record.kind == ERROR:
        log.event_name = "exception"
        log.severity_number = max(0, min(record.severity, 24))
        log.severity_text = severity_name(record.severity)
        log.body.string_value = record.body
        stack = attrs.pop("stack", None)
        attrs["exception.type"] = record.name
        attrs["exception.message"] = record.body
        if stack:
            attrs["exception.stacktrace"] = stack
    else:  # a session update
        log.event_name = "clisight.session"
        if record.end_ns is not None:
            attrs["session.end_ns"] = record.end_ns
    _key_values(log.attributes, attrs)


def _metric(metric: Any, record: Record) -> None:
    attrs = _with_session(record)
    metric.name = record.name
    metric.unit = str(attrs.get("unit", "") or "")
    kind = str(attrs.get("type", "gauge"))
    temporality = 2 if attrs.get("temporality") == "cumulative" else 1
    histogram = attrs.get("histogram")
    value = record.value if record.value is not None else 0.0
    if isinstance(histogram, dict) and isinstance(histogram.get("counts"), list):
        data = metric.histogram
        data.aggregation_temporality = temporality
        point = data.data_points.add()
        point.count = int(histogram.get("count", 0) or 0)
        point.sum = float(histogram.get("sum", value) or 0.0)
        point.explicit_bounds.extend(float(b) for b in histogram.get("bounds", []))
        point.bucket_counts.extend(int(c) for c in histogram["counts"])
        for key in ("min", "max"):
            if isinstance(histogram.get(key), int | float):
                setattr(point, key, float(histogram[key]))
    elif kind in ("counter", "updowncounter", "sum"):
        data = metric.sum
        data.aggregation_temporality = temporality
        data.is_monotonic = kind == "counter"
        point = data.data_points.add()
        point.as_double = value
    else:
        point = metric.gauge.data_points.add()
        point.as_double = value
    point.time_unix_nano = record.time_ns
    _key_values(point.attributes, attrs, skip=_METRIC_KEYS)


# -------------------------------------------------------------------------------------- the sink


class OtlpHttpSink:
    """Sends batches to an OTLP/HTTP endpoint (protobuf, gzip by default).  See the module docs."""

    spool_when_down = True

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        compression: str | None = None,
        spool_dir: Path | None = None,
        name: str = "otlp",
        env: Mapping[str, str] | None = None,
        max_attempts: int = MAX_ATTEMPTS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        env = os.environ if env is None else env
        self.name = name
        self.spool_dir = spool_dir
        self.urls: dict[str, str] = {}
        self.headers: dict[str, dict[str, str]] = {}
        self.timeouts: dict[str, float] = {}
        self.gzip: dict[str, bool] = {}
        for signal in SIGNALS:
            own = env.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
            if endpoint is not None:
                url = endpoint.rstrip("/") + f"/v1/{signal}"
            elif own:
                url = own
            else:
                url = (env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or DEFAULT_ENDPOINT).rstrip(
                    "/"
                ) + f"/v1/{signal}"
            self.urls[signal] = url
            found = parse_headers(_env(env, signal, "HEADERS") or "")
            self.headers[signal] = {**found, **(headers or {})}
            millis = _env(env, signal, "TIMEOUT")
            self.timeouts[signal] = (
                timeout
                if timeout is not None
                else (float(millis) / 1000 if millis and millis.isdigit() else 10.0)
            )
            chosen = compression if compression is not None else (_env(env, signal, "COMPRESSION") or "gzip")
            self.gzip[signal] = chosen.strip().lower() == "gzip"
        self.max_attempts = max_attempts
        self.sleep = sleep
        self.partial_rejected = 0  # items the backend's partial_success refused
        self.last_partial_message = ""
        self.replayed = 0
        self._client: Any = None
        self._pid = os.getpid()

    def open(self, deadline: Deadline | None = None) -> None:
        import httpx  # the `otlp` extra; imported in the writer thread, off the host's path

        self._client = httpx.Client(headers={"User-Agent": "clisight-otlp-exporter"})
        self._replay(deadline)

    def replay(self, deadline: Deadline | None = None) -> None:
        """Send what the spool holds (the pipeline calls this when a write succeeds again after
        batches were spooled while the backend was down); what still fails stays spooled."""
        self._replay(deadline)

    def _replay(self, deadline: Deadline | None) -> None:
        if self.spool_dir is None or not self.spool_dir.is_dir():
            return
        from clisight.pipeline.spool import import_spool

        def send(records: Sequence[Record], key: str) -> bool:
            try:
                self._send_batch(records, deadline)
            except SinkRejected:
                return False  # refused for good: not sent again
            return True

        # Still down: the files go back for the next process.
        with contextlib.suppress(OSError):
            self.replayed += import_spool(self.spool_dir, send, deadline).records

    def write(self, batch: Sequence[Record], deadline: Deadline | None = None, key: str = "") -> None:
        if self._client is None:
            self.open(deadline)
        self._send_batch(batch, deadline)

    def _send_batch(self, batch: Sequence[Record], deadline: Deadline | None) -> None:
        rejected, reasons = 0, []
        for signal, (body, count) in encode(batch).items():
            refused = self._send(signal, body, count, deadline or Deadline())
            if refused:
                rejected += refused
                reasons.append(self.last_partial_message)
        if rejected:
            raise SinkRejected(rejected, "; ".join(reasons))

    def _send(self, signal: str, body: bytes, count: int, deadline: Deadline) -> int:
        """POST one request with the retry rules; the items refused for good (0 when all taken).
        Raises ``ConnectionError`` (an OSError: the pipeline's "destination down") when the
        backend stays unreachable or busy until the attempts or the deadline run out."""
        import gzip

        import httpx

        url = self.urls[signal]
        headers = {"Content-Type": "application/x-protobuf", **self.headers[signal]}
        if self.gzip[signal]:
            body = gzip.compress(body, compresslevel=6)
            headers["Content-Encoding"] = "gzip"
        problem = ""
        for attempt in range(self.max_attempts):
            timeout = min(self.timeouts[signal], max(deadline.remaining(), 0.001))
            wait: float | None = None
            try:
                response = self._client.post(url, content=body, headers=headers, timeout=timeout)
            except httpx.HTTPError as exc:  # connection refused, reset, timed out
                problem = f"{type(exc).__name__}: {exc}"
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return self._partial(signal, response.content)
                if status not in RETRYABLE:
                    self.last_partial_message = f"{url} answered {status}: {response.text[:200]}"
                    raise SinkRejected(count, self.last_partial_message)
                problem = f"{url} answered {status}"
                wait = retry_after(response.headers.get("retry-after"))
            if attempt + 1 == self.max_attempts:
                break
            delay = wait if wait is not None else backoff(attempt)
            if delay >= deadline.remaining():
                break
            self.sleep(delay)
        raise ConnectionError(f"{problem} (gave up after {attempt + 1} attempts)")

    def _partial(self, signal: str, content: bytes) -> int:
        """The items a 200's ``partial_success`` says were rejected (0 for an empty response)."""
        if not content:
            return 0
        from google.protobuf.message import DecodeError
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

        response_type: Any
        response_type, counter = {
            "traces": (ExportTraceServiceResponse, "rejected_spans"),
            "logs": (ExportLogsServiceResponse, "rejected_log_records"),
            "metrics": (ExportMetricsServiceResponse, "rejected_data_points"),
        }[signal]
        try:
            partial = response_type.FromString(content).partial_success
        except DecodeError:
            return 0  # a 200 is a success; an unreadable body cannot take that back
        rejected = int(getattr(partial, counter))
        if rejected or partial.error_message:
            self.partial_rejected += rejected
            self.last_partial_message = f"{self.urls[signal]}: partial success: {partial.error_message}"
        return rejected

    def flush(self, deadline: Deadline | None = None) -> None:
        """Nothing buffered here: every batch is sent before ``write`` returns."""

    def close(self, deadline: Deadline | None = None) -> None:
        if self._client is not None and os.getpid() == self._pid:
            self._client.close()
        self._client = None

    def after_fork(self) -> None:
        self._client = None  # the parent's connections are not ours to use or close
        self._pid = os.getpid()
