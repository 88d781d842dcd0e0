"""``clisight serve``: receive OTLP/HTTP from any OpenTelemetry SDK (and Claude Code) into the store."""

from __future__ import annotations

import ipaddress
import signal
from pathlib import Path
from types import FrameType
from typing import Any

import click

from clisight import _config
from clisight.cli._common import CommandError, open_store, resolve_store_url
from clisight.cli._text import clean

DEFAULT_PORT = 4318  # OTLP/HTTP's registered port
QUEUE_SIZE = 100_000  # records held for the writer: a few seconds of a busy collector
BATCH_SIZE = 2_048
MAX_CONCURRENT = 64  # requests being read or decoded at once


def _ignore(signum: int, frame: FrameType | None) -> None:
    """Stands in for SIGINT's and SIGTERM's handlers while uvicorn runs (it handles them itself)."""


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def banner(host: str, port: int, store: str, token: bool) -> str:
    shown = f"[{host}]" if ":" in host else host
    if shown in ("0.0.0.0", "[::]"):
        shown = "127.0.0.1"
    endpoint = f"http://{shown}:{port}"
    auth = ["export OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20$CLISIGHT_TOKEN"] if token else []
    lines = [
        f"clisight serve: OTLP/HTTP (traces, logs, metrics) on {endpoint}/v1/..., into {store}",
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


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on.  Anything but loopback needs --token.",
)
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True)
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
    type=click.FloatRange(0.001, 1024),
    default=20.0,
    show_default=True,
    help="Largest request body, counted after decompression.",
)
def serve(
    host: str,
    port: int,
    store: str | None,
    token: str | None,
    allow_host: tuple[str, ...],
    max_body_mb: float,
) -> None:
    """Receive OpenTelemetry data (OTLP/HTTP, protobuf or JSON) into the store.

    Any OpenTelemetry SDK, the OpenTelemetry Collector and Claude Code can send traces, logs and
    metrics to /v1/traces, /v1/logs and /v1/metrics.  Records are scrubbed of secrets like the
    client's own, then written in batches; when the write queue is full the server answers 429 and
    the sender retries.  Binds 127.0.0.1 unless --host says otherwise.

    \b
    Examples:
      clisight serve                           127.0.0.1:4318, the configured store
      clisight serve --store sqlite:///team.db --port 4319
      CLISIGHT_TOKEN=... clisight serve --host 0.0.0.0 --allow-host otel.internal
    """
    try:
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
    url = resolve_store_url(store)
    opened = open_store(url, must_exist=False)  # an unknown scheme or unreachable server fails here, cleanly
    shown_url = opened.query.url
    config = _config.resolve({"store": url})
    rules_path = _alert_rules(config)
    sink = StoreSink.from_config(url, config)
    pipeline = Pipeline([sink], queue_size=QUEUE_SIZE, batch_size=BATCH_SIZE)
    app = create_app(
        pipeline,
        redactor_from_config(config),
        max_body=int(max_body_mb * 1024 * 1024),
        token=token,
        allowed_hosts=[host, *allow_host],
        pipeline_stats=pipeline.stats,
        query=opened.query,
    )
    # At most MAX_CONCURRENT requests in flight (uvicorn answers 503 beyond): with the body limit and
    # the bounded write queue, the server's memory has a ceiling whatever the clients do.
    config_ = uvicorn.Config(
        app, host=host, port=port, log_level="warning", lifespan="off", limit_concurrency=MAX_CONCURRENT
    )
    server = uvicorn.Server(config_)
    click.echo(clean(banner(host, port, shown_url, bool(token)), multiline=True), err=True)
    scheduler = _start_alerts(opened.query, rules_path, config)
    # uvicorn stops gracefully on SIGINT/SIGTERM, then raises the signal again with the handlers it
    # found in place: quiet ones, so the process lives on to write what it received, then exits 0.
    quiet = {sig: signal.signal(sig, _ignore) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run()
    except SystemExit:  # uvicorn's own exit when it cannot start (the port is taken, say)
        pass
    finally:
        for sig, handler in quiet.items():
            signal.signal(sig, handler)
        if scheduler is not None:
            scheduler.stop(timeout=5)
        opened.query.close()
        finished = pipeline.shutdown(timeout=10)
        [stats] = pipeline.stats()
        receiver = app.state.receiver
        click.echo(
            f"clisight serve: stopped; {sum(receiver.stats.accepted.values())} records accepted, "
            f"{stats.stored} stored, {stats.dropped} dropped, {stats.spooled} spooled"
            + ("" if finished else " (the store did not finish in 10 s)"),
            err=True,
        )
    if not server.started:
        raise CommandError(f"could not listen on {host}:{port} (in use, or not allowed)")
