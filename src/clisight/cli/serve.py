"""``clisight serve``: receive OTLP/HTTP from any OpenTelemetry SDK (and Claude Code) into the store."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import pickle
import signal
import socket
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from clisight import _config
from clisight.cli._common import CommandError, FiniteFloatRange, open_store, resolve_store_url
from clisight.cli._text import clean

if TYPE_CHECKING:
    from collections.abc import Callable

    import uvicorn

    from clisight.pipeline.redact import Redactor
    from clisight.pipeline.writer import Pipeline

DEFAULT_PORT = 4318  # OTLP/HTTP's registered port
QUEUE_SIZE = 100_000  # records held for the writer: a few seconds of a busy collector
BATCH_SIZE = 2_048
# Received records are queryable within this (a busy receiver writes sooner: a batch is ready).
FLUSH_INTERVAL_S = 0.1
MAX_CONCURRENT = 64  # requests being read or decoded at once
MAX_DEFAULT_WORKERS = 4
STOP_GRACE_S = 3  # how long a stop waits for open requests (live-tail streams) before closing them


def _stopper(server: uvicorn.Server) -> Callable[[int, FrameType | None], None]:
    """SIGINT's and SIGTERM's handler around uvicorn's own: a signal before uvicorn takes over (while
    the server starts) stops it as soon as it has started, and the one uvicorn raises again when it
    has stopped is quiet, so the process lives on to write what it received."""

    def stop(signum: int, frame: FrameType | None) -> None:
        server.should_exit = True

    return stop


def _worker_count(workers: int | None) -> int:
    """How many worker processes: ``--workers``, else one per CPU (at most 4; none on one CPU)."""
    count = min(os.cpu_count() or 1, MAX_DEFAULT_WORKERS) if workers is None else workers
    return 0 if count < 1 or (workers is None and count < 2) else count


def _pool(count: int, redactor: Redactor) -> ProcessPoolExecutor | None:
    """``count`` processes that decode and map traces and logs, started now (so the first requests
    do not wait for them), or None to map in the server process."""
    if count < 1:
        return None
    import multiprocessing

    from clisight.server.otlp import start_worker

    try:
        pickle.dumps(redactor)
    except Exception:  # a redactor of the user's own that cannot travel: map in this process
        return None
    # spawn: the server already runs threads (the pipeline's writer), which fork would not copy.
    # A Ctrl-C reaches the whole process group: the workers are born with SIGINT blocked (here it
    # stays pending while they are spawned, then stops the start-up), so one still starting is not
    # killed by it with a traceback; the server decides when they stop.  (multiprocessing's
    # resource tracker is spawned the same way.)
    mask = getattr(signal, "pthread_sigmask", None)  # POSIX; elsewhere the workers are spawned as they are
    blocked = mask(signal.SIG_BLOCK, {signal.SIGINT}) if mask is not None else set()
    pool = None
    try:
        pool = ProcessPoolExecutor(count, multiprocessing.get_context("spawn"), start_worker, (redactor,))
        futures = [pool.submit(os.getpid) for _ in range(count)]  # each spawns a worker
        if mask is not None:
            mask(signal.SIG_SETMASK, blocked)
        for started in futures:
            started.result(timeout=60)
    except BaseException:
        if mask is not None:
            mask(signal.SIG_SETMASK, blocked)
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        raise
    return pool


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    """Whether ``host`` binds every interface (``0.0.0.0``, ``::``)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def public_name(host: str, allow_host: tuple[str, ...]) -> str | None:
    """The name other machines are told to use when ``host`` binds every interface: the first
    ``--allow-host`` name, else this machine's host name (None when it has none)."""
    if not is_wildcard(host):
        return None
    if allow_host:
        return allow_host[0]
    name = socket.gethostname().strip()
    return name if name and not is_loopback(name) else None


def banner(
    host: str, port: int, store: str, token: bool, ui_port: int | None = None, public: str | None = None
) -> str:
    """What serve prints on start: where it listens and the lines that point an SDK at it.  Bound
    to every interface, the URLs name ``public`` (see :func:`public_name`), which other machines
    can use, and a note says so; bound to one address, they name that address."""
    shown = f"[{host}]" if ":" in host else host
    note = []
    if is_wildcard(host):
        shown = (f"[{public}]" if ":" in public else public) if public else "127.0.0.1"
        note = [
            f"Listening on all interfaces ({host}); from this machine http://127.0.0.1:{port} works too,",
            "and another name or address of this machine needs --allow-host NAME."
            if public
            else "and other machines need its address and --allow-host ADDRESS (it has no host name).",
        ]
    endpoint = f"http://{shown}:{port}"
    auth = ["export OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20$CLISIGHT_TOKEN"] if token else []
    dashboard = f"http://{shown}:{ui_port if ui_port is not None else port}/"
    lines = [
        f"clisight serve: OTLP/HTTP (traces, logs, metrics) on {endpoint}/v1/..., into {store}",
        "",
        f"Dashboard: {dashboard}"
        + ("?token=$CLISIGHT_TOKEN (once; the browser keeps a cookie)" if token else ""),
        f"REST API:  {endpoint}/api/v1/",
        *note,
        "",
        "Point an OpenTelemetry SDK at it:",
        f"  export OTEL_EXPORTER_OTLP_ENDPOINT={endpoint}",
        "  export OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
        *(f"  {line}" for line in auth),
        "",
        "Claude Code's telemetry:",
        "  export CLAUDE_CODE_ENABLE_TELEMETRY=1",
        "  export OTEL_METRICS_EXPORTER=otlp",
        "  export OTEL_LOGS_EXPORTER=otlp",
        "  export OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
        f"  export OTEL_EXPORTER_OTLP_ENDPOINT={endpoint}",
        *(f"  {line}" for line in auth),
        "",
        "Ctrl-C stops the server after writing what it has received.",
    ]
    return "\n".join(lines)


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or a clear error (the port is taken, say)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host.strip("[]"), port), family=family, backlog=2048)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise CommandError(f"could not listen on {host}:{port} ({reason})") from None


def _alert_rules(config: _config.Config) -> Path | None:
    """The alert rules file to evaluate while serving, if it exists; a file with mistakes stops the
    server from starting (exit 2, each mistake shown) rather than failing in the background."""
    from clisight.cli.alerts import read_rules

    path = _config.alerts_path(config["alerts_file"])
    if not path.is_file():
        return None
    read_rules(path)
    return path


def _start_alerts(query: Any, path: Path | None, config: _config.Config) -> Any:
    """Evaluate the rules every ``alerts_interval`` seconds in the background (None: no rules)."""
    if path is None:
        return None
    from clisight.alerts.scheduler import AlertScheduler

    scheduler = AlertScheduler(
        query,
        path,
        config["alerts_interval"],
        server_url=config["server_url"],
        thresholds=_config.threshold_pairs(config["thresholds"]),
    )
    click.echo(f"clisight serve: alert rules {clean(path)}, every {config['alerts_interval']:g} s", err=True)
    return scheduler.start()


def _keep_cumulative(app: Any, query: Any) -> Any:
    """Take in the cumulative OTLP series the last serve on this store saved, and save them every
    few seconds and at stop (clisight.server.cumulative), so a restart counts no total twice."""
    from clisight.server.cumulative import CumulativeState

    state = CumulativeState(app.state.receiver.mapper, query)
    try:
        state.load()
    except Exception as exc:  # the store refused: serve goes on, as before the state was kept
        click.echo(f"clisight serve: cumulative series not loaded ({clean(str(exc))})", err=True)
    if state.unclean:
        click.echo(
            "clisight serve: the last serve on this store did not stop cleanly: a cumulative series"
            f" that grew in its last {state.interval:g} s counts that growth twice",
            err=True,
        )
    return state.start()


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on.  Anything but loopback needs --token.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="Port for OTLP/HTTP, the REST API and the dashboard (0: any free port, named in the banner).",
)
@click.option(
    "--store", metavar="URL", default=None, help="Store to write to (default: the configured store)."
)
@click.option(
    "--token",
    envvar="CLISIGHT_TOKEN",
    show_envvar=True,
    default=None,
    help="Require `Authorization: Bearer TOKEN` on every request.",
)
@click.option(
    "--allow-host",
    multiple=True,
    metavar="NAME",
    help="Another name clients may use in the Host header (localhost and the bind address always may).",
)
@click.option(
    "--max-body-mb",
    type=FiniteFloatRange(0.001, 1024),
    default=20.0,
    show_default=True,
    help="Largest request body, counted after decompression.",
)
@click.option(
    "--ui-port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Also serve the dashboard (and everything else) on this port, e.g. 8080.",
)
@click.option(
    "--workers",
    type=click.IntRange(0, 64),
    default=None,
    help="Processes that decode and map OTLP traces and logs (default: one per CPU, at most 4;"
    " 0: all in the server process).",
)
@click.option(
    "--expose",
    multiple=True,
    metavar="METRIC",
    help="Serve this counter or gauge on /metrics too (besides those marked expose=True and the"
    " expose_metrics setting): for metrics received over OTLP.",
)
def serve(
    host: str,
    port: int,
    store: str | None,
    token: str | None,
    allow_host: tuple[str, ...],
    max_body_mb: float,
    ui_port: int | None,
    workers: int | None,
    expose: tuple[str, ...],
) -> None:
    """Receive OpenTelemetry data (OTLP/HTTP, protobuf or JSON) into the store.

    Any OpenTelemetry SDK, the OpenTelemetry Collector and Claude Code can send traces, logs and
    metrics to /v1/traces, /v1/logs and /v1/metrics.  Records are scrubbed of secrets like the
    client's own, then written in batches; when the write queue is full the server answers 429 and
    the sender retries.  Binds 127.0.0.1 unless --host says otherwise.

    The web dashboard and the REST API (/api/v1) are served on the same port; --ui-port adds a
    second port for them (the seed's dashboard on 8080).  With --token, open the dashboard once as
    http://HOST:PORT/?token=TOKEN: the browser keeps a login cookie.

    \b
    Examples:
      clisight serve                           127.0.0.1:4318, the configured store
      clisight serve --store sqlite:///team.db --port 4319
      clisight serve --ui-port 8080            the dashboard on :8080 as well
      CLISIGHT_TOKEN=... clisight serve --host 0.0.0.0 --allow-host otel.internal
    """
    # Until it serves, Ctrl-C (or SIGTERM) stops the start-up where it is: what was opened is closed,
    # one line says so, and the status is 0, as for a Ctrl-C once it serves (not click's "Aborted!").
    quiet = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with contextlib.ExitStack() as starting:
            started = _start(
                starting, host, port, store, token, allow_host, max_body_mb, ui_port, workers, expose
            )
            starting.pop_all()  # serving: _serve closes them
    except KeyboardInterrupt:
        for sig, handler in quiet.items():
            signal.signal(sig, handler)
        click.echo("clisight serve: stopped while starting; nothing was received", err=True)
        return
    except BaseException:
        for sig, handler in quiet.items():
            signal.signal(sig, handler)
        raise
    _serve(started, quiet)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGINT's and SIGTERM's handler while serve starts: stop starting (a second signal, while
    what was opened is closed, is ignored)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt


@dataclass
class _Started:
    """What serve runs with once started."""

    server: uvicorn.Server
    sockets: list[socket.socket]
    host: str
    port: int
    query: Any
    pipeline: Pipeline
    app: Any
    pool: ProcessPoolExecutor | None
    cumulative: Any  # clisight.server.cumulative's saver, running
    scheduler_start: Callable[[], Any]


def _start(
    starting: contextlib.ExitStack,
    host: str,
    port: int,
    store: str | None,
    token: str | None,
    allow_host: tuple[str, ...],
    max_body_mb: float,
    ui_port: int | None,
    workers: int | None,
    expose: tuple[str, ...],
) -> _Started:
    """Listen, open the store, start the worker processes and the write pipeline, print the banner;
    each thing opened is closed by ``starting`` if the start-up stops half-way."""
    try:
        import jinja2  # noqa: F401  (the dashboard's templates; checked here for a clear message)
        import uvicorn

        from clisight.server.app import create_app
    except ImportError as exc:
        raise CommandError(
            f"clisight serve needs the server extra ({exc.name} is missing): pip install 'clisight[server]'"
        ) from None
    from clisight.pipeline.redact import redactor_from_config
    from clisight.pipeline.store_sink import StoreSink
    from clisight.pipeline.writer import Pipeline

    if not is_loopback(host) and not token:
        raise click.UsageError(
            f"--host {host} accepts connections from other machines: give --token (or CLISIGHT_TOKEN)"
        )
    # Listen on the port (and the dashboard's) before anything opens or prints: a taken port is one
    # clear error, not uvicorn's log line after the banner; port 0 is known for the banner.
    sockets = [starting.enter_context(_listen(host, port))]
    if ui_port is not None and ui_port != port:
        sockets.append(starting.enter_context(_listen(host, ui_port)))
    port = int(sockets[0].getsockname()[1])
    public = public_name(host, allow_host)  # the name the banner gives other machines; allowed as Host
    url = resolve_store_url(store)
    count = _worker_count(workers)
    click.echo(
        f"clisight serve: starting on {host}:{port}"
        + (f" with {count} worker processes" if count else "")
        + " (Ctrl-C stops it)...",
        err=True,
    )
    # A bad scheme, an unreachable server or another program's file fails here, cleanly.
    opened = open_store(url, must_exist=False, writes=True)
    starting.callback(opened.query.close)
    shown_url = opened.query.url
    config = _config.resolve({"store": url})
    rules_path = _alert_rules(config)
    sink = StoreSink.from_config(url, config)
    from clisight.query.exposed import ExposedMetrics

    redactor = redactor_from_config(config)
    pool = _pool(count, redactor)
    if pool is not None:
        starting.callback(pool.shutdown, wait=True, cancel_futures=True)
    pipeline = Pipeline([sink], queue_size=QUEUE_SIZE, batch_size=BATCH_SIZE, flush_interval=FLUSH_INTERVAL_S)
    starting.callback(pipeline.shutdown, timeout=10)
    app = create_app(
        pipeline,
        redactor,
        max_body=int(max_body_mb * 1024 * 1024),
        token=token,
        allowed_hosts=[host, *allow_host, *([public] if public else [])],
        pipeline_stats=pipeline.stats,
        query=opened.query,
        exposed=ExposedMetrics(opened.query, [*config["expose_metrics"], *expose]),
        pool=pool,
        span_rows=True,  # the pipeline's one sink is the store, and every store takes SpanRows
    )
    cumulative = _keep_cumulative(app, opened.query)  # before the first request
    starting.callback(cumulative.stop, timeout=5)
    # At most MAX_CONCURRENT requests in flight (uvicorn answers 503 beyond): with the body limit and
    # the bounded write queue, the server's memory has a ceiling whatever the clients do.
    config_ = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        lifespan="off",
        limit_concurrency=MAX_CONCURRENT,
        # Open live-tail streams (Server-Sent Events) would hold a graceful stop forever.
        timeout_graceful_shutdown=STOP_GRACE_S,
    )
    server = uvicorn.Server(config_)
    # uvicorn stops gracefully on SIGINT/SIGTERM, then raises the signal again with the handlers it
    # found in place: these, so the process lives on to write what it received, then exits 0.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _stopper(server))
    click.echo(clean(banner(host, port, shown_url, bool(token), ui_port, public), multiline=True), err=True)
    return _Started(
        server,
        sockets,
        host,
        port,
        opened.query,
        pipeline,
        app,
        pool,
        cumulative,
        lambda: _start_alerts(opened.query, rules_path, config),
    )


def _serve(started: _Started, quiet: dict[signal.Signals, Any]) -> None:
    """Serve until a signal; then write what was received and say what was stored."""
    server, pipeline, pool = started.server, started.pipeline, started.pool
    scheduler = started.scheduler_start()
    try:
        server.run(sockets=started.sockets)
    except SystemExit:  # uvicorn's own exit when it cannot start (the port is taken, say)
        pass
    finally:
        for sig, handler in quiet.items():
            signal.signal(sig, handler)
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)  # requests have been answered by now
        if scheduler is not None:
            scheduler.stop(timeout=5)
        started.cumulative.stop(timeout=5)  # after the last request: nothing changes the series any more
        started.query.close()
        finished = pipeline.shutdown(timeout=10)
        [stats] = pipeline.stats()
        receiver = started.app.state.receiver
        click.echo(
            f"clisight serve: stopped; {sum(receiver.stats.accepted.values())} records accepted, "
            f"{stats.stored} stored, {stats.dropped} dropped, {stats.spooled} spooled"
            + ("" if finished else " (the store did not finish in 10 s)"),
            err=True,
        )
    if not server.started:
        raise CommandError(f"could not listen on {started.host}:{started.port} (in use, or not allowed)")
