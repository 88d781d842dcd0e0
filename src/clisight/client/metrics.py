"""Metric instruments: ``clisight.counter``, ``clisight.gauge``, ``clisight.histogram``.

::

    requests = clisight.counter("http.requests", unit="1")
    requests.add(1, route="/v1/messages", status=200)
    clisight.gauge("queue.depth").set(12)
    clisight.histogram("llm.latency", unit="s").record(1.42, model="claude-sonnet-4")
    clisight.counter("jobs.done", expose=True).add(1, queue="mail")  # also on `clisight serve`'s /metrics

Each becomes metric points through the pipeline; the store keeps per-minute rollups of every metric
(count, sum, min, max and a quantile sketch), so reports never read the points themselves.

- A **counter** adds up in memory (per attribute set, under a lock: ``add`` costs well under a
  microsecond) and hands each non-zero sum over as one point (``temporality="delta"``) at every
  collection: each ``resource_interval`` seconds on the sampler thread, at ``flush()`` and at exit.
- A **gauge** writes a point per ``set`` (the value now); a **histogram** a point per ``record``
  (the store's sketches give its percentiles).

Instruments are cached by name: ``counter("x")`` twice is the same counter.  No call raises into
the program; values that are not finite numbers (and negative counter increments) are ignored.

``expose=True`` (counters and gauges) marks every point of the instrument (the reserved attribute
``clisight.expose``, stored with the series and never a label), and ``clisight serve`` then serves
the series on ``GET /metrics`` for Prometheus: a counter's running total, a gauge's last value, one
sample per attribute set.  Asking once is enough: the cached instrument keeps it.
"""

from __future__ import annotations

import math
import threading
from typing import Any, Final

from clisight._fork import CLIENT, register_fork_steps
from clisight._safety import _raise_internal, guard, record_internal_error
from clisight.client import context as _ctx
from clisight.client import core as _core
from clisight.pipeline.redact import as_repr, as_text
from clisight.types import EXPOSE_KEY

_NUMBER: Final = (int, float)
_INF: Final = math.inf
_instruments: dict[tuple[str, str], Any] = {}
_MAX_EXACT = 2**53  # ints above this take the careful path (a float cannot hold every int)
_registry_lock = threading.Lock()
_attached: list[Any] = [None]  # the client whose flush steps collect the counters


def _finite(value: Any) -> float | None:
    """``value`` as a finite float, or None (not a number, NaN, infinite, or an int beyond floats)."""
    try:
        if type(value) in _NUMBER:
            number = float(value)  # an int past 1.8e308 raises OverflowError
        else:
            number = float(value) if not isinstance(value, bool | str | bytes) else math.nan
    except Exception:
        return None
    return number if math.isfinite(number) else None


def _key(attributes: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    key = tuple(sorted(attributes.items()))
    try:
        hash(key)
    except Exception:  # a list or dict value: keyed (and stored) by its repr
        key = tuple((k, v if _hashable(v) else as_repr(v)) for k, v in key)
    return key


def _truthy(value: Any) -> bool:
    try:
        return bool(value)
    except Exception:  # a hostile __bool__: not asked for
        return False


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except Exception:
        return False
    return True


def _attach(client: Any) -> None:
    with _registry_lock:
        if _attached[0] is client:
            return
        _attached[0] = client
        client.flush_steps.append(lambda: collect(client))
    from clisight.client.resources import ensure_sampler

    ensure_sampler(client)


class Counter:
    """A monotonic sum per attribute set (requests, tokens, retries)."""

    __slots__ = ("_lock", "_sums", "description", "expose", "name", "unit")

    def __init__(self, name: str, unit: str = "", description: str = "", expose: bool = False) -> None:
        self.name = name if type(name) is str else as_text(name)
        self.unit = unit if type(unit) is str else as_text(unit)
        self.description = description
        self.expose = expose
        self._sums: dict[tuple[tuple[str, Any], ...], float] = {}
        self._lock = threading.Lock()

    def add(self, amount: float = 1, /, **attributes: Any) -> None:
        """Add ``amount`` (>= 0) to the sum of this attribute set."""
        client = _core._client
        if client is None:
            return
        if client is not _attached[0]:
            with guard():
                _attach(client)
        kind = type(amount)
        if (kind is not float and (kind is not int or amount > _MAX_EXACT)) or not 0 <= amount < _INF:
            number = _finite(amount)
            if number is None or number < 0:
                return
            amount = number
        if not attributes:
            key: tuple[tuple[str, Any], ...] = ()
        elif len(attributes) == 1:
            key = (*attributes.items(),)
        else:
            key = tuple(sorted(attributes.items()))
        with self._lock:
            sums = self._sums  # read under the lock: take() swaps it
            try:
                sums[key] = sums.get(key, 0) + amount
            except Exception:  # an unhashable value (a list) or a hostile one: keyed by its repr
                with guard():
                    key = _key(attributes)
                    sums[key] = sums.get(key, 0) + amount

    def take(self) -> dict[tuple[tuple[str, Any], ...], float]:
        """The sums since the last take, and start again from zero."""
        with self._lock:
            sums, self._sums = self._sums, {}
        return sums


class Gauge:
    """A value now (queue depth, memory in use): one point per :meth:`set`."""

    __slots__ = ("description", "expose", "name", "unit")

    def __init__(self, name: str, unit: str = "", description: str = "", expose: bool = False) -> None:
        self.name = name if type(name) is str else as_text(name)
        self.unit = unit if type(unit) is str else as_text(unit)
        self.description = description
        self.expose = expose

    def set(self, value: float, /, **attributes: Any) -> None:
        _point(self.name, "gauge", self.unit, value, attributes, self.expose)


class Histogram:
    """A distribution (latencies, sizes): one point per :meth:`record`; percentiles come from the
    store's sketches."""

    __slots__ = ("description", "name", "unit")

    def __init__(self, name: str, unit: str = "", description: str = "") -> None:
        self.name = name if type(name) is str else as_text(name)
        self.unit = unit if type(unit) is str else as_text(unit)
        self.description = description

    def record(self, value: float, /, **attributes: Any) -> None:
        _point(self.name, "histogram", self.unit, value, attributes)


def _point(
    name: str, kind: str, unit: str, value: Any, attributes: dict[str, Any], expose: bool = False
) -> None:
    client = _core._client
    if client is None:
        return
    try:
        number = _finite(value)
        if number is None:
            return
        ctx = _ctx.get()
        build = client.records
        attrs = build.merge(ctx, attributes)
        attrs["type"] = kind
        if unit:
            attrs["unit"] = unit
        if expose:
            attrs[EXPOSE_KEY] = True
        client.emit(build.metric(name, number, attrs, ctx))
    except Exception as error:
        client.pipeline.count_lost()
        record_internal_error(error)
        if _raise_internal:
            raise


def collect(client: Any) -> int:
    """Hand every counter's sums over to ``client`` as delta points; how many points were written."""
    points = 0
    ctx = _ctx.process_default[0]
    build = client.records
    with _registry_lock:
        counters = [i for i in _instruments.values() if isinstance(i, Counter)]
    for counter in counters:
        for key, total in counter.take().items():
            with guard():
                number = _finite(total)
                if number is None:  # many huge amounts summed past what a float holds
                    client.pipeline.count_lost()
                    continue
                attrs: dict[str, Any] = {**dict(key), "type": "counter", "temporality": "delta"}
                if counter.unit:
                    attrs["unit"] = counter.unit
                if counter.expose:
                    attrs[EXPOSE_KEY] = True
                client.emit(build.metric(counter.name, number, attrs, ctx))
                points += 1
    return points


def _instrument(cls: type[Any], name: str, unit: str, description: str, *extra: Any) -> Any:
    key = (cls.__name__, name if type(name) is str else as_text(name))
    found = _instruments.get(key)
    if found is None:
        with _registry_lock:
            found = _instruments.get(key)
            if found is None:
                found = _instruments[key] = cls(name, unit, description, *extra)
    return found


def counter(name: str, unit: str = "", description: str = "", *, expose: bool = False) -> Counter:
    """The counter named ``name`` (created on first use).  ``expose=True``: ``clisight serve``
    serves its running total on ``/metrics`` (kept once asked for, by any call)."""
    expose = _truthy(expose)
    found: Counter = _instrument(Counter, name, unit, description, expose)
    if expose and not found.expose:
        found.expose = True
    return found


def gauge(name: str, unit: str = "", description: str = "", *, expose: bool = False) -> Gauge:
    """The gauge named ``name`` (created on first use).  ``expose=True``: ``clisight serve``
    serves its last value on ``/metrics`` (kept once asked for, by any call)."""
    expose = _truthy(expose)
    found: Gauge = _instrument(Gauge, name, unit, description, expose)
    if expose and not found.expose:
        found.expose = True
    return found


def histogram(name: str, unit: str = "", description: str = "") -> Histogram:
    """The histogram named ``name`` (created on first use)."""
    return _instrument(Histogram, name, unit, description)  # type: ignore[no-any-return]


def _after_fork_in_child() -> None:
    # A lock held by another thread at the fork stays held forever in the child; and the sums so far
    # are the parent's to report, not the child's.
    global _registry_lock
    _registry_lock = threading.Lock()
    for instrument in list(_instruments.values()):
        if isinstance(instrument, Counter):
            instrument._lock = threading.Lock()
            instrument._sums = {}


register_fork_steps(CLIENT, after_in_child=_after_fork_in_child)
