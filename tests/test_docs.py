"""The documentation lists what the code has: it cannot drift silently."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from clisight._config import PARAMS

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_configuration_page_lists_every_parameter_and_its_variable() -> None:
    text = (DOCS / "configuration.md").read_text()
    for param in PARAMS:
        assert f"`{param.name}`" in text and f"`{param.env}`" in text, param.name


def test_store_page_documents_every_export_field_of_every_kind() -> None:
    from clisight.store.base import EXPORT_FIELDS

    page = (DOCS / "store.md").read_text()
    section = page.split("### Export schema", 1)[1].split("###", 1)[0]
    rows = {
        line.split("|")[1].strip(" `"): line.split("|")[2]
        for line in section.splitlines()
        if line.startswith("| `")
    }
    assert set(rows) == set(EXPORT_FIELDS)
    for kind, fields in EXPORT_FIELDS.items():
        assert [f.strip(" `") for f in rows[kind].split(",")] == list(fields), kind


# -- the snippets a newcomer copies: each runs as written and stores what its comments say ----------


def snippets(page: str, lang: str = "python") -> list[str]:
    """The fenced ``lang`` blocks of a page (README.md or docs/NAME), in order."""
    path = DOCS.parent / page if page == "README.md" else DOCS / page
    return re.findall(rf"^```{lang}\n(.*?)^```", path.read_text(), flags=re.S | re.M)


# (page, block index, a line the block must start with, code run before it, (kind, name) stored)
RUNNABLE = [
    ("README.md", 0, "import clisight", "", {("span", "messages.create"), ("event", "llm.request")}),
    ("guide.md", 0, "import clisight", "", {("log", "request sent")}),
    (
        "guide.md",
        1,
        "import clisight",
        "",
        {
            ("span", "db.query"),
            ("span", "render"),
            ("log", "drawing"),
            ("metric", "llm.tokens"),
            ("metric", "queue.depth"),
            ("metric", "llm.latency"),
            ("error", "PaymentError"),
        },
    ),
    # The LLM block continues the page's first one, which imports and starts clisight.
    (
        "usage.md",
        1,
        "cost = ",
        "import clisight\nclisight.init(service='mycli')\n",
        {("event", "llm.request")},
    ),
    ("alerts.md", 1, "import clisight", "", set()),
    ("store.md", 0, "from clisight.store import open_store", "", set()),
    # The query block reads a store with no line its filter matches yet (the path is a placeholder).
    (
        "store.md",
        1,
        "from clisight.query import",
        "import clisight\nclisight.init(store='clisight.db')\n"
        "clisight.get_logger('db').info('started')\nclisight.shutdown()\n",
        set(),
    ),
    ("server.md", 0, "import clisight", "", {("metric", "jobs.done"), ("metric", "queue.depth")}),
    ("tui.md", 0, "import asyncio", "", set()),
    ("detect.md", 0, "from clisight.detect import", "", set()),
    ("detect.md", 1, "import clisight", "", set()),
]
# Paths the pages use as examples, and what a test may write instead.
PLACEHOLDERS = {"sqlite:////var/lib/clisight.db": "sqlite:///clisight.db"}


@pytest.mark.parametrize(("page", "index", "start", "prelude", "stored"), RUNNABLE)
def test_doc_snippet_runs_as_written_and_stores_what_it_says(
    page: str, index: int, start: str, prelude: str, stored: set[tuple[str, str]], tmp_path: Path
) -> None:
    code = snippets(page)[index]
    assert code.startswith(start), f"{page} block {index} moved: update RUNNABLE"
    script = tmp_path / "snippet.py"
    for placeholder, path in PLACEHOLDERS.items():
        code = code.replace(placeholder, path)
    script.write_text(prelude + code)
    home = tmp_path / "snippet-home"
    proc = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "CLISIGHT_HOME": str(home)},
    )
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    if not stored:
        return
    from clisight.query import Filter, Query

    with Query(home / "clisight.db") as query:
        found = {
            (row["kind"], row[{"log": "message", "error": "type"}.get(row["kind"], "name")])
            for row in query.export(Filter(), kinds=("log", "event", "span", "metric", "error"))
        }
    assert stored <= found, stored - found


@pytest.mark.parametrize("index", range(len(snippets("alerts.md", "toml"))))
def test_alert_rule_examples_load(index: int, tmp_path: Path) -> None:
    from clisight.alerts import load_rules

    rules = tmp_path / "alerts.toml"
    rules.write_text(snippets("alerts.md", "toml")[index])
    assert load_rules(rules)  # a file with any mistake raises AlertRulesError naming it


def run_snippet(page: str, index: int, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / f"{page}-{index}.py"
    script.write_text(snippets(page)[index])
    home = tmp_path / "snippet-home"
    return subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "CLISIGHT_HOME": str(home), **env},
    )


def test_detect_page_snippets_print_what_their_comments_say(tmp_path: Path) -> None:
    streaming = run_snippet("detect.md", 0, tmp_path)
    assert streaming.returncode == 0, streaming.stderr
    [said] = re.findall(r"# (anomaly at .*)$", snippets("detect.md")[0], flags=re.M)
    assert streaming.stdout.splitlines() == [said]  # the step, and nothing in the steady part
    seed = run_snippet("detect.md", 1, tmp_path)
    assert seed.returncode == 0, seed.stderr
    page = (DOCS / "detect.md").read_text()
    said = re.findall(r"^#\s+\[?'(.*?)\.\.\.", page, flags=re.M)
    assert len(said) == 2 and all(line in seed.stdout for line in said), (said, seed.stdout)


def test_server_page_scrape_is_what_the_exposed_metrics_snippet_serves(tmp_path: Path) -> None:
    pytest.importorskip("uvicorn", reason="the server extra is not installed")
    import httpx

    from clisight.query import Query
    from clisight.query.exposed import ExposedMetrics
    from tests.server.conftest import serve

    store = f"sqlite:///{tmp_path / 'served.db'}"  # the file the test server reads
    ran = run_snippet("server.md", 0, tmp_path, CLISIGHT_STORE=store)
    assert ran.returncode == 0, ran.stderr
    [scrape] = snippets("server.md", "text")
    with Query(store) as query:
        served = serve(tmp_path, exposed=ExposedMetrics(query))
        try:
            url = next(served).url
            page = httpx.get(f"{url}/metrics", timeout=10).text.splitlines()
        finally:
            served.close()
    assert [
        line for line in page if not line.startswith(("clisight_", "# HELP clisight_", "# TYPE clisight_"))
    ] == (scrape.splitlines())
