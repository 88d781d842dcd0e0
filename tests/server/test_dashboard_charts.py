"""The dashboard's SVG charts: any text stays text (escaped, the SVG well-formed), any numbers draw."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("markupsafe", reason="the server extra (jinja2) is not installed")

from clisight.server.dashboard import charts

NS = "{http://www.w3.org/2000/svg}"
ELEMENTS = {f"{NS}{name}" for name in ("svg", "title", "polyline", "line", "text", "circle", "rect")}
# Text XML can carry (HTML would take the rest; the XML parser here is the stricter check).
TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=60)
NUMBERS = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12)


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert {el.tag for el in root.iter()} <= ELEMENTS
    assert not any(name.startswith("on") for el in root.iter() for name in el.attrib)
    return root


@given(TEXT, st.lists(NUMBERS, max_size=50))
def test_a_sparkline_keeps_its_label_as_text(label: str, values: list[float]) -> None:
    root = parse(charts.sparkline(values, label))
    assert root.findtext(f"{NS}title") == (label if values else f"{label}: no data")


@given(TEXT, st.lists(st.tuples(NUMBERS, NUMBERS, st.booleans(), TEXT), max_size=40), TEXT)
def test_a_line_chart_keeps_every_tooltip_as_text(
    label: str, raw: list[tuple[float, float, bool, str]], unit: str
) -> None:
    points = [charts.Point(x, y, anomaly, 0.9, tip) for x, y, anomaly, tip in raw]
    root = parse(charts.line_chart(points, label, unit=unit))
    tips = [el.findtext(f"{NS}title") for el in root.iter(f"{NS}circle")]
    assert tips == [p.tip or tips[i] for i, p in enumerate(p for p in points if p.anomaly)]
    assert len(tips) == sum(p.anomaly for p in points)


@given(st.lists(TEXT, min_size=1, max_size=12), st.lists(TEXT, min_size=1, max_size=4), TEXT)
def test_a_bar_chart_names_series_and_labels_as_text(labels: list[str], names: list[str], label: str) -> None:
    series = [(name, [float(i + j) for i in range(len(labels))]) for j, name in enumerate(names)]
    root = parse(charts.bar_chart(labels, series, label))
    titles = " ".join(el.findtext(f"{NS}title") or "" for el in root.iter(f"{NS}rect"))
    for name in names:
        if any(v > 0 for v in dict(series)[name]):
            assert f"· {name}:" in titles


@given(
    st.lists(st.tuples(TEXT, st.integers(0, 10**12), st.integers(0, 10**9), st.integers(0, 30)), max_size=30)
)
def test_a_waterfall_draws_any_spans(spans: list[tuple[str, int, int, int]]) -> None:
    bars = [charts.Bar(name, start, start + length, depth) for name, start, length, depth in spans]
    root = parse(charts.waterfall(bars, "trace"))
    assert len(list(root.iter(f"{NS}rect"))) == len(bars)


def test_hostile_text_is_escaped_not_interpreted() -> None:
    svg = str(charts.bar_chart(["</text><script>x</script>"], [('"><svg onload=x>', [1.0])], "<b>"))
    assert "<script" not in svg and "<svg onload" not in svg and "<b>" not in svg
    root = parse(svg)
    assert root.findtext(f"{NS}title") == "<b>"


def test_gaps_and_flat_series_draw() -> None:
    parse(charts.sparkline([math.nan, 1.0, math.nan], "gaps"))
    parse(charts.sparkline([5.0] * 10, "flat"))
    parse(charts.line_chart([charts.Point(1, 3)], "one point"))
    parse(charts.bar_chart(["a"], [("zero", [0.0])], "zeros"))
