"""The panels of ``clisight top`` as Rich renderables, built from a :class:`~clisight.tui._data.TopData`.

Every value that came from a store goes through :func:`cell` (``clean`` in a ``Text``): a ``Text``
is never parsed for markup, and ``clean`` shows control characters as escapes, so a message such
as ``"[bold]x\\x1b[2J"`` is displayed exactly as those characters.  Plain functions, so tests can
render them without running the app.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from clisight._terminal import clean, seconds, size
from clisight.query.live import LiveSnapshot, ResourceNow
from clisight.tui._data import TopData

PANELS: Final = ("overview", "errors", "alerts", "resources", "active")
TITLES: Final = {
    "overview": "Overview",
    "errors": "Errors",
    "alerts": "Alerts",
    "resources": "Resources",
    "active": "Active",
}
_BLOCKS: Final = "▁▂▃▄▅▆▇█"


def cell(value: object, limit: int | None = None, style: str = "") -> Text:
    """Stored text as a cell: control characters escaped, markup never interpreted."""
    return Text(clean(value, limit), style=style, no_wrap=True, overflow="ellipsis")


def clock(time_ns: int | None) -> str:
    """Time of day for today's times, else the date and time."""
    if time_ns is None:
        return "-"
    moment = datetime.fromtimestamp(time_ns / 1e9)
    if moment.date() == datetime.now().date():
        return moment.strftime("%H:%M:%S")
    return moment.strftime("%m-%d %H:%M")


def age(start_ns: int, now_ns: int) -> str:
    return seconds(max(now_ns - start_ns, 0) / 1e9)


def span(window_s: float) -> str:
    """A window for a title: ``90s``, ``15m``, ``2h``, ``1.5d``."""
    for unit, length in (("d", 86_400), ("h", 3600), ("m", 60)):
        if window_s >= length:
            return f"{window_s / length:.3g}{unit}"
    return f"{window_s:.3g}s"


def short_size(n_bytes: float) -> str:
    """A byte count in at most five characters: ``812B``, ``131M``, ``2.4G``."""
    amount = float(n_bytes)
    for unit in ("B", "K", "M", "G"):
        if amount < 1000 or unit == "G":
            return f"{amount:.1f}{unit}" if amount < 10 and unit != "B" else f"{amount:.0f}{unit}"
        amount /= 1024
    return f"{amount:.0f}G"  # pragma: no cover - the loop always returns


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def sparkline(values: tuple[float, ...], width: int = 20) -> str:
    """The last ``width`` values as block characters, scaled to their own maximum."""
    shown = values[-width:]
    top = max(shown, default=0.0)
    if top <= 0:
        return _BLOCKS[0] * len(shown)
    return "".join(_BLOCKS[min(int(v / top * (len(_BLOCKS) - 1)), len(_BLOCKS) - 1)] for v in shown)


def _table(*columns: tuple[str, str] | tuple[str, str, int], title: str | None = None) -> Table:
    """Columns as (name, "left" or "r"[, ratio]): left columns share the room by ratio (default 1)."""
    table = Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        expand=True,
        padding=(0, 1),
        title=title,
        title_justify="left",
        title_style="dim",
    )
    for name, justify, *ratio in columns:
        text_column = justify == "left"
        table.add_column(
            name,
            justify="left" if text_column else "right",
            no_wrap=True,
            overflow="ellipsis",
            ratio=(ratio[0] if ratio else 1) if text_column else None,
        )
    return table


def _resource(snap: LiveSnapshot | None, metric: str) -> ResourceNow | None:
    if snap is None:
        return None
    return next((r for r in snap.resources if r.metric == metric), None)


def resource_value(resource: ResourceNow, value: float) -> str:
    if resource.unit == "By":
        return size(int(value))
    if resource.unit == "%":
        return f"{value:.1f}%"
    return f"{value:.0f}"


# -- the summary at the top -------------------------------------------------------------------------


def firing_count(data: TopData) -> int | None:
    """Firing alerts not silenced; None when no rule was ever evaluated on this store."""
    if data.alerts_evaluated_ns is None:
        return None
    return sum(not a.silenced for a in data.alerts)


def summary(data: TopData) -> RenderableType:
    """Two lines of key numbers: CPU, memory, rates, active runs, error rate, cost, firing alerts."""
    firing = firing_count(data)
    snap = data.snapshot
    grid = Table.grid(expand=True, padding=(0, 1))
    for _ in range(4):
        grid.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
    cpu = _resource(snap, "process.cpu.utilization")
    rss = _resource(snap, "process.memory.rss")
    host = data.host
    cpu_text = Text.assemble(("CPU ", "bold"), f"{cpu.now:.0f}%" if cpu else "-")
    mem_text = Text.assemble(("Mem ", "bold"), short_size(rss.now) if rss else "-")
    if host is not None:
        cpu_text.append(f" host {host.cpu_percent:.0f}%", style="dim")
        mem_text.append(f" host {host.memory_percent:.0f}%", style="dim")
    if snap is None:
        grid.add_row(cpu_text, mem_text, Text("no data"), Text(""))
        return grid
    rates = snap.rates
    rate = snap.error_rate
    errors_style = "red" if rate else "green" if rate is not None else ""
    cost = snap.cost_today
    alerts_text = Text.assemble(("Alerts ", "bold"))
    if firing is None:
        alerts_text.append("-", style="dim")
    else:
        alerts_text.append(f"{firing} firing", style="red bold" if firing else "green")
    grid.add_row(
        cpu_text,
        mem_text,
        Text.assemble(("Events/s ", "bold"), f"{rates.per_second(rates.events):.2f}"),
        Text.assemble(("Errors ", "bold"), (f"{rates.errors:,}", "red" if rates.errors else "green")),
    )
    grid.add_row(
        Text.assemble(("Active ", "bold"), f"{len(snap.active)}"),
        Text.assemble(("Error rate ", "bold"), (percent(rate), errors_style)),
        Text.assemble(("Today ", "bold"), f"${cost.cost_usd:,.2f}", (f" {cost.requests:,} req", "dim")),
        alerts_text,
    )
    return grid


# -- panels --------------------------------------------------------------------------------------


def overview(data: TopData) -> RenderableType:
    """p95 by command (commands first, then other operations, by count) over the window."""
    snap = data.snapshot
    if snap is None or not snap.latencies:
        return Text("No operations in the window (spans, commands, timed operations).", style="dim")
    rates = snap.rates
    title = (
        f"{snap.operations:,} operations, {snap.failed_operations:,} failed; "
        f"{rates.per_second(rates.logs):.2f} logs/s, {rates.per_second(rates.operations):.2f} ops/s"
    )
    table = _table(
        ("Command / operation", "left"), ("Runs", "r"), ("Fail", "r"), ("p50", "r"), ("p95", "r"), title=title
    )
    for lat in snap.latencies:
        table.add_row(
            cell(lat.name, 60),
            Text(f"{lat.count:,}"),
            Text(f"{lat.failed:,}", style="red" if lat.failed else ""),
            Text(seconds(lat.p50)),
            Text(seconds(lat.p95), style="bold"),
        )
    return table


def errors(data: TopData) -> RenderableType:
    """The newest error occurrences and ERROR/CRITICAL log lines."""
    snap = data.snapshot
    if snap is None or not snap.recent_errors:
        return Text("No errors in the window.", style="green")
    table = _table(("Time", "r"), ("Service", "left", 2), ("Where", "left", 3), ("Error", "left", 8))
    for err in snap.recent_errors:
        table.add_row(
            Text(clock(err.time_ns)),
            cell(err.service, 20),
            cell(err.where, 24),
            cell(err.title, 200, "red" if err.source == "error" else ""),
        )
    return table


def alerts(data: TopData) -> RenderableType:
    """Firing alerts (as the alert engine last stored them), then the window's slow-operation
    threshold breaches."""
    parts: list[RenderableType] = []
    if data.alerts_evaluated_ns is None:
        parts.append(
            Text(
                "No alert rule has been evaluated on this store yet: `clisight alerts check` does, and "
                "`clisight serve` with a rules file (docs/alerts.md).",
                style="dim",
            )
        )
    elif not data.alerts:
        parts.append(
            Text(f"No alert is firing (rules evaluated at {clock(data.alerts_evaluated_ns)}).", style="green")
        )
    else:
        table = _table(
            ("Alert", "left", 3),
            ("Labels", "left", 4),
            ("Severity", "r"),
            ("Value", "r"),
            ("Since", "r"),
            title=f"firing; rules evaluated at {clock(data.alerts_evaluated_ns)}",
        )
        for alert in data.alerts:
            value = "-" if alert.value is None else f"{alert.value:.4g}"
            table.add_row(
                cell(
                    alert.rule + (" (silenced)" if alert.silenced else ""),
                    40,
                    "dim" if alert.silenced else "red",
                ),
                cell(alert.labels, 120),
                cell(alert.severity, 10),
                Text(f"{value} / {alert.threshold:.4g}"),
                Text(clock(alert.since_ns)),
            )
        parts.append(table)
    snap = data.snapshot
    if snap is not None and snap.breaches:
        breaches = _table(
            ("Threshold breach", "left"), ("Count", "r"), ("Limit", "r"), ("Worst", "r"), ("Last", "r")
        )
        for b in snap.breaches:
            breaches.add_row(
                cell(b.operation, 40),
                Text(f"{b.count:,}"),
                cell(f"{b.threshold:g}{b.unit}", 12),
                cell(f"{b.worst:.3g}{b.unit}", 12),
                Text(clock(b.last_ns)),
            )
        parts += [Text(""), breaches]
    return Group(*parts)


def resources(data: TopData) -> RenderableType:
    """Sampled resource metrics in the window (now, peak, per-minute sparkline) and this host."""
    parts: list[RenderableType] = []
    snap = data.snapshot
    if snap is None or not snap.resources:
        parts.append(Text("No resource samples in the window (pip install 'clisight[psutil]').", style="dim"))
    else:
        table = _table(("Metric", "left"), ("Now", "r"), ("Peak", "r"), ("Trend", "left"))
        for res in snap.resources:
            table.add_row(
                cell(res.metric, 30),
                Text(resource_value(res, res.now)),
                Text(resource_value(res, res.peak)),
                Text(sparkline(res.recent), style="cyan"),
            )
        parts.append(table)
    if data.host is not None:
        host = data.host
        parts.append(
            Text.assemble(
                ("This host: ", "bold"),
                f"CPU {host.cpu_percent:.0f}%   memory {host.memory_percent:.0f}% ({size(host.memory_used)})",
            )
        )
    return Group(*parts)


def active(data: TopData) -> RenderableType:
    """Runs that started and have not ended (see ``clisight.query.live`` for what the store can tell)."""
    snap = data.snapshot
    if snap is None or not snap.active:
        return Text(
            "No runs in progress (a run shows here from clisight.init until it exits; a session received"
            " over OTLP, such as Claude Code's, while its records keep coming).",
            style="dim",
        )
    table = _table(("Service", "left", 2), ("Command", "left", 3), ("Running", "r"), ("Session", "left", 2))
    for run in snap.active:
        table.add_row(
            cell(run.service, 20),
            cell(run.command or "-", 40),
            Text(age(run.start_ns, snap.now_ns)),
            cell(run.session_id, 12),
        )
    return table


RENDERERS: Final = {
    "overview": overview,
    "errors": errors,
    "alerts": alerts,
    "resources": resources,
    "active": active,
}
