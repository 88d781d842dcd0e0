"""Claude Code's OTLP events as clisight's LLM usage and LLM errors.

Claude Code (``CLAUDE_CODE_ENABLE_TELEMETRY=1``) sends each API call as a log record whose body is
``claude_code.api_request`` and each failed one as ``claude_code.api_error``.  The receiver turns
them into what clisight's own LLM calls are, so every LLM reader (``clisight usage``, insights,
the dashboard's and ``top``'s cost) counts them:

- ``claude_code.api_request`` becomes **one** ``llm.request`` event (not a second record beside the
  original: the request is stored once), with the fields the transcript importer
  (``clisight usage import-claude-code``) writes, in its units: ``model``, ``input_tokens``,
  ``output_tokens``, ``cache_read_tokens``, ``cache_creation_tokens`` (whole tokens), ``cost_usd``
  (US dollars: Claude Code's own figure; without one, the price table's, as the importer prices),
  ``priced``, ``provider`` ``anthropic``, ``source`` ``claude-code``; and ``duration`` (seconds,
  as ``clisight.llm.record`` writes a call's latency) from ``duration_ms``.  Every attribute Claude
  Code sent is kept (``session.id``, ``prompt.id``, ``app.version``, ...), numbers sent as text
  stored as numbers, and ``otel.event_name`` says where the event came from.
- ``claude_code.api_error`` becomes one ``error`` occurrence, grouped as the client groups LLM API
  errors (``error.kind`` ``llm.rate_limit``/``overloaded``/``authentication``/``context_length``/
  ``timeout``/``connection`` and ``llm.model``, one group per kind and model) when its status code
  or message says which; otherwise by its message, as any error.

Values arrive as numbers or as text (Claude Code sends some numbers as strings); both are read.
A value that is no number at all never raises and never loses the record: a token count that
cannot be read leaves the record as the original ``claude_code.api_request`` event, with
``clisight.unmapped`` saying which value and why (counting it with 0 tokens would understate usage
silently); a ``cost_usd`` that cannot be read is priced by the table instead (the bad value kept
in ``cost_usd.invalid``); a ``duration_ms`` that cannot be read gives no ``duration``.
"""

from __future__ import annotations

import math
import os
import re
from typing import Any, Final

from clisight import _prices
from clisight.client.errors import CONTEXT_WORDS
from clisight.types import ERROR, ERROR_LEVEL, EVENT, Record, Resource

API_REQUEST: Final = "claude_code.api_request"
API_ERROR: Final = "claude_code.api_error"
EVENTS: Final = frozenset({API_REQUEST, API_ERROR})
LLM_EVENT: Final = "llm.request"  # what clisight.llm.record and the transcript importer write
SCOPE: Final = "com.anthropic.claude_code"
# Claude Code's token attributes -> clisight's (the same names, as it happens).
TOKEN_FIELDS: Final = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens")
UNMAPPED: Final = "clisight.unmapped"
MAX_TOKENS: Final = 2**53  # beyond exact floats: no real request, and rollups sum as floats
MAX_USD: Final = 1e9
_NUMBER: Final = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")


class Unreadable(ValueError):
    """A value that is not the number it should be (the message says which and why)."""


def number(value: object, name: str) -> float | None:
    """A finite number >= 0 from an int, a float or its text (``"1200"``, ``" 0.0087 "``, ``"1e3"``);
    None when absent (None or empty text); :class:`Unreadable` otherwise."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise Unreadable(f"{name} is a boolean, not a number: {value!r}")
    if isinstance(value, int):
        found = float(value) if abs(value) < 2**1023 else math.inf
    elif isinstance(value, float):
        found = value
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if len(text) > 64 or not _NUMBER.fullmatch(text):
            raise Unreadable(f"{name} is not a number: {value[:64]!r}")
        found = float(text)
    else:
        raise Unreadable(f"{name} is not a number: {type(value).__name__}")
    if not math.isfinite(found) or found < 0:
        raise Unreadable(f"{name} must be a finite number >= 0, not {value!r}")
    return found


def token_count(value: object, name: str) -> int:
    """A whole number of tokens (0 when absent); :class:`Unreadable` for anything else."""
    found = number(value, name)
    if found is None:
        return 0
    if found != int(found) or found > MAX_TOKENS:
        raise Unreadable(f"{name} is not a token count: {value!r}")
    return int(found)


_PRICES: dict[str | None, _prices.PriceTable] = {}


def prices() -> _prices.PriceTable:
    """The shipped price table with the ``llm_prices`` parameter over it, as ``clisight usage``
    prices (read once per process and value of ``CLISIGHT_LLM_PRICES``).  A broken override is
    not used: the shipped table prices instead (the server keeps receiving; ``clisight doctor``
    names the problem)."""
    key = os.environ.get("CLISIGHT_LLM_PRICES")
    table = _PRICES.get(key)
    if table is None:
        table = _prices.shipped()
        try:
            from clisight import _config

            config = _config.resolve(strict=False)
            if not any(p.parameter in ("llm_prices", "[tool.clisight]") for p in config.problems):
                table = _prices.table(config["llm_prices"])
        except (ValueError, OSError):
            pass
        _PRICES.clear()
        _PRICES[key] = table
    return table


def event_name(attrs: dict[str, Any], scope: str) -> str:
    """``claude_code.<event>`` for a record of Claude Code's scope that names its event only in
    ``event.name`` (``api_request``), else ''."""
    name = attrs.get("event.name")
    if scope == SCOPE and isinstance(name, str) and re.fullmatch(r"[a-z][a-z0-9_]*", name):
        return f"claude_code.{name}"
    return ""


def usage_event(
    time_ns: int,
    attrs: dict[str, Any],
    resource: Resource,
    session: str | None,
    trace_id: str | None,
    span_id: str | None,
) -> Record:
    """The ``llm.request`` event of one ``claude_code.api_request`` (``attrs`` already scrubbed), or
    the original event marked ``clisight.unmapped`` when a token count cannot be read."""
    out = dict(attrs)
    out["otel.event_name"] = API_REQUEST
    try:
        tokens = [token_count(attrs.get(name), name) for name in TOKEN_FIELDS]
    except Unreadable as problem:
        out[UNMAPPED] = f"not counted as LLM usage: {problem}"
        return Record(EVENT, time_ns, API_REQUEST, "", 0, out, resource, session, trace_id, span_id)
    model = attrs.get("model")
    model = model if isinstance(model, str) and model else "unknown"
    out["model"] = model
    for name, count in zip(TOKEN_FIELDS, tokens, strict=True):
        out[name] = count
    cost: float | None
    try:
        cost = number(attrs.get("cost_usd"), "cost_usd")
        if cost is not None and cost > MAX_USD:
            raise Unreadable(f"cost_usd is over {MAX_USD:g} dollars: {cost!r}")
    except Unreadable:
        out["cost_usd.invalid"] = attrs.get("cost_usd")
        cost = None
    if cost is None:
        out.pop("cost_usd", None)
        cost = prices().cost(model, *tokens)
    if cost is not None:
        out["cost_usd"] = cost
    out["priced"] = cost is not None
    out["provider"] = "anthropic"
    out["source"] = "claude-code"
    try:
        duration_ms = number(attrs.get("duration_ms"), "duration_ms")
    except Unreadable:
        duration_ms = None
    if duration_ms is not None:
        out["duration_ms"] = int(duration_ms) if duration_ms.is_integer() else duration_ms
        out["duration"] = duration_ms / 1000
    return Record(EVENT, time_ns, LLM_EVENT, "", 0, out, resource, session, trace_id, span_id)


def error_kind(status: int | None, message: str) -> str | None:
    """The kind of an LLM API error from its HTTP status and message, as the client names them
    (``clisight.client.errors.llm_error_kind``), or None."""
    text = message.lower()
    if status == 429 or "rate_limit" in text or "rate limit" in text:
        return "rate_limit"
    if status == 529 or "overloaded" in text:
        return "overloaded"
    if status in (400, 413) and any(word in text for word in CONTEXT_WORDS):
        return "context_length"
    if status in (401, 403) or "authentication_error" in text or "invalid api key" in text:
        return "authentication"
    if "timeout" in text or "timed out" in text:
        return "timeout"
    if "connection" in text or "econnreset" in text or "econnrefused" in text:
        return "connection"
    return None


def error_record(
    time_ns: int,
    attrs: dict[str, Any],
    resource: Resource,
    session: str | None,
    trace_id: str | None,
    span_id: str | None,
) -> Record:
    """The ``error`` occurrence of one ``claude_code.api_error`` (``attrs`` already scrubbed)."""
    out = dict(attrs)
    out["otel.event_name"] = API_ERROR
    message = attrs.get("error")
    message = message if isinstance(message, str) else ("" if message is None else str(message))
    try:
        code = number(attrs.get("status_code"), "status_code")
    except Unreadable:
        code = None
    status = int(code) if code is not None and code == int(code) and code < 1000 else None
    if status is not None:
        out["status_code"] = status
    model = attrs.get("model")
    model = model if isinstance(model, str) and model else "unknown"
    kind = error_kind(status, message)
    if kind is not None:
        from clisight.client.errors import llm_fingerprint  # the client's one grouping rule

        out["error.kind"] = f"llm.{kind}"
        out["llm.model"] = model
        out["fingerprint"] = llm_fingerprint(kind, model)
    return Record(
        ERROR,
        time_ns,
        API_ERROR,
        message or "API error",
        ERROR_LEVEL,
        out,
        resource,
        session,
        trace_id,
        span_id,
    )
