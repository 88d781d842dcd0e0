"""Error capture: an exception becomes an ``error`` record the store groups into issues.

What an occurrence carries (attributes of the ``error`` record, all scrubbed by the client's
redactor before they are queued):

- ``stack``: the formatted traceback (what ``clisight errors show`` prints);
- ``exception.frames``: ``[{file, module, function, line, in_app}]``, outermost first (``in_app`` is false
  for the standard library, installed packages and clisight itself);
- ``exception.chain``: the exceptions it was raised from or during (``__cause__``/``__context__``);
- ``breadcrumbs``: the last ``breadcrumbs`` (default 50) log records and spans of the process;
- ``command``, ``component``, and ``locals`` of the innermost in-app frame only when
  ``capture_locals`` is on (each value's ``repr``, cut, and scrubbed by key like every attribute);
- ``fingerprint``: the group.  :func:`fingerprint_of` explains how it is made; a ``fingerprint=``
  given by the caller wins.  LLM API errors (rate limit, overloaded, context length, authentication,
  timeout, connection) from anthropic, openai and httpx are grouped by kind and model instead,
  recognised by type name and status code without importing any SDK (:func:`llm_error_kind`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from types import TracebackType
from typing import Any, Final

from clisight._safety import _raise_internal, guard, record_internal_error
from clisight._shape import message_shape
from clisight.client import context as _ctx
from clisight.client import core as _core
from clisight.pipeline.redact import as_repr, as_text, unprintable
from clisight.types import ERROR_LEVEL, SEVERITY_NAMES, SPAN, Record

MAX_FRAMES: Final = 40  # innermost frames kept per exception
MAX_CHAIN: Final = 5  # exceptions followed through __cause__/__context__
MAX_LOCALS: Final = 30
MAX_LOCAL_CHARS: Final = 200


def capture_exception(
    exc: BaseException | None = None, component: str = "app", severity: int = ERROR_LEVEL, **context: Any
) -> None:
    """Record ``exc`` (default: the exception being handled) with its type, message, stack frames,
    chain, breadcrumbs and ``context``.  ``fingerprint="..."`` puts it in a group of your choosing.

    Never raises, whatever it is given; with no exception given or being handled it does nothing.
    """
    if exc is None:
        exc = sys.exc_info()[1]
        if exc is None:
            return
    record_error(exc, component, severity, context)


def exception_text(exc: object) -> str:
    """``str(exc)``; for an exception whose ``__str__`` raises, ``<unprintable ValueError: str() raised
    TypeError>``.  Never raises."""
    return as_text(exc)


def format_stack(exc: BaseException, limit: int) -> str:
    """The formatted traceback of ``exc``, its last ``limit`` characters (the innermost frames, which
    group errors) marked when cut.  Never raises: a traceback that cannot be formatted is described."""
    import traceback  # only a program that records an exception pays for it (3 ms at start-up)

    try:
        stack = "".join(traceback.format_exception(exc))
    except Exception as error:  # a broken __notes__, __cause__ or frame must not lose the record
        stack = f"{type(exc).__name__}: {unprintable(exc, 'traceback.format_exception', error)}\n"
    if len(stack) <= limit:
        return stack
    mark = f"[truncated: {len(stack)} chars]…"
    return mark + stack[len(stack) - max(limit - len(mark), 0) :]


# -- frames -----------------------------------------------------------------------------------------
def _library_roots() -> tuple[str, ...]:
    roots = {os.path.dirname(os.__file__), os.path.dirname(os.path.dirname(__file__))}  # stdlib, clisight
    for prefix in (sys.prefix, sys.base_prefix, sys.exec_prefix):
        roots.add(os.path.join(prefix, "lib"))
    return tuple(sorted(root + os.sep for root in roots if root))


_LIBRARY_ROOTS: list[tuple[str, ...]] = []


def in_app(filename: str) -> bool:
    """Whether a frame's file is the program's own code: not the standard library, not an installed
    package (``site-packages``/``dist-packages``), not clisight, not frozen or generated code."""
    if not filename or filename.startswith("<"):
        return False
    if "site-packages" in filename or "dist-packages" in filename:
        return False
    if not _LIBRARY_ROOTS:
        _LIBRARY_ROOTS.append(_library_roots())
    return not filename.startswith(_LIBRARY_ROOTS[0])


def _walk(tb: TracebackType | None) -> Iterator[tuple[Any, int]]:
    seen = 0
    while tb is not None and seen < 10_000:
        yield tb.tb_frame, tb.tb_lineno
        tb = tb.tb_next
        seen += 1


def frames_of(exc: BaseException) -> list[dict[str, Any]]:
    """``[{file, module, function, line, in_app}]`` of ``exc``'s traceback, outermost first, the innermost
    :data:`MAX_FRAMES`."""
    frames = []
    for frame, line in _walk(exc.__traceback__):
        code = frame.f_code
        filename = code.co_filename if type(code.co_filename) is str else "?"
        module = frame.f_globals.get("__name__")
        frames.append(
            {
                "file": filename,
                "module": module if type(module) is str else "",
                "function": getattr(code, "co_qualname", code.co_name),
                "line": line if type(line) is int else 0,
                "in_app": in_app(filename),
            }
        )
    return frames[-MAX_FRAMES:]


def chain_of(exc: BaseException) -> list[dict[str, Any]]:
    """The exceptions ``exc`` was raised from (``cause``) or while handling (``context``), nearest first."""
    chain: list[dict[str, Any]] = []
    seen = {id(exc)}
    current: BaseException | None = exc
    while current is not None and len(chain) < MAX_CHAIN:
        cause = current.__cause__
        if cause is not None:
            relation, nxt = "cause", cause
        elif current.__context__ is not None and not current.__suppress_context__:
            relation, nxt = "context", current.__context__
        else:
            break
        if not isinstance(nxt, BaseException) or id(nxt) in seen:
            break
        seen.add(id(nxt))
        frames = frames_of(nxt)
        chain.append(
            {
                "relation": relation,
                "type": type(nxt).__qualname__,
                "message": exception_text(nxt)[:1000],
                "frames": frames[-10:],
            }
        )
        current = nxt
    return chain


# -- grouping ---------------------------------------------------------------------------------------
_RATE_LIMIT = frozenset({"RateLimitError"})
_OVERLOADED = frozenset({"OverloadedError", "ServiceUnavailableError"})
_AUTH = frozenset({"AuthenticationError", "PermissionDeniedError"})
_TIMEOUT = frozenset(
    {"APITimeoutError", "TimeoutException", "ReadTimeout", "WriteTimeout", "ConnectTimeout", "PoolTimeout"}
)
_CONNECTION = frozenset(
    {"APIConnectionError", "ConnectError", "RemoteProtocolError", "NetworkError", "ReadError", "WriteError"}
)
_LLM_MODULES: Final = ("anthropic", "openai", "httpx", "httpcore")
# Words an API's "prompt too long" error says, whatever the SDK and status.
CONTEXT_WORDS: Final = (
    "context_length_exceeded",
    "context length",
    "context window",
    "prompt is too long",
    "maximum context",
    "too many tokens",
)


def _status(exc: BaseException) -> int | None:
    for source in (exc, getattr(exc, "response", None)):
        for name in ("status_code", "status"):
            try:
                value = getattr(source, name, None)
            except Exception:  # a property of the host's object may raise; it tells us nothing
                value = None
            if type(value) is int:
                return value
    return None


def llm_error_kind(exc: BaseException) -> str | None:
    """``rate_limit``, ``overloaded``, ``context_length``, ``authentication``, ``timeout`` or
    ``connection`` for an LLM API error (by its type's names, its ``status_code``, or its message),
    else None.  Types named like the anthropic, openai and httpx errors count wherever they are
    defined; a plain ``TimeoutError`` or ``ConnectionError`` does not."""
    names = {klass.__name__ for klass in type(exc).__mro__}
    status = _status(exc)
    module = type(exc).__module__ or ""
    from_sdk = module.split(".", 1)[0] in _LLM_MODULES or bool(
        names & {"APIError", "APIStatusError", "HTTPError", "HTTPStatusError"}
    )
    if names & _RATE_LIMIT or status == 429:
        return "rate_limit"
    if names & _OVERLOADED or status == 529:
        return "overloaded"
    if from_sdk or status in (400, 413):
        text = exception_text(exc).lower()
        if any(word in text for word in CONTEXT_WORDS):
            return "context_length"
    if names & _AUTH or (status in (401, 403) and from_sdk):
        return "authentication"
    if names & _TIMEOUT:
        return "timeout"
    if names & _CONNECTION:
        return "connection"
    if from_sdk and status is not None and status >= 500:
        return "overloaded" if "overloaded" in exception_text(exc).lower() else None
    return None


def _where(frame: dict[str, Any]) -> str:
    """A frame's module (``app.db``), else its file's name: the same wherever the program was
    installed or run from."""
    module = frame.get("module")
    if isinstance(module, str) and module:
        return module
    return str(frame.get("file", "")).replace("\\", "/").rsplit("/", 1)[-1]


def fingerprint_of(type_name: str, message: str, frames: list[dict[str, Any]]) -> str:
    """The group of an exception: its type, its in-app frames (module, else file name, and function;
    no line numbers;
    recursion collapsed) or, without any, its innermost five frames, and the shape of its message
    (numbers, ids, paths, URLs and quoted values blanked: :func:`clisight._shape.message_shape`)."""
    chosen = [f for f in frames if f.get("in_app")] or frames[-5:]
    basis: list[str] = []
    for frame in chosen:
        step = f"{_where(frame)}:{frame.get('function', '')}"
        if not basis or basis[-1] != step:
            basis.append(step)
    import hashlib  # only a program that records an error pays for it

    text = "\n".join((type_name, message_shape(message), *basis))
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:32]


def llm_fingerprint(kind: str, model: str) -> str:
    import hashlib

    return hashlib.sha256(f"llm\n{kind}\n{model}".encode("utf-8", "replace")).hexdigest()[:32]


# -- breadcrumbs and locals ---------------------------------------------------------------------------
def breadcrumbs_of(records: list[Record]) -> list[dict[str, Any]]:
    """The process's last log records and spans as small dicts, oldest first."""
    crumbs = []
    for rec in records:
        if rec.kind == SPAN:
            crumbs.append(
                {
                    "time_ns": rec.time_ns,
                    "kind": "span",
                    "name": rec.name,
                    "duration": rec.attributes.get("duration"),
                    "failed": rec.severity != 0,
                }
            )
        else:
            crumbs.append(
                {
                    "time_ns": rec.time_ns,
                    "kind": "log",
                    "name": rec.name,
                    "level": SEVERITY_NAMES.get(rec.severity, str(rec.severity)),
                    "message": rec.body[:500],
                }
            )
    return crumbs


def locals_of(exc: BaseException) -> dict[str, str]:
    """The innermost in-app frame's local variables as cut ``repr`` text (scrubbed later, by key)."""
    chosen = None
    for frame, _ in _walk(exc.__traceback__):
        if in_app(frame.f_code.co_filename):
            chosen = frame
    if chosen is None:
        return {}
    found: dict[str, str] = {}
    for name, value in list(chosen.f_locals.items())[:MAX_LOCALS]:
        text = as_repr(value)
        found[str(name)] = text if len(text) <= MAX_LOCAL_CHARS else text[: MAX_LOCAL_CHARS - 1] + "…"
    return found


# -- the record -------------------------------------------------------------------------------------
def record_error(
    exc: BaseException,
    component: str,
    severity: int,
    context: dict[str, Any],
    stack: str | None = None,
) -> None:
    """:func:`capture_exception`, for callers that already formatted the traceback (``stack``)."""
    client = _core._client
    if client is None:
        return
    try:
        ctx = _ctx.get()
        limit: int = client.config["max_field_chars"]
        extra: dict[str, Any] = {}
        message = exception_text(exc)
        if isinstance(exc, BaseException):
            name = type(exc).__qualname__
            if stack is None:
                stack = format_stack(exc, limit)
            extra = _details(exc, name, message, context, ctx, client)
        else:  # capture_exception(<not an exception>): record what it was given
            name = f"<not an exception: {type(exc).__qualname__}>"
            stack = ""
        if type(severity) is not int:
            severity = ERROR_LEVEL
        build = client.records
        attrs = build.merge(ctx, {**extra, **context} if extra else context)
        client.emit(build.error(name, message, severity, attrs, component, stack, ctx))
    except Exception as error:
        client.pipeline.count_lost()
        record_internal_error(error)
        if _raise_internal:
            raise


def _details(
    exc: BaseException, name: str, message: str, context: dict[str, Any], ctx: _ctx.Context, client: Any
) -> dict[str, Any]:
    """Frames, chain, breadcrumbs, command, locals and the fingerprint of one occurrence.  A part
    that fails is left out (counted as an internal error): the occurrence is still recorded."""
    extra: dict[str, Any] = {}
    frames: list[dict[str, Any]] = []
    with guard():
        frames = frames_of(exc)
        extra["exception.frames"] = frames
    with guard():
        chain = chain_of(exc)
        if chain:
            extra["exception.chain"] = chain
    with guard():
        extra["breadcrumbs"] = breadcrumbs_of(list(client.breadcrumbs))
    with guard():
        command = ctx.fields.get("command")
        extra["command"] = command if isinstance(command, str) and command else client.command
    if client.config["capture_locals"]:
        with guard():
            extra["locals"] = locals_of(exc)
    with guard():
        kind = llm_error_kind(exc)
        if kind is not None:
            model = context.get("model", ctx.fields.get("model", getattr(exc, "model", None)))
            model_text = model if isinstance(model, str) and model else "unknown"
            extra["error.kind"] = f"llm.{kind}"
            extra["llm.model"] = model_text
            extra["fingerprint"] = llm_fingerprint(kind, model_text)
        else:
            extra["fingerprint"] = fingerprint_of(name, message, frames)
    given = context.get("fingerprint")
    if isinstance(given, list | tuple) and given:
        import hashlib

        extra["fingerprint"] = hashlib.sha256("\n".join(map(as_text, given)).encode()).hexdigest()[:32]
        context.pop("fingerprint")
    return extra


# -- uncaught exceptions ---------------------------------------------------------------------------
def capture_uncaught(exc: BaseException, component: str) -> None:
    """What the installed hooks do with an exception nobody caught: record it as CRITICAL."""
    capture_exception(exc, component=component, severity=ERROR_LEVEL + 4)


def install_asyncio_handler(loop: Any = None) -> None:
    """Record exceptions an asyncio event loop reports (a task's exception never retrieved, a
    callback that raised), then pass them on to the handler the loop had.  ``loop`` defaults to the
    running loop; ``clisight.init()`` calls this when it runs inside one.  Never raises."""
    with guard():
        if loop is None:
            import asyncio

            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
        if getattr(loop, "_clisight_handler", False):
            return
        previous = loop.get_exception_handler()

        def handler(the_loop: Any, context: dict[str, Any]) -> None:
            with guard():
                exc = context.get("exception")
                if isinstance(exc, BaseException):
                    capture_uncaught(exc, "asyncio")
            if previous is not None:
                previous(the_loop, context)
            else:
                the_loop.default_exception_handler(context)

        loop.set_exception_handler(handler)
        loop._clisight_handler = True
