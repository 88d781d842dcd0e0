"""Turning stored values into terminal text that cannot rewrite the terminal.

Everything the CLI prints that came from a store (messages, component names, attribute values,
error titles...) passes through :func:`clean` first: a log line written by any program must not be
able to clear the screen, move the cursor, rewrite an earlier line or change the window title.
"""

from __future__ import annotations

import json
from typing import Any

from clisight._terminal import clean, period, seconds, size, when


def dumps(value: Any, *, indent: int | None = 2) -> str:
    """JSON text safe for a terminal: every non-ASCII character (C1 controls included) is escaped."""
    return json.dumps(value, indent=indent, ensure_ascii=True, default=str)


__all__ = ["clean", "dumps", "period", "seconds", "size", "when"]


def counted(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless ``n`` is 1: "1 span", "2,048 spans", "0 files"."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"
