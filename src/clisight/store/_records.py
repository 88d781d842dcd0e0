"""Turning record fields into column values every backend stores the same way: JSON text, fingerprints."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson

_JSON_OPTIONS = orjson.OPT_NON_STR_KEYS

# A CPython traceback frame line; line numbers are left out so editing a file doesn't split a group.
_FRAME = re.compile(r'File "([^"]+)", line \d+, in (\S+)')
# Numbers, hex ids and quoted values vary between occurrences of the same error.
_VARIABLE = re.compile(r"0x[0-9a-fA-F]+|\d+|'[^']*'|\"[^\"]*\"")
_TOP_FRAMES = 5


def to_json(value: Any) -> str:
    """JSON text of ``value``; never raises, so one odd attribute can't lose a whole batch."""
    try:
        return orjson.dumps(value, default=str, option=_JSON_OPTIONS).decode()
    except (TypeError, ValueError):
        # Integers beyond 64 bits, recursion and the like: keep what can be kept, as text.
        if isinstance(value, dict):
            return orjson.dumps({str(k): str(v) for k, v in value.items()}).decode()
        return orjson.dumps(str(value)).decode()


def from_json(text: str | bytes | None) -> Any:
    """The value of JSON text written by :func:`to_json` (``None`` stays ``None``)."""
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def stack_text(stack: Any) -> str:
    """A stack attribute as text, whether it came as a string or a list of frames."""
    if stack is None:
        return ""
    if isinstance(stack, str):
        return stack
    if isinstance(stack, list | tuple):
        return "\n".join(str(frame) for frame in stack)
    return str(stack)


def error_fingerprint(error_type: str, message: str, stack: str) -> str:
    """The group an error belongs to: its type plus the innermost frames, or its message shape."""
    frames = _FRAME.findall(stack)[-_TOP_FRAMES:]
    if frames:
        basis = "|".join(f"{path.replace(chr(92), '/').rsplit('/', 1)[-1]}:{func}" for path, func in frames)
    else:
        basis = _VARIABLE.sub("_", message)
    return hashlib.sha256(f"{error_type}|{basis}".encode()).hexdigest()[:32]


def error_title(error_type: str, message: str) -> str:
    """One line naming an error group."""
    first_line = message.strip().splitlines()[0] if message.strip() else ""
    title = f"{error_type}: {first_line}" if first_line else error_type
    return title if len(title) <= 200 else title[:199] + "…"
