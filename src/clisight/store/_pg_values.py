"""Values as PostgreSQL keeps them, and back: what the store writes reads back exactly as written.

Two things PostgreSQL will not keep as they are:

- A NUL character: TEXT cannot hold one, JSONB refuses ``\\u0000``.  Text is stored with NUL as
  U+E000 followed by ``0``, and U+E000 itself (a private-use character) doubled; :func:`decode`
  turns both back.  The code is prefix-free, so a prefix or a substring of a decoded text is found
  by encoding the prefix or substring (``starts_with``, ``LIKE``), and equal texts stay equal.
- A float JSON writes with an exponent (``1e+16``, ``1.7976931348623157e308``): JSONB keeps numbers
  as NUMERIC, which prints such a number as an integer, and an integer reads back as an int that
  is not the float written.  Such floats go in as their exact value with ``.0`` (a NUMERIC keeps
  its scale), which reads back as the same float.  An integer beyond 64 bits is kept as its digits
  (a string), as ``to_json`` keeps it.

The fast path costs a substring test per text and per JSON document; only values that need it are
walked.
"""

from __future__ import annotations

import re
from typing import Any, Final

import orjson

from clisight.store._model import to_json

ESC: Final = "\ue000"
_NUL: Final = "\x00"
_JSON_NUL: Final = "\\u0000"
_CODE: Final = re.compile("\ue000(.)", re.DOTALL)
_OPTIONS: Final = orjson.OPT_NON_STR_KEYS
_EXACT_FLOAT: Final = 1e16  # orjson writes floats from here on with an exponent
_INT64: Final = (-(2**63), 2**64 - 1)  # what orjson writes itself (signed or unsigned 64 bits)
_FRAGMENT = getattr(orjson, "Fragment", None)
_MAX_DEPTH: Final = 200


def encode(value: str) -> str:
    """``value`` as a TEXT column can hold it."""
    if _NUL not in value and ESC not in value:
        return value
    return value.replace(ESC, ESC + ESC).replace(_NUL, ESC + "0")


def encode_opt(value: str | None) -> str | None:
    return None if value is None else encode(value)


def _decoded(found: re.Match[str]) -> str:
    return _NUL if found.group(1) == "0" else found.group(1)


def decode(value: str) -> str:
    """The text :func:`encode` was given."""
    return value if ESC not in value else _CODE.sub(_decoded, value)


def decode_value(value: Any) -> Any:
    """``value`` (a str, or a dict/list read from JSON) with every text in it decoded."""
    if isinstance(value, str):
        return decode(value)
    if isinstance(value, dict):
        return {(decode(k) if isinstance(k, str) else k): decode_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_value(v) for v in value]
    return value


def real(value: Any) -> Any:
    """A metric value as the DOUBLE PRECISION column keeps it, as the SQLite store does: a float, and
    None for what is no finite number (NaN, ±inf, an integer beyond a float's range)."""
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:
            return None
        return number if number - number == 0 else None
    return value  # None, or text PostgreSQL reads as a number (or refuses: DataError)


def needs_decoding(row: Any) -> bool:
    """Whether a row read back (a sequence of column values) holds an encoded text."""
    return any(isinstance(v, str) and ESC in v for v in row)


def json_text(value: Any) -> str | None:
    """JSON text for a JSONB column (None stays NULL) that reads back as ``value``."""
    if value is None:
        return None
    try:
        out = orjson.dumps(value, default=str, option=_OPTIONS).decode()
    except (TypeError, ValueError):
        out = ""  # an integer beyond 64 bits, a cycle...: the careful way below
    if out and _JSON_NUL not in out and ESC not in out and "e+" not in out:
        return out
    return to_json(_prepared(value, 0))


def _prepared(value: Any, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        return str(value)
    if isinstance(value, str):
        return encode(value)
    if isinstance(value, dict):
        return {(encode(k) if isinstance(k, str) else k): _prepared(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_prepared(v, depth + 1) for v in value]
    if isinstance(value, float):
        if _FRAGMENT is not None and abs(value) >= _EXACT_FLOAT and value - value == 0:
            return _FRAGMENT(f"{int(value)}.0")
    elif isinstance(value, int) and not isinstance(value, bool) and not _INT64[0] <= value <= _INT64[1]:
        return str(value)  # JSON readers (orjson too) turn such a number into a float: keep its digits
    return value
