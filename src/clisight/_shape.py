"""The shape of a message: what stays the same between occurrences of the same problem.

``message_shape("user 4411 not found in '/srv/a.json' (req 9f1c…)")`` is
``"user <n> not found in <str> (req <hex>)"``.  Error fingerprints (client side) and the store's
``log_error`` rollup key (the writer, and the raw SQL path through a registered function) use this
one function, so a message with ids in it makes one group, not one per id.

What is blanked, in this order: URLs, UUIDs, quoted values, e-mail addresses, paths (a ``/`` or
``\\`` with something on both sides, or starting a word), numbers in exponent notation, hex ids
(``0x…`` and runs of 8+ hex digits holding both a digit and a letter), ids (words joined by ``_``
or ``-`` with a digit in them, and runs of 8+ letters and digits mixed), numbers (with their sign,
decimals, exponent and a glued unit such as ``ms``).
Pure: never raises on a ``str``, and its result is its own shape (idempotent).
"""

from __future__ import annotations

import re
from typing import Final

MAX_SHAPE_CHARS: Final = 300

_RULES: Final = (
    (re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://\S+"), "<url>"),
    (
        re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"),
        "<uuid>",
    ),
    (re.compile(r"'[^'\n]*'|\"[^\"\n]*\"|`[^`\n]*`"), "<str>"),
    (re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"), "<email>"),
    (re.compile(r"(?:[A-Za-z]:)?(?:~|\.{1,2})?(?:[\\/][^\s\\/:'\"<>(),;]+)+[\\/]?"), "<path>"),
    # A number in exponent notation before hex ids: the mantissa of 1.23456789e-05 is no hex id.
    (re.compile(r"[-+]?\b\d+(?:\.\d+)?[eE][-+]?\d+\b"), "<n>"),
    (
        re.compile(r"\b0[xX][0-9a-fA-F]+\b|\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b"),
        "<hex>",
    ),
    # Compound ids with a digit (ord_226c0, req-7f3a, user_42) and long mixed runs (base62 ids).
    (
        re.compile(
            r"\b(?=[\w-]*\d)(?=[\w-]*[A-Za-z])[A-Za-z0-9]+(?:[_-][A-Za-z0-9]+)+\b"
            r"|\b(?=[A-Za-z]*\d)(?=\d*[A-Za-z])[A-Za-z0-9]{8,}\b"
        ),
        "<id>",
    ),
    (re.compile(r"[-+]?\b\d+(?:[.,_]\d+)*(?:[eE][-+]?\d+)?(?:[a-zA-Zµ]{1,3}\b)?"), "<n>"),
)
_PLACEHOLDER: Final = re.compile(r"<(?:url|uuid|str|email|path|hex|id|n)>")


def message_shape(message: str) -> str:
    """``message`` with its variable parts (ids, numbers, paths, URLs, quoted values) blanked,
    its whitespace runs made one space, cut to :data:`MAX_SHAPE_CHARS`."""
    if not message:
        return ""
    text = message if len(message) <= 4 * MAX_SHAPE_CHARS else message[: 4 * MAX_SHAPE_CHARS]
    # Placeholders already there stay as they are (a shape is its own shape).
    parts = _PLACEHOLDER.split(text)
    marks = _PLACEHOLDER.findall(text)
    out: list[str] = []
    for index, part in enumerate(parts):
        for pattern, mark in _RULES:
            part = pattern.sub(mark, part)
        out.append(part)
        if index < len(marks):
            out.append(marks[index])
    shaped = " ".join("".join(out).split())
    return shaped if len(shaped) <= MAX_SHAPE_CHARS else shaped[:MAX_SHAPE_CHARS]
