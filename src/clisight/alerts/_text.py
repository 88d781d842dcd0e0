"""Reading a rules file's text: durations (``"30s"``, ``"1h30m"``), and the line of every table and
key, which TOML parsers do not give for a value that parses but means nothing (an unknown metric)."""

from __future__ import annotations

import math
import re
from typing import Final

SECOND_NS: Final = 1_000_000_000

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_NS: Final = {
    "ms": 10**6,
    "s": SECOND_NS,
    "m": 60 * SECOND_NS,
    "h": 3600 * SECOND_NS,
    "d": 86_400 * SECOND_NS,
    "w": 7 * 86_400 * SECOND_NS,
}


def parse_duration(text: object) -> int:
    """``"30s"``, ``"5m"``, ``"1h30m"``, ``"500ms"``, ``"1d"``, ``"1w"`` as nanoseconds; ValueError
    otherwise (a bare number is refused: seconds or minutes would be a guess)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f'bad duration {text!r}: expected a text such as "30s", "5m", "1h30m" or "1d"')
    word = text.strip().lower()
    pos, total = 0, 0.0
    for match in _DURATION.finditer(word):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_NS[match.group(2)]
        pos = match.end()
    if pos != len(word) or not math.isfinite(total) or total >= 2**62:
        raise ValueError(
            f'bad duration {text!r}: expected a number and a unit (ms, s, m, h, d, w), such as "30s", '
            '"5m", "1h30m" or "1d"'
        )
    return int(total)


def format_duration(ns: int) -> str:
    """A duration in the rules file's form: ``90s`` as ``1m30s``."""
    if ns <= 0:
        return "0s"
    seconds, rest = divmod(ns, SECOND_NS)
    parts = []
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    if rest and not parts:
        parts.append(f"{rest // 10**6}ms")
    return "".join(parts) or "0s"


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_PART = re.compile(r"\"[^\"]*\"|'[^']*'|[^.\s]+")
_KEY = re.compile(
    r"^\s*(\"[^\"]*\"|'[^']*'|[A-Za-z0-9_\-]+)\s*(?:\.\s*(\"[^\"]*\"|'[^']*'|[A-Za-z0-9_\-]+))?\s*="
)


def _unquote(text: str) -> str:
    text = text.strip()
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'" else text


class Lines:
    """Line numbers of the file's tables and keys: ``[[rule]]`` number i, ``[notifier.NAME]``, and
    the keys under each (also in sub-tables such as ``[rule.where]``, filed under their rule)."""

    def __init__(self, text: str) -> None:
        self.rules: list[int] = []
        self.rule_keys: list[dict[str, int]] = []
        self.notifiers: dict[str, int] = {}
        self.notifier_keys: dict[str, dict[str, int]] = {}
        self.top: dict[str, int] = {}
        section: dict[str, int] = self.top
        prefix = ""
        for number, line in enumerate(text.splitlines(), start=1):
            header = _HEADER.match(line)
            if header:
                parts = [_unquote(p) for p in _PART.findall(header.group(2))]
                prefix = ""
                if header.group(1) == "[[" and parts == ["rule"]:
                    self.rules.append(number)
                    section = {}
                    self.rule_keys.append(section)
                elif parts[0] == "rule" and self.rule_keys:
                    section = self.rule_keys[-1]
                    prefix = ".".join(parts[1:])
                    section.setdefault(prefix, number)
                elif parts[0] == "notifier" and len(parts) >= 2:
                    name = parts[1]
                    self.notifiers.setdefault(name, number)
                    section = self.notifier_keys.setdefault(name, {})
                    prefix = ".".join(parts[2:])
                else:
                    section = {}
                    self.top.setdefault(parts[0], number)
                continue
            key = _KEY.match(line)
            if key:
                name = _unquote(key.group(1))
                section.setdefault(f"{prefix}.{name}" if prefix else name, number)
                if prefix:
                    section.setdefault(prefix, number)
                if key.group(2):  # a dotted key: where.operation = "chat"
                    section.setdefault(f"{name}.{_unquote(key.group(2))}", number)

    def rule(self, index: int, key: str | None = None) -> int:
        if index >= len(self.rules):
            return 1
        keys = self.rule_keys[index]
        if key is not None:
            for candidate in (key, key.split(".")[0]):
                if candidate in keys:
                    return keys[candidate]
        return self.rules[index]

    def notifier(self, name: str, key: str | None = None) -> int:
        keys = self.notifier_keys.get(name, {})
        if key is not None and key in keys:
            return keys[key]
        return self.notifiers.get(name, self.top.get("notifier", 1))
