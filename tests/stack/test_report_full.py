"""The comprehensive report (``clisight report --full``): content from the query service, and hostile
stored values escaped in every format."""

from __future__ import annotations

import dataclasses
import functools
import html
import json
import re
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clisight._terminal import clean
from clisight.alerts import AlertEngine, parse_rules
from clisight.query import Filter, Query, perf, traces
from clisight.stack.render import FORMATS, _md, render, sections
from clisight.stack.report import ComprehensiveReport, build_report
from tests.cli.clirun import invoke, make_demo_store
from tests.helpers import run_python

HOSTILE = "\x1b]0;pwn\x07<script>alert(1)</script> *[x](javascript:alert(1))* | `tick` & \u202e"


PER_SERVICE_RULE = """
[[rule]]
name = "spans"
metric = "count"
of = "operations"
group_by = ["service"]
window = "1h"
above = 0
for = "0s"
"""


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_demo_store(tmp_path_factory.mktemp("full-demo"), sessions=60, seed=11)


@pytest.fixture(scope="module")
def hostile_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("hostile") / "h.db"
    run_python(f"""
        import clisight
        clisight.init(service={HOSTILE!r}, store={str(db)!r})
        with clisight.span({HOSTILE!r}):
            clisight.track_user_journey({HOSTILE!r})
        clisight.get_logger({HOSTILE!r}).error({HOSTILE!r})
        clisight.capture_exception(ValueError({HOSTILE!r}))
    """)
    with Query(db) as query:  # an alert per service: the hostile service name becomes a label
        engine = AlertEngine(query, parse_rules(PER_SERVICE_RULE))
        engine.evaluate()
        engine.close(10)
    return db


def test_the_report_is_what_the_query_service_says(demo_db: Path) -> None:
    with Query(demo_db) as query:
        report = build_report(query, Filter(), top=5)
        assert report.operations == tuple(perf.operations(query)[:5])
        assert report.traces == tuple(traces.recent_traces(query, Filter(), 5))
        assert report.overview == query.report(Filter(), 5)
    text = render(report, "text")
    assert report.operations[0].operation in text
    assert f"LLM cost: ${report.overview.usage.llm_cost_usd:,.4f}" in text
    # A week of hourly series: the detector is asked, and says which series it read.
    assert report.series_checked and "Detector: novelty on hourly series: operations (" in text


def test_every_format_carries_every_section(demo_db: Path) -> None:
    with Query(demo_db) as query:
        report = build_report(query)
    titles = [s.title for s in sections(report)]
    assert titles == ["Summary", "Performance", "Errors", "Usage", "Traces", "Anomalies", "Alerts"]
    markdown = render(report, "markdown")
    page = render(report, "html")
    document = json.loads(render(report, "json"))
    for title in titles:
        assert f"## {title}" in markdown
        assert f"<h2>{title}</h2>" in page
    assert set(document) >= {"overview", "operations", "error_groups", "traces", "anomalies", "alerts"}
    assert document["detector"] == "novelty"


def test_hostile_values_are_escaped_in_every_format(hostile_db: Path) -> None:
    with Query(hostile_db) as query:
        report = build_report(query)
    text = render(report, "text")
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert "\\x1b]0;pwn\\x07" in text
    alerts = text.split("Alert states\n", 1)[1]
    assert "service=\\x1b]0;pwn\\x07<script>" in alerts and "firing" in alerts
    page = render(report, "html")
    assert re.findall(r"<script", page, re.IGNORECASE) == []
    assert html.escape("<script>alert(1)</script>") in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    markdown = render(report, "markdown")
    assert "<script>" not in markdown and "\x1b" not in markdown
    assert "\\<script\\>" in markdown and "\\[x\\]\\(javascript:alert\\(1\\)\\)" in markdown
    assert "\\|" in markdown  # a pipe in data cannot split a table row
    document = json.loads(render(report, "json"))
    assert document["error_groups"][0]["title"].startswith(
        "ValueError: \x1b]0;pwn\x07<script>"
    )  # the data itself
    assert all(ord(c) < 128 for c in render(report, "json"))


def test_render_refuses_an_unknown_format(demo_db: Path) -> None:
    with Query(demo_db) as query:
        report = build_report(query)
    with pytest.raises(ValueError, match="unknown report format 'pdf'"):
        render(report, "pdf")
    assert FORMATS == ("text", "markdown", "html", "json")


def test_cli_full_report_in_each_format(demo_db: Path, tmp_path: Path) -> None:
    result = invoke("report", "--store", str(demo_db), "--full")
    assert result.exit_code == 0 and "\nAnomalies\n=========\n" in result.output
    result = invoke("report", "--store", str(demo_db), "--full", "--json")
    assert result.exit_code == 0 and "anomalies" in json.loads(result.output)
    out = tmp_path / "r.html"
    result = invoke("report", "--store", str(demo_db), "--full", "--format", "html", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("<!DOCTYPE html>")
    result = invoke("report", "--store", str(demo_db), "--full", "--format", "markdown", "--since", "1d")
    assert result.exit_code == 0 and result.output.startswith("# clisight comprehensive report")


def test_cli_format_without_full_is_a_usage_error(demo_db: Path, tmp_path: Path) -> None:
    result = invoke("report", "--store", str(demo_db), "--format", "html")
    assert result.exit_code == 2 and "--format and --output go with --full" in result.output
    result = invoke("report", "--store", str(demo_db), "--full", "-o", str(tmp_path / "missing" / "r.txt"))
    assert result.exit_code == 1 and "cannot write the report" in result.output


def test_cli_full_report_reads_a_read_only_store_without_writing_it(demo_db: Path, tmp_path: Path) -> None:
    copy = tmp_path / "ro.db"
    with sqlite3.connect(demo_db) as source, sqlite3.connect(copy) as dest:
        source.backup(dest)
    before = copy.stat().st_mtime_ns
    result = invoke("report", "--store", str(copy), "--full")
    assert result.exit_code == 0
    assert copy.stat().st_mtime_ns == before


@given(st.text(max_size=80))
def test_markdown_cells_escape_every_special_character(text: str) -> None:
    escaped = _md(text)
    unescaped = re.sub(r"\\(.)", r"\1", escaped)
    assert unescaped == clean(text, 200)
    assert re.search(r"(?<!\\)[`*_{}\[\]()#+!|<>~]", re.sub(r"\\\\", "", escaped)) is None


@functools.cache
def empty_report() -> ComprehensiveReport:
    with Query("memory://") as query:
        return build_report(query)


@given(st.text(max_size=60))
def test_any_stored_name_is_escaped_in_every_format(text: str) -> None:
    trace = traces.TraceSummary("a" * 32, text, "svc", 0, 1_000_000, 1, 0)
    report = dataclasses.replace(empty_report(), traces=(trace,))
    page = render(report, "html")
    assert f"<td>{html.escape(clean(text))}</td>" in page
    tags = set(re.findall(r"<(/?[a-zA-Z][a-zA-Z0-9]*)", page.split("<body>", 1)[1]))
    assert tags <= {
        f"{end}{t}"
        for t in ("h1", "h2", "h3", "ul", "li", "table", "thead", "tbody", "tr", "th", "td", "body", "html")
        for end in ("", "/")
    }
    row = render(report, "text").split("Recent traces\n", 1)[1].splitlines()[2]
    assert clean(text, 60).strip() in row
    assert f"| {_md(text)} |" in render(report, "markdown")
