"""The metric series users asked to expose, for ``clisight serve``'s ``GET /metrics``.

A series is exposed when its points carry the reserved attribute ``clisight.expose`` (what
``clisight.counter(..., expose=True)`` and ``clisight.gauge(..., expose=True)`` write) or its name is
in the ``expose_metrics`` setting (for metrics received over OTLP).  One series per metric name,
service and attribute set (its labels); its value:

- a counter (``type`` counter): the running total, the sum of its stored points (delta values:
  cumulative OTLP sums are stored as their increases, resets detected);
- an up-down counter: the running sum too, served as a gauge (it may go down);
- a gauge: the value of its latest point.

Histograms and summaries are not exposed.  :class:`ExposedMetrics` reads the store's metric
points once each, through the query service, from a cursor it keeps: a scrape reads only the
points stored since the one before.  The totals are those of the points the store holds: after a
restart of the server, points already deleted by retention no longer count (Prometheus sees a
counter reset).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

import orjson

from clisight.query.service import Query
from clisight.store.base import Selection
from clisight.types import EXPOSE_KEY

# Attributes that describe the series or the point rather than label it.
_NOT_LABELS: Final = frozenset({"type", "unit", "temporality", "histogram", "summary", "user_id", EXPOSE_KEY})
_KINDS: Final = {"counter": "counter", "updowncounter": "gauge", "gauge": "gauge"}
_PAGE: Final = 1000
DEFAULT_MAX_SERIES: Final = 10_000


@dataclass(frozen=True, slots=True)
class ExposedSeries:
    """One exposed series: ``kind`` is ``counter`` or ``gauge`` (as Prometheus types it); ``labels``
    the attribute set as text (plus ``service``), sorted by name, names as stored."""

    name: str
    kind: str
    unit: str
    labels: tuple[tuple[str, str], ...]
    value: float
    time_ns: int


def label_text(value: Any) -> str:
    """An attribute value as a label value: text as it is, booleans lower case, others as JSON."""
    if type(value) is str:
        return value
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) is int or type(value) is float:
        return repr(value)
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, ValueError):
        return str(value)


def labels_of(service: str, attributes: dict[str, Any] | None) -> tuple[tuple[str, str], ...]:
    """The labels of a point: its attributes but those describing the series (``type``, ``unit``,
    ``otel.*``...), and ``service`` unless an attribute has that name."""
    labels = {"service": service}
    for key, value in (attributes or {}).items():
        if key not in _NOT_LABELS and not key.startswith("otel."):
            labels[key] = label_text(value)
    return tuple(sorted(labels.items()))


class ExposedMetrics:
    """The exposed series of one store, kept up to date from a cursor over its metric points.

    ``names``: metric names exposed whatever their points carry.  At most ``max_series`` series are
    kept (new ones beyond are counted in :attr:`skipped_series`, not served), so memory is bounded
    whatever the programs send.  Safe to call from several threads.
    """

    def __init__(self, query: Query, names: Iterable[str] = (), max_series: int = DEFAULT_MAX_SERIES) -> None:
        self.query = query
        self.names = frozenset(names)
        self.max_series = max_series
        self.skipped_series = 0
        self._cursor: str | None = None
        # (name, type, labels) -> [unit, value, time_ns, id]
        self._series: dict[tuple[str, str, tuple[tuple[str, str], ...]], list[Any]] = {}
        self._lock = threading.Lock()

    def collect(self) -> list[ExposedSeries]:
        """Every exposed series with its value now, sorted by name and labels."""
        with self._lock:
            while True:
                page = self.query.reader.rows("metric", Selection(), cursor=self._cursor, limit=_PAGE)
                for row in page.rows:
                    self._add(row)
                if page.cursor is not None:
                    self._cursor = page.cursor
                if len(page.rows) < _PAGE:
                    break
            return [
                ExposedSeries(name, _KINDS[kind], unit, labels, value, time_ns)
                for (name, kind, labels), (unit, value, time_ns, _) in sorted(self._series.items())
            ]

    def _add(self, row: dict[str, Any]) -> None:
        attributes = row.get("attributes") or {}
        name, kind, value = row["name"], row["type"], row["value"]
        if kind not in _KINDS or value is None:
            return
        if attributes.get(EXPOSE_KEY) is not True and name not in self.names:
            return
        key = (name, kind, labels_of(row["service"], attributes))
        entry = self._series.get(key)
        if entry is None:
            if len(self._series) >= self.max_series:
                self.skipped_series += 1
                return
            self._series[key] = [row["unit"], float(value), row["time_ns"], row["id"]]
        elif kind == "gauge":
            if (row["time_ns"], row["id"]) >= (entry[2], entry[3]):
                entry[1:] = [float(value), row["time_ns"], row["id"]]
        else:
            entry[1] += float(value)
            entry[2] = max(entry[2], row["time_ns"])
