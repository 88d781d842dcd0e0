"""``clisight insights``: commands, activity, conversations, cost trends and the rules that fired;
``paths``, ``funnel`` and ``retention`` for user journeys."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import click
from rich import box
from rich.table import Table

from clisight._terminal import seconds
from clisight.cli._common import TEXT, FiniteFloatRange, console, echo_json, open_store, store_option
from clisight.cli._text import clean
from clisight.query import Filter
from clisight.query import analytics as qa

EPILOG = """\b
Examples:
  clisight insights --days 7                        the last week against the week before
  clisight insights paths --after signup            what users do right after a step
  clisight insights funnel install first_run first_chat --window 1d
  clisight insights retention --weeks 8 --json
"""


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD)
    for index, name in enumerate(columns):
        table.add_column(name, justify="left" if index == 0 or not name else "right", overflow="fold")
    return table


def _bar(value: int, peak: int, width: int = 30) -> str:
    return "█" * (round(value / peak * width) if peak else 0)


@click.group(epilog=EPILOG, invoke_without_command=True)
@click.option(
    "--days",
    type=FiniteFloatRange(0.01, 3650),
    default=7.0,
    show_default=True,
    help="The period looked at (compared with the same period before it).",
)
@click.option("--service", type=TEXT, default=None, metavar="NAME", help="Only this service.")
@store_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.pass_context
def insights(ctx: click.Context, days: float, service: str | None, store: str | None, as_json: bool) -> None:
    """Usage insights: most used, slowest and failing commands, activity by hour and weekday,
    conversations, tokens and cost with their trends, and the rules that fired (high error rate,
    slower than the period before, cost up or down), with the numbers behind each."""
    if ctx.invoked_subcommand is not None:
        return
    opened = open_store(store)
    with opened.query as query:
        found = qa.insights(query.reader, days, time.time_ns(), service)
    if as_json:
        echo_json(qa.as_dict(found))
        return
    out = console()
    out.print(f"[bold]Insights over the last {days:g} days[/bold]")
    if found.findings:
        for finding in found.findings:
            colour = "yellow" if finding.severity == "warning" else "cyan"
            out.print(f"[{colour}]• {clean(finding.message)}[/{colour}]")
    else:
        out.print("[green]Nothing stands out against the period before.[/green]")
    commands = _table("Commands", "Command", "Runs", "Failed", "Error rate", "Mean", "p50", "p95")
    for c in found.commands[:15]:
        commands.add_row(
            clean(c.command, 60),
            f"{c.runs:,}",
            f"{c.failed:,}",
            f"{c.error_rate:.1%}",
            seconds(c.mean),
            seconds(c.p50),
            seconds(c.p95),
        )
    if found.commands:
        out.print(commands)
        slowest = max(found.commands, key=lambda c: c.p95)
        out.print(f"Slowest: {clean(slowest.command)} (p95 {seconds(slowest.p95)})")
    peak = max(found.by_hour) if any(found.by_hour) else 0
    if peak:
        hours = _table("Activity by hour of day", "Hour", "Count", "")
        for hour, count in enumerate(found.by_hour):
            hours.add_row(f"{hour:02d}:00", f"{count:,}", _bar(count, peak))
        out.print(hours)
        top = max(found.by_weekday)
        weekdays = _table("Activity by weekday", "Day", "Count", "")
        for name, count in zip(qa.WEEKDAYS, found.by_weekday, strict=True):
            weekdays.add_row(name, f"{count:,}", _bar(count, top))
        out.print(weekdays)
    convo = found.conversations
    if convo.get("conversations"):
        out.print(
            f"Conversations: {convo['conversations']:,}, {convo['avg_message_count']:.1f} messages and "
            f"{convo['avg_tokens']:,.0f} tokens on average, {convo['avg_response_time']:.2f}s to respond"
        )
    if found.llm_requests:
        out.print(f"LLM: {found.llm_requests:,} requests, {found.tokens:,} tokens, ${found.cost_usd:,.2f}")
        cost = next(t for t in found.trends if t.name == "cost_usd")
        trend = _table("Cost by day", "Day", "USD", "")
        top_cost = max((v for _, v in cost.points), default=0.0)
        for day, value in cost.points:
            trend.add_row(day, f"{value:,.2f}", "█" * (round(value / top_cost * 30) if top_cost else 0))
        out.print(trend)


def _since(days: float) -> Any:
    return Filter(since=time.time_ns() - int(days * 86_400e9)).selection()


@insights.command("paths")
@click.option("--after", default=None, metavar="STEP", help="Only the steps taken right after STEP.")
@click.option("--days", type=FiniteFloatRange(0.01, 3650), default=30.0, show_default=True)
@click.option("--top", type=click.IntRange(1, 1000), default=15, show_default=True)
@store_option
@click.option("--json", "as_json", is_flag=True)
def paths(after: str | None, days: float, top: int, store: str | None, as_json: bool) -> None:
    """The most common next steps of user journeys (clisight.track_user_journey)."""
    with open_store(store).query as query:
        # Minutes over a week or less (the order of steps taken close together), hours beyond.
        actors = qa.journey_steps(query.reader, _since(days), None, 60 if days <= 7 else 3600)
    found = qa.next_steps(actors, after, top)
    if as_json:
        echo_json(qa.as_dict(found))
        return
    table = _table("Most common next steps", "Step", "Next", "Count", "Share")
    for step in found:
        table.add_row(clean(step.step), clean(step.next), f"{step.count:,}", f"{step.share:.1%}")
    console().print(table if found else "No journey steps in this range.")


@insights.command("funnel")
@click.argument("steps", nargs=-1, type=TEXT, required=True)
@click.option(
    "--window",
    default="1d",
    show_default=True,
    metavar="DURATION",
    help="Time from the first step within which the others must follow: 30m, 2h, 1d, 7d.",
)
@click.option("--days", type=FiniteFloatRange(0.01, 3650), default=30.0, show_default=True)
@store_option
@click.option("--json", "as_json", is_flag=True)
def funnel(steps: tuple[str, ...], window: str, days: float, store: str | None, as_json: bool) -> None:
    """Conversion through STEPS (in order) within a window, and each step's drop-off."""
    seconds = _duration(window)
    with open_store(store).query as query:
        actors = qa.journey_steps(query.reader, _since(days), steps, qa.journey_resolution(seconds))
    found = qa.funnel(actors, steps, seconds)
    if as_json:
        echo_json(qa.as_dict(found))
        return
    table = _table(f"Funnel (within {window})", "Step", "Reached", "Of first", "Of previous", "Dropped")
    for step in found.steps:
        table.add_row(
            clean(step.step),
            f"{step.entered:,}",
            f"{step.conversion:.1%}",
            f"{step.step_conversion:.1%}",
            f"{step.dropped:,}",
        )
    console().print(table)


@insights.command("retention")
@click.option("--weeks", type=click.IntRange(1, 52), default=8, show_default=True)
@store_option
@click.option("--json", "as_json", is_flag=True)
def retention(weeks: int, store: str | None, as_json: bool) -> None:
    """Weekly retention cohorts of users (hashed ids): of the users first seen in a week, how many
    came back each week after."""
    with open_store(store).query as query:
        found = qa.retention(query.reader, _since(weeks * 7 + 7), weeks)
    if as_json:
        echo_json([{**qa.as_dict(c), "rates": list(c.rates)} for c in found])
        return
    table = _table("Weekly retention", "Cohort (week of)", "Users", *(f"W{k}" for k in range(1, weeks)))
    now = datetime.now(UTC)
    for cohort in found:
        start = datetime.strptime(cohort.week, "%Y-%m-%d").replace(tzinfo=UTC)
        # A week that has not begun yet is blank: nobody could have come back in it, so not "0%".
        cells = (f"{r:.0%}" if start + timedelta(weeks=k) <= now else "" for k, r in enumerate(cohort.rates))
        table.add_row(cohort.week, f"{cohort.size:,}", *list(cells)[1:])
    console().print(table if found else "No users in this range (sessions need user=...).")


MAX_WINDOW_S = 3650 * 86_400  # as far back as --days reaches


def _duration(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
    value = text.strip().lower()
    try:
        seconds = float(value[:-1]) * units[value[-1]] if value and value[-1] in units else float(value)
    except ValueError:
        raise click.BadParameter(
            f"{text!r}: expected a duration such as 30m, 2h, 1d", param_hint="--window"
        ) from None
    if not 1 <= seconds <= MAX_WINDOW_S:  # also refuses nan
        raise click.BadParameter(
            f"{text!r}: the window must be between 1s and {MAX_WINDOW_S // 86_400}d", param_hint="--window"
        )
    return seconds
