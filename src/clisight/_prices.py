"""LLM prices per model: the table shipped as package data (``data/llm_prices.json``, with its date),
overridable by the ``llm_prices`` configuration parameter, and the one cost formula.

A model the table does not know is *unknown*: :func:`cost` returns ``None`` for it, never 0, and
reports say so.  Model names are matched as given, then without a provider prefix
(``anthropic/``), then without a date or ``-latest`` suffix (``claude-sonnet-4-20250514`` is
``claude-sonnet-4``; ``gpt-4o-2024-08-06`` is ``gpt-4o``) or a context-window tag (Claude Code's
``claude-opus-4-6[1m]`` is ``claude-opus-4-6``).  Long-prompt surcharges (Sonnet 4 and 4.5 beyond
200k tokens, Haiku 5.5 beyond 100k) are not modelled: the table's ``source`` says so.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, NamedTuple

PRICE_FILE: Final = Path(__file__).with_name("data") / "llm_prices.json"
# A price table is a few kilobytes; a file far larger is not one (and would be read into memory whole).
MAX_PRICE_FILE_BYTES: Final = 4 * 1024 * 1024
_SUFFIX: Final = re.compile(r"(-\d{8}|-\d{4}-\d{2}-\d{2}|-latest|@\d{8}|-v\d+(:\d+)?|\[\w+\])$")


class Price(NamedTuple):
    """US dollars per million tokens of each kind."""

    input: float
    output: float
    cache_read: float
    cache_write: float


class PriceTable:
    """Prices by model name, and the date they were taken (``as_of``)."""

    def __init__(self, models: Mapping[str, Price], as_of: str) -> None:
        self.models = dict(models)
        self.as_of = as_of

    def find(self, model: object) -> Price | None:
        """The price of ``model``, or None when the table does not know it."""
        if not isinstance(model, str) or not model:
            return None
        name = model.strip().lower()
        for candidate in _candidates(name):
            price = self.models.get(candidate)
            if price is not None:
                return price
        return None

    def cost(
        self,
        model: object,
        input_tokens: float = 0,
        output_tokens: float = 0,
        cache_read_tokens: float = 0,
        cache_creation_tokens: float = 0,
    ) -> float | None:
        """US dollars for these tokens of ``model``; None for an unknown model."""
        price = self.find(model)
        if price is None:
            return None
        return compute(price, input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens)

    def with_overrides(self, overrides: Mapping[str, Any]) -> PriceTable:
        """A copy with ``overrides`` (model -> {input, output, cache_read, cache_write}) applied; a
        field not given in an override keeps the shipped value (or 0 for a new model)."""
        models = dict(self.models)
        for name, fields in overrides.items():
            models[str(name).strip().lower()] = parse_price(fields, models.get(str(name).strip().lower()))
        return PriceTable(models, self.as_of)


def compute(
    price: Price,
    input_tokens: float,
    output_tokens: float,
    cache_read_tokens: float,
    cache_creation_tokens: float,
) -> float:
    """The one cost formula: each kind of token at its price per million, rounded to 1e-10 dollars
    (so sums of many calls do not drift in the last bits)."""
    total = (
        input_tokens * price.input
        + output_tokens * price.output
        + cache_read_tokens * price.cache_read
        + cache_creation_tokens * price.cache_write
    ) / 1_000_000
    return round(total, 10)


def parse_price(fields: Any, base: Price | None = None) -> Price:
    """A :class:`Price` from a mapping of ``input``/``output``/``cache_read``/``cache_write``;
    ValueError naming what is wrong."""
    if isinstance(fields, Price):
        return fields
    if not isinstance(fields, Mapping):
        raise ValueError(f"a price must be a table of input/output/cache_read/cache_write, got {fields!r}")
    unknown = set(fields) - set(Price._fields)
    if unknown:
        raise ValueError(f"unknown price field(s) {sorted(unknown)}: expected {list(Price._fields)}")
    values = []
    for name in Price._fields:
        value = fields.get(name, getattr(base, name) if base is not None else 0.0)
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
            raise ValueError(f"price {name}={value!r}: expected dollars per million tokens >= 0")
        values.append(float(value))
    return Price(*values)


def _candidates(name: str) -> list[str]:
    names = [name]
    if "/" in name:
        names.append(name.rsplit("/", 1)[1])
    for base in list(names):
        stripped = _SUFFIX.sub("", base)
        while stripped != base:
            names.append(stripped)
            base, stripped = stripped, _SUFFIX.sub("", stripped)
    return names


_shipped: list[PriceTable] = []


def shipped() -> PriceTable:
    """The table shipped with clisight (read once per process)."""
    if not _shipped:
        data = json.loads(PRICE_FILE.read_text(encoding="utf-8"))
        models = {name.lower(): parse_price(fields) for name, fields in data["models"].items()}
        _shipped.append(PriceTable(models, str(data["as_of"])))
    return _shipped[0]


def load_overrides(value: Any) -> dict[str, Any]:
    """The ``llm_prices`` parameter: a mapping (a TOML table), JSON text, or the path of a JSON
    file; {} for empty.  ValueError when it is none of these."""
    if isinstance(value, Mapping):
        return dict(value)
    if not isinstance(value, str) or not value.strip():
        if value in (None, ""):
            return {}
        raise ValueError(f"llm_prices: expected a table, JSON text or a JSON file path, got {value!r}")
    text = value.strip()
    if not text.startswith("{"):
        text = read_price_file(Path(text).expanduser())
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("llm_prices: the JSON must be an object of model -> prices")
    models = data.get("models", data)
    return dict(models) if isinstance(models, dict) else {}


class PriceFileRefused(ValueError):
    """The ``llm_prices`` path is not a regular file of a sane size (a FIFO, a directory, a device,
    a huge file): refused without reading it, the message saying what it is."""


def read_price_file(path: Path) -> str:
    """The text of a JSON price file.  Only a regular file of at most ``MAX_PRICE_FILE_BYTES`` is
    read: a FIFO would block the program until someone writes to it, ``/dev/zero`` would never end.
    OSError when it cannot be opened, PriceFileRefused when it is not such a file."""
    # O_NONBLOCK: opening a FIFO must not wait for a writer (it only affects FIFOs and devices here).
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
    except OSError:
        os.close(fd)
        raise
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise PriceFileRefused(f"{path} is {_node(info.st_mode)}, not a regular file: give a JSON file")
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(MAX_PRICE_FILE_BYTES + 1)
    if len(data) > MAX_PRICE_FILE_BYTES:
        raise PriceFileRefused(
            f"{path} is over {MAX_PRICE_FILE_BYTES // 1024 // 1024} MB, too large for a price table"
        )
    return data.decode("utf-8")


def _node(mode: int) -> str:
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for test, name in kinds if test(mode)), "a special file")


def table(overrides: Any = None) -> PriceTable:
    """The shipped table with ``overrides`` (see :func:`load_overrides`) applied."""
    extra = load_overrides(overrides) if overrides else {}
    return shipped().with_overrides(extra) if extra else shipped()
