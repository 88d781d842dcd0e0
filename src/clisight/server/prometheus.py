"""``GET /metrics``: the server's own counters in the Prometheus text exposition format (0.0.4),
and the counters and gauges users asked to expose, so an existing Prometheus or Grafana Agent can
scrape a ``clisight serve``.

User series (see :mod:`clisight.query.exposed`) follow Prometheus' rules: metric names are made of
``[a-zA-Z0-9_:]`` (any other character becomes ``_``; a leading digit gets a ``_`` in front), label
names of ``[a-zA-Z0-9_]`` and never start with ``__`` (reserved); a counter's family is its name
and sample are ``<name>_total`` (``_total`` added once).  Label values and help text are escaped
(backslash, double quote, newline).  Where two names become the same, the first (in name order)
is served and the others left out, so the exposition always parses: a family under the name of one
of clisight's own (``clisight_pipeline_*``, ``clisight_receiver_*``) or already served is skipped,
and two attributes whose names meet give the label once (the first) and the samples that then
coincide add up (counters) or keep the latest (gauges).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Final

from clisight.pipeline.writer import SinkStats
from clisight.query.exposed import ExposedSeries

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"


def _label(value: object) -> str:
    text = str(value)
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


_NOT_METRIC: Final = re.compile(r"[^a-zA-Z0-9_:]")
_NOT_LABEL: Final = re.compile(r"[^a-zA-Z0-9_]")


def metric_name(name: str) -> str:
    """``name`` as a Prometheus metric name (``[a-zA-Z_:][a-zA-Z0-9_:]*``)."""
    out = _NOT_METRIC.sub("_", name)
    return out if out and not out[0].isdigit() else "_" + out


def label_name(name: str) -> str:
    """``name`` as a Prometheus label name (``[a-zA-Z_][a-zA-Z0-9_]*``, not starting with ``__``)."""
    out = _NOT_LABEL.sub("_", name)
    if not out or out[0].isdigit():
        out = "_" + out
    if out.startswith("__"):
        out = "_" + out.lstrip("_")  # "__name__" -> "_name__": ``__`` names are Prometheus' own
    return out


def _number(value: float) -> str:
    """A sample value, exact: integers in full (never 1e+06), floats by repr, Prometheus' infinities."""
    if isinstance(value, int):
        return str(value)
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


class Exposition:
    """Builds one scrape: ``# HELP`` and ``# TYPE`` once per family, then its samples."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(
        self, name: str, kind: str, help_text: str, samples: Iterable[tuple[dict[str, object], float]]
    ) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            inner = ",".join(f'{key}="{_label(val)}"' for key, val in labels.items())
            number = _number(value)
            self.lines.append(f"{name}{{{inner}}} {number}" if inner else f"{name} {number}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def render(
    sinks: Sequence[SinkStats],
    requests: Iterable[tuple[tuple[str, int], int]],
    items: Iterable[tuple[str, str, int]],
    exposed: Sequence[ExposedSeries] = (),
) -> str:
    """The exposition of the pipeline's sinks, the receiver's requests and items, and the series
    users asked to expose."""
    out = Exposition()
    outcomes = ("emitted", "stored", "dropped", "spooled")
    out.family(
        "clisight_pipeline_records_total",
        "counter",
        "Records handed to each sink, and how they ended (stored, dropped, spooled).",
        (({"sink": s.sink, "outcome": o}, getattr(s, o)) for s in sinks for o in outcomes),
    )
    out.family(
        "clisight_pipeline_dropped_queue_full_total",
        "counter",
        "Records dropped because a sink's queue was full.",
        (({"sink": s.sink}, s.dropped_queue_full) for s in sinks),
    )
    out.family(
        "clisight_pipeline_write_errors_total",
        "counter",
        "Failed writes (each retried or counted as a loss).",
        (({"sink": s.sink}, s.errors) for s in sinks),
    )
    out.family(
        "clisight_pipeline_queue_depth",
        "gauge",
        "Records waiting in each sink's queue.",
        (({"sink": s.sink}, s.queue_depth + s.in_flight) for s in sinks),
    )
    out.family(
        "clisight_receiver_requests_total",
        "counter",
        "OTLP requests by signal and HTTP status.",
        (({"signal": signal, "status": status}, n) for (signal, status), n in sorted(requests)),
    )
    out.family(
        "clisight_receiver_items_total",
        "counter",
        "Spans, log records and metric points received, accepted or rejected.",
        (({"signal": signal, "outcome": outcome}, n) for signal, outcome, n in sorted(items)),
    )
    _exposed(out, exposed)
    return out.text()


_OWN: Final = (
    "clisight_pipeline_records",
    "clisight_pipeline_dropped_queue_full",
    "clisight_pipeline_write_errors",
    "clisight_pipeline_queue_depth",
    "clisight_receiver_requests",
    "clisight_receiver_items",
)


def _exposed(out: Exposition, series: Sequence[ExposedSeries]) -> None:
    # family name -> (type, help, {labels: (value, time_ns)}), in the order first seen
    families: dict[str, tuple[str, str, dict[tuple[tuple[str, str], ...], tuple[float, int]]]] = {}
    # The family names and every sample name they may use (``x`` and ``x_total``) are taken.
    taken = {name for own in _OWN for name in (own, own + "_total")}
    owner: dict[str, str] = {}  # family name -> the metric name it serves
    for s in series:
        base = metric_name(s.name)
        if s.kind == "counter" and base.endswith("_total"):
            base = base[: -len("_total")]
        sample = base + "_total" if s.kind == "counter" else base
        if owner.get(base, s.name) != s.name or (base not in families and (base in taken or sample in taken)):
            continue  # another metric took the name
        family = families.get(base)
        if family is None:
            unit = f" ({s.unit})" if s.unit else ""
            family = families[base] = (s.kind, f"{s.name}{unit}, exposed by clisight", {})
            owner[base] = s.name
            taken.update((base, base + "_total"))
        if family[0] != s.kind:
            continue  # the same metric name as a counter and a gauge: the first kind is served
        labels: dict[str, str] = {}
        for label, value in s.labels:
            labels.setdefault(label_name(label), value)
        samples = family[2]
        key = tuple(sorted(labels.items()))
        seen = samples.get(key)
        if seen is None:
            samples[key] = (s.value, s.time_ns)
        elif s.kind == "counter":
            samples[key] = (seen[0] + s.value, max(seen[1], s.time_ns))
        elif s.time_ns >= seen[1]:
            samples[key] = (s.value, s.time_ns)
    for base, (kind, help_text, samples) in families.items():
        # The 0.0.4 text format names a counter's family by its sample (``x_total``), as
        # clisight's own counters above are named.
        out.family(
            base + "_total" if kind == "counter" else base,
            kind,
            _help(help_text),
            ((dict(labels), value) for labels, (value, _) in samples.items()),
        )
