"""The ASGI application of ``clisight serve``: the OTLP/HTTP receiver behind a guard.

Responses follow the OTLP/HTTP specification:

- 200 with an empty ``Export*ServiceResponse`` (in the request's encoding), or with
  ``partial_success`` and the count of rejected items when some were invalid;
- 400 with a ``google.rpc.Status`` (code 3, INVALID_ARGUMENT) whose message says what was wrong:
  malformed protobuf or JSON, bad gzip, a bad id;
- 413 when the body is over the limit, counted after decompression (a gzip bomb stops there);
- 415 for a content type other than ``application/x-protobuf`` or ``application/json``, or a
  content encoding other than gzip;
- 429 with ``Retry-After`` when the write queue has no room for the request's records: a 200 is
  only answered once every record of the request is in the queue, never accepted and dropped;
- 401 without the bearer token when one is set, 403 for a ``Host`` header not on the allow-list
  (DNS rebinding: a web page cannot make a browser talk to this server under another name).
"""

from __future__ import annotations

import asyncio
import functools
import hmac
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from concurrent.futures import BrokenExecutor, Executor
from typing import Any, Final, Protocol, cast

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from clisight.pipeline.redact import Redactor
from clisight.pipeline.writer import SinkStats
from clisight.query import Query
from clisight.query.exposed import ExposedMetrics
from clisight.server.otlp import (
    JSON,
    POOLED_SIGNALS,
    PROTOBUF,
    SIGNALS,
    BadRequest,
    Mapped,
    Mapper,
    TooLarge,
    decode,
    encode_response,
    gunzip,
    map_in_worker,
)
from clisight.types import Record, SpanRow

DEFAULT_MAX_BODY: Final = 20 * 1024 * 1024
LOOPBACK_NAMES: Final = frozenset({"127.0.0.1", "localhost", "::1"})
RETRY_AFTER_S: Final = 1

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class RecordQueue(Protocol):
    """Where received records go: :class:`clisight.pipeline.Pipeline` in the server."""

    def offer(self, records: Sequence[Record]) -> bool: ...


class ReceiverStats:
    """Requests and items by signal and HTTP status, for ``/metrics`` and the health page."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, int]] = Counter()
        self.accepted: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()


def _status_body(content_type: str, code: int, message: str) -> bytes:
    """A ``google.rpc.Status``: protobuf fields 1 (code) and 2 (message), or its JSON form."""
    if content_type != PROTOBUF:
        import orjson

        return orjson.dumps({"code": code, "message": message})
    text = message.encode()
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


# HTTP status -> google.rpc.Code in the Status body: INVALID_ARGUMENT for what the client must fix,
# RESOURCE_EXHAUSTED for what it may retry or shrink.
_RPC_CODES: Final = {400: 3, 413: 8, 415: 3, 429: 8}


def _error(status: int, reason: str, content_type: str = JSON, **headers: str) -> Response:
    media = PROTOBUF if content_type == PROTOBUF else JSON
    return Response(_status_body(media, _RPC_CODES.get(status, 2), reason), status, headers, media)


class Receiver:
    """The three ``/v1/*`` endpoints."""

    def __init__(
        self,
        queue: RecordQueue,
        redactor: Redactor,
        max_body: int = DEFAULT_MAX_BODY,
        pool: Executor | None = None,
        span_rows: bool = False,
    ) -> None:
        self.queue = queue
        self.mapper = Mapper(redactor)
        self.max_body = max_body
        self.stats = ReceiverStats()
        # Processes started with start_worker(redactor) that decode and map traces and logs.
        self.pool = pool
        # Queue spans as SpanRow, not Record: only for a queue whose sinks are stores.
        self.span_rows = span_rows

    def routes(self) -> list[Route]:
        return [
            Route(f"/v1/{signal}", self._endpoint(signal), methods=["POST"], name=f"otlp-{signal}")
            for signal in SIGNALS
        ]

    def _endpoint(self, signal: str) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            response = await self.export(signal, request)
            self.stats.requests[(signal, response.status_code)] += 1
            return response

        return endpoint

    async def export(self, signal: str, request: Request) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in (PROTOBUF, JSON):
            return _error(
                415,
                f"unsupported Content-Type {content_type or '(none)'!r}: send {PROTOBUF} or {JSON}",
            )
        encoding = request.headers.get("content-encoding", "").strip().lower()
        if encoding not in ("", "identity", "gzip"):
            return _error(415, f"unsupported Content-Encoding {encoding!r}: send gzip or none", content_type)
        try:
            body = await self._read(request)
            if encoding == "gzip":
                body = gunzip(body, self.max_body)
            mapped = await self._map(signal, content_type, body)
        except BadRequest as exc:  # TooLarge included
            return _error(exc.status, str(exc), content_type)
        items = mapped.records
        if mapped.rows:
            # Plain tuples from the worker, typed here (tuple.__new__: no per-field Python call).
            # A SpanRow travels the pipeline as a record does: every store takes it.
            items = items + cast(list[Record], list(map(_span_row, mapped.rows)))
        if items and not self.queue.offer(items):
            return _error(
                429,
                "the write queue is full: retry later",
                content_type,
                **{"Retry-After": str(RETRY_AFTER_S)},
            )
        self.stats.accepted[signal] += len(items)
        self.stats.rejected[signal] += mapped.rejected
        return Response(
            encode_response(signal, content_type, mapped.rejected, mapped.reason),
            200,
            media_type=content_type,
        )

    async def _map(self, signal: str, content_type: str, body: bytes) -> Mapped:
        pool = self.pool
        if pool is not None and signal in POOLED_SIGNALS:
            try:
                return await asyncio.get_running_loop().run_in_executor(
                    pool, map_in_worker, signal, content_type, body, self.span_rows
                )
            except BrokenExecutor:
                # A pool process died (killed, out of memory): map here from now on, losing nothing.
                self.pool = None
        return self.mapper.map(signal, decode(signal, content_type, body), self.span_rows)

    async def _read(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            raise TooLarge(f"the body is over the limit of {self.max_body} bytes")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.max_body:
                raise TooLarge(f"the body is over the limit of {self.max_body} bytes")
        return bytes(body)


_span_row = functools.partial(tuple.__new__, SpanRow)


class Guard:
    """ASGI middleware: the ``Host`` allow-list, then the bearer token (compared in constant time).

    A browser cannot send the ``Authorization`` header when it opens a page, so everywhere but the
    OTLP endpoints the dashboard's login cookie stands in for it: ``GET <page>?token=TOKEN`` sets it
    (an HMAC of the token, ``HttpOnly``, ``SameSite=Strict``) and redirects to the page without the
    token in its address.
    """

    def __init__(self, app: ASGIApp, allowed_hosts: Iterable[str], token: str | None) -> None:
        self.app = app
        self.allowed = frozenset(h.lower().strip("[]") for h in allowed_hosts)
        self.expected = f"Bearer {token}".encode() if token else None
        self.token = token.encode() if token else None
        self.session = None
        if token:
            from clisight.server.dashboard.security import session_value

            self.session = session_value(token).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        host = _hostname(headers.get(b"host", b"").decode("latin-1"))
        if host not in self.allowed and not _is_loopback(host):
            response: Response = JSONResponse(
                {"code": 7, "message": f"Host {host or '(none)'!r} is not allowed; see --allow-host"}, 403
            )
        elif self.expected is not None and not hmac.compare_digest(
            headers.get(b"authorization", b""), self.expected
        ):
            browser = not scope["path"].startswith("/v1/")
            if browser and self._has_session(headers.get(b"cookie", b"")):
                await self.app(scope, receive, send)
                return
            login = self._login(scope) if browser and scope["method"] == "GET" else None
            response = login or _unauthorized(headers.get(b"accept", b""))
        else:
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)

    def _has_session(self, cookie_header: bytes) -> bool:
        from http.cookies import CookieError, SimpleCookie

        from clisight.server.dashboard.security import SESSION_COOKIE

        cookies: SimpleCookie = SimpleCookie()
        try:
            cookies.load(cookie_header.decode("latin-1"))
        except CookieError:
            return False
        found = cookies.get(SESSION_COOKIE)
        assert self.session is not None
        return found is not None and hmac.compare_digest(found.value.encode("latin-1"), self.session)

    def _login(self, scope: Scope) -> Response | None:
        """``?token=`` that matches: the login cookie and a redirect to the same page without it."""
        from urllib.parse import parse_qsl, urlencode

        from clisight.server.dashboard.security import SESSION_COOKIE, cookie_header

        pairs = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        given = [v for k, v in pairs if k == "token"]
        assert self.token is not None and self.session is not None
        if len(given) != 1 or not hmac.compare_digest(given[0].encode("utf-8", "replace"), self.token):
            return None
        rest = urlencode([(k, v) for k, v in pairs if k != "token"])
        location = scope.get("root_path", "") + scope["path"] + (f"?{rest}" if rest else "")
        cookie = cookie_header(SESSION_COOKIE, self.session.decode())
        return Response(
            b"", 303, {"Location": location, "Set-Cookie": cookie, "Referrer-Policy": "no-referrer"}
        )


def _unauthorized(accept: bytes) -> Response:
    if b"text/html" in accept:  # a browser opening a page: say how to log in
        body = (
            "<!doctype html><title>clisight: token required</title><h1>A token is required</h1>"
            "<p>This server was started with a token. Open the address <code>clisight serve</code> "
            "printed, ending in <code>?token=...</code>, once: the browser then keeps a login cookie.</p>"
        )
        return Response(body, 401, {"WWW-Authenticate": "Bearer"}, "text/html; charset=utf-8")
    return JSONResponse(
        {"code": 16, "message": "a bearer token is required (Authorization: Bearer ...)"},
        401,
        {"WWW-Authenticate": "Bearer"},
    )


async def _not_found(request: Request, exc: Exception) -> Response:
    """A path no route takes (a trace id with a newline in it, say): JSON, like every other answer."""
    return JSONResponse({"detail": "Not Found"}, 404)


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return JSONResponse({"detail": "Method Not Allowed"}, 405, getattr(exc, "headers", None))


def _hostname(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _is_loopback(host: str) -> bool:
    """A loopback address written as one (127.0.0.0/8, ::1): no DNS name can stand for it."""
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def create_app(
    queue: RecordQueue,
    redactor: Redactor,
    *,
    max_body: int = DEFAULT_MAX_BODY,
    token: str | None = None,
    allowed_hosts: Iterable[str] = (),
    pipeline_stats: Callable[[], Sequence[SinkStats]] | None = None,
    query: Query | None = None,
    exposed: ExposedMetrics | None = None,
    pool: Executor | None = None,
    dashboard: bool = True,
    span_rows: bool = False,
) -> Starlette:
    """The server's ASGI app behind the guard: the OTLP receiver, ``/metrics`` (with ``exposed``,
    the series users asked to expose too), and with a ``query`` the REST API under ``/api/v1`` and
    (unless ``dashboard`` is false) the web dashboard at ``/``.  Every response carries the
    dashboard's security headers (a strict CSP).  With a ``pool`` of processes started by
    ``otlp.start_worker(redactor)``, traces and logs are decoded and mapped there.  With
    ``span_rows``, received spans are queued as :class:`clisight.types.SpanRow` (for a queue
    whose sinks are all stores, as ``clisight serve``'s is)."""
    receiver = Receiver(queue, redactor, max_body, pool, span_rows)

    async def metrics(request: Request) -> Response:
        from clisight.server import prometheus

        sinks = pipeline_stats() if pipeline_stats is not None else []
        stats = receiver.stats
        items = [(sig, "accepted", n) for sig, n in stats.accepted.items()]
        items += [(sig, "rejected", n) for sig, n in stats.rejected.items()]
        # Store reads: in a worker thread, so the receiver's loop keeps answering meanwhile.
        series = await run_in_threadpool(exposed.collect) if exposed is not None else []
        body = prometheus.render(sinks, stats.requests.items(), items, series)
        return Response(body, media_type=prometheus.CONTENT_TYPE)

    routes: list[BaseRoute] = [*receiver.routes(), Route("/metrics", metrics, methods=["GET"])]
    if query is not None:
        from clisight.server.api import create_api

        routes.append(Mount("/api/v1", app=create_api(query, pipeline_stats)))
        if dashboard:
            from clisight.server.dashboard.pages import dashboard_routes

            routes += dashboard_routes(query, pipeline_stats, lambda: receiver_summary(receiver.stats))
    app = Starlette(routes=routes, exception_handlers={404: _not_found, 405: _not_allowed})
    app.state.receiver = receiver
    from clisight.server.dashboard.security import SecurityHeaders

    app.add_middleware(SecurityHeaders)
    app.add_middleware(Guard, allowed_hosts=LOOPBACK_NAMES | set(allowed_hosts), token=token)
    return app


def receiver_summary(stats: ReceiverStats) -> dict[str, dict[str, Any]]:
    """Per signal: items accepted and rejected, and requests by HTTP status (for the health page)."""
    out: dict[str, dict[str, Any]] = {}
    for signal in SIGNALS:
        requests = {str(status): n for (sig, status), n in stats.requests.items() if sig == signal}
        if requests:
            out[signal] = {
                "accepted": stats.accepted[signal],
                "rejected": stats.rejected[signal],
                "requests": requests,
            }
    return out
