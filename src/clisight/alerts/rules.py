"""Alert rules: the TOML rules file, checked whole, every mistake reported with its file and line.

A file holds ``[[rule]]`` tables, ``[notifier.NAME]`` tables and an optional top-level
``defaults`` (``true``, or a list of the seed's default rules to enable: ``query_time``,
``connection_time``, ``memory_usage``).  ``docs/alerts.md`` is the reference; :func:`load_rules`
and :func:`parse_rules` read a file or a text into a :class:`RuleSet`, or raise
:class:`~clisight.exceptions.AlertRulesError` listing every problem as ``file:line: reason``.

TOML parsers give positions only for syntax errors, so the line of a semantic mistake (an
unknown metric, a bad duration) is found here, by scanning the text for the table headers and keys
(:class:`Lines`); where a key cannot be found the line of its ``[[rule]]`` header is given.
"""

from __future__ import annotations

import math
import re
import shlex
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from clisight.alerts._text import SECOND_NS as SECOND_NS
from clisight.alerts._text import Lines
from clisight.alerts._text import format_duration as format_duration
from clisight.alerts._text import parse_duration as parse_duration
from clisight.exceptions import AlertRulesError
from clisight.query.series import METRICS, WHERE_KEYS

ANOMALY: Final = "anomaly"
RULE_METRICS: Final = (*METRICS, ANOMALY)
SEVERITIES: Final = ("info", "warning", "error", "critical")
NOTIFIER_TYPES: Final = ("webhook", "command", "desktop", "log")
SEED_DEFAULTS: Final = ("query_time", "connection_time", "memory_usage")
MAX_HISTORY_NS: Final = 24 * 3600 * SECOND_NS  # an anomaly rule's series: at most a day of minutes

_RULE_KEYS: Final = frozenset(
    {
        "name",
        "metric",
        "of",
        "over",
        "where",
        "group_by",
        "window",
        "above",
        "below",
        "for",
        "keep_firing_for",
        "severity",
        "labels",
        "notify",
        "enabled",
        "agg",
        "history",
        "summary",
    }
)
_NOTIFIER_KEYS: Final[dict[str, frozenset[str]]] = {
    "webhook": frozenset({"type", "url", "headers", "timeout", "retries", "backoff", "deadline"}),
    "command": frozenset({"type", "command", "timeout"}),
    "desktop": frozenset({"type"}),
    "log": frozenset({"type"}),
}


@dataclass(frozen=True, slots=True)
class Rule:
    """One alert rule.  Durations are nanoseconds; ``op`` is ``above`` or ``below``; for an
    ``anomaly`` rule ``over`` names the metric whose per-minute series is scored and ``threshold``
    is the score (0-1) at or above which it fires."""

    name: str
    metric: str
    threshold: float
    op: str = "above"
    window_ns: int = 5 * 60 * SECOND_NS
    for_ns: int = 0
    keep_firing_for_ns: int = 0
    where: Mapping[str, str] = field(default_factory=dict)
    group_by: tuple[str, ...] = ()
    of: str | None = None
    over: str | None = None
    agg: str | None = None
    history_ns: int = 4 * 3600 * SECOND_NS
    severity: str = "warning"
    labels: Mapping[str, str] = field(default_factory=dict)
    notify: tuple[str, ...] = ()
    enabled: bool = True
    summary: str = ""
    line: int = 0

    def crossed(self, value: float | None) -> bool:
        """Whether ``value`` meets the condition (no value never does)."""
        if value is None or not math.isfinite(value):
            return False
        return (
            value >= self.threshold
            if self.metric == ANOMALY
            else (value > self.threshold if self.op == "above" else value < self.threshold)
        )

    @property
    def condition(self) -> str:
        """The condition in words: ``latency_p95 > 2`` or ``anomaly(error_rate) >= 0.5``."""
        if self.metric == ANOMALY:
            return f"anomaly({self.over}) >= {self.threshold:g}"
        return f"{self.metric} {'>' if self.op == 'above' else '<'} {self.threshold:g}"


@dataclass(frozen=True, slots=True)
class NotifierSpec:
    """A ``[notifier.NAME]`` table: its name, ``type`` and the other keys as given."""

    name: str
    type: str
    options: Mapping[str, Any] = field(default_factory=dict)
    line: int = 0


@dataclass(frozen=True, slots=True)
class RuleSet:
    """A checked rules file: its rules (the seed's defaults included, enabled or not) and notifiers."""

    rules: tuple[Rule, ...] = ()
    notifiers: Mapping[str, NotifierSpec] = field(default_factory=dict)
    path: str = ""

    @property
    def enabled(self) -> tuple[Rule, ...]:
        return tuple(rule for rule in self.rules if rule.enabled)

    def rule(self, name: str) -> Rule | None:
        return next((rule for rule in self.rules if rule.name == name), None)


def default_rules(thresholds: Mapping[str, float] | None = None, enable: Sequence[str] = ()) -> list[Rule]:
    """The seed's thresholds as rules (``thresholds``: the seed's names to limits, by default
    ``query_time`` 10 s, ``connection_time`` 5 s, ``memory_usage`` 500 MB), those in ``enable``
    enabled: the slowest ``query_time`` / ``connection_time`` operation over the last 5 minutes, and
    the process's peak resident memory."""
    limits = {"query_time": 10.0, "connection_time": 5.0, "memory_usage": 500.0, **(thresholds or {})}
    out = []
    for name in SEED_DEFAULTS:
        summary = (
            f"a {name} operation took longer than {limits[name]:g} s"
            if name != "memory_usage"
            else f"resident memory above {limits[name]:g} MB"
        )
        out.append(
            Rule(
                name=name,
                metric="rss" if name == "memory_usage" else "latency_max",
                threshold=float(limits[name]),
                where={} if name == "memory_usage" else {"operation": name},
                agg="max" if name == "memory_usage" else None,
                enabled=name in enable,
                summary=summary,
                labels={"source": "default"},
            )
        )
    return out


# -- checking -----------------------------------------------------------------------------------
class _Problems:
    def __init__(self) -> None:
        self.found: list[tuple[int, str]] = []

    def add(self, line: int, reason: str) -> None:
        self.found.append((line, reason))


def load_rules(path: str | Path, *, thresholds: Mapping[str, float] | None = None) -> RuleSet:
    """Read and check a rules file.  Raises :class:`AlertRulesError` naming the file, the line and
    the reason of every mistake (nothing of a file with a mistake is used).  ``thresholds`` (the
    ``thresholds`` configuration parameter) sets the limits of the seed's default rules."""
    shown = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AlertRulesError(shown, 0, "no such file; create it (docs/alerts.md has an example)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AlertRulesError(shown, 0, f"cannot read it: {exc}") from None
    return parse_rules(text, shown, thresholds)


def parse_rules(text: str, path: str = "<rules>", thresholds: Mapping[str, float] | None = None) -> RuleSet:
    """Check the text of a rules file; see :func:`load_rules`.  ``thresholds`` overrides the
    limits of the seed's default rules (the ``thresholds`` configuration parameter)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"line (\d+)", str(exc))
        raise AlertRulesError(path, int(found.group(1)) if found else 1, f"TOML syntax: {exc}") from None
    lines = Lines(text)
    problems = _Problems()
    for key in data:
        if key not in ("rule", "notifier", "defaults"):
            problems.add(
                lines.top.get(key, 1), f"unknown key {key!r}: expected [[rule]], [notifier.NAME] or defaults"
            )
    notifiers = _notifiers(data.get("notifier", {}), lines, problems)
    enable = _defaults(data.get("defaults", False), lines.top.get("defaults", 1), problems)
    rules: list[Rule] = []
    raw_rules = data.get("rule", [])
    if not isinstance(raw_rules, list):
        problems.add(lines.top.get("rule", 1), "'rule' must be [[rule]] tables")
        raw_rules = []
    seen: dict[str, int] = {}
    for index, table in enumerate(raw_rules):
        rule = _rule(index, table, lines, notifiers, problems)
        if rule is None:
            continue
        if rule.name in seen:
            problems.add(
                lines.rule(index, "name"),
                f"rule name {rule.name!r} is already used by the [[rule]] on line {seen[rule.name]}",
            )
            continue
        seen[rule.name] = rule.line
        rules.append(rule)
    if problems.found:
        problems.found.sort()
        line, reason = problems.found[0]
        more = [f"{path}:{ln}: {why}" for ln, why in problems.found[1:]]
        raise AlertRulesError(path, line, reason, more)
    # The seed's defaults: a rule of the file with the same name replaces one.
    defaults = [r for r in default_rules(thresholds, enable) if r.name not in seen]
    return RuleSet(tuple(defaults + rules), notifiers, path)


def _defaults(value: Any, line: int, problems: _Problems) -> tuple[str, ...]:
    if value is True:
        return SEED_DEFAULTS
    if value is False:
        return ()
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        unknown = [v for v in value if v not in SEED_DEFAULTS]
        if not unknown:
            return tuple(value)
        problems.add(
            line, f"unknown default rule {unknown[0]!r}: expected some of {', '.join(SEED_DEFAULTS)}"
        )
        return ()
    problems.add(line, f"'defaults' must be true, false or a list of {', '.join(SEED_DEFAULTS)}")
    return ()


def _notifiers(tables: Any, lines: Lines, problems: _Problems) -> dict[str, NotifierSpec]:
    out: dict[str, NotifierSpec] = {}
    if not isinstance(tables, dict):
        problems.add(lines.top.get("notifier", 1), "'notifier' must be [notifier.NAME] tables")
        return out
    for name, table in tables.items():
        line = lines.notifier(name)
        if not isinstance(table, dict):
            problems.add(line, f"notifier {name!r} must be a table")
            continue
        kind = table.get("type")
        if kind not in NOTIFIER_TYPES:
            problems.add(
                lines.notifier(name, "type"),
                f"notifier {name!r}: type {kind!r} is not one of {', '.join(NOTIFIER_TYPES)}",
            )
            continue
        for key in table:
            if key not in _NOTIFIER_KEYS[kind]:
                allowed = ", ".join(sorted(_NOTIFIER_KEYS[kind]))
                problems.add(lines.notifier(name, key), f"notifier {name!r}: unknown key {key!r} ({allowed})")
        options = {k: v for k, v in table.items() if k != "type"}
        _check_notifier(name, kind, options, lines, problems)
        out[name] = NotifierSpec(name, kind, options, line)
    return out


def _check_notifier(name: str, kind: str, options: dict[str, Any], lines: Lines, problems: _Problems) -> None:
    def bad(key: str, reason: str) -> None:
        problems.add(lines.notifier(name, key), f"notifier {name!r}: {reason}")

    for key in ("timeout", "backoff", "deadline"):
        if key in options:
            try:
                options[key] = parse_duration(options[key])
            except ValueError as exc:
                bad(key, f"{key}: {exc}")
    if kind == "webhook":
        url = options.get("url")
        if not isinstance(url, str) or not re.match(r"^https?://[^\s/]+", url):
            bad("url", f"url {url!r} must be an http:// or https:// URL")
        headers = options.get("headers", {})
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            bad("headers", "headers must be a table of texts")
        retries = options.get("retries", 3)
        if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 10:
            bad("retries", f"retries {retries!r} must be an integer from 0 to 10")
    elif kind == "command":
        command = options.get("command")
        if isinstance(command, str):
            try:
                command = shlex.split(command)
            except ValueError as exc:
                bad("command", f"command: {exc}")
                return
        if not isinstance(command, list) or not command or not all(isinstance(c, str) for c in command):
            bad("command", "command must be a program and its arguments: a list of texts or one text")
        else:
            options["command"] = command


def _rule(
    index: int, table: Any, lines: Lines, notifiers: Mapping[str, NotifierSpec], problems: _Problems
) -> Rule | None:
    line = lines.rule(index)
    if not isinstance(table, dict):
        problems.add(line, "a rule must be a [[rule]] table")
        return None
    errors_before = len(problems.found)

    def bad(key: str | None, reason: str) -> None:
        name = table.get("name")
        where = f"rule {name!r}" if isinstance(name, str) else f"rule #{index + 1}"
        problems.add(lines.rule(index, key), f"{where}: {reason}")

    for key in table:
        if key not in _RULE_KEYS:
            bad(key, f"unknown key {key!r}; expected some of {', '.join(sorted(_RULE_KEYS))}")
    name = table.get("name")
    if not isinstance(name, str) or not name.strip():
        bad("name" if "name" in table else None, "'name' is missing (a non-empty text)")
        name = ""
    metric = table.get("metric")
    if metric not in RULE_METRICS:
        bad(
            "metric" if "metric" in table else None,
            f"metric {metric!r} is not one of {', '.join(RULE_METRICS)}",
        )
        return None
    over = table.get("over")
    base = metric
    if metric == ANOMALY:
        if over not in METRICS:
            bad(
                "over" if "over" in table else None,
                f"an anomaly rule needs 'over', one of {', '.join(METRICS)}",
            )
            return None
        base = over
    elif over is not None:
        bad("over", "'over' is for anomaly rules only")
    of = table.get("of")
    try:
        from clisight.query.series import source_of

        source = source_of(base, of)
    except ValueError as exc:
        bad("of", str(exc))
        return None
    where = _texts(table.get("where", {}), "where", bad)
    for key in where:
        if key not in WHERE_KEYS[source]:
            bad(
                f"where.{key}",
                f"where: {base} of {source} cannot filter by {key!r}; use {', '.join(WHERE_KEYS[source])}",
            )
    if "level" in where:
        from clisight.query.series import level_number

        if base != "count":
            bad("where.level", 'where: \'level\' filters counts of logs only (metric = "count", of = "logs")')
        else:
            try:
                level_number(where["level"])
            except ValueError as exc:
                bad("where.level", f"where: {exc}")
    group_by = table.get("group_by", [])
    if isinstance(group_by, str):
        group_by = [group_by]
    if not isinstance(group_by, list) or not all(isinstance(g, str) for g in group_by):
        bad("group_by", "group_by must be a list of texts")
        group_by = []
    for key in group_by:
        if key not in WHERE_KEYS[source] or key == "level":
            allowed = [k for k in WHERE_KEYS[source] if k != "level"]
            bad(
                "group_by",
                f"group_by: {base} of {source} cannot be grouped by {key!r}; use {', '.join(allowed)}",
            )

    def duration(key: str, default: str) -> int:
        try:
            return parse_duration(table.get(key, default))
        except ValueError as exc:
            bad(key, f"{key}: {exc}")
            return 0

    window = duration("window", "5m")
    if "window" in table and window < SECOND_NS and not problems.found[errors_before:]:
        bad("window", "window must be at least 1s")
    for_ns = duration("for", "0s")
    keep = duration("keep_firing_for", "0s")
    history = duration("history", "4h")
    if metric == ANOMALY and history and (history < 30 * 60 * SECOND_NS or history > MAX_HISTORY_NS):
        bad("history", "history must be from 30m to 1d (the per-minute series the detector scores)")
    above, below = table.get("above"), table.get("below")
    if above is not None and below is not None:
        bad("below", "give one condition, 'above' or 'below', not both")
    op = "below" if below is not None else "above"
    raw = below if below is not None else above
    threshold = math.nan
    if metric == ANOMALY:
        if below is not None:
            bad("below", "an anomaly rule fires on a high score: use 'above' (or leave it out)")
        if raw is None:
            from clisight.detect import default_threshold

            threshold = default_threshold()
        else:
            threshold = _number(raw, op, base, bad)
            if not 0 < threshold <= 1:
                bad(op, f"{op}: an anomaly score threshold is from 0 to 1, got {raw!r}")
    elif raw is None:
        bad(None, "the condition is missing: give 'above = NUMBER' or 'below = NUMBER'")
    else:
        threshold = _number(raw, op, base, bad)
    agg = table.get("agg")
    if agg is not None and (base not in ("cpu", "rss") or agg not in ("avg", "max")):
        bad("agg", "agg is 'avg' or 'max', for cpu and rss only")
    severity = table.get("severity", "warning")
    if severity not in SEVERITIES:
        bad("severity", f"severity {severity!r} is not one of {', '.join(SEVERITIES)}")
    labels = _texts(table.get("labels", {}), "labels", bad)
    notify = table.get("notify", [])
    if isinstance(notify, str):
        notify = [notify]
    if not isinstance(notify, list) or not all(isinstance(n, str) for n in notify):
        bad("notify", "notify must be a list of notifier names")
        notify = []
    for target in notify:
        if target not in notifiers:
            known = ", ".join(sorted(notifiers)) or "none is defined"
            bad("notify", f"unknown notifier {target!r}: define it in a [notifier.{target}] table ({known})")
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        bad("enabled", "enabled must be true or false")
    summary = table.get("summary", "")
    if not isinstance(summary, str):
        bad("summary", "summary must be a text")
    if len(problems.found) > errors_before:
        return None
    return Rule(
        name=name,
        metric=metric,
        threshold=threshold,
        op=op,
        window_ns=window,
        for_ns=for_ns,
        keep_firing_for_ns=keep,
        where=where,
        group_by=tuple(group_by),
        of=of,
        over=over if metric == ANOMALY else None,
        agg=agg,
        history_ns=history,
        severity=severity,
        labels=labels,
        notify=tuple(notify),
        enabled=bool(enabled),
        summary=summary,
        line=lines.rule(index),
    )


def _texts(value: Any, key: str, bad: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        bad(key, f'{key} must be a table such as {key} = {{ service = "mycli" }}')
        return {}
    out = {}
    for k, v in value.items():
        if isinstance(v, bool) or not isinstance(v, str | int | float):
            bad(f"{key}.{k}", f"{key}.{k} must be a text or a number")
            continue
        out[str(k)] = str(v)
    return out


def _number(raw: Any, op: str, metric: str, bad: Any) -> float:
    if isinstance(raw, str) and metric.startswith("latency_"):
        try:
            return parse_duration(raw) / SECOND_NS  # latency thresholds may say "500ms" or "2s"
        except ValueError as exc:
            bad(op, f"{op}: {exc}")
            return math.nan
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        bad(op, f"{op} must be a number, got {raw!r}")
        return math.nan
    return float(raw)
