"""``GET /metrics``: the server's own counters in the Prometheus text exposition format (0.0.4),
so an existing Prometheus or Grafana Agent can scrape a ``clisight serve``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from clisight.pipeline.writer import SinkStats

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"


def _label(value: object) -> str:
    text = str(value)
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


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
) -> str:
    """The exposition of the pipeline's sinks and the receiver's requests and items."""
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
    return out.text()
