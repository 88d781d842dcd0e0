"""OTLP/HTTP request bodies to records: decoding (protobuf, JSON, gzip) and mapping.

Decoding refuses what is not an OTLP export request with :class:`BadRequest` (HTTP 400, with the
reason) or :class:`TooLarge` (413); it never lets another exception out.  Mapping turns one
request into records in clisight's model (:class:`clisight.types.Record`) and counts what it
rejects (a span without valid ids, say) for the response's ``partial_success``:

========================  =======================================================================
OTLP                      record
========================  =======================================================================
span                      ``span``: ids as lower-case hex, status error -> severity ERROR,
                          ``span.kind``, ``status.message``, ``span.events``, ``otel.links``
log record                ``log`` (component = instrumentation scope name), or ``event`` when
                          it has an ``event_name``, or no severity and a dotted name as its body
                          (``claude_code.api_request``: how Claude Code sends its events); an
                          ``llm.request`` event for Claude Code's ``claude_code.api_request``
                          and an LLM ``error`` for its ``claude_code.api_error`` (see
                          ``clisight.server._claude_code``); an
                          ``error`` when it carries ``exception.type`` and is an ``exception``
                          event; such a line of severity ERROR or above is kept as a ``log``
                          and also an ``error`` (from clisight, whose exporter sends the error
                          apart, only the ``log``); a ``session`` update for the
                          ``clisight.session`` event (what clisight's own exporter sends)
metric data point         ``metric``, one per point: ``type`` (counter, updowncounter, gauge,
                          histogram, exponential_histogram, summary), ``unit``, ``temporality``;
                          a cumulative sum's value is the delta since the previous point of
                          its series (resets detected; the previous point kept across restarts
                          of serve by :mod:`clisight.server.cumulative`), the reported total in
                          ``otel.cumulative_value``; a histogram's value is its sum (of a
                          cumulative one, the sum's delta, likewise), its buckets as sent in
                          ``histogram``; a summary's value is its sum's delta, likewise
resource                  ``service.name``, ``service.version``, ``host.name``, ``process.pid``,
                          ``telemetry.sdk.name`` -> the record's resource; other resource
                          attributes in ``otel.resource``
instrumentation scope     ``otel.scope.name``, ``otel.scope.version``
========================  =======================================================================

Every attribute and text goes through the redactor before the record exists, as the client's
own records do.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue

from clisight.pipeline.redact import Redactor, as_text
from clisight.server import _claude_code
from clisight.types import (
    ERROR,
    ERROR_LEVEL,
    EVENT,
    INFO,
    LOG,
    METRIC,
    SESSION,
    SEVERITY_NUMBERS,
    SPAN,
    Record,
    Resource,
    span_columns,
)

PROTOBUF: Final = "application/x-protobuf"
JSON: Final = "application/json"

# signal -> (request type, response type, the partial_success counter's name)
SIGNALS: Final[dict[str, tuple[type[Message], type[Message], str]]] = {
    "traces": (ExportTraceServiceRequest, ExportTraceServiceResponse, "rejected_spans"),
    "logs": (ExportLogsServiceRequest, ExportLogsServiceResponse, "rejected_log_records"),
    "metrics": (ExportMetricsServiceRequest, ExportMetricsServiceResponse, "rejected_data_points"),
}

# OTLP/JSON writes these ids as hex where proto3's JSON mapping expects base64.
_ID_KEYS: Final = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})
_SPAN_KINDS: Final = ("unspecified", "internal", "server", "client", "producer", "consumer")
# A log body that names an event: dotted lower-case words (``claude_code.user_prompt``).
_EVENT_BODY: Final = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)+")
_RESOURCE_KEYS: Final = ("service.name", "service.version", "host.name", "process.pid", "telemetry.sdk.name")


class BadRequest(Exception):
    """The body is not a valid OTLP export request (HTTP 400); ``str(exc)`` is the reason."""

    status = 400


class TooLarge(BadRequest):
    """The body, after decompression, is over the limit (HTTP 413)."""

    status = 413


def gunzip(body: bytes, limit: int) -> bytes:
    """Decompress a gzip body (several members allowed), refusing more than ``limit`` bytes of output
    without ever holding more than that in memory (a gzip bomb costs ``limit``, not its ratio)."""
    out: list[bytes] = []
    size = 0
    data = body
    try:
        while True:
            inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            chunk = inflater.decompress(data, limit - size + 1)
            size += len(chunk)
            if size > limit or inflater.unconsumed_tail:
                raise TooLarge(f"the decompressed body is over the limit of {limit} bytes")
            out.append(chunk)
            if not inflater.eof:
                raise BadRequest("truncated gzip body")
            data = inflater.unused_data
            if not data.strip(b"\0"):  # trailing zero padding is allowed after the last member
                return b"".join(out)
    except zlib.error as exc:
        raise BadRequest(f"the body is not valid gzip: {exc}") from None


def decode(signal: str, content_type: str, body: bytes) -> Message:
    """Parse one export request of ``signal`` (``traces``, ``logs`` or ``metrics``)."""
    request_type = SIGNALS[signal][0]
    message = request_type()
    if content_type == PROTOBUF:
        try:
            message.ParseFromString(body)
        except (DecodeError, RecursionError, ValueError) as exc:
            raise BadRequest(f"malformed protobuf {request_type.__name__}: {exc}") from None
        return message
    try:
        document = orjson.loads(body) if body.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"malformed JSON: {exc}") from None
    if not isinstance(document, dict):
        raise BadRequest(
            f"the JSON body must be an object ({request_type.__name__}), not {type(document).__name__}"
        )
    try:
        json_format.ParseDict(_ids_to_base64(document), message, ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError, ValueError, TypeError) as exc:
        raise BadRequest(f"invalid OTLP/JSON {request_type.__name__}: {exc}") from None
    return message


def _ids_to_base64(value: Any, depth: int = 0) -> Any:
    if depth > 200:
        raise BadRequest("the JSON body is nested too deeply")
    if isinstance(value, dict):
        converted = {}
        for key, item in value.items():
            if key in _ID_KEYS and isinstance(item, str):
                try:
                    item = base64.b64encode(bytes.fromhex(item)).decode()
                except ValueError:
                    raise BadRequest(f"{key} must be a hex string, not {item[:40]!r}") from None
            else:
                item = _ids_to_base64(item, depth + 1)
            converted[key] = item
        return converted
    if isinstance(value, list):
        return [_ids_to_base64(item, depth + 1) for item in value]
    return value


def encode_response(signal: str, content_type: str, rejected: int, message: str) -> bytes:
    """The ``Export*ServiceResponse``: empty, or with ``partial_success`` when records were rejected."""
    _, response_type, counter = SIGNALS[signal]
    response = response_type()
    if rejected:
        partial = response.partial_success  # type: ignore[attr-defined]
        setattr(partial, counter, rejected)
        partial.error_message = message
    if content_type == PROTOBUF:
        return response.SerializeToString()
    return json_format.MessageToJson(response, indent=None).encode()


# ---------------------------------------------------------------------------------------- values


def any_value(value: AnyValue) -> Any:
    """An OTLP ``AnyValue`` as plain Python: str, bool, int, float, list, dict; bytes as base64."""
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which == "int_value":
        return value.int_value
    if which == "double_value":
        return value.double_value
    if which == "bool_value":
        return value.bool_value
    if which == "array_value":
        return [any_value(item) for item in value.array_value.values]
    if which == "kvlist_value":
        return attributes(value.kvlist_value.values)
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return None


_SCALAR_FIELDS: Final = frozenset({"string_value", "int_value", "double_value", "bool_value"})


def attributes(pairs: Iterable[KeyValue], out: dict[str, Any] | None = None) -> dict[str, Any]:
    """The pairs as a dict, added to ``out`` when given (a later key replaces an earlier one's
    value where that one stood, as in ``{**out, **pairs}``)."""
    if out is None:
        out = {}
    for kv in pairs:
        value = kv.value
        # Scalars (nearly every attribute) by name; arrays, maps, bytes and unset values converted.
        # WhichOneof plus getattr costs three quarters of one ListFields call (protobuf 7, upb:
        # 8.3 against 11.3 us for 10 attributes), which builds a list and a tuple per value.
        which = value.WhichOneof("value")
        out[kv.key] = getattr(value, which) if which in _SCALAR_FIELDS else any_value(value)
    return out


_NO_TRACE: Final = bytes(16)
_NO_SPAN: Final = bytes(8)


def _hex(raw: bytes, size: int) -> str | None:
    """An id as hex when it has the right size and is not all zeros (an invalid id per the spec)."""
    return raw.hex() if len(raw) == size and raw != bytes(size) else None


@dataclass
class Mapped:
    """The records of one request, and what was rejected (with the first reason)."""

    records: list[Record] = field(default_factory=list)
    # Spans as the fields of clisight.types.SpanRow (Mapper.map with rows=True)
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    rejected: int = 0
    reason: str = ""

    def reject(self, reason: str) -> None:
        self.rejected += 1
        if not self.reason:
            self.reason = reason


class Mapper:
    """Maps decoded requests to records; one per server, as it remembers cumulative series."""

    def __init__(self, redactor: Redactor, max_series: int = 100_000) -> None:
        self.redactor = redactor
        self._resources: dict[tuple[Any, ...], Resource] = {}
        # cumulative series (by series_key) -> (start time, last total); least recently seen dropped
        # beyond max_series.  Kept across restarts by clisight.server.cumulative, in buckets (a
        # key's first two hex digits): the buckets changed since the last snapshot are noted.
        self._cumulative: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self._cumulative_lock = threading.Lock()  # the saver thread snapshots what requests change
        self._changed: set[str] = set()
        self.max_series = max_series

    def map(self, signal: str, request: Message, rows: bool = False) -> Mapped:
        """The records of ``request``; with ``rows``, its spans as rows (``Mapped.rows``)."""
        out = Mapped()
        if signal == "traces":
            if rows:
                self._span_rows(request, out)  # type: ignore[arg-type]
            else:
                self._traces(request, out)  # type: ignore[arg-type]
        elif signal == "logs":
            self._logs(request, out)  # type: ignore[arg-type]
        else:
            self._metrics(request, out)  # type: ignore[arg-type]
        return out

    # -- shared parts

    def _resource(self, pairs: Iterable[KeyValue]) -> tuple[Resource, dict[str, Any]]:
        attrs = attributes(pairs)
        rest = {k: v for k, v in attrs.items() if k not in _RESOURCE_KEYS}
        pid = attrs.get("process.pid")
        key = tuple(as_text(attrs.get(k, "")) for k in _RESOURCE_KEYS)
        resource = self._resources.get(key)
        if resource is None:
            if len(self._resources) > 10_000:
                self._resources.clear()
            resource = Resource(
                service=as_text(attrs.get("service.name") or "unknown_service"),
                version=as_text(attrs.get("service.version") or ""),
                host=as_text(attrs.get("host.name") or ""),
                pid=pid if type(pid) is int and 0 <= pid < 2**31 else 0,
                sdk=as_text(attrs.get("telemetry.sdk.name") or "otlp"),
            )
            self._resources[key] = resource
        return resource, rest

    @staticmethod
    def _context(resource_rest: dict[str, Any], scope: InstrumentationScope) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if scope.name:
            extra["otel.scope.name"] = scope.name
        if scope.version:
            extra["otel.scope.version"] = scope.version
        if resource_rest:
            extra["otel.resource"] = resource_rest
        return extra

    def _attrs(self, own: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
        return self.redactor.attributes({**extra, **own} if extra else own)

    @staticmethod
    def _session(attrs: dict[str, Any]) -> str | None:
        sid = attrs.get("session.id")
        return sid if isinstance(sid, str) and sid else None

    # -- signals

    def _traces(self, request: ExportTraceServiceRequest, out: Mapped) -> None:
        append = out.records.append
        for fields in self._spans(request, out):
            append(Record(SPAN, *fields))

    def _span_rows(self, request: ExportTraceServiceRequest, out: Mapped) -> None:
        """The spans of ``request`` as rows of the ``spans`` table (:class:`clisight.types.SpanRow`
        fields, as plain tuples: they pickle several times faster than records): the row
        ``clisight.store._model.map_batch`` makes of each span's record, its attributes and events
        as the JSON text the SQLite store would write.  A span whose attributes orjson refuses goes
        as a record instead.  Pinned to :meth:`_traces` by tests/server/test_span_rows.py."""
        append = out.rows.append
        dumps = orjson.dumps
        options = orjson.OPT_NON_STR_KEYS
        for fields in self._spans(request, out):
            span_kind, rest, events, user = span_columns(fields[4])
            try:
                text = None if rest is None else dumps(rest, option=options).decode()
                events_text = None if events is None else dumps(events, option=options).decode()
            except (TypeError, ValueError):
                out.records.append(Record(SPAN, *fields))
                continue
            start, name, _, severity, _, resource, session, trace_id, span_id, parent, end = fields
            append(
                (
                    trace_id,
                    span_id,
                    parent,
                    name,
                    span_kind,
                    start,
                    end,
                    severity,
                    text,
                    events_text,
                    user,
                    session,
                    resource,
                )
            )

    def _spans(self, request: ExportTraceServiceRequest, out: Mapped) -> Iterator[tuple[Any, ...]]:
        """Every valid span of ``request`` as the fields of its record after ``kind`` (invalid
        ones rejected in ``out``), scrubbed."""
        # The receiver's hot path (a busy collector sends spans by the thousand): locals bound once,
        # ids checked against zero bytes, the common span (no events, links, status message or
        # trace state) without a branch taken.
        redact_attrs = self.redactor.attributes
        redact_message = self.redactor.message
        kinds = _SPAN_KINDS
        for resource_spans in request.resource_spans:
            resource, rest = self._resource(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                extra = self._context(rest, scope_spans.scope)
                for span in scope_spans.spans:
                    raw_trace, raw_span = span.trace_id, span.span_id
                    if (
                        len(raw_trace) != 16
                        or len(raw_span) != 8
                        or raw_trace == _NO_TRACE
                        or raw_span == _NO_SPAN
                    ):
                        out.reject("a span needs a 16-byte trace_id and an 8-byte span_id, not all zeros")
                        continue
                    raw_parent = span.parent_span_id
                    parent = _hex(raw_parent, 8) if raw_parent else None
                    start, end = span.start_time_unix_nano, span.end_time_unix_nano
                    if not start or end < start:
                        out.reject("a span needs a start time and an end time not before it")
                        continue
                    own = attributes(span.attributes, {**extra} if extra else None)
                    kind = span.kind
                    if kind:
                        own["span.kind"] = kinds[kind] if kind < len(kinds) else kind
                    status = span.status
                    if status.message:
                        own["status.message"] = status.message
                    if span.trace_state:
                        own["otel.trace_state"] = span.trace_state
                    if span.events:
                        own["span.events"] = [
                            {
                                "name": e.name,
                                "time_ns": e.time_unix_nano,
                                "attributes": attributes(e.attributes),
                            }
                            for e in span.events
                        ]
                    if span.links:
                        own["otel.links"] = [
                            {
                                "trace_id": link.trace_id.hex(),
                                "span_id": link.span_id.hex(),
                                "attributes": attributes(link.attributes),
                            }
                            for link in span.links
                        ]
                    own["duration"] = (end - start) / 1e9
                    attrs = redact_attrs(own)
                    sid = attrs.get("session.id")
                    yield (
                        start,
                        redact_message(span.name),
                        "",
                        ERROR_LEVEL if status.code == 2 else 0,
                        attrs,
                        resource,
                        sid if isinstance(sid, str) and sid else None,
                        raw_trace.hex(),
                        raw_span.hex(),
                        parent,
                        end,
                    )

    def _logs(self, request: ExportLogsServiceRequest, out: Mapped) -> None:
        for resource_logs in request.resource_logs:
            resource, rest = self._resource(resource_logs.resource.attributes)
            for scope_logs in resource_logs.scope_logs:
                extra = self._context(rest, scope_logs.scope)
                component = scope_logs.scope.name or "otlp"
                for log in scope_logs.log_records:
                    time_ns = log.time_unix_nano or log.observed_time_unix_nano or time.time_ns()
                    body = any_value(log.body)
                    attrs = self._attrs(attributes(log.attributes), extra)
                    trace_id = _hex(log.trace_id, 16)
                    span_id = _hex(log.span_id, 8) if trace_id else None
                    severity = log.severity_number or SEVERITY_NUMBERS.get(log.severity_text.upper(), 0)
                    event = log.event_name or (
                        body if not severity and isinstance(body, str) and _EVENT_BODY.fullmatch(body) else ""
                    )
                    if not event and component == _claude_code.SCOPE:
                        event = _claude_code.event_name(attrs, component)
                    session = self._session(attrs)
                    if "exception.type" in attrs and (event == "exception" or severity >= ERROR_LEVEL):
                        # A logged exception is a log line and an error, as clisight's client
                        # stores it; clisight's exporter sends that error apart, as an exception event.
                        if event == "exception" or resource.sdk != "clisight":
                            out.records.append(
                                self._exception(
                                    time_ns, body, severity, attrs, resource, session, trace_id, span_id
                                )
                            )
                        if event == "exception":
                            continue
                    if event == "clisight.session" and session:
                        end = attrs.pop("session.end_ns", None)
                        attrs.pop("session.id", None)
                        out.records.append(
                            Record(
                                SESSION,
                                time_ns,
                                resource.service,
                                "",
                                0,
                                attrs,
                                resource,
                                session,
                                end_ns=end if type(end) is int and end >= time_ns else None,
                            )
                        )
                        continue
                    if event and body is not None and body != event:
                        attrs = {**attrs, "body": self.redactor.attributes({"body": body})["body"]}
                    if event in _claude_code.EVENTS:
                        # Claude Code's API calls and API errors: LLM usage and LLM errors, as
                        # clisight's own (server/_claude_code.py); one record each, as before.
                        args = (time_ns, attrs, resource, session, trace_id, span_id)
                        if event == _claude_code.API_REQUEST:
                            out.records.append(_claude_code.usage_event(*args))
                        else:
                            out.records.append(_claude_code.error_record(*args))
                        continue
                    if event:
                        out.records.append(
                            Record(EVENT, time_ns, event, "", 0, attrs, resource, session, trace_id, span_id)
                        )
                        continue
                    text = body if isinstance(body, str) else ("" if body is None else _json_text(body))
                    out.records.append(
                        Record(
                            LOG,
                            time_ns,
                            component,
                            self.redactor.message(text),
                            severity or INFO,
                            attrs,
                            resource,
                            session,
                            trace_id,
                            span_id,
                        )
                    )

    @staticmethod
    def _exception(
        time_ns: int,
        body: Any,
        severity: int,
        attrs: dict[str, Any],
        resource: Resource,
        session: str | None,
        trace_id: str | None,
        span_id: str | None,
    ) -> Record:
        """A log record about an exception (``exception.*`` attributes) as an error occurrence."""
        rest = {
            k: v
            for k, v in attrs.items()
            if k not in ("exception.type", "exception.message", "exception.stacktrace")
        }
        stack = attrs.get("exception.stacktrace")
        if isinstance(stack, str) and stack:
            rest["stack"] = stack
        message = attrs.get("exception.message")
        if not isinstance(message, str):
            message = body if isinstance(body, str) else ""
        return Record(
            ERROR,
            time_ns,
            as_text(attrs["exception.type"]) or "Exception",
            message,
            severity or ERROR_LEVEL,
            rest,
            resource,
            session,
            trace_id,
            span_id,
        )

    def _metrics(self, request: ExportMetricsServiceRequest, out: Mapped) -> None:
        for resource_metrics in request.resource_metrics:
            resource, rest = self._resource(resource_metrics.resource.attributes)
            for scope_metrics in resource_metrics.scope_metrics:
                extra = self._context(rest, scope_metrics.scope)
                for metric in scope_metrics.metrics:
                    self._metric(metric, resource, extra, out)

    def _metric(self, metric: Any, resource: Resource, extra: dict[str, Any], out: Mapped) -> None:
        which = metric.WhichOneof("data")
        if which is None:
            out.reject(f"metric {metric.name!r} has no data")
            return
        data = getattr(metric, which)
        temporality = {1: "delta", 2: "cumulative"}.get(getattr(data, "aggregation_temporality", 0), "")
        kind = which if which != "sum" else ("counter" if data.is_monotonic else "updowncounter")
        for point in data.data_points:
            own = attributes(point.attributes)
            own.update(type=kind, unit=metric.unit)
            if temporality:
                own["temporality"] = temporality
            if which in ("sum", "gauge"):
                number = point.WhichOneof("value")
                if number is None:
                    out.reject(f"a point of {metric.name!r} has no value")
                    continue
                value = float(getattr(point, number))
                if which == "sum" and temporality == "cumulative":
                    own["otel.cumulative_value"] = value
                    value = self._delta(resource, metric.name, own, point.start_time_unix_nano, value)
            elif which == "summary":  # its count and sum are totals since its start time
                own["otel.cumulative_value"] = point.sum
                value = self._delta(resource, metric.name, own, point.start_time_unix_nano, point.sum)
                own["summary"] = {
                    "count": point.count,
                    "sum": point.sum,
                    "quantiles": [[q.quantile, q.value] for q in point.quantile_values],
                }
            else:
                value = point.sum if point.HasField("sum") else math.nan
                if temporality == "cumulative" and not math.isnan(value):
                    # As for a cumulative sum: rollups add values, so each point adds what is new.
                    own["otel.cumulative_value"] = value
                    value = self._delta(resource, metric.name, own, point.start_time_unix_nano, value)
                histogram: dict[str, Any] = {"count": point.count}
                if point.HasField("sum"):
                    histogram["sum"] = point.sum
                if point.HasField("min"):
                    histogram["min"] = point.min
                if point.HasField("max"):
                    histogram["max"] = point.max
                if which == "histogram":
                    histogram["bounds"] = list(point.explicit_bounds)
                    histogram["counts"] = list(point.bucket_counts)
                else:
                    histogram.update(
                        scale=point.scale,
                        zero_count=point.zero_count,
                        positive={
                            "offset": point.positive.offset,
                            "counts": list(point.positive.bucket_counts),
                        },
                        negative={
                            "offset": point.negative.offset,
                            "counts": list(point.negative.bucket_counts),
                        },
                    )
                own["histogram"] = histogram
            time_ns = point.time_unix_nano
            if not time_ns:
                out.reject(f"a point of {metric.name!r} has no time")
                continue
            attrs = self._attrs(own, extra)
            out.records.append(
                Record(
                    METRIC,
                    time_ns,
                    self.redactor.message(metric.name),
                    "",
                    0,
                    attrs,
                    resource,
                    self._session(attrs),
                    value=value,
                )
            )

    def _delta(
        self, resource: Resource, name: str, attrs: dict[str, Any], start_ns: int, total: float
    ) -> float:
        """The increase of a cumulative series since its previous point: the total itself for the
        first point and after a reset (a new start time, or a total lower than the last).  The
        previous point may be one a ``clisight serve`` before a restart saw (``restore_cumulative``)."""
        key = series_key(resource, name, attrs)
        with self._cumulative_lock:
            seen = self._cumulative.pop(key, None)
            self._cumulative[key] = (start_ns, total)
            self._changed.add(key[:2])
            if len(self._cumulative) > self.max_series:
                dropped, _ = self._cumulative.popitem(last=False)
                self._changed.add(dropped[:2])
        if seen is None:
            return total
        last_start, last_total = seen
        if start_ns != last_start or total < last_total:
            return total
        return total - last_total

    def cumulative_changes(self) -> dict[str, dict[str, list[Any]]]:
        """The series of each bucket changed since the last call, as ``{bucket: {series key:
        [start time, last total]}}``; a bucket emptied (its series dropped) maps to ``{}``."""
        with self._cumulative_lock:
            buckets, self._changed = self._changed, set()
            if not buckets:
                return {}
            items = list(self._cumulative.items())
        out: dict[str, dict[str, list[Any]]] = {bucket: {} for bucket in buckets}
        for key, (start_ns, total) in items:
            found = out.get(key[:2])
            if found is not None:
                found[key] = [start_ns, total]
        return out

    def mark_changed(self, buckets: Iterable[str]) -> None:
        """Note ``buckets`` as changed again (their save failed: the next one retries them)."""
        with self._cumulative_lock:
            self._changed.update(buckets)

    def restore_cumulative(self, series: Mapping[str, Any]) -> int:
        """Take in saved series (``{series key: [start time, last total]}``, as
        :meth:`cumulative_changes` gave them) that this mapper has not seen yet, up to
        ``max_series``; entries that are not of that shape are skipped.  How many were taken."""
        taken = 0
        with self._cumulative_lock:
            for key, value in series.items():
                if len(self._cumulative) >= self.max_series:
                    break
                if not (isinstance(key, str) and _SERIES_KEY.fullmatch(key)) or key in self._cumulative:
                    continue
                if not (isinstance(value, list | tuple) and len(value) == 2):
                    continue
                start_ns, total = value
                if type(start_ns) is not int or not isinstance(total, int | float) or isinstance(total, bool):
                    continue
                if not math.isfinite(total):
                    continue
                self._cumulative[key] = (start_ns, float(total))
                taken += 1
        return taken


CUMULATIVE_BUCKETS: Final = tuple(f"{i:02x}" for i in range(256))
_SERIES_KEY: Final = re.compile(r"[0-9a-f]{32}")


def series_key(resource: Resource, name: str, attrs: dict[str, Any]) -> str:
    """A cumulative series' identity: a hash of its resource, name and attributes (the values as
    sent, before scrubbing, so two series a redactor makes look alike stay apart; only the hash
    is ever stored)."""
    parts = (
        resource.service,
        resource.version,
        resource.host,
        resource.pid,
        resource.sdk,
        name,
        _frozen(attrs),
    )
    try:
        text = orjson.dumps(parts)  # unambiguous, and several times cheaper than repr
    except orjson.JSONEncodeError:  # a lone surrogate in a key
        text = repr(parts).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(text, digest_size=16).hexdigest()


def _frozen(attrs: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(sorted((k, repr(v)) for k, v in attrs.items() if k != "otel.cumulative_value"))


def _json_text(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):
        return as_text(value)


# -- mapping in worker processes ----------------------------------------------------------------
# Decoding and mapping a request is pure CPU and, at a busy collector's rate, more than one core's
# worth of Python: ``clisight serve`` runs it for traces and logs in a pool of processes (their
# mapping holds no state across requests but a cache of resources), and metrics in the server
# process itself (cumulative sums are turned into deltas from what earlier requests reported).
POOLED_SIGNALS: Final = frozenset({"traces", "logs"})
_worker_mapper: list[Mapper] = []


def start_worker(redactor: Redactor) -> None:
    """A pool process's initializer: the mapper it maps with, scrubbing with ``redactor``.  Ctrl-C
    reaches the whole process group: the server, not its pool, decides when to stop."""
    import signal as signals

    signals.signal(signals.SIGINT, signals.SIG_IGN)
    _worker_mapper[:] = [Mapper(redactor)]


def map_in_worker(signal: str, content_type: str, body: bytes, rows: bool = False) -> Mapped:
    """Decode and map one request in a pool process: exactly what :class:`Mapper` does in the
    server (BadRequest travels back to the server as it is)."""
    return _worker_mapper[0].map(signal, decode(signal, content_type, body), rows)
