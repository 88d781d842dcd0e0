"""Records to JSON objects and back: the one mapping every JSON-speaking sink and reader uses.

The object keeps the seed's ``LogEntry`` fields so tooling written against clisight's first JSON
files keeps working, and adds the fields a :class:`~clisight.types.Record` needs to come back whole:

- always present: ``timestamp`` (ISO 8601 UTC, microseconds), ``level`` (severity name for logs,
  else null), ``component`` (``record.name``), ``message`` (``record.body``), ``context`` (the
  attributes minus ``user_id`` and ``performance_data``), ``session_id``, ``user_id``,
  ``performance_data`` (a dict or null), ``kind``, ``time_ns``, ``severity``, ``service``,
  ``service_version``, ``host``, ``pid``, ``sdk``;
- present only when set: ``trace_id``, ``span_id``, ``parent_span_id``, ``end_ns``, ``value``.

``dict_to_record(record_to_dict(r)) == r`` for every record.  Through JSON the round trip is exact
for JSON-native attribute values (tuples come back as lists, NaN as null).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson

from clisight._values import safe_value
from clisight.types import LOG, SEVERITY_NUMBERS, Record, Resource, SpanRow, as_record, severity_name

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_OPTIONS: Final = orjson.OPT_NON_STR_KEYS
_OPTIONAL_KEYS: Final = ("trace_id", "span_id", "parent_span_id", "end_ns", "value")


# The text of the last whole second formatted: records come in bursts within one second, and the
# datetime arithmetic costs more than the rest of the serialisation.
# One (seconds, text) tuple, replaced whole, so concurrent writer threads never see a torn pair.
_last_second: list[tuple[int | None, str]] = [(None, "")]


def _timestamp(time_ns: int) -> str | None:
    try:
        seconds, rest = divmod(time_ns, 1_000_000_000)
        cached = _last_second[0]
        if cached[0] != seconds:
            # Integer arithmetic on a timedelta keeps the value exact (a float timestamp would not).
            text = (_EPOCH + timedelta(seconds=seconds)).isoformat(timespec="seconds")
            cached = (seconds, text.removesuffix("+00:00"))
            _last_second[0] = cached
        return f"{cached[1]}.{rest // 1000:06d}+00:00"
    except (OverflowError, TypeError, ValueError):
        return None


def record_to_dict(record: Record | SpanRow) -> dict[str, Any]:
    """The JSON-ready object for ``record`` (see the module docstring for its keys); a
    :class:`SpanRow` is written as its record."""
    record = as_record(record)
    attributes = record.attributes
    context = dict(attributes)
    # A None user_id or a non-dict performance_data stays in context, so the round trip is lossless
    # while the top-level fields keep the types the seed's readers expect.
    user_id = context.pop("user_id", None) if attributes.get("user_id") is not None else None
    performance_data = (
        context.pop("performance_data") if isinstance(attributes.get("performance_data"), dict) else None
    )
    resource = record.resource
    d: dict[str, Any] = {
        "timestamp": _timestamp(record.time_ns),
        "level": severity_name(record.severity) if record.kind == LOG else None,
        "component": record.name,
        "message": record.body,
        "context": context,
        "session_id": record.session_id,
        "user_id": user_id,
        "performance_data": performance_data,
        "kind": record.kind,
        "time_ns": record.time_ns,
        "severity": record.severity,
        "service": resource.service,
        "service_version": resource.version,
        "host": resource.host,
        "pid": resource.pid,
        "sdk": resource.sdk,
    }
    for key in _OPTIONAL_KEYS:
        value = getattr(record, key)
        if value is not None:
            d[key] = value
    return d


def record_to_json(record: Record | SpanRow) -> bytes:
    """One JSON object, UTF-8, without a trailing newline.  Never raises for odd attribute values.

    Values JSON has no type for are written as ``str(value)``; what orjson still refuses (integers
    past 64 bits, lone surrogates, unhashable-as-text keys, cycles, unprintable objects) is cleaned
    on a slower second pass instead of failing the batch.
    """
    d = record_to_dict(record)
    try:
        return orjson.dumps(d, default=str, option=_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return orjson.dumps(safe_value(d), option=_OPTIONS)


@functools.lru_cache(maxsize=256)
def _resource(service: str, version: str, host: str, pid: int, sdk: str) -> Resource:
    # Records read back from one file share a handful of resources; share them by reference too.
    return Resource(service=service, version=version, host=host, pid=pid, sdk=sdk)


def _time_ns_from(d: Mapping[str, Any]) -> int:
    time_ns = d.get("time_ns")
    if time_ns is not None:
        return int(time_ns)
    stamp = d.get("timestamp")
    if not stamp:
        return 0
    # Seed lines carry only the ISO timestamp; naive ones were written in UTC.
    parsed = datetime.fromisoformat(stamp)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    delta = parsed - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def _get(d: Mapping[str, Any], key: str, default: Any) -> Any:
    value = d.get(key)
    return default if value is None else value


def dict_to_record(d: Mapping[str, Any]) -> Record:
    """The :class:`Record` a :func:`record_to_dict` object (or a parsed JSON line) describes.

    Also reads the seed's ``LogEntry`` lines, which lack ``kind``, ``time_ns`` and ``severity``:
    they come back as logs timed by ``timestamp`` with the severity of ``level``.
    """
    attributes = dict(d.get("context") or {})
    user_id = d.get("user_id")
    if user_id is not None:
        attributes["user_id"] = user_id
    performance_data = d.get("performance_data")
    if performance_data is not None:
        attributes["performance_data"] = performance_data
    severity = d.get("severity")
    if severity is None:
        severity = SEVERITY_NUMBERS.get(str(d.get("level") or "").upper(), 0)
    value = d.get("value")
    end_ns = d.get("end_ns")
    return Record(
        kind=_get(d, "kind", LOG),
        time_ns=_time_ns_from(d),
        name=_get(d, "component", ""),
        body=_get(d, "message", ""),
        severity=int(severity),
        attributes=attributes,
        resource=_resource(
            _get(d, "service", ""),
            _get(d, "service_version", ""),
            _get(d, "host", ""),
            int(_get(d, "pid", 0)),
            _get(d, "sdk", "clisight"),
        ),
        session_id=d.get("session_id"),
        trace_id=d.get("trace_id"),
        span_id=d.get("span_id"),
        parent_span_id=d.get("parent_span_id"),
        end_ns=None if end_ns is None else int(end_ns),
        value=None if value is None else float(value),
    )
