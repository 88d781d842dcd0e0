"""Command auto-instrumentation in one line: ``clisight.instrument(app)`` for click, typer and argparse.

What one run of an instrumented program records:

- its **command path**, the nested command tree kept (``mycli db migrate``): named by the program's
  own command tree, so a value is never taken for a subcommand;
- the **options used** (declared option names only, never their values, never positionals);
- its **exit code** as the shell sees it (usage errors, ``--help``, ``sys.exit(n)``, an exception: 1,
  Ctrl-C: 130, or 1 where click prints ``Aborted!``; SIGTERM: 143) and
  **duration**; an exception escaping the command is recorded with ``capture_exception``;
- a ``command:<path>`` span (the store's ``operation`` rollups give count, failures and duration
  percentiles per command), whose trace the records inside the command share (click and typer);
- on the run's session: the command path, options, ``help``, and the startup time (process start
  to the command's start, Linux).

click and typer: the program's ``main`` (``cli()``, ``app()``) is wrapped; a hook on
``click.Command.make_context`` names each level of the tree while an instrumented run is going on
(and does nothing otherwise).  argparse: every parser of the tree notes its ``prog`` as it parses;
the run ends at exit (call ``clisight.init`` before parsing, so its exit hook runs after ours).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any, Final

from clisight._safety import guard
from clisight.client import context as _ctx
from clisight.client import core as _core
from clisight.types import ERROR_LEVEL

SPAN_PREFIX: Final = "command:"
HELP_FLAGS: Final = frozenset({"--help", "-h"})
_OK, _FAILED = 0, ERROR_LEVEL  # span status, as clisight.span sets it


class Run:
    """One command run: what is known of it so far."""

    __slots__ = ("finished", "help", "options", "path", "span_id", "start_ns", "startup", "trace_id")

    def __init__(self, path: str, start_ns: int, trace_id: str | None, span_id: str | None) -> None:
        self.path = path
        self.start_ns = start_ns
        self.options: list[str] = []
        self.help = False
        self.trace_id = trace_id
        self.span_id = span_id
        self.finished = False
        self.startup: float | None = None

    def note(self, path: str | None, declared: Iterable[str], args: Iterable[Any]) -> None:
        if path:
            self.path = path
        for option in options_used(args, declared):
            if option not in self.options:
                self.options.append(option)
            if option in HELP_FLAGS:
                self.help = True


_current: list[Run] = []


def options_used(args: Iterable[Any], declared: Iterable[str]) -> list[str]:
    """The declared option names among ``args``, in order, once each (``--out=x`` is ``--out``,
    ``-ofile`` is ``-o``); values, positionals and everything after ``--`` are left out."""
    names = set(declared) | HELP_FLAGS
    found: list[str] = []
    for arg in args:
        if not isinstance(arg, str):
            continue
        if arg == "--":
            break
        if not arg.startswith("-") or arg == "-":
            continue
        name = arg.split("=", 1)[0]
        if name not in names and not arg.startswith("--"):
            name = arg[:2]
        if name in names and name not in found:
            found.append(name)
    return found


def instrument(app: Any) -> Any:
    """Instrument a click command or group, a typer app, or an argparse parser; returns ``app``.

    ``clisight.instrument(cli)`` (click), ``clisight.instrument(app)`` (typer),
    ``clisight.instrument(parser)`` (argparse).  Instrumenting twice is harmless; anything else is
    left as it is (and counted as an internal error).  Never raises.
    """
    with guard():
        kinds = {f"{c.__module__}.{c.__qualname__}" for c in type(app).__mro__}
        if getattr(app, "_clisight_instrumented", False):
            return app
        if "typer.main.Typer" in kinds:
            _instrument_typer(app)
        elif "click.core.Command" in kinds or "typer._click.core.Command" in kinds:
            _instrument_click(app)
        elif "argparse.ArgumentParser" in kinds:
            _instrument_argparse(app)
        else:
            raise TypeError(f"clisight.instrument: cannot instrument a {type(app).__qualname__}")
    return app


# -- click and typer ------------------------------------------------------------------------------


def _instrument_click(command: Any) -> None:
    _hook_click(_click_core_of(type(command)))
    original = command.main

    def main(*args: Any, **kwargs: Any) -> Any:
        return _run_wrapped(original, _prog_name(kwargs), args, kwargs)

    command.main = main
    command._clisight_instrumented = True


def _instrument_typer(app: Any) -> None:
    # typer >= 0.20 carries its own copy of click (typer._click); older ones use click itself.
    try:
        import typer._click.core as vendored  # type: ignore[import-not-found,unused-ignore]

        _hook_click(vendored)
    except ImportError:
        import click.core

        _hook_click(click.core)
    cls: type = type(app)
    original = cls.__call__

    def __call__(self: Any, *args: Any, **kwargs: Any) -> Any:
        return _run_wrapped(functools.partial(original, self), _prog_name(kwargs), args, kwargs)

    instrumented: type = type(cls.__name__, (cls,), {"__call__": __call__, "__module__": cls.__module__})
    app.__class__ = instrumented
    app._clisight_instrumented = True


def _prog_name(kwargs: dict[str, Any]) -> str:
    name = kwargs.get("prog_name")
    if isinstance(name, str) and name:
        return name
    return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"


def _click_core_of(cls: type) -> Any:
    for base in cls.__mro__:
        if base.__qualname__ == "Command" and base.__module__.endswith("click.core"):
            return sys.modules[base.__module__]
    raise TypeError(f"not a click command: {cls.__qualname__}")


_click_hooked: set[str] = set()


def _hook_click(core: Any) -> None:
    """Wrap ``Command.make_context`` of a click (or typer's vendored click) once: while an
    instrumented run goes on, each level of the command tree names the path and notes the options
    it was given; otherwise it does nothing."""
    if core.__name__ in _click_hooked:
        return
    original = core.Command.make_context

    def make_context(self: Any, info_name: Any, args: Any, parent: Any = None, **extra: Any) -> Any:
        run = _current[-1] if _current else None
        if run is None:
            return original(self, info_name, args, parent, **extra)
        with guard():
            base = getattr(parent, "_clisight_path", None) if parent is not None else None
            path = f"{base} {info_name}" if base else str(info_name or run.path)
            declared = [name for param in self.params for name in (*param.opts, *param.secondary_opts)]
            run.note(path, declared, list(args))
        ctx = original(self, info_name, args, parent, **extra)
        with guard():
            ctx._clisight_path = path
        return ctx

    core.Command.make_context = make_context
    _click_hooked.add(core.__name__)


def _run_wrapped(call: Callable[..., Any], prog: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    run = _start(prog)
    if run is None:
        return call(*args, **kwargs)
    base = _ctx.get()
    ctx = base._replace(trace_id=run.trace_id, span_id=run.span_id)
    code = 1
    try:
        with _ctx.use(ctx):
            result = call(*args, **kwargs)
        code = 0
        return result
    except SystemExit as exc:
        code = _core.exit_status_code(exc.code)
        raise
    except KeyboardInterrupt:
        code = 130
        raise
    except BaseException as exc:
        with guard():
            _capture(exc, run)
            # The exception leaves the program's main: the process exits 1 unless the program
            # catches it.  Noted here because typer replaces the interpreter's excepthook.
            client = _core._client
            if client is not None:
                client.exit_code = 1
        raise
    finally:
        if run in _current:  # a SIGTERM handler may have ended it already (finish_open_runs)
            _current.remove(run)
        _finish(run, code)


def _capture(exc: BaseException, run: Run) -> None:
    from clisight.client.errors import capture_exception

    capture_exception(exc, component="cli", command=run.path)
    # The interpreter's excepthook must not record it a second time (an exception type whose
    # attributes cannot be set is recorded twice, never lost).
    with contextlib.suppress(Exception):
        exc._clisight_captured = True  # type: ignore[attr-defined]


# -- argparse ---------------------------------------------------------------------------------------


def _instrument_argparse(parser: Any) -> None:
    _wrap_parser(parser, root=True)
    parser._clisight_instrumented = True


def _wrap_parser(parser: Any, root: bool) -> None:
    import argparse

    original = parser.parse_known_args

    def parse_known_args(args: Any = None, namespace: Any = None) -> Any:
        run = _current[-1] if _current else None
        if run is None and root:
            run = _start(parser.prog)
            if run is not None:
                _register_argparse_exit()
        if run is not None:
            with guard():
                given = sys.argv[1:] if args is None else list(args)
                run.note(str(parser.prog), list(parser._option_string_actions), given)
        return original(args, namespace)

    parser.parse_known_args = parse_known_args
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in {id(p): p for p in action.choices.values()}.values():
                _wrap_parser(sub, root=False)


_argparse_exit_registered = [False]


def _register_argparse_exit() -> None:
    if not _argparse_exit_registered[0]:
        _argparse_exit_registered[0] = True
        atexit.register(finish_open_runs)


def finish_open_runs() -> None:
    """End every run still going on with the process's exit code: at exit for argparse, whose
    parsers never see the command end, and on SIGTERM for every kind."""
    with guard():
        client = _core._client
        code = client.exit_code if client is not None and client.exit_code is not None else 0
        while _current:
            _finish(_current.pop(), code)


# -- a run's start and end --------------------------------------------------------------------------


def _start(prog: str) -> Run | None:
    client = _core._client
    if client is None or not client.usage:
        return None
    build = client.records
    run = Run(prog, build.clock(), build.new_trace_id(), build.new_span_id())
    run.startup = startup_seconds()
    _current.append(run)
    return run


def _finish(run: Run, code: int) -> None:
    with guard():
        client = _core._client
        if client is None or run.finished:
            return
        run.finished = True
        build = client.records
        end = build.clock()
        attrs: dict[str, Any] = {"command": run.path, "exit_code": code, "options": " ".join(run.options)}
        if run.help:
            attrs["help"] = True
        base = _ctx.get()
        parent = base._replace(span_id=None)
        status = _OK if code == 0 else _FAILED
        span = build.span(
            SPAN_PREFIX + run.path,
            run.start_ns,
            end,
            status,
            build.merge(base, attrs),
            parent,
            run.trace_id or build.new_trace_id(),
            run.span_id or build.new_span_id(),
        )
        client.emit(span)
        session: dict[str, Any] = {"command": run.path, "options": attrs["options"], "help": run.help}
        if run.startup is not None:
            session["startup_time"] = run.startup
        client.session_record(client.session_id, client.started_ns, attributes=session)


def startup_seconds() -> float | None:
    """Seconds from this process's start until now (Linux: ``/proc/self/stat`` against the boot
    clock, 10 ms resolution), or None where unknown."""
    try:
        with open("/proc/self/stat", "rb") as file:
            fields = file.read().rsplit(b")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of proc(5): ticks after boot
        seconds = time.clock_gettime(time.CLOCK_BOOTTIME) - started
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    return round(seconds, 3) if 0 <= seconds < 86_400 else None


__all__ = ["instrument", "options_used"]
