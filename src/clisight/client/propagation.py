"""W3C Trace Context: one trace across processes and HTTP calls.

- A process started with ``TRACEPARENT`` in its environment continues that trace: ``init`` reads
  it, and the run's top-level spans become children of the span that started the process.
- :func:`child_env` gives a child process the current span as its ``TRACEPARENT``:
  ``subprocess.run(cmd, env=clisight.child_env())``.
- :func:`trace_headers` gives the ``traceparent`` (and ``tracestate``) header of the current span,
  for any HTTP client; :func:`instrument_http` adds it to every httpx and requests call (opt-in).

The header format is W3C Trace Context level 1: ``00-<32 hex trace id>-<16 hex parent id>-<flags>``;
versions above 00 are read by their first four fields, as the specification asks; ``ff``, all-zero
ids, upper-case hex and wrong lengths are invalid and ignored.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, MutableMapping
from typing import Any, Final, NamedTuple

from clisight._safety import guard
from clisight.client import context as _ctx

_HEADER: Final = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_MEMBER: Final = re.compile(
    r"[a-z0-9][_0-9a-z\-*/@]{0,255}=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"
)
ENV_PARENT: Final = "TRACEPARENT"
ENV_STATE: Final = "TRACESTATE"


class TraceParent(NamedTuple):
    """A parsed ``traceparent``: the remote trace, the remote span (our parent) and its flags."""

    trace_id: str
    span_id: str
    flags: int = 1

    @property
    def sampled(self) -> bool:
        return bool(self.flags & 1)

    def header(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags:02x}"


def parse_traceparent(value: object) -> TraceParent | None:
    """The header's fields, or None when it is not a valid ``traceparent``."""
    if not isinstance(value, str):
        return None
    match = _HEADER.fullmatch(value.strip())
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest is not None):
        return None
    if trace_id == "0" * 32 or span_id == "0" * 16:
        return None
    return TraceParent(trace_id, span_id, int(flags, 16))


def valid_tracestate(value: object) -> str | None:
    """A ``tracestate`` kept as given when every list member is well formed (at most 32), else None."""
    if not isinstance(value, str) or not value.strip() or len(value) > 8192:
        return None
    members = [m.strip() for m in value.split(",") if m.strip()]
    if len(members) > 32 or not all(_MEMBER.fullmatch(m) for m in members):
        return None
    return ",".join(members)


def from_env(env: Mapping[str, str] | None = None) -> tuple[TraceParent, str | None] | None:
    """The trace this process was started in (``TRACEPARENT``/``TRACESTATE``), if any."""
    env = os.environ if env is None else env
    parent = parse_traceparent(env.get(ENV_PARENT))
    if parent is None:
        return None
    return parent, valid_tracestate(env.get(ENV_STATE))


# The tracestate this process received, passed on unchanged to its children (we add no member).
_received_state: list[str | None] = [None]


def continue_from_env(env: Mapping[str, str] | None = None) -> bool:
    """Make the process's default context continue the trace in ``TRACEPARENT`` (called by ``init``).

    True when the environment held a valid one.  Records outside any span then carry the remote
    trace and span ids; top-level spans are children of the remote span.
    """
    found = from_env(env)
    if found is None:
        return False
    parent, state = found
    _received_state[0] = state
    base = _ctx.process_default[0]
    _ctx.process_default[0] = base._replace(trace_id=parent.trace_id, span_id=parent.span_id)
    return True


def trace_headers() -> dict[str, str]:
    """``traceparent`` (and ``tracestate``) of the current span; empty outside any trace."""
    with guard():
        return _trace_headers()
    return {}


def _trace_headers() -> dict[str, str]:
    ctx = _ctx.get()
    if not ctx.trace_id or not ctx.span_id:
        return {}
    parent = TraceParent(ctx.trace_id, ctx.span_id)
    if parse_traceparent(parent.header()) is None:  # ids that are not W3C ids: nothing to send
        return {}
    headers = {"traceparent": parent.header()}
    if _received_state[0]:
        headers["tracestate"] = _received_state[0]
    return headers


def child_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of ``env`` (default ``os.environ``) in which a child process continues this trace.

    Outside any trace the copy has no ``TRACEPARENT``, so the child starts its own trace instead of
    joining a stale one inherited from further up.
    """
    with guard():
        return _child_env(env)
    return dict(os.environ)


def _child_env(env: Mapping[str, str] | None) -> dict[str, str]:
    out = dict(os.environ if env is None else env)
    headers = trace_headers()
    out.pop(ENV_PARENT, None)
    out.pop(ENV_STATE, None)
    if headers:
        out[ENV_PARENT] = headers["traceparent"]
        if "tracestate" in headers:
            out[ENV_STATE] = headers["tracestate"]
    return out


def _add_headers(headers: MutableMapping[str, str]) -> None:
    for key, value in trace_headers().items():
        if key not in headers:  # the caller's own header wins
            headers[key] = value


_instrumented: set[str] = set()


def instrument_http() -> list[str]:
    """Add the current span's ``traceparent`` to every httpx (sync and async) and requests call.

    Opt-in and idempotent; returns the libraries it instrumented (those importable).  A header the
    caller set is never replaced.
    """
    done: list[str] = []
    with guard():
        _instrument(done)
    return done


def _instrument(done: list[str]) -> None:
    try:
        import httpx
    except ImportError:
        pass
    else:
        if "httpx" not in _instrumented:
            _patch_httpx(httpx)
        done.append("httpx")
    try:
        import requests
    except ImportError:
        pass
    else:
        if "requests" not in _instrumented:
            _patch_requests(requests)
        done.append("requests")


def _patch_httpx(httpx: Any) -> None:
    sync_send, async_send = httpx.Client.send, httpx.AsyncClient.send

    def send(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        _inject_into(request.headers)
        return sync_send(self, request, *args, **kwargs)

    async def asend(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        _inject_into(request.headers)
        return await async_send(self, request, *args, **kwargs)

    httpx.Client.send, httpx.AsyncClient.send = send, asend
    _instrumented.add("httpx")


def _patch_requests(requests: Any) -> None:
    original = requests.Session.send

    def send(self: Any, request: Any, **kwargs: Any) -> Any:
        _inject_into(request.headers)
        return original(self, request, **kwargs)

    requests.Session.send = send
    _instrumented.add("requests")


def _inject_into(headers: MutableMapping[str, str]) -> None:
    with guard():
        _add_headers(headers)
