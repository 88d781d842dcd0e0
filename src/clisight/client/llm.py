"""LLM calls: ``clisight.llm.record(...)``, their cost from the price table, and budgets.

Each call is one ``llm.request`` usage event (the store's rollups sum its tokens, cost and latency
per model, so reports never scan raw rows)::

    clisight.llm.record(model="claude-sonnet-4-5", input_tokens=1200, output_tokens=300,
                        cache_read_tokens=5000, latency=2.1, ttft=0.4, stop_reason="end_turn")

- **Cost**: from the price table (``clisight/data/llm_prices.json``, dated; the ``llm_prices``
  parameter overrides or adds models).  A model the table does not know is recorded with
  ``priced=False`` and no ``cost_usd``: reports call its cost unknown, never $0.
- **Content**: ``prompt=`` and ``completion=`` are dropped unless ``llm_content`` is on; then
  they are kept, scrubbed by the redactor like every value.
- **Budgets**: per day (this process's calls of the current UTC day) and per session, on cost or
  tokens (the ``llm_budgets`` parameter, or :func:`set_budget`).  Crossing one records a WARNING log
  and an ``llm.budget_exceeded`` event, and calls the budget callback, once per budget and day or
  session.

Every public function here runs inside the never-raise guard and is ignored before ``init()``, after
``shutdown()`` and under ``DO_NOT_TRACK=1``.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Final, NamedTuple

from clisight import _prices
from clisight._safety import guard
from clisight.client import context as _ctx
from clisight.client import core as _core
from clisight.types import WARNING

EVENT: Final = "llm.request"
BUDGET_EVENT: Final = "llm.budget_exceeded"
COMPONENT: Final = "clisight.llm"


class BudgetAlert(NamedTuple):
    """A budget crossed: ``scope`` is ``day`` or ``session``, ``key`` the day (YYYY-MM-DD) or the
    session id, ``measure`` ``usd`` or ``tokens``, and the limit and the value that crossed it."""

    scope: str
    key: str
    measure: str
    limit: float
    value: float


class _State:
    """Prices and budgets of the running client, and the running totals budgets compare against."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.client: object = None
        self.prices: _prices.PriceTable | None = None
        self.capture_content = False
        self.limits: dict[tuple[str, str], float] = {}  # (scope, measure) -> limit, 0 = none
        self.callback: Callable[[BudgetAlert], Any] | None = None
        self.totals: dict[tuple[str, str], list[float]] = {}  # (scope, key) -> [usd, tokens]
        self.alerted: set[tuple[str, str, str]] = set()

    def sync(self, client: _core.Client) -> None:
        """Re-read the configuration when the client changed (a new init())."""
        if self.client is client:
            return
        config = client.config
        self.prices = _prices.table(config["llm_prices"])
        self.capture_content = bool(config["llm_content"])
        budgets = config["llm_budgets"]
        self.limits = {
            ("day", "usd"): budgets.get("daily_usd", 0.0),
            ("session", "usd"): budgets.get("session_usd", 0.0),
            ("day", "tokens"): budgets.get("daily_tokens", 0.0),
            ("session", "tokens"): budgets.get("session_tokens", 0.0),
        }
        self.totals.clear()
        self.alerted.clear()
        self.client = client


_state = _State()


def prices() -> _prices.PriceTable:
    """The price table in force: the running client's (with its ``llm_prices``), else the shipped one."""
    client = _core._client
    if client is not None:
        with _state.lock:
            _state.sync(client)
        if _state.prices is not None:
            return _state.prices
    return _prices.shipped()


def cost(
    model: str,
    input_tokens: float = 0,
    output_tokens: float = 0,
    cache_read_tokens: float = 0,
    cache_creation_tokens: float = 0,
) -> float | None:
    """US dollars for these tokens of ``model`` by the price table in force; None when unknown."""
    return prices().cost(model, input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens)


def set_budget(
    *,
    daily_usd: float | None = None,
    session_usd: float | None = None,
    daily_tokens: float | None = None,
    session_tokens: float | None = None,
    on_exceeded: Callable[[BudgetAlert], Any] | None = None,
) -> None:
    """Set budgets for the running client (over the ``llm_budgets`` parameter; 0 removes one) and
    the callback called with a :class:`BudgetAlert` when one is crossed."""
    with guard():
        client = _core._client
        if client is None:
            return
        with _state.lock:
            _state.sync(client)
            for key, value in (
                (("day", "usd"), daily_usd),
                (("session", "usd"), session_usd),
                (("day", "tokens"), daily_tokens),
                (("session", "tokens"), session_tokens),
            ):
                if value is not None:
                    _state.limits[key] = max(float(value), 0.0)
            if on_exceeded is not None:
                _state.callback = on_exceeded


def record(
    model: str,
    input_tokens: int = 0,
    output_tokens: int = 0,
    cache_read_tokens: int = 0,
    cache_creation_tokens: int = 0,
    latency: float | None = None,
    ttft: float | None = None,
    tool_calls: int | None = None,
    stop_reason: str | None = None,
    *,
    cost_usd: float | None = None,
    provider: str | None = None,
    prompt: object = None,
    completion: object = None,
    **properties: Any,
) -> float | None:
    """Record one LLM call; returns its cost in US dollars (None when the model's price is unknown
    or clisight is not running).  With usage off (``DO_NOT_TRACK=1``) nothing is recorded, but the
    cost is still returned.

    ``latency`` and ``ttft`` (time to first token) are seconds; ``cost_usd`` overrides the price
    table (a provider's own figure).  ``properties`` are kept as fields of the event.
    """
    with guard():
        client = _core._client
        if client is None:
            return None
        with _state.lock:
            _state.sync(client)
        table = _state.prices or _prices.shipped()
        tokens = [_count(input_tokens), _count(output_tokens), _count(cache_read_tokens)]
        tokens.append(_count(cache_creation_tokens))
        if cost_usd is not None and _number(cost_usd) is not None:
            price: float | None = float(cost_usd)
        else:
            price = table.cost(model, *tokens)
        if not client.usage:
            return price  # DO_NOT_TRACK: nothing recorded, but the program still gets its cost
        attrs: dict[str, Any] = {**properties, "model": str(model) if model is not None else "unknown"}
        attrs["input_tokens"], attrs["output_tokens"] = tokens[0], tokens[1]
        attrs["cache_read_tokens"], attrs["cache_creation_tokens"] = tokens[2], tokens[3]
        attrs["priced"] = price is not None
        if price is not None:
            attrs["cost_usd"] = price
        for key, value in (("duration", _number(latency)), ("ttft", _number(ttft))):
            if value is not None:
                attrs[key] = value
        if tool_calls is not None and _number(tool_calls) is not None:
            attrs["tool_calls"] = int(tool_calls)
        if stop_reason is not None:
            attrs["stop_reason"] = str(stop_reason)
        if provider is not None:
            attrs["provider"] = str(provider)
        if _state.capture_content:
            if prompt is not None:
                attrs["prompt"] = prompt if isinstance(prompt, str | list | dict) else str(prompt)
            if completion is not None:
                attrs["completion"] = (
                    completion if isinstance(completion, str | list | dict) else str(completion)
                )
        ctx = _ctx.get()
        build = client.records
        client.emit(build.event(EVENT, build.merge(ctx, attrs), ctx))
        _check_budgets(client, ctx, price or 0.0, float(sum(tokens)))
        return price
    return None


def _check_budgets(client: _core.Client, ctx: _ctx.Context, usd: float, tokens: float) -> None:
    day = time.strftime("%Y-%m-%d", time.gmtime(client.records.clock() / 1e9))
    session = ctx.session_id or client.session_id
    crossed: list[BudgetAlert] = []
    with _state.lock:
        for scope, key in (("day", day), ("session", session)):
            totals = _state.totals.setdefault((scope, key), [0.0, 0.0])
            totals[0] += usd
            totals[1] += tokens
            for measure, value in (("usd", totals[0]), ("tokens", totals[1])):
                limit = _state.limits.get((scope, measure)) or 0.0
                if limit > 0 and value >= limit and (scope, key, measure) not in _state.alerted:
                    _state.alerted.add((scope, key, measure))
                    crossed.append(BudgetAlert(scope, key, measure, limit, round(value, 10)))
        callback = _state.callback
    build = client.records
    for alert in crossed:
        fields: dict[str, Any] = {"budget.scope": alert.scope, "budget.key": alert.key}
        fields["budget.measure"] = alert.measure
        fields.update({"budget.limit": alert.limit, "budget.value": alert.value})
        unit = "$" if alert.measure == "usd" else ""
        what = "tokens" if alert.measure == "tokens" else "cost"
        message = (
            f"LLM {what} budget per {alert.scope} crossed: {unit}{alert.value:g} >= {unit}{alert.limit:g}"
        )
        client.emit(build.log(COMPONENT, WARNING, message, build.merge(ctx, fields), ctx))
        client.emit(build.event(BUDGET_EVENT, build.merge(ctx, fields), ctx))
        if callback is not None:
            with guard():
                callback(alert)


def _count(value: object) -> int:
    number = _number(value)
    return int(number) if number is not None and number > 0 else 0


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if number == number and abs(number) != float("inf") else None


def instrument_anthropic() -> bool:
    """Record every call of the ``anthropic`` SDK (see ``clisight.client.llm_sdk``); False when it
    is not installed.  Opt-in, once per process."""
    from clisight.client.llm_sdk import instrument_anthropic as instrument

    return instrument()


def instrument_openai() -> bool:
    """Record every chat completion of the ``openai`` SDK (see ``clisight.client.llm_sdk``); False
    when it is not installed.  Opt-in, once per process."""
    from clisight.client.llm_sdk import instrument_openai as instrument

    return instrument()


# ``clisight.llm`` is this module: ``clisight.llm.record(...)``.
llm = sys.modules[__name__]

__all__ = [
    "BudgetAlert",
    "cost",
    "instrument_anthropic",
    "instrument_openai",
    "llm",
    "prices",
    "record",
    "set_budget",
]
