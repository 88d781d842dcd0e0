"""The client: configuration, resource, redactor and pipeline of one process, and its lifecycle.

``init()`` is idempotent and cheap: it resolves configuration, builds the sinks (which open
their files lazily, in the writer thread) and registers the exit hooks.  Everything that runs
inside the host program at exit or on a signal goes through the never-raise guard.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, NoReturn

from clisight import _config
from clisight._fork import CLIENT, register_fork_steps
from clisight._safety import guard, internal_errors, last_internal_error
from clisight.client import context as _ctx
from clisight.client.records import RecordBuilder
from clisight.pipeline.base import Sink
from clisight.pipeline.redact import PatternRedactor, Redactor, redactor_from_config
from clisight.pipeline.writer import Pipeline, SinkStats
from clisight.types import Record, Resource


def store_url(value: str) -> str | None:
    """The store URL the ``store`` parameter asks for; None for 'none' (no store)."""
    if value.strip().lower() in ("none", "off", "false"):
        return None
    return value or str(_config.default_store_path())


class Client:
    """One process's clisight: holds what every record needs and where records go."""

    def __init__(self, config: _config.Config, sinks: list[Sink] | None = None) -> None:
        self.config = config
        self.resource = Resource(
            service=config["service"] or _program_name(),
            version=config["version"],
            host=os.uname().nodename,
            pid=os.getpid(),
        )
        self.level: int = config["level"]
        self.usage: bool = config["usage"] and not config["disabled"]
        self.redactor: Redactor = redactor_from_config(config)
        # The redactor's message cache (an empty dict when redaction is off), read by the hot path.
        self.redaction_cache: dict[str, str] = getattr(self.redactor, "cache", {})
        self.store_url = store_url(config["store"])
        if sinks is None:
            sinks = self._default_sinks()
        self.pipeline = Pipeline(
            sinks,
            queue_size=config["queue_size"],
            batch_size=config["batch_size"],
            flush_interval=config["flush_interval"],
            overflow=config["overflow"],
            block_timeout=config["block_timeout"],
            spool_max_bytes=config["spool_max_bytes"],
        )
        self.emit = self.pipeline.emit  # bound once: the hot path's last step
        # Builds every record of this client; its clock and id source are injectable.
        self.records = RecordBuilder(self.resource, self.redactor)
        self.exit_timeout: float = config["exit_timeout"]
        self.session_id = _ctx.new_session_id()
        self.exit_code: int | None = None
        self.forked = False  # a forked child does not end its parent's session
        self.started_ns = time.time_ns()
        # The last log records and spans of the process, sent along with a captured error.
        self.breadcrumbs: deque[Record] = deque(maxlen=config["breadcrumbs"])
        self.command = _program_name()
        # Operation name or type -> limit (seconds; memory_usage: MB) that raises an alert.
        self.thresholds: dict[str, float] = _config.threshold_pairs(config["thresholds"])
        # Run before every flush (metric instruments hand over what they aggregated) and at
        # shutdown (background samplers stop; then the flush steps run once more).
        self.flush_steps: list[Callable[[], None]] = []
        self.stop_steps: list[Callable[[], None]] = []

    def run_steps(self, steps: list[Callable[[], None]]) -> None:
        """Run each step inside the never-raise guard; one that fails does not stop the others."""
        for step in list(steps):
            with guard():
                step()

    def _default_sinks(self) -> list[Sink]:
        sinks: list[Sink] = []
        store_file: Path | None = None
        if self.store_url:
            from clisight.exceptions import ConfigWarning, UnsupportedStoreURL
            from clisight.pipeline.store_sink import StoreSink

            try:
                sinks.append(StoreSink.from_config(self.store_url, self.config))
            except UnsupportedStoreURL as error:
                if self.config.source("store") in ("keyword argument", "default"):
                    raise  # the program's own code chose it
                # An end user's stray CLISIGHT_STORE must not stop the program: default store, and say so.
                import warnings

                warnings.warn(
                    f"clisight: {error} (from {self.config.source('store')}); using the default store",
                    ConfigWarning,
                    stacklevel=4,
                )
                self.store_url = str(_config.default_store_path())
                sinks.append(StoreSink.from_config(self.store_url, self.config))
            store_file = next((s.file for s in sinks if isinstance(s, StoreSink)), None)
        if self.config["otlp_endpoint"]:
            import hashlib

            from clisight.pipeline.otlp import OtlpHttpSink
            from clisight.pipeline.spool import spool_dir_for

            endpoint = self.config["otlp_endpoint"].strip()
            digest = hashlib.sha256(endpoint.encode()).hexdigest()[:16]
            spool = spool_dir_for(_config.default_store_path().parent / f"otlp-{digest}")
            sinks.append(OtlpHttpSink(None if endpoint == "env" else endpoint, spool_dir=spool))
        if self.config["jsonl_path"] and not self._jsonl_is_the_store(store_file):
            from clisight.pipeline.jsonl import JsonlSink

            sinks.append(
                JsonlSink(
                    Path(self.config["jsonl_path"]),
                    max_bytes=self.config["jsonl_max_bytes"],
                    backups=self.config["jsonl_backups"],
                    gzip=self.config["jsonl_gzip"],
                )
            )
        return sinks

    def _jsonl_is_the_store(self, store: Path | None) -> bool:
        """jsonl_path naming the store's file (or the -wal, -shm or -journal SQLite keeps beside it)
        would append JSON lines into the database: refused, raising when the program's own code set
        it, else with a warning (no JSON lines; the store works)."""
        from clisight.exceptions import ConfigError, ConfigWarning

        if store is None:
            return False
        jsonl = os.path.realpath(Path(self.config["jsonl_path"]).expanduser())
        base = os.path.realpath(store)
        if jsonl not in {base + suffix for suffix in ("", "-wal", "-shm", "-journal")}:
            return False
        source = self.config.source("jsonl_path")
        allowed = "a file other than the store and its SQLite files"
        problem = ConfigError("jsonl_path", source, self.config["jsonl_path"], allowed)
        if source == "keyword argument":
            raise problem
        import warnings

        warnings.warn(f"clisight: {problem}; no JSON lines are written", ConfigWarning, stacklevel=5)
        return True

    def session_record(
        self,
        session_id: str,
        start_ns: int,
        end_ns: int | None = None,
        user_id: str | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> None:
        """Record what is known of a session (nothing under DO_NOT_TRACK or ``usage=False``)."""
        if self.usage:
            self.emit(self.records.session(session_id, start_ns, end_ns, attributes or {}, user_id))


_client: Client | None = None
_lock = threading.RLock()
_hooks_installed = [False]


def get_client() -> Client | None:
    return _client


def init(
    service: str | None = None,
    version: str | None = None,
    store: str | os.PathLike[str] | None = None,
    *,
    sinks: list[Sink] | None = None,
    **config: Any,
) -> Client:
    """Start clisight in this process and return its client.  Idempotent: a second call returns the
    first client unchanged (libraries may call it; the application's first call wins).

    ``store`` is a URL (``sqlite:///path``, ``memory://``), a path, or ``"none"``; by default the
    SQLite file in the user's data directory.  Other keyword arguments are the parameters of the
    configuration table (``clisight doctor`` lists them); ``sinks`` replaces the configured sinks
    (``clisight.testing.MemorySink`` in tests).

    An invalid value from the environment or ``pyproject.toml`` does not stop the program: it is
    reported as a :class:`~clisight.exceptions.ConfigWarning` and the parameter keeps its default.
    An invalid keyword argument (the program's own code) raises :class:`~clisight.exceptions.ConfigError`.
    """
    global _client
    with _lock:
        if _client is not None:
            return _client
        kwargs = dict(
            config, service=service, version=version, store=os.fspath(store) if store is not None else None
        )
        resolved = _config.resolve(kwargs, strict=False)
        if resolved.problems:
            import warnings

            from clisight.exceptions import ConfigWarning

            for problem in resolved.problems:
                warnings.warn(f"clisight: {problem}; using the default", ConfigWarning, stacklevel=2)
        if resolved["disabled"]:
            sinks = []
        client = Client(resolved, sinks)
        _client = client
        # Under DO_NOT_TRACK no record carries the run's session: the store would make a sessions row of it.
        _ctx.process_default[0] = _ctx.Context(session_id=client.session_id if client.usage else None)
        with guard():  # started by a traced process (TRACEPARENT): this run's spans join its trace
            from clisight.client.propagation import continue_from_env

            continue_from_env()
        _install_hooks(client)
        with guard():
            from clisight.client.resources import start_for

            start_for(client)
        if client.config["capture_warnings"]:
            from clisight.client.stdlib import capture_warnings

            capture_warnings(True)
        client.session_record(client.session_id, client.started_ns, attributes=_run_shape())
        return client


def flush(timeout: float = 1.0) -> bool:
    """Write everything queued so far; True if it was all handed to the sinks within ``timeout``."""
    client = _client
    if client is None:
        return True
    with guard():
        client.run_steps(client.flush_steps)
        return client.pipeline.flush(_seconds(timeout, 1.0))
    return False


def _seconds(timeout: object, default: float) -> float:
    """A timeout any caller may pass (None, nan, inf, negative, text) as seconds a wait can take."""
    try:
        seconds = float(timeout)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return default
    if seconds != seconds or seconds < 0:  # nan, negative: do not wait
        return 0.0
    return min(seconds, 24 * 3600.0)  # inf: a day stands for "as long as it takes"


def shutdown(timeout: float | None = None) -> bool:
    """Close the run's session, flush within ``timeout`` (default ``exit_timeout``) and stop.

    After shutdown, logging calls are ignored until ``init()`` is called again.
    """
    global _client
    with _lock:
        client = _client
        if client is None:
            return True
        _client = None
        _ctx.process_default[0] = _ctx.EMPTY
    ok = False
    with guard():
        client.run_steps(client.stop_steps)
        client.run_steps(client.flush_steps)
        end = time.time_ns()
        if not client.forked:
            # The run's own counters travel with its session, so `clisight doctor` (another process)
            # can report drops; records dropped during this last flush are not in them.
            stats = client.pipeline.stats()
            counters: dict[str, Any] = {
                "pipeline.emitted": sum(s.emitted for s in stats),
                "pipeline.dropped": sum(s.dropped for s in stats),
                "pipeline.errors": sum(s.errors for s in stats),
            }
            client.session_record(
                client.session_id,
                client.started_ns,
                end,
                attributes={
                    **counters,
                    "exit_code": client.exit_code,
                    "duration": (end - client.started_ns) / 1e9,
                },
            )
        ok = client.pipeline.shutdown(
            client.exit_timeout if timeout is None else _seconds(timeout, client.exit_timeout)
        )
    return ok


def pipeline_stats() -> dict[str, Any]:
    """Counters per sink (emitted, stored, dropped, errors, queue depth) and internal errors."""
    client = _client
    sinks: list[SinkStats] = client.pipeline.stats() if client else []
    return {
        "sinks": {s.sink: s.as_dict() for s in sinks},
        "internal_errors": internal_errors(),
        "last_internal_error": last_internal_error(),
        "redactions": client.redactor.hits if client and isinstance(client.redactor, PatternRedactor) else 0,
    }


def _program_name() -> str:
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else "python"
    name = os.path.basename(argv0)
    if name == "__main__.py":  # python -m package: the package is the program
        return os.path.basename(os.path.dirname(os.path.abspath(argv0))) or "python"
    if name in ("-c", "-m", "") or name.endswith(".py"):
        return name.removesuffix(".py") or "python"
    return name


def _argv_shape(args: list[str]) -> str:
    """Flag names and ``<arg>`` placeholders: ``--token=abc`` -> ``--token``, ``-pSECRET`` -> ``-p``."""
    shape: list[str] = []
    options = True
    for arg in args:
        if not options or not arg.startswith("-") or arg == "-":
            shape.append("<arg>")
        elif arg == "--":
            shape.append(arg)
            options = False  # everything after "--" is a value
        elif arg.startswith("--"):
            name = arg.split("=", 1)[0]
            shape.append(name if _is_flag_name(name[2:]) else "<arg>")
        else:
            # A short option may carry its value glued on (-pSECRET): keep its letter only.
            shape.append(arg[:2] if _is_flag_name(arg[1]) else "<arg>")
    return " ".join(shape)[:500]


def _is_flag_name(name: str) -> bool:
    # "dry-run", "v": a name a program declares; "alice@example.com" or "5" is a value, never stored.
    return (
        0 < len(name) <= 64
        and name.isascii()
        and name[0].isalpha()
        and name.replace("-", "").replace("_", "").replace(".", "").isalnum()
    )


def _run_shape() -> dict[str, Any]:
    """The command and the shape of argv (flag names, not values) of this run.

    The command is the program name only: without the program's command tree a subcommand cannot
    be told from a value (``mycli alice@example.com``), so argv words are never stored;
    ``clisight.set_command()`` names the command path.
    """
    return {
        "command": _program_name(),
        "argv_shape": _argv_shape(sys.argv[1:]),
        "tty": sys.stdout.isatty() if sys.stdout else False,
        "ci": bool(os.environ.get("CI")),
        "python": ".".join(map(str, sys.version_info[:3])),
        "os": sys.platform,
    }


# --- exit, uncaught exceptions and SIGTERM --------------------------------------------------------


def _at_exit() -> None:
    with guard():
        current = _client
        if current is not None and current.exit_code is None and not current.forked:
            current.exit_code = 0  # no sys.exit, no uncaught exception: the program returned
        shutdown()


def exit_status_code(status: object) -> int:
    """The process exit code ``sys.exit(status)`` gives, as the interpreter computes it."""
    if status is None:
        return 0
    if isinstance(status, int):
        return status & 0xFF  # as the operating system keeps it: exit(256) is 0, exit(-1) is 255
    return 1  # a message is printed and the process exits 1


def _install_hooks(client: Client) -> None:
    if _hooks_installed[0]:
        return
    _hooks_installed[0] = True
    atexit.register(_at_exit)
    previous_hook = sys.excepthook

    def excepthook(tp: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        with guard():
            current = _client
            if current is not None:
                if isinstance(value, KeyboardInterrupt):
                    # Ctrl-C is the user's choice, not a bug.  The interpreter then dies of SIGINT
                    # (the shell sees 130) when Python's own handler is installed, else exits 1.
                    python_handles = signal.getsignal(signal.SIGINT) is signal.default_int_handler
                    current.exit_code = 128 + signal.SIGINT if python_handles else 1
                else:
                    current.exit_code = 1
                    from clisight.client.errors import capture_uncaught

                    if not getattr(value, "_clisight_captured", False):  # instrument() recorded it
                        capture_uncaught(value, "uncaught")
        previous_hook(tp, value, tb)

    sys.excepthook = excepthook
    previous_thread_hook = threading.excepthook

    def thread_excepthook(args: Any) -> None:
        with guard():
            exc = args.exc_value
            if _client is not None and isinstance(exc, Exception):  # not SystemExit: a thread's way out
                from clisight.client.errors import capture_uncaught

                capture_uncaught(exc, "uncaught.thread")
        previous_thread_hook(args)

    threading.excepthook = thread_excepthook
    with guard():
        asyncio = sys.modules.get("asyncio")  # a loop is running only if asyncio is loaded
        if asyncio is not None and asyncio._get_running_loop() is not None:
            from clisight.client.errors import install_asyncio_handler

            install_asyncio_handler()
    # atexit cannot see the status of sys.exit(n): the interpreter has consumed the SystemExit by
    # then.  So sys.exit notes it on its way (argparse, click and typer all exit through it).
    original_exit = sys.exit

    def exit(status: str | int | None = None) -> NoReturn:
        with guard():
            current = _client
            if current is not None and threading.current_thread() is threading.main_thread():
                current.exit_code = exit_status_code(status)
        original_exit(status)

    exit.__doc__ = original_exit.__doc__
    sys.exit = exit
    if client.config["handle_sigterm"] and threading.current_thread() is threading.main_thread():
        with guard():
            if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
                signal.signal(signal.SIGTERM, _on_sigterm)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Flush within the deadline, then die of SIGTERM as the program would have without us.
    with guard():
        current = _client
        if current is not None:
            current.exit_code = 128 + signum
            # A command of clisight.instrument still running never reaches its own end: end it here.
            instrument = sys.modules.get("clisight.client.instrument")
            if instrument is not None:
                instrument.finish_open_runs()
        shutdown()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _after_fork_in_child() -> None:
    client = _client
    if client is not None:
        # The child is a run of its own: new pid in the resource, same session (it serves the same command).
        client.resource = Resource(
            client.resource.service,
            client.resource.version,
            client.resource.host,
            os.getpid(),
            client.resource.sdk,
        )
        client.records.resource = client.resource
        client.forked = True
        # multiprocessing's children leave by os._exit, which skips atexit; they run multiprocessing's
        # finalizers instead.  Its bootstrap clears the finalizers it inherited and then runs its
        # after-fork callbacks, so the finalizer is registered from one of those.
        mp_util = sys.modules.get("multiprocessing.util")
        if mp_util is not None:
            mp_util.register_after_fork(client, _register_mp_finalizer)


def _register_mp_finalizer(client: Client) -> None:
    mp_util = sys.modules["multiprocessing.util"]
    mp_util.Finalize(None, _at_exit, exitpriority=100)


register_fork_steps(CLIENT, after_in_child=_after_fork_in_child)

__all__ = ["Client", "flush", "get_client", "init", "pipeline_stats", "shutdown"]
