"""Stored text made safe for a terminal (:func:`clean` escapes every character that could drive
it), and the few formats of times, durations and sizes every text view shares.

A log line written by any program (or sent by any OTLP client) must not be able to clear the
screen, move the cursor, rewrite an earlier line or change the window title, whether the CLI, the
terminal dashboard or a text report shows it.  Shared by ``clisight.cli``, ``clisight.tui`` and the
comprehensive report; nothing here imports another part of clisight.
"""

from __future__ import annotations

import codecs
import re
from datetime import datetime
from typing import Any, Final

# C0 controls, DEL, C1 controls, and the Unicode controls that reorder or hide text (bidi
# overrides and isolates, zero-width joiners aside from ordinary spacing) and split lines.
_UNSAFE: Final = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]")
_NAMED: Final = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\x1b"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def clean(value: object, limit: int | None = None, *, multiline: bool = False) -> str:
    """``value`` as one line of printable text: control characters shown as escapes (``\\x1b``, ``\\r``).

    ``limit`` cuts the result to that many characters (ending in an ellipsis).  ``multiline`` keeps
    line feeds (for messages of several lines) and escapes everything else.
    """
    text = value if isinstance(value, str) else str(value)
    if multiline:
        return "\n".join(clean(line, limit) for line in text.split("\n"))
    text = _UNSAFE.sub(_escape, text)
    if limit is not None and len(text) > limit:
        text = text[: max(limit - 1, 0)] + "…"
    return text


def tolerant(stream: Any) -> Any:
    """``stream``, set to write ``?`` for what its encoding cannot hold instead of raising
    UnicodeEncodeError (``PYTHONIOENCODING=ascii``, a Latin-1 locale): a table's bars, ``µs`` or a
    stored message then degrade, and the command still prints.  A UTF stream, one already lenient
    and one that cannot be reconfigured are left as they are."""
    encoding = getattr(stream, "encoding", None)
    reconfigure = getattr(stream, "reconfigure", None)
    if not isinstance(encoding, str) or reconfigure is None or getattr(stream, "errors", None) != "strict":
        return stream
    try:
        if codecs.lookup(encoding).name.startswith("utf"):
            return stream
        reconfigure(errors="replace")
    except (LookupError, ValueError, OSError):  # an unknown codec name; a closed or detached stream
        pass
    return stream


def when(time_ns: int | None, *, precise: bool = False) -> str:
    """A record time in local time: ``2024-05-01 12:00:00`` (``.123`` milliseconds when ``precise``)."""
    if time_ns is None:
        return "-"
    moment = datetime.fromtimestamp(time_ns / 1e9)
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    return f"{text}.{moment.microsecond // 1000:03d}" if precise else text


def seconds(value: float) -> str:
    """A duration for people: ``101 µs``, ``850 ms``, ``2.41 s``, ``3.2 min``.

    Under a millisecond it is microseconds: a report of fast operations should not read "0 ms".
    """
    if 0 < value < 0.0009995:  # what would round to "1 ms" reads better as 1 ms than "1000 µs"
        return f"{value * 1e6:.0f} µs"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.2f} s"
    return f"{value / 60:.1f} min"


_PERIOD_UNITS: Final = (("d", 86_400), ("h", 3600), ("min", 60), ("s", 1))


def period(value: float) -> str:
    """A length of time for people, in its two largest non-zero whole units: ``30 min``, ``1 h``,
    ``1 h 30 min``, ``7 d`` (never ``168 h``); under a second ``0 s``.  Rounded down."""
    left = int(value) if value > 0 else 0
    parts = []
    for unit, length in _PERIOD_UNITS:
        count, left = divmod(left, length)
        if count:
            parts.append(f"{count} {unit}")
    return " ".join(parts[:2]) or "0 s"


def size(n_bytes: int) -> str:
    """A byte count for people: ``812 B``, ``1.4 MB``."""
    amount = float(n_bytes)
    for unit in ("B", "KB", "MB", "GB"):
        if amount < 1024 or unit == "GB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} GB"  # pragma: no cover - the loop always returns


__all__ = ["clean", "period", "seconds", "size", "tolerant", "when"]
