"""Charts as inline SVG, drawn by our own small code: a sparkline, a line chart with anomaly
markers, a bar chart (stacked when given several series) and a trace waterfall.

Every piece of text that reaches the SVG (labels, titles, tooltips: span names and model names are
attacker-controlled) goes through :func:`markupsafe.escape`; numbers are formatted by us.  Each
function returns :class:`markupsafe.Markup`, which templates insert as it is: the escaping is
done here, once, so a template never needs ``|safe`` on data.  No ``style`` attributes (the
Content-Security-Policy forbids inline styles): colours are classes in ``static/dashboard.css``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from markupsafe import Markup, escape

PALETTE_SIZE: Final = 8  # series classes s0..s7 in the stylesheet


def _num(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") or "0"


def _svg(width: int, height: int, body: list[str], label: str, css: str) -> Markup:
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{css}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(label)}">'
        f"<title>{escape(label)}</title>{''.join(body)}</svg>"
    )


def _scale(values: Sequence[float]) -> tuple[float, float]:
    finite = [v for v in values if v == v]  # NaN is a gap
    if not finite:
        return 0.0, 1.0
    low, high = min([*finite, 0.0]), max(finite)
    return low, (high if high > low else low + 1.0)


def sparkline(values: Sequence[float], label: str, width: int = 120, height: int = 28) -> Markup:
    """A small line of ``values`` (oldest first), scaled to its own range."""
    if not values:
        return _svg(width, height, [], f"{label}: no data", "spark")
    low, high = _scale(values)
    values = [v if v == v else low for v in values]  # a gap (NaN) draws at the bottom
    step = width / max(len(values) - 1, 1)
    points = " ".join(
        f"{_num(i * step)},{_num(height - 2 - (v - low) / (high - low) * (height - 4))}"
        for i, v in enumerate(values)
    )
    return _svg(width, height, [f'<polyline class="line" points="{points}"/>'], label, "spark")


@dataclass(frozen=True, slots=True)
class Point:
    """One point of a line chart: x (seconds or ns, any monotonic unit), y, and whether a
    detector marked it an anomaly (with its score shown on hover)."""

    x: float
    y: float
    anomaly: bool = False
    score: float = 0.0
    tip: str = ""


def line_chart(
    points: Sequence[Point], label: str, width: int = 640, height: int = 160, unit: str = ""
) -> Markup:
    """A line over ``points`` with the y range written at the left and anomalies as red circles."""
    pad_l, pad_r, pad_t, pad_b = 48, 8, 8, 16
    if not points:
        body = [f'<text class="axis" x="{pad_l}" y="{height // 2}">no data</text>']
        return _svg(width, height, body, f"{label}: no data", "chart")
    xs = [p.x for p in points]
    x0, x1 = min(xs), max(xs)
    low, high = _scale([p.y for p in points])
    inner_w, inner_h = width - pad_l - pad_r, height - pad_t - pad_b

    def at(p: Point) -> tuple[str, str]:
        x = pad_l + ((p.x - x0) / (x1 - x0) * inner_w if x1 > x0 else inner_w / 2)
        y = pad_t + inner_h - (p.y - low) / (high - low) * inner_h
        return _num(x), _num(y)

    coords = [at(p) for p in points]
    body = [
        f'<line class="grid" x1="{pad_l}" y1="{pad_t}" x2="{pad_l}" y2="{pad_t + inner_h}"/>',
        f'<line class="grid" x1="{pad_l}" y1="{pad_t + inner_h}" x2="{width - pad_r}" '
        f'y2="{pad_t + inner_h}"/>',
        f'<text class="axis" x="2" y="{pad_t + 8}">{escape(_short(high))}{escape(unit)}</text>',
        f'<text class="axis" x="2" y="{pad_t + inner_h}">{escape(_short(low))}{escape(unit)}</text>',
        f'<polyline class="line" points="{" ".join(f"{x},{y}" for x, y in coords)}"/>',
    ]
    for p, (x, y) in zip(points, coords, strict=True):
        if p.anomaly:
            tip = p.tip or f"anomaly: {_short(p.y)}{unit} (score {p.score:.2f})"
            body.append(
                f'<circle class="anomaly" cx="{x}" cy="{y}" r="4"><title>{escape(tip)}</title></circle>'
            )
    return _svg(width, height, body, label, "chart")


def bar_chart(
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    label: str,
    width: int = 640,
    height: int = 180,
    unit: str = "",
) -> Markup:
    """Vertical bars, one per label, stacked by series (``(name, values)``, values aligned with
    ``labels``); a legend names the series."""
    pad_l, pad_b, pad_t, legend_h = 48, 30, 8, 16 if len(series) > 1 else 0
    if not labels or not series:
        body = [f'<text class="axis" x="{pad_l}" y="{height // 2}">no data</text>']
        return _svg(width, height, body, f"{label}: no data", "chart")
    totals = [sum(vals[i] for _, vals in series) for i in range(len(labels))]
    top = max(totals) or 1.0
    inner_h = height - pad_t - pad_b - legend_h
    slot = (width - pad_l - 4) / len(labels)
    bar_w = max(slot * 0.7, 1.0)
    body = [
        f'<text class="axis" x="2" y="{pad_t + 8}">{escape(_short(top))}{escape(unit)}</text>',
        f'<line class="grid" x1="{pad_l}" y1="{pad_t + inner_h}" x2="{width - 4}" y2="{pad_t + inner_h}"/>',
    ]
    every = max(1, len(labels) // 8)  # at most about 8 labels along the axis
    for i, name in enumerate(labels):
        x = pad_l + i * slot + (slot - bar_w) / 2
        base = float(pad_t + inner_h)
        for s, (series_name, vals) in enumerate(series):
            h = vals[i] / top * inner_h
            if h <= 0:
                continue
            base -= h
            tip = f"{name} · {series_name}: {_short(vals[i])}{unit}"
            body.append(
                f'<rect class="bar s{s % PALETTE_SIZE}" x="{_num(x)}" y="{_num(base)}" '
                f'width="{_num(bar_w)}" height="{_num(h)}"><title>{escape(tip)}</title></rect>'
            )
        if i % every == 0:
            body.append(
                f'<text class="axis" x="{_num(x)}" y="{pad_t + inner_h + 12}">'
                f"{escape(_clip(name, 12))}</text>"
            )
    if legend_h:
        x = pad_l
        for s, (series_name, _) in enumerate(series[:PALETTE_SIZE]):
            y = height - 4
            body.append(f'<rect class="bar s{s}" x="{x}" y="{y - 8}" width="8" height="8"/>')
            body.append(f'<text class="axis" x="{x + 11}" y="{y}">{escape(_clip(series_name, 24))}</text>')
            x += 20 + 7 * min(len(series_name), 24)
    return _svg(width, height, body, label, "chart")


@dataclass(frozen=True, slots=True)
class Bar:
    """One span in a waterfall: its name, start and end (ns), depth in the tree, and whether it failed."""

    name: str
    start_ns: int
    end_ns: int
    depth: int
    failed: bool = False
    detail: str = ""


def waterfall(bars: Sequence[Bar], label: str, width: int = 900, row_h: int = 20) -> Markup:
    """A trace's spans as bars on one time axis, one row each, indented by depth, with the span
    name and duration written beside the bar."""
    if not bars:
        return _svg(width, row_h, [], f"{label}: no spans", "chart")
    t0 = min(b.start_ns for b in bars)
    total = max(max(b.end_ns for b in bars) - t0, 1)
    name_w = 260
    track = width - name_w - 70
    height = row_h * len(bars) + 4
    body = []
    for i, b in enumerate(bars):
        y = i * row_h + 2
        x = name_w + (b.start_ns - t0) / total * track
        w = max((b.end_ns - b.start_ns) / total * track, 1.0)
        css = "bar fail" if b.failed else f"bar s{min(b.depth, PALETTE_SIZE - 1)}"
        tip = f"{b.name}: {_ms(b.end_ns - b.start_ns)}" + (f" · {b.detail}" if b.detail else "")
        indent = min(b.depth, 12) * 10
        body.append(
            f'<text class="label" x="{4 + indent}" y="{y + row_h - 7}">'
            f"{escape(_clip(b.name, 34 - indent // 8))}</text>"
            f'<rect class="{css}" x="{_num(x)}" y="{y + 3}" width="{_num(w)}" height="{row_h - 6}">'
            f"<title>{escape(tip)}</title></rect>"
            f'<text class="axis" x="{_num(min(x + w + 4, width - 66))}" y="{y + row_h - 7}">'
            f"{escape(_ms(b.end_ns - b.start_ns))}</text>"
        )
    return _svg(width, height, body, label, "waterfall")


def _ms(ns: int) -> str:
    ms = ns / 1e6
    return f"{ms / 1000:.2f} s" if ms >= 1000 else f"{ms:.1f} ms"


def _short(value: float) -> str:
    """A number in a few characters: 1.2k, 3.4M, 0.012."""
    magnitude = abs(value)
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if magnitude >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.3g}"


def _clip(text: str, most: int) -> str:
    return text if len(text) <= most else text[: max(most - 1, 1)] + "…"
