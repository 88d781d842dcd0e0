"""``clisight top``: a Textual app showing what a store's programs are doing now.

Layout (fits 80x24): a title line (store, service filter, window, last refresh), two lines of key
numbers (CPU and memory, events/s, logs/s, active runs, error rate, cost today, firing alerts), the
panel bar, one panel, and the key footer.  Keys: ``1``-``5`` or ``tab`` switch panels
(overview: p95 by command; errors; alerts; resources; active runs), ``s`` cycles the service
filter, ``a`` shows all services again, ``r`` refreshes now, ``?`` shows help, ``q`` quits.

Reads run in a worker thread every ``interval`` seconds (default 5), so a slow store never freezes
the keys; only the finished :class:`~clisight.tui._data.TopData` is handed to the screen.  Textual
draws with ordinary terminal sequences (no mouse or true colour needed), so it works over SSH.
"""

from __future__ import annotations

import contextlib
from typing import ClassVar, Final

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.css.query import NoMatches
from textual.widgets import ContentSwitcher, Footer, Static

from clisight._terminal import clean
from clisight.query import Query
from clisight.tui import panels
from clisight.tui._data import TopData, load
from clisight.tui._host import HostSampler

DEFAULT_INTERVAL: Final = 5.0

HELP: Final = """\
clisight top: what the programs writing to this store are doing now.

  1 Overview    p95 latency by command (and other operations) in the window
  2 Errors      newest exceptions and ERROR/CRITICAL log lines
  3 Alerts      firing alert rules and slow-operation threshold breaches
  4 Resources   sampled CPU, memory, threads, files; this host via psutil
  5 Active      runs started and not ended yet (from their session rows)
  tab           next panel
  s             next service (filter), a  all services
  r             refresh now, q  quit, ?  this help

Numbers cover the last WINDOW (--window); cost is since local midnight."""


class TopApp(App[None]):
    """The ``clisight top`` app over one open :class:`~clisight.query.Query` (not closed by it)."""

    TITLE = "clisight top"
    ENABLE_COMMAND_PALETTE = False
    CSS = """
    Screen { layout: vertical; }
    #title { height: 1; background: $primary-background; color: $text; }
    #summary { height: 2; }
    #tabs { height: 1; }
    ContentSwitcher { height: 1fr; }
    VerticalScroll { height: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("tab", "next_panel", "Panel", priority=True),
        Binding("1", "show('overview')", "Overview", show=False),
        Binding("2", "show('errors')", "Errors", show=False),
        Binding("3", "show('alerts')", "Alerts", show=False),
        Binding("4", "show('resources')", "Resources", show=False),
        Binding("5", "show('active')", "Active", show=False),
        Binding("s", "next_service", "Service"),
        Binding("a", "all_services", "All", show=False),
        Binding("r", "refresh_now", "Refresh"),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
        # Textual only hints "press ctrl+q" on ctrl+c; in a terminal tool ctrl+c means stop.
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(
        self,
        query: Query,
        *,
        interval: float = DEFAULT_INTERVAL,
        window_s: float = 900.0,
        service: str | None = None,
        host: bool = True,
    ) -> None:
        super().__init__()
        self.reads = query
        self.interval = interval
        self.window_s = window_s
        self.service = service
        self.panel = "overview"
        self.data: TopData | None = None
        self.generation = 0  # refreshes shown so far (tests wait on it)
        self._host = HostSampler() if host else None
        self._help = False

    # -- layout ---------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static(id="title")
        yield Static(id="summary")
        yield Static(id="tabs")
        with ContentSwitcher(initial="overview"):
            for name in (*panels.PANELS, "help"):
                with VerticalScroll(id=name):
                    yield Static(id=f"panel-{name}")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#panel-help", Static).update(Text(HELP))
        self._draw()
        self.set_interval(self.interval, self.action_refresh_now)
        self.action_refresh_now()

    # -- reading --------------------------------------------------------------------------------
    def action_refresh_now(self) -> None:
        self._load(self.service)

    @work(thread=True, exclusive=True, group="load")
    def _load(self, service: str | None) -> None:
        data = load(self.reads, service, self.window_s, self._host)
        with contextlib.suppress(RuntimeError):  # the app quit while this read ran
            self.call_from_thread(self._show, data, service)

    def _show(self, data: TopData, service: str | None) -> None:
        if service != self.service:
            return  # read for a filter the user has since changed; the next read is under way
        self.data = data
        self.generation += 1
        # A read that ends while the app quits finds its widgets gone: nothing left to draw on.
        with contextlib.suppress(NoMatches):
            self._draw()

    # -- drawing --------------------------------------------------------------------------------
    def _draw(self) -> None:
        data = self.data
        title = Text.assemble(
            ("clisight top", "bold"),
            "  service ",
            (clean(self.service, 24) if self.service else "all", "bold"),
            f"  last {panels.span(self.window_s)}",
        )
        if data is not None and data.snapshot is not None:
            title.append(f"  at {panels.clock(data.snapshot.now_ns)}")
        title.append(f"  {clean(self.reads.url)}", style="dim")
        title.no_wrap, title.overflow = True, "ellipsis"
        self.query_one("#title", Static).update(title)
        tabs = Text()
        for index, name in enumerate(panels.PANELS, 1):
            style = "reverse bold" if name == self.panel and not self._help else ""
            tabs.append(f" {index} {panels.TITLES[name]} ", style=style)
        self.query_one("#tabs", Static).update(tabs)
        if data is None:
            self.query_one("#summary", Static).update(Text("reading the store...", style="dim"))
            return
        summary = panels.summary(data)
        if data.problem:
            summary = Text(clean(data.problem, 160), style="red")
        self.query_one("#summary", Static).update(summary)
        for name, render in panels.RENDERERS.items():
            self.query_one(f"#panel-{name}", Static).update(render(data))

    # -- keys -----------------------------------------------------------------------------------
    def action_show(self, panel: str) -> None:
        if panel in panels.PANELS:
            self.panel = panel
            self._help = False
            self.query_one(ContentSwitcher).current = panel
            self._draw()

    def action_next_panel(self) -> None:
        index = panels.PANELS.index(self.panel)
        self.action_show(panels.PANELS[(index + 1) % len(panels.PANELS)] if not self._help else self.panel)

    def action_help(self) -> None:
        self._help = not self._help
        self.query_one(ContentSwitcher).current = "help" if self._help else self.panel
        self._draw()

    def action_next_service(self) -> None:
        """Cycle: all services, then each known service in order, then all again."""
        known = list(self.data.services) if self.data is not None else []
        choices: list[str | None] = [None, *known]
        if self.service not in choices:
            choices.append(self.service)
        index = choices.index(self.service)
        self._set_service(choices[(index + 1) % len(choices)])

    def action_all_services(self) -> None:
        self._set_service(None)

    def _set_service(self, service: str | None) -> None:
        if service != self.service:
            self.service = service
            self._draw()
            self.action_refresh_now()
