"""The dashboard's routes: one page a view, a Server-Sent Events stream for the live tail, and the
POST forms that change state (resolve/ignore an error group, silence an alert rule).

Pages are plain functions run in Starlette's thread pool (a slow read never stalls the OTLP
receiver on the event loop); each reads its data through :mod:`clisight.server.dashboard.data`.
State changes need the CSRF token of :class:`~clisight.server.dashboard.security.Csrf`, and a
same-origin ``Origin`` header when the browser sends one; they answer with a redirect (303) to the
page that shows the change, so they work without JavaScript.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import anyio
import orjson
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from clisight._terminal import period
from clisight.pipeline.writer import SinkStats
from clisight.query import Query
from clisight.query import errors as errors_query
from clisight.server.dashboard import charts, data
from clisight.server.dashboard.alerting import AlertsView, describe, matchers_json, value_text
from clisight.server.dashboard.security import CSRF_COOKIE, CSRF_FIELD, Csrf, cookie_header

NONE: Final = "-"  # what a missing value shows
STREAM_POLL_S: Final = 0.25  # how often the live tail looks for new lines
OVERVIEW_EVERY_S: Final = 5.0  # how often the overview's numbers are sent to an open page
STREAM_LIFETIME_S: Final = 60.0  # then the browser reconnects (EventSource does) from the last id
MAX_FORM: Final = 16 * 1024
SILENCE_HOURS: Final = (0.5, 1, 4, 24, 168)  # the alerts page's silence menu: 30 min to 7 d (1 h chosen)
PROBLEMS: Final = {400: "Bad request", 403: "Refused", 404: "Not found", 413: "Too large"}
NAV: Final = (
    ("/", "Overview"),
    ("/logs", "Logs"),
    ("/traces", "Traces"),
    ("/errors", "Errors"),
    ("/usage", "Usage"),
    ("/alerts", "Anomalies & alerts"),
    ("/health", "Health"),
)


def _when(ns: int | None) -> str:
    if not ns:
        return NONE
    return datetime.fromtimestamp(ns / 1e9).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _seconds(value: float | None) -> str:
    if value is None:
        return NONE
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def _bytes(value: float | None) -> str:
    if value is None:
        return NONE
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def _number(value: float | None) -> str:
    if value is None:
        return NONE
    return f"{value:,.0f}" if float(value).is_integer() or abs(value) >= 100 else f"{value:,.3g}"


def _duration(seconds: float) -> str:
    """1h 05m, 3m 20s, 42s."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def _ago(ns: int | None) -> str:
    if not ns:
        return NONE
    seconds = max(time.time() - ns / 1e9, 0)
    for limit, unit in ((86_400, "d"), (3600, "h"), (60, "m")):
        if seconds >= limit:
            return f"{seconds / limit:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"


class Dashboard:
    """The pages over one open :class:`Query`, with the serve process's pipeline and receiver stats."""

    def __init__(
        self,
        query: Query,
        pipeline_stats: Callable[[], Sequence[SinkStats]] | None = None,
        receiver_stats: Callable[[], dict[str, Any]] | None = None,
        csrf: Csrf | None = None,
    ) -> None:
        self.query = query
        self.pipeline_stats = pipeline_stats or (lambda: [])
        self.receiver_stats = receiver_stats or (lambda: {})
        self.csrf = csrf or Csrf()
        self.alerts = AlertsView(query)
        self.started = time.monotonic()
        self.facts = data.StoreFacts(query)
        self.env = Environment(
            loader=PackageLoader("clisight.server.dashboard", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(
            when=_when,
            seconds=_seconds,
            bytes=_bytes,
            number=_number,
            ago=_ago,
            duration=_duration,
            period=period,
            json_text=data.json_text,
        )
        self.env.globals.update(
            nav=NAV,
            sparkline=charts.sparkline,
            line_chart=charts.line_chart,
            bar_chart=charts.bar_chart,
            waterfall=charts.waterfall,
            series_chart=series_chart,
            matchers_json=matchers_json,
            value_text=value_text,
            describe=describe,
            levels=data.LEVELS,
            ranges=tuple(data.RANGES),
            silence_hours=SILENCE_HOURS,
        )

    # -- rendering ---------------------------------------------------------------------------
    def render(self, request: Request, name: str, code: int = 200, **context: Any) -> HTMLResponse:
        nonce = request.cookies.get(CSRF_COOKIE)
        fresh = not Csrf.well_formed(nonce)
        if fresh or nonce is None:
            nonce = Csrf.new_nonce()
        body = self.env.get_template(name).render(
            path=request.url.path, csrf_field=CSRF_FIELD, csrf=self.csrf.token(nonce), **context
        )
        response = HTMLResponse(body, code)
        if fresh:
            response.headers.append("set-cookie", cookie_header(CSRF_COOKIE, nonce))
        return response

    def problem(self, request: Request, status: int, message: str) -> HTMLResponse:
        title = PROBLEMS.get(status, "Something went wrong")
        return self.render(request, "problem.html", status, title=title, message=message)

    # -- pages -------------------------------------------------------------------------------
    def overview(self, request: Request) -> Response:
        now = time.time_ns()
        return self.render(
            request,
            "overview.html",
            title="Overview",
            o=data.overview(self.query, now),
            firing=self.alerts.firing(),
        )

    async def overview_stream(self, request: Request) -> Response:
        """The overview's numbers every few seconds, as Server-Sent Events (``event: overview``)."""

        async def events() -> AsyncIterator[bytes]:
            yield b"retry: 5000\n\n"
            deadline = time.monotonic() + STREAM_LIFETIME_S
            while time.monotonic() < deadline:
                o = await anyio.to_thread.run_sync(data.overview, self.query, time.time_ns())
                firing = await anyio.to_thread.run_sync(self.alerts.firing)
                numbers = {
                    "events_per_s": _number(o.events_per_s),
                    "error_rate": f"{o.error_rate * 100:.1f} %",
                    "cost_today": f"${o.cost_today:.2f}",
                    "tokens_today": _number(o.tokens_today),
                    "requests_today": _number(o.requests_today),
                    "active_sessions": str(o.active_sessions),
                    "firing": str(len(firing)),
                }
                yield b"event: overview\ndata: %s\n\n" % orjson.dumps(numbers)
                await anyio.sleep(OVERVIEW_EVERY_S)

        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)

    def logs(self, request: Request) -> Response:
        try:
            params = data.LogsParams.parse(dict(request.query_params))
        except ValueError as exc:
            return self.problem(request, 400, str(exc))
        found = data.logs(self.query, time.time_ns(), params)
        query = {k: v for k, v in vars_of(params).items() if v and k not in ("range", "limit", "before")}
        stream = "" if params.before else "/logs/stream?" + urlencode({**query, "after": found.last_id})
        return self.render(request, "logs.html", title="Logs", p=params, found=found, stream=stream)

    async def stream(self, request: Request) -> Response:
        try:
            params = data.LogsParams.parse(dict(request.query_params))
            after_text = request.headers.get("last-event-id") or request.query_params.get("after", "")
            after = int(after_text) if after_text else -1
        except ValueError as exc:
            return Response(str(exc), 400, media_type="text/plain")
        flt = params.filter()
        if after < 0:
            after = await anyio.to_thread.run_sync(data.newest_log_id, self.query)

        async def events() -> AsyncIterator[bytes]:
            last = after
            yield f"retry: 1000\nid: {last}\n\n".encode()
            deadline = time.monotonic() + STREAM_LIFETIME_S
            quiet = 0
            while time.monotonic() < deadline:
                lines = await anyio.to_thread.run_sync(self.query.follow, last, flt, 200)
                for line in lines:
                    payload = {
                        "id": line.id,
                        "time": _when(line.time_ns),
                        "level": line.severity_text,
                        "severity": line.severity,
                        "service": line.service,
                        "component": line.component,
                        "message": line.message,
                        "trace_id": line.trace_id,
                    }
                    yield b"id: %d\nevent: log\ndata: %s\n\n" % (line.id, orjson.dumps(payload))
                    last = line.id
                quiet = 0 if lines else quiet + 1
                if quiet and quiet % 40 == 0:
                    yield b": still here\n\n"
                await anyio.sleep(STREAM_POLL_S)

        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)

    def traces(self, request: Request) -> Response:
        service = request.query_params.get("service", "")[:200]
        found = data.traces(self.query, service)
        return self.render(request, "traces.html", title="Traces", traces=found, service=service)

    def trace(self, request: Request) -> Response:
        trace_id = request.path_params["trace_id"]
        spans = data.trace(self.query, trace_id)
        if not spans:
            return self.problem(request, 404, f"No span of trace {trace_id!r} is stored.")
        bars = [charts.Bar(s.name, s.start_ns, s.end_ns, s.depth, s.status >= 2, s.service) for s in spans]
        return self.render(request, "trace.html", title="Trace", trace_id=trace_id, spans=spans, bars=bars)

    def errors(self, request: Request) -> Response:
        status = request.query_params.get("status", "open")
        span = request.query_params.get("range", "7d")
        if status not in ("", "open", *errors_query.STATUSES, "regression"):
            return self.problem(
                request, 400, "status is one of open, unresolved, resolved, ignored, regression"
            )
        if span not in data.RANGES:
            return self.problem(request, 400, f"range is one of {', '.join(data.RANGES)}")
        groups = data.errors(self.query, time.time_ns(), status, span)
        return self.render(request, "errors.html", title="Errors", groups=groups, status=status, span=span)

    def error(self, request: Request) -> Response:
        fingerprint = request.path_params["fingerprint"]
        found = data.error(self.query, fingerprint)
        if found is None:
            return self.problem(request, 404, f"No error group {fingerprint!r}.")
        return self.render(request, "error.html", title=found.detail.group.title, e=found)

    async def set_error_status(self, request: Request) -> Response:
        form = await self._form(request)
        if isinstance(form, Response):
            return form
        status = form.get("status", "")
        if status not in errors_query.STATUSES:
            return self.problem(request, 400, f"status must be one of {', '.join(errors_query.STATUSES)}")
        fingerprint = request.path_params["fingerprint"]
        saved = await anyio.to_thread.run_sync(errors_query.set_status, self.query, fingerprint, status)
        if saved is None:
            return self.problem(request, 404, f"No error group {fingerprint!r}.")
        return RedirectResponse(f"/errors/{quote(saved['fingerprint'])}", 303)

    def usage(self, request: Request) -> Response:
        days_text = request.query_params.get("days", "7")
        if not days_text.isdigit() or not 1 <= int(days_text) <= 366:
            return self.problem(request, 400, "days must be a whole number from 1 to 366")
        found = data.usage(self.query, time.time_ns(), int(days_text))
        return self.render(request, "usage.html", title="Usage", u=found)

    def anomalies(self, request: Request) -> Response:
        span = request.query_params.get("range", "7d")
        if span not in data.RANGES:
            return self.problem(request, 400, f"range is one of {', '.join(data.RANGES)}")
        series = data.anomalies(self.query, time.time_ns(), data.RANGES[span], data.STEPS[span])
        return self.render(
            request,
            "alerts.html",
            title="Anomalies & alerts",
            series=series,
            span=span,
            alerts=self.alerts.states(),
            silences=self.alerts.silences(),
            history=self.alerts.history(),
        )

    async def silence(self, request: Request) -> Response:
        form = await self._form(request)
        if isinstance(form, Response):
            return form
        try:
            await anyio.to_thread.run_sync(self.alerts.silence_from_form, form)
        except ValueError as exc:
            return self.problem(request, 400, str(exc))
        return RedirectResponse("/alerts", 303)

    async def unsilence(self, request: Request) -> Response:
        form = await self._form(request)
        if isinstance(form, Response):
            return form
        try:
            await anyio.to_thread.run_sync(self.alerts.unsilence_from_form, form)
        except ValueError as exc:
            return self.problem(request, 400, str(exc))
        return RedirectResponse("/alerts", 303)

    def health(self, request: Request) -> Response:
        found = data.health(
            self.query, self.pipeline_stats(), self.receiver_stats(), self.started, self.facts
        )
        return self.render(request, "health.html", title="Health", h=found)

    # -- forms -------------------------------------------------------------------------------
    async def _form(self, request: Request) -> dict[str, str] | Response:
        """The POSTed form, once its CSRF token and origin are checked; else the 403/413 to answer."""
        origin = request.headers.get("origin")
        host = request.headers.get("host", "").lower()
        if origin is not None and origin != "null" and urlsplit(origin).netloc.lower() != host:
            return self.problem(request, 403, "This form was sent from another site.")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM:
                return self.problem(request, 413, "The form is too large.")
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        if not self.csrf.check(request.cookies.get(CSRF_COOKIE), form.get(CSRF_FIELD)):
            return self.problem(
                request, 403, "The form's security token is missing or stale: reload the page and try again."
            )
        return form

    def routes(self) -> list[BaseRoute]:
        static = StaticFiles(directory=Path(__file__).with_name("static"))
        return [
            Route("/", self.overview, methods=["GET"], name="dash-overview"),
            Route("/overview/stream", self.overview_stream, methods=["GET"]),
            Route("/logs", self.logs, methods=["GET"]),
            Route("/logs/stream", self.stream, methods=["GET"]),
            Route("/traces", self.traces, methods=["GET"]),
            Route("/traces/{trace_id}", self.trace, methods=["GET"]),
            Route("/errors", self.errors, methods=["GET"]),
            Route("/errors/{fingerprint}", self.error, methods=["GET"]),
            Route("/errors/{fingerprint}/status", self.set_error_status, methods=["POST"]),
            Route("/usage", self.usage, methods=["GET"]),
            Route("/alerts", self.anomalies, methods=["GET"]),
            Route("/alerts/silence", self.silence, methods=["POST"]),
            Route("/alerts/unsilence", self.unsilence, methods=["POST"]),
            Route("/health", self.health, methods=["GET"]),
            Mount("/static", app=static, name="dash-static"),
        ]


def series_chart(series: data.Series) -> Any:
    """A series' line with the points its detector scored at or over the threshold marked."""
    points = [
        charts.Point(
            t / 1e9,
            v,
            score >= series.threshold,
            score,
            f"{_when(t)}: {v:.4g}{series.unit} (score {score:.2f})",
        )
        for t, v, score in series.points
    ]
    return charts.line_chart(points, series.title, unit=series.unit)


def vars_of(params: data.LogsParams) -> dict[str, Any]:
    return {f: getattr(params, f) for f in params.__dataclass_fields__}


def dashboard_routes(
    query: Query,
    pipeline_stats: Callable[[], Sequence[SinkStats]] | None = None,
    receiver_stats: Callable[[], dict[str, Any]] | None = None,
) -> list[BaseRoute]:
    """The dashboard's routes over ``query``, to mount at the root of the server's app."""
    return Dashboard(query, pipeline_stats, receiver_stats).routes()
