"""The REST API, ``/api/v1``: the query service over HTTP, as JSON, with an OpenAPI schema.

Every route reads through :class:`clisight.query.Query` (the same reads the CLI makes, from the
rollups where they exist).  Routes are plain functions, which FastAPI runs in its thread pool, so a
slow read never stalls the OTLP receiver on the event loop.  Errors are JSON: ``{"detail": ...}``
with 422 for a parameter not of its documented form, 400 for one of that form that still says
nothing (a date that does not exist, a cursor that is not ours), 404 for an unknown trace.  The
schema is at ``/api/v1/openapi.json``; no interactive docs page is served (it would load its
scripts from a CDN).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata as _metadata
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Annotated, Any, Final

from fastapi import FastAPI, HTTPException, Path
from fastapi import Query as Param
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from clisight.exceptions import ClisightError, DataError
from clisight.pipeline.writer import SinkStats
from clisight.query import Filter, Query, parse_level, parse_time
from clisight.query import errors as errors_query
from clisight.query.traces import recent_traces, trace_tree

MAX_LIMIT = 1000
# The installed distribution's version (not ``clisight.__version__``: the package's __init__ sits
# above this layer).
__version__ = _metadata.version("clisight")


class Kind(StrEnum):
    """Record kinds, each with its stable export schema (docs/store.md)."""

    log = "log"
    event = "event"
    span = "span"
    metric = "metric"
    error = "error"
    session = "session"
    error_group = "error_group"

    @classmethod
    def _missing_(cls, value: object) -> Kind | None:
        """The plural words ``clisight export --kind`` takes (``logs``, ``error_groups``) name the
        same kinds; the schema lists the singular ones."""
        if not isinstance(value, str):
            return None
        word = value.lower()
        return cls.__members__.get(word) or cls.__members__.get(word.removesuffix("s"))


# The kinds each filter of /records/{kind} applies to (the store's selection; name is an error's
# type and an error group's fingerprint).  Any other is refused rather than silently ignored.
FILTERS: Final[dict[str, tuple[str, ...]]] = {
    "service": ("log", "event", "span", "metric", "error", "session"),
    "session": ("log", "event", "span", "metric", "error", "session"),
    "level": ("log",),
    "component": ("log",),
    "name": ("event", "span", "metric", "error", "error_group"),
    "q": ("log", "error"),
    "trace_id": ("log", "event", "span", "error"),
}


class Order(StrEnum):
    newest = "newest"
    oldest = "oldest"


class Level(StrEnum):
    """Log levels, lowest first (``warn`` and ``fatal`` are aliases)."""

    trace = "trace"
    debug = "debug"
    info = "info"
    performance = "performance"
    warning = "warning"
    warn = "warn"
    error = "error"
    critical = "critical"
    fatal = "fatal"


class Problem(BaseModel):
    """Why a request was refused."""

    detail: str


BAD_REQUEST: dict[int | str, dict[str, Any]] = {
    400: {
        "model": Problem,
        "description": "A date that does not exist, until before since, a filter the kind does not have,"
        " or a cursor that is not ours",
    }
}
TIME_FORM = (
    r"^(now|[0-9]+(\.[0-9]+)?[smhdw]|[0-9]{1,19}|"
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?)?(Z|[+-][0-9]{2}:[0-9]{2})?)$"
)


class RecordsPage(BaseModel):
    """One page of records; pass ``cursor`` back to get the next page (``null``: nothing more yet)."""

    kind: Kind
    rows: list[dict[str, Any]]
    cursor: str | None


class TraceRow(BaseModel):
    trace_id: str
    root: str
    service: str
    start_ns: int
    end_ns: int
    duration_s: float
    spans: int
    errors: int


class SpanRow(BaseModel):
    span_id: str
    parent_span_id: str | None
    name: str
    service: str
    start_ns: int
    end_ns: int
    duration_s: float
    status: int
    depth: int = Field(description="0 for a root; children follow their parent")
    attributes: dict[str, Any]


class Trace(BaseModel):
    trace_id: str
    spans: list[SpanRow]


class Health(BaseModel):
    status: str
    version: str
    store: dict[str, Any]
    pipeline: list[dict[str, Any]]


Since = Annotated[
    str | None,
    Param(
        description="Records at or after: 15m, 2h, 7d ago, now, an ISO date, or nanoseconds",
        pattern=TIME_FORM,
    ),
]
Until = Annotated[
    str | None, Param(description="Records at or before (same forms as since)", pattern=TIME_FORM)
]
Service = Annotated[str | None, Param(description="Exact service name")]
Session = Annotated[str | None, Param(description="Exact session id")]


def _filter(
    since: str | None, until: str | None, service: str | None, session: str | None, **more: Any
) -> Filter:
    try:
        since_ns = None if since is None else parse_time(since)
        until_ns = None if until is None else parse_time(until)
        flt = Filter(since=since_ns, until=until_ns, service=service, session=session, **more)
    except DataError as exc:
        raise HTTPException(400, str(exc)) from None
    if since_ns is not None and until_ns is not None and until_ns < since_ns:
        raise HTTPException(400, f"until ({until}) is before since ({since}): no record can match; swap them")
    return flt


def _plain(value: Any) -> Any:
    return (
        dataclasses.asdict(value)
        if dataclasses.is_dataclass(value) and not isinstance(value, type)
        else value
    )


def create_api(query: Query, pipeline_stats: Callable[[], Sequence[SinkStats]] | None = None) -> FastAPI:
    """The API app (mounted at ``/api/v1`` by the server) over one open :class:`Query`."""
    api = FastAPI(
        title="clisight API",
        version=__version__,
        description="Read what clisight stored: logs, spans and traces, metrics, errors, sessions, usage.",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )

    @api.exception_handler(ClisightError)
    def _store_trouble(request: Any, exc: ClisightError) -> JSONResponse:
        status = 400 if isinstance(exc, DataError) else 503
        return JSONResponse({"detail": str(exc)}, status)

    @api.get("/health", response_model=Health, summary="Store and pipeline health")
    def health() -> Health:
        info = query.doctor()
        return Health(
            status="ok",
            version=__version__,
            store=dataclasses.asdict(info),
            pipeline=[s.as_dict() for s in (pipeline_stats() if pipeline_stats is not None else [])],
        )

    @api.get(
        "/records/{kind}",
        response_model=RecordsPage,
        summary="Records of one kind, a page at a time",
        responses=BAD_REQUEST,
    )
    def records(
        kind: Annotated[
            Kind, Path(description="Which records: each kind has its export schema (docs/store.md)")
        ],
        since: Since = None,
        until: Until = None,
        service: Service = None,
        session: Session = None,
        level: Annotated[Level | None, Param(description="Minimum level (logs)")] = None,
        component: Annotated[str | None, Param(description="Exact component (logs)")] = None,
        name: Annotated[
            str | None,
            Param(description="Exact event, span or metric name, error type, or error group fingerprint"),
        ] = None,
        q: Annotated[
            str | None, Param(description="Case-insensitive text in the message (logs, errors)")
        ] = None,
        trace_id: Annotated[
            str | None,
            Param(
                description="Only this trace (32 hex characters; logs, events, spans, errors)",
                pattern="^[0-9a-fA-F]{32}$",
            ),
        ] = None,
        order: Annotated[
            Order, Param(description="newest first (the default) or oldest first")
        ] = Order.newest,
        limit: Annotated[int, Param(ge=1, le=MAX_LIMIT, description="Records per page")] = 100,
        cursor: Annotated[str | None, Param(description="From the previous page's cursor")] = None,
    ) -> RecordsPage:
        given = {"service": service, "session": session, "level": level, "component": component}
        given.update(name=name, q=q, trace_id=trace_id)
        for param, value in given.items():
            if value is not None and kind.value not in FILTERS[param]:
                kinds = ", ".join(FILTERS[param])
                raise HTTPException(
                    400, f"'{param}' does not filter {kind.value} records (it filters {kinds}): leave it out"
                )
        severity = None if level is None else parse_level(str(level))
        flt = _filter(since, until, service, session, level=severity, component=component, name=name, text=q)
        sel = dataclasses.replace(flt.selection(), trace_id=trace_id.lower() if trace_id else None)
        try:
            page = query.reader.rows(
                kind.value, sel, cursor=cursor, limit=limit, newest_first=order == Order.newest
            )
        except ValueError as exc:  # a cursor that is not one of ours; the store's message names it
            raise HTTPException(400, str(exc)) from None
        rows = errors_query.with_status(query, page.rows) if kind == Kind.error_group else page.rows
        return RecordsPage(kind=kind, rows=rows, cursor=page.cursor)

    @api.get(
        "/traces", response_model=list[TraceRow], summary="Recent traces, newest first", responses=BAD_REQUEST
    )
    def traces(
        since: Since = None,
        until: Until = None,
        service: Service = None,
        session: Session = None,
        limit: Annotated[int, Param(ge=1, le=MAX_LIMIT, description="How many traces")] = 20,
    ) -> list[TraceRow]:
        found = recent_traces(query, _filter(since, until, service, session), limit)
        return [TraceRow(**dataclasses.asdict(t), duration_s=t.duration_s) for t in found]

    @api.get(
        "/traces/{trace_id}",
        response_model=Trace,
        summary="One trace's spans, parents before children",
        responses={404: {"model": Problem, "description": "No span of this trace is stored"}},
    )
    def trace(trace_id: Annotated[str, Path(description="The trace id (32 hex characters)")]) -> Trace:
        spans = trace_tree(query, trace_id)
        if not spans:
            raise HTTPException(404, f"no span of trace {trace_id!r} is stored")
        rows = [SpanRow(**dataclasses.asdict(s), duration_s=s.duration_s) for s in spans]
        return Trace(trace_id=trace_id.lower(), spans=rows)

    @api.get("/errors", summary="Error groups and the most frequent error log lines", responses=BAD_REQUEST)
    def errors(
        since: Since = None,
        until: Until = None,
        service: Service = None,
        session: Session = None,
        top: Annotated[int, Param(ge=1, le=MAX_LIMIT, description="How many of each list")] = 20,
    ) -> dict[str, Any]:
        result = query.errors(_filter(since, until, service, session), top)
        return {**_plain(result), "total": result.total}

    @api.get(
        "/operations",
        summary="Operations (spans and timed logs): count, p50, p95, p99, max",
        responses=BAD_REQUEST,
    )
    def operations(
        since: Since = None,
        until: Until = None,
        service: Service = None,
        session: Session = None,
        top: Annotated[int, Param(ge=1, le=MAX_LIMIT, description="How many of each list")] = 20,
    ) -> list[dict[str, Any]]:
        return [_plain(op) for op in query.slow_operations(_filter(since, until, service, session), top)]

    @api.get(
        "/usage",
        summary="Events by name, sessions and users, LLM requests, tokens and cost by model",
        responses=BAD_REQUEST,
    )
    def usage(
        since: Since = None, until: Until = None, service: Service = None, session: Session = None
    ) -> dict[str, Any]:
        result = query.usage(_filter(since, until, service, session))
        return {**_plain(result), "llm_cost_usd": result.llm_cost_usd}

    @api.get("/report", summary="Everything `clisight report` shows", responses=BAD_REQUEST)
    def report(
        since: Since = None,
        until: Until = None,
        service: Service = None,
        session: Session = None,
        top: Annotated[int, Param(ge=1, le=MAX_LIMIT, description="How many of each list")] = 10,
    ) -> dict[str, Any]:
        result = query.report(_filter(since, until, service, session), top)
        return {**_plain(result), "total_logs": result.total_logs}

    return api
