"""``clisight alerts``: list rules with their state, history, silences, and ``check`` (one evaluation,
for cron, CI or a program's exit).

Exit status, for scripts: 0 when nothing is firing, 1 when something is (or on an error such as
a missing store), 2 for a rules file with mistakes (each printed with its file and line) or bad
options.
"""

from __future__ import annotations

import getpass
import logging
import os
import stat
import time
from pathlib import Path
from typing import Any

import click
from rich import box
from rich.table import Table
from rich.text import Text

from clisight import _config
from clisight.alerts import (
    AlertEngine,
    AlertStatus,
    RuleSet,
    add_silence,
    alert_history,
    alert_statuses,
    list_silences,
    load_rules,
    parse_duration,
    remove_silence,
)
from clisight.alerts.rules import format_duration
from clisight.cli._common import (
    TEXT,
    TIME,
    USAGE_ERROR,
    CommandError,
    FiniteFloatRange,
    console,
    echo_json,
    json_option,
    open_store,
)
from clisight.cli._common import store_option as _store_option
from clisight.cli._text import clean, period, when
from clisight.cli.errors import ago
from clisight.exceptions import AlertRulesError

FIRING_EXIT = 1
STATE_STYLE = {"firing": "bold red", "pending": "yellow", "resolved": "green", "inactive": "dim"}


class BadRules(click.ClickException):
    """The rules file has mistakes: exit status 2."""

    exit_code = USAGE_ERROR


class Firing(click.exceptions.Exit):
    """Something is firing: exit status 1 after the output (no message)."""


def rules_option(fn: Any) -> Any:
    return click.option(
        "--rules",
        "rules_file",
        metavar="FILE",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Rules file (default: the alerts_file parameter, or <user config dir>/clisight/alerts.toml).",
    )(fn)


def rules_path(option: Path | None) -> Path:
    if option is not None:
        return option
    return _config.alerts_path(_config.resolve()["alerts_file"])


def read_rules(option: Path | None) -> RuleSet:
    """The checked rules file; exit 2 with every mistake (file:line: reason) when it has any."""
    path = rules_path(option)
    try:
        mode = path.stat().st_mode
    except OSError:
        mode = None  # missing or unreadable: load_rules says which
    # A FIFO is read as a stream, as cat reads it (`--rules <(generate-rules)`); a device such as
    # /dev/zero would be read forever, a socket cannot be read at all.
    if mode is not None and not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
        raise BadRules(clean(f"alert rules refused: {path}: not a regular file or FIFO; pass a .toml file"))
    thresholds = _config.threshold_pairs(_config.resolve()["thresholds"])
    try:
        return load_rules(path, thresholds=thresholds)
    except AlertRulesError as exc:
        raise BadRules(clean(f"alert rules refused: {exc}", multiline=True)) from None


def _value(status_value: float | None) -> str:
    if status_value is None:
        return "no data"
    if abs(status_value) >= 1000:
        return f"{status_value:,.0f}"
    return f"{status_value:.4g}"


@click.group()
def alerts() -> None:
    """Alert rules over latency, error rate, cost, tokens, resources and anomaly scores.

    Rules live in a TOML file (docs/alerts.md); `clisight serve` evaluates them every
    alerts_interval seconds, `clisight alerts check` once.  Exit status: 0 nothing firing,
    1 something firing, 2 a rules file with mistakes.

    \b
    Examples:
      clisight alerts check --rules alerts.toml --dry-run     validate the file
      clisight alerts check                                   evaluate once; exit 1 if firing
      clisight alerts list                                    rules, state, value now, since
      clisight alerts history --since 1d
      clisight alerts silence "chat slow" --for 2h --comment "deploy in progress"
      clisight alerts unsilence 3f2a9c1b04de
    """


@alerts.command()
@rules_option
@_store_option
@json_option
@click.option("--dry-run", is_flag=True, help="Only check the rules file; read no store.")
@click.option(
    "--wait",
    type=FiniteFloatRange(0, 600),
    default=30.0,
    show_default=True,
    help="Longest time, in seconds, to wait for notifications to be sent before exiting.",
)
def check(rules_file: Path | None, store: str | None, as_json: bool, dry_run: bool, wait: float) -> None:
    """Evaluate every enabled rule once: store states and transitions, send notifications.

    Two checks running at once notify once.  Exit 0 when nothing is firing, 1 when something is.
    """
    rules = read_rules(rules_file)
    if dry_run:
        if as_json:
            echo_json(
                {
                    "file": rules.path,
                    "rules": len(rules.rules),
                    "enabled": [r.name for r in rules.enabled],
                    "notifiers": sorted(rules.notifiers),
                }
            )
        else:
            click.echo(
                f"{clean(rules.path)}: OK, {len(rules.rules)} rules ({len(rules.enabled)} enabled), "
                f"{len(rules.notifiers)} notifiers"
            )
        return
    # Failures are printed below, once: not also by logging's last-resort handler.
    logging.getLogger("clisight.alerts").addHandler(logging.NullHandler())
    opened = open_store(store, writes=True)
    try:
        server_url = _config.resolve()["server_url"]
        engine = AlertEngine(opened.query, rules, server_url=server_url)
        statuses = engine.evaluate()
        finished = engine.flush(wait)
    finally:
        opened.query.close()
    stats = engine.dispatcher.stats
    if as_json:
        echo_json(
            {
                "alerts": [s.to_dict() for s in statuses],
                "firing": sum(s.state == "firing" for s in statuses),
                "transitions": engine.last.transitions,
                "notifications": {"sent": stats.sent, "failed": stats.failed, "dropped": stats.dropped},
                "seconds": round(engine.last.seconds, 4),
            }
        )
    else:
        _print_statuses(statuses, rules)
        for message in stats.errors:
            click.echo(f"notification failed: {clean(message)}", err=True)
        if not finished:
            click.echo(f"some notifications were still being sent after {wait:g} s; given up", err=True)
    if any(s.state == "firing" for s in statuses):
        raise Firing(FIRING_EXIT)


@alerts.command(name="list")
@rules_option
@_store_option
@json_option
def list_(rules_file: Path | None, store: str | None, as_json: bool) -> None:
    """Rules with their state, value now and since when (state as the last evaluation left it;
    the value is read now, without changing any state)."""
    rules = read_rules(rules_file)
    opened = open_store(store)
    try:
        stored = {(s.rule, tuple(sorted(s.labels.items()))): s for s in alert_statuses(opened.query)}
        engine = AlertEngine(opened.query, rules, notifiers={})
        now = time.time_ns()
        rows: list[dict[str, Any]] = []
        for rule in rules.rules:
            values = engine.values(rule, now) if rule.enabled else {}
            keys = set(values) | {labels for name, labels in stored if name == rule.name}
            for labels in sorted(keys) or [()]:
                status = stored.get((rule.name, labels))
                rows.append(
                    {
                        "rule": rule.name,
                        "labels": dict(labels),
                        "enabled": rule.enabled,
                        "condition": rule.condition,
                        "window": format_duration(rule.window_ns),
                        "for": format_duration(rule.for_ns),
                        "severity": rule.severity,
                        "state": status.state if status else ("inactive" if rule.enabled else "disabled"),
                        "value": values.get(labels) if rule.enabled else None,
                        "threshold": rule.threshold,
                        "since_ns": status.since_ns if status else None,
                        "silenced": status.silenced if status else False,
                    }
                )
    finally:
        opened.query.close()
    if as_json:
        echo_json(rows)
    else:
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        for name in ("Rule", "Labels", "Condition", "Window", "State", "Value now", "Since"):
            table.add_column(name, overflow="fold")
        for row in rows:
            state = Text(row["state"], style=STATE_STYLE.get(row["state"], "dim"))
            if row["silenced"]:
                state.append(" (silenced)", style="dim")
            table.add_row(
                clean(row["rule"], 40),
                clean(",".join(f"{k}={v}" for k, v in row["labels"].items()) or "-", 40),
                clean(row["condition"]),
                row["window"],
                state,
                _value(row["value"]) if row["enabled"] else "-",
                f"{ago(row['since_ns'])} ago" if row["since_ns"] else "-",
            )
        console().print(table)
    if any(row["state"] == "firing" for row in rows):
        raise Firing(FIRING_EXIT)


@alerts.command()
@_store_option
@json_option
@click.option(
    "--since",
    "since_ns",
    type=TIME,
    default="7d",
    show_default=True,
    help="Transitions at or after: 15m, 2h, 7d, a date.",
)
@click.option(
    "--rule", "rule_name", type=TEXT, default=None, metavar="NAME", help="Only this rule's transitions."
)
@click.option("--limit", type=click.IntRange(1, 100_000), default=100, show_default=True)
def history(store: str | None, as_json: bool, since_ns: int, rule_name: str | None, limit: int) -> None:
    """State transitions, newest first, with the value that caused each."""
    opened = open_store(store)
    try:
        found = alert_history(opened.query, since_ns, limit if rule_name is None else 1_000_000)
    finally:
        opened.query.close()
    if rule_name is not None:
        found = [t for t in found if t.rule == rule_name][:limit]
    if as_json:
        echo_json([t.to_dict() for t in found])
        return
    if not found:
        click.echo("No alert transitions in that time.")
        return
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for name in ("Time", "Rule", "Labels", "Change", "Value", "Threshold"):
        table.add_column(name, overflow="fold")
    for t in found:
        change = Text(f"{t.previous} → ")
        change.append(t.state, style=STATE_STYLE.get(t.state, ""))
        if t.silenced:
            change.append(" (silenced)", style="dim")
        table.add_row(
            when(t.time_ns),
            clean(t.rule, 40),
            clean(",".join(f"{k}={v}" for k, v in t.labels.items()) or "-", 40),
            change,
            _value(t.value),
            f"{t.threshold:g}",
        )
    console().print(table)


@alerts.command()
@click.argument("rule", type=TEXT, metavar="RULE")
@rules_option
@_store_option
@json_option
@click.option("--for", "duration", default="2h", show_default=True, help="How long: 30m, 2h, 1d.")
@click.option(
    "--match", "matchers", multiple=True, metavar="LABEL=VALUE", help="Only alerts with this label."
)
@click.option("--comment", default="", help="Why (shown in `alerts silences`).")
@click.option("--author", default=None, help="Who (default: your user name).")
def silence(
    rule: str,
    rules_file: Path | None,
    store: str | None,
    as_json: bool,
    duration: str,
    matchers: tuple[str, ...],
    comment: str,
    author: str | None,
) -> None:
    """Silence RULE ('*' for every rule) for a while: its alerts still change state but notify nobody."""
    try:
        length = parse_duration(duration)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--for") from None
    if length <= 0:
        raise click.BadParameter("a silence must last some time, such as 30m or 2h", param_hint="--for")
    pairs: dict[str, str] = {}
    for item in matchers:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r}: expected LABEL=VALUE", param_hint="--match")
        pairs[key.strip()] = value.strip()
    path = rules_path(rules_file)
    if rule != "*" and path.exists():
        known = read_rules(rules_file)
        if known.rule(rule) is None:
            names = ", ".join(r.name for r in known.rules)
            raise CommandError(f"no rule {clean(rule)!r} in {clean(path)} (rules: {clean(names)})")
    who = author if author is not None else _user()
    opened = open_store(store, must_exist=False, writes=True)
    try:
        made = add_silence(
            opened.query, None if rule == "*" else rule, pairs, time.time_ns() + length, comment, who
        )
    finally:
        opened.query.close()
    if as_json:
        echo_json(made.to_dict())
    else:
        click.echo(
            f"silenced {clean(rule)} for {period(length / 1e9)}, until {when(made.until_ns)} "
            f"(id {made.id}; undo with `clisight alerts unsilence {made.id}`)"
        )


@alerts.command()
@click.argument("silence_id", type=TEXT, metavar="ID")
@_store_option
@json_option
def unsilence(silence_id: str, store: str | None, as_json: bool) -> None:
    """Remove the silence ID (see `clisight alerts silences`)."""
    opened = open_store(store, writes=True)
    try:
        removed = remove_silence(opened.query, silence_id)
    finally:
        opened.query.close()
    if as_json:
        echo_json({"id": silence_id, "removed": removed})
    elif removed:
        click.echo(f"removed silence {clean(silence_id)}")
    if not removed:
        raise CommandError(f"no silence {clean(silence_id)!r}: `clisight alerts silences` lists them")


@alerts.command()
@_store_option
@json_option
@click.option("--all", "show_all", is_flag=True, help="Also the expired ones.")
def silences(store: str | None, as_json: bool, show_all: bool) -> None:
    """Silences in force (with --all, expired ones too)."""
    opened = open_store(store)
    try:
        found = list_silences(opened.query, None if show_all else time.time_ns())
    finally:
        opened.query.close()
    if as_json:
        echo_json([s.to_dict() for s in found])
        return
    if not found:
        click.echo("No silences.")
        return
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for name in ("ID", "Rule", "Matchers", "Until", "Author", "Comment"):
        table.add_column(name, overflow="fold")
    for s in found:
        table.add_row(
            s.id,
            clean(s.rule or "*", 40),
            clean(",".join(f"{k}={v}" for k, v in s.matchers.items()) or "-", 40),
            when(s.until_ns),
            clean(s.author, 20),
            clean(s.comment, 60),
        )
    console().print(table)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER", "")


def _print_statuses(statuses: list[AlertStatus], rules: RuleSet) -> None:
    if not statuses:
        click.echo(f"No enabled rules in {clean(rules.path)}.")
        return
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for name in ("Rule", "Labels", "Condition", "State", "Value", "Since"):
        table.add_column(name, overflow="fold")
    for s in statuses:
        state = Text(s.state, style=STATE_STYLE.get(s.state, ""))
        if s.silenced:
            state.append(" (silenced)", style="dim")
        table.add_row(
            clean(s.rule, 40),
            clean(",".join(f"{k}={v}" for k, v in s.labels.items()) or "-", 40),
            clean(s.condition),
            state,
            _value(s.value),
            f"{ago(s.since_ns, s.evaluated_ns)} ago",
        )
    console().print(table)
