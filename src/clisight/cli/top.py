"""``clisight top``: the terminal dashboard (``clisight.tui.app``), refreshed every few seconds."""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING, Any, Final

import click
from rich.console import Group
from rich.panel import Panel
from rich.text import Text

from clisight._terminal import clean
from clisight.cli._common import TEXT, CommandError, FiniteFloatRange, console, open_store, store_option

if TYPE_CHECKING:
    _FloatParam = click.ParamType[float, Any]
else:  # click's ParamType is generic only for type checkers in recent versions
    _FloatParam = click.ParamType

_DURATION: Final = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d)?$")
_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
TUI_HINT: Final = "clisight top needs Textual: pip install 'clisight[tui]'"


class Duration(_FloatParam):
    """``90s``, ``15m``, ``2h``, ``1d`` or a number of seconds."""

    name = "DURATION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, int | float):
            return float(value)
        match = _DURATION.match(str(value).strip().lower())
        if match is None:
            self.fail(f"{value!r} is not a duration: expected 90s, 15m, 2h, 1d or seconds", param, ctx)
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2) or "s"]
        if not 60 <= seconds <= 90 * 86_400:
            self.fail(f"{value!r}: the window must be between 1 minute and 90 days", param, ctx)
        return seconds


EPILOG = """\b
Examples:
  clisight top                          the configured store, refreshed every 5 s
  clisight top --store /tmp/demo.db --window 1h --service claude-cli
  clisight top --once                   print the dashboard once and exit (scripts, pipes)

\b
Keys: 1-5 or tab switch panels (overview, errors, alerts, resources, active runs),
s cycles the service filter, a shows all services, r refreshes, ? help, q quits.
Works over SSH and in an 80x24 terminal; values from the store are shown escaped.
"""


@click.command(epilog=EPILOG)
@store_option
@click.option(
    "--service", type=TEXT, default=None, metavar="NAME", help="Start filtered to this service (s cycles)."
)
@click.option(
    "--interval",
    type=FiniteFloatRange(0.5, 3600),
    default=5.0,
    show_default=True,
    help="Seconds between refreshes.",
)
@click.option(
    "--window",
    type=Duration(),
    default="15m",
    show_default=True,
    help="How far back rates, error rate, latency and errors look (90s, 15m, 2h, 1d).",
)
@click.option(
    "--host/--no-host",
    "host",
    default=None,
    help="Also show this machine's CPU and memory (psutil); default: on for a local store file.",
)
@click.option("--once", is_flag=True, help="Print the dashboard once as text and exit (no Textual needed).")
def top(
    store: str | None, service: str | None, interval: float, window: float, host: bool | None, once: bool
) -> None:
    """Live terminal dashboard: CPU and memory, events/s, active runs, error rate, p95 by command,
    cost today, recent errors and firing alerts, refreshed every --interval seconds."""
    opened = open_store(store)
    try:
        # A store that cannot be read at all is an error now, as for every report; later failures
        # (a store replaced or locked while it runs) show in the dashboard, which keeps running.
        opened.query.tail(n=1)
        watch_host = host if host is not None else opened.path is not None or opened.query.url == "memory://"
        if once:
            _print_once(opened.query, service, window, watch_host)
            return
        try:
            from clisight.tui.app import TopApp
        except ImportError as error:
            raise CommandError(f"{TUI_HINT} ({error})") from None
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            raise CommandError("clisight top needs a terminal; use --once to print the dashboard once")
        TopApp(opened.query, interval=interval, window_s=window, service=service, host=watch_host).run()
    finally:
        opened.query.close()


def _print_once(query: Any, service: str | None, window: float, watch_host: bool) -> None:
    from clisight.tui import panels
    from clisight.tui._data import load
    from clisight.tui._host import HostSampler

    data = load(query, service, window, HostSampler() if watch_host else None)
    out = console()
    if data.problem:
        raise CommandError(data.problem)
    out.print(
        Text.assemble(
            ("clisight top", "bold"),
            f"  service {clean(service) if service else 'all'}  last {panels.span(window)}",
        )
    )
    out.print(panels.summary(data))
    out.print(
        Group(
            *(
                Panel(render(data), title=panels.TITLES[name], title_align="left", border_style="blue")
                for name, render in panels.RENDERERS.items()
            )
        )
    )
