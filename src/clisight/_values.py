"""Making any value storable: the one place that decides what an odd value becomes.

Every sink serialises records with fast C-level encoders (orjson, SQLite bindings) that refuse some
Python values: strings with unpaired surrogates (``os.fsdecode`` of undecodable bytes), objects whose
``__str__`` raises, integers beyond 64 bits, graphs nested deeper than the encoder allows or
containing cycles.  The pipeline does not check values on the hot path (that would cost every call);
when a sink refuses a batch, the writer passes the batch through :func:`clean_record` and retries, so
a bad value costs only itself.  What a value becomes is stable and readable:

- a lone surrogate ``\\udcff`` becomes the six characters ``\\udcff`` (backslash escape);
- an object becomes ``str(obj)``, or ``<unrepresentable: TypeError>`` when ``str`` raises;
- an integer outside [-2**63, 2**64) becomes its decimal text;
- nesting deeper than :data:`MAX_DEPTH` becomes ``<truncated: nested too deep>``; a container seen
  twice on one path (a cycle) becomes ``<cycle>``; past :data:`MAX_NODES` values, the rest of a
  record's attributes become ``<truncated: too many values>``.

Nothing here imports anything beyond the standard library, and nothing raises.
"""

from __future__ import annotations

from typing import Any, Final

from clisight.types import Record, SpanRow, as_record

MAX_DEPTH: Final = 32
MAX_NODES: Final = 10_000
_INT_MIN: Final = -(2**63)
_INT_MAX: Final = 2**64 - 1
TOO_DEEP: Final = "<truncated: nested too deep>"
TOO_MANY: Final = "<truncated: too many values>"
CYCLE: Final = "<cycle>"


def safe_text(text: str) -> str:
    """``text`` with unpaired surrogates escaped (``\\udcff``), so every UTF-8 encoder takes it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def safe_str(value: object) -> str:
    """``str(value)`` made safe: never raises, never returns a string an encoder refuses."""
    if type(value) is str:
        return safe_text(value)
    try:
        text = str(value)
        if not isinstance(text, str):  # a __str__ returning something else makes str() raise already
            raise TypeError("__str__ returned a non-string")
    except BaseException as exc:  # a user's __str__ may raise anything
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        return f"<unrepresentable: {type(exc).__name__}>"
    return safe_text(text)


class _Budget:
    __slots__ = ("left",)

    def __init__(self, nodes: int) -> None:
        self.left = nodes


def safe_value(value: Any, depth: int = 0, budget: _Budget | None = None, path: tuple[int, ...] = ()) -> Any:
    """A copy of ``value`` that every JSON encoder and database driver takes (see the module doc)."""
    budget = budget or _Budget(MAX_NODES)
    budget.left -= 1
    if budget.left < 0:
        return TOO_MANY
    kind = type(value)
    if kind is str:
        return safe_text(value)
    if value is None or kind is bool or kind is float:
        return value
    if kind is int:
        return value if _INT_MIN <= value <= _INT_MAX else str(value)
    if isinstance(value, dict | list | tuple | set | frozenset):
        if depth >= MAX_DEPTH:
            return TOO_DEEP
        if id(value) in path:
            return CYCLE
        inner = (*path, id(value))
        if isinstance(value, dict):
            try:
                items = list(value.items())
            except Exception as exc:  # a dict subclass with a broken items()
                return f"<unrepresentable: {type(exc).__name__}>"
            out: dict[str, Any] = {}
            for key, item in items:
                if budget.left <= 0:
                    out["..."] = TOO_MANY
                    break
                out[key if type(key) is str and key.isprintable() else safe_str(key)] = safe_value(
                    item, depth + 1, budget, inner
                )
            return out
        try:
            members = list(value)
        except Exception as exc:
            return f"<unrepresentable: {type(exc).__name__}>"
        cleaned = []
        for item in members:
            if budget.left <= 0:
                cleaned.append(TOO_MANY)
                break
            cleaned.append(safe_value(item, depth + 1, budget, inner))
        return cleaned
    if isinstance(value, int | float):  # subclasses (IntEnum, numpy scalars) and bools' relatives
        try:
            return safe_value(int(value) if isinstance(value, int) else float(value), depth, budget, path)
        except Exception:
            return safe_str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return safe_text(bytes(value).decode("utf-8", "backslashreplace"))
    return safe_str(value)


def _id_or_none(value: Any) -> str | None:
    return None if value is None else safe_str(value)


def clean_record(record: Record | SpanRow) -> Record:
    """``record`` with every field made storable; equal to ``record`` when nothing needed cleaning
    (a :class:`SpanRow` becomes its record first)."""
    record = as_record(record)
    attributes = safe_value(record.attributes) if isinstance(record.attributes, dict) else {}
    if not isinstance(attributes, dict):  # the node budget ran out at the top
        attributes = {"attributes": attributes}
    try:
        time_ns = int(record.time_ns)
    except Exception:
        time_ns = 0
    try:
        severity = int(record.severity)
    except Exception:
        severity = 0
    value = record.value
    if value is not None and type(value) is not float:
        try:
            value = float(value)
        except Exception:
            value = None
    end_ns = record.end_ns
    if end_ns is not None and type(end_ns) is not int:
        try:
            end_ns = int(end_ns)
        except Exception:
            end_ns = None
    return Record(
        safe_str(record.kind),
        time_ns,
        safe_str(record.name),
        safe_str(record.body),
        severity,
        attributes,
        record.resource,
        _id_or_none(record.session_id),
        _id_or_none(record.trace_id),
        _id_or_none(record.span_id),
        _id_or_none(record.parent_span_id),
        end_ns,
        value,
    )
