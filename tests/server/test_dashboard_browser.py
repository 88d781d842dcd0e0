"""The dashboard in a real browser: Debian's headless Chromium, driven by Playwright, against a live
``clisight serve`` subprocess on 127.0.0.1 whose store ``clisight demo`` filled.

No browser is downloaded: Playwright launches /usr/bin/chromium (``make install-chromium``); without
it these tests skip, saying so.
"""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

pytest.importorskip("playwright", reason="playwright is not installed (the dev extra)")

from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from clisight.query import Query
from clisight.query import errors as errors_query
from tests.cli.clirun import CLISIGHT
from tests.server.test_dashboard import RULES
from tests.server.xss import XSS_PAYLOADS, hostile_bodies, log_body

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="Debian's chromium is not installed (make install-chromium)"
    ),
]
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAGES = ("/", "/logs", "/traces", "/errors", "/usage", "/alerts", "/health")
HOSTILE_TRACE = "cd" * 16
JSON = {"content-type": "application/json"}
TIMEOUT_MS = 30_000


@dataclass
class Server:
    url: str
    db: Path
    proc: subprocess.Popen[bytes]

    def send(self, path: str, body: dict[str, Any]) -> None:
        answer = httpx.post(self.url + path, content=orjson.dumps(body), headers=JSON, timeout=10)
        assert answer.status_code == 200, answer.text


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("browser")
    db = folder / "demo.db"
    subprocess.run(
        [str(CLISIGHT), "demo", "--store", str(db), "--sessions", "30", "--seed", "9"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    rules = folder / "alerts.toml"
    rules.write_text(RULES)
    subprocess.run(
        [str(CLISIGHT), "alerts", "check", "--store", str(db), "--rules", str(rules), "--wait", "0"],
        capture_output=True,
        timeout=120,
    )
    port = _free_port()
    log = (folder / "serve.log").open("wb")
    proc = subprocess.Popen(
        [str(CLISIGHT), "serve", "--port", str(port), "--store", str(db)], stdout=log, stderr=log
    )
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, (folder / "serve.log").read_text()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            assert time.monotonic() < deadline, "clisight serve did not listen within 30 s"
            time.sleep(0.1)
    served = Server(f"http://127.0.0.1:{port}", db, proc)
    for path, body in hostile_bodies(HOSTILE_TRACE):
        served.send(path, body)
    try:
        yield served
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, timeout=60_000)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Watched:
    """A page with everything that would show script running where it should not."""

    page: Page
    console_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def goto(self, url: str) -> Any:
        response = self.page.goto(url, wait_until="load")
        assert response is not None and response.ok, (url, response and response.status)
        return response

    def xss(self) -> Any:
        return self.page.evaluate("window.__xss")


@pytest.fixture
def page(browser: Browser) -> Iterator[Watched]:
    context = browser.new_context()
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    watched = Watched(tab)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            watched.console_errors.append(f"{message.text} ({message.location})")

    tab.on("console", on_console)
    tab.on("pageerror", lambda exc: watched.console_errors.append(f"page error: {exc}"))

    def on_dialog(dialog: Any) -> None:
        watched.dialogs.append(dialog.message)
        dialog.dismiss()

    tab.on("dialog", on_dialog)
    yield watched
    context.close()


def _detail_pages(server: Server) -> list[str]:
    with Query(f"sqlite:///{server.db}") as query:
        groups = errors_query.error_groups(query, top=200)
    demo = next(g for g in groups if not g.type.startswith("Xss"))
    hostile = [g for g in groups if g.type.startswith("Xss")][:3]
    return [f"/errors/{demo.fingerprint}", *(f"/errors/{g.fingerprint}" for g in hostile)]


def test_every_page_loads_without_a_console_error(server: Server, page: Watched) -> None:
    traces = httpx.get(server.url + "/api/v1/traces?limit=1", timeout=10).json()
    paths = [*PAGES, f"/traces/{traces[0]['trace_id']}", *_detail_pages(server)[:1]]
    for path in paths:
        response = page.goto(server.url + path)
        headers = response.headers
        assert "default-src 'self'" in headers["content-security-policy"], path
        assert "frame-ancestors 'none'" in headers["content-security-policy"], path
        assert headers["x-content-type-options"] == "nosniff", path
        assert page.page.locator("h1").count() == 1, path
        # The stylesheet applied (a blocked or missing one would leave the default serif font).
        font = page.page.evaluate("getComputedStyle(document.body).fontFamily")
        assert "system-ui" in font, path
    page.page.wait_for_timeout(300)  # late errors (the live tail's stream on the logs page)
    assert page.console_errors == []


def test_the_live_tail_shows_a_line_sent_after_the_page_opened_within_2_s(
    server: Server, page: Watched
) -> None:
    page.goto(server.url + "/logs")
    page.page.wait_for_selector("#live.on")  # the EventSource is connected
    marker = f"live-tail-{uuid.uuid4().hex} <i>not italic</i>"
    sent = time.monotonic()
    server.send("/v1/logs", log_body([marker], service="live-test"))
    row = page.page.locator("#log-rows tr", has_text=marker)
    row.first.wait_for(timeout=2000)
    assert time.monotonic() - sent < 2.0
    assert row.first.locator("td.msg").inner_text().startswith(marker)  # shown as text, not markup
    assert page.page.locator("#log-rows i").count() == 0
    assert page.console_errors == []


def test_the_overview_updates_its_numbers_live(server: Server, page: Watched) -> None:
    page.goto(server.url + "/")
    page.page.wait_for_selector("#overview-live.on")
    firing = page.page.locator("[data-key=firing]")
    shown = firing.inner_text()
    assert shown.isdigit()
    page.page.evaluate("document.querySelector('[data-key=firing]').textContent = 'stale'")
    expect(firing).not_to_have_text("stale", timeout=10_000)  # the next event, 5 s apart
    assert firing.inner_text().isdigit()
    assert page.console_errors == []


def test_resolve_an_error_group_in_the_browser(server: Server, page: Watched) -> None:
    target = _detail_pages(server)[0]
    page.goto(server.url + target)
    page.page.get_by_role("button", name="Resolve").click()
    page.page.wait_for_url(server.url + target)
    assert "resolved" in page.page.locator("main p.sub").first.inner_text()
    assert page.page.get_by_role("button", name="Reopen").count() == 1
    with Query(f"sqlite:///{server.db}") as query:
        detail = errors_query.error_detail(query, target.rsplit("/", 1)[1])
    assert detail is not None and detail.group.status == "resolved"
    page.page.get_by_role("button", name="Reopen").click()
    page.page.wait_for_url(server.url + target)
    assert "unresolved" in page.page.locator("main p.sub").first.inner_text()
    assert page.console_errors == []


def test_silence_an_alert_rule_in_the_browser(server: Server, page: Watched) -> None:
    from clisight.alerts import list_silences

    page.goto(server.url + "/alerts")
    row = page.page.locator("table.alerts tr", has_text="slow")
    assert "firing" in row.inner_text() and "(silenced)" not in row.inner_text()
    row.locator("select[name=hours]").select_option("24")
    row.locator("input[name=comment]").fill("known: the demo is slow")
    with page.page.expect_navigation():
        row.get_by_role("button", name="Silence").click()
    assert "(silenced)" in page.page.locator("table.alerts tr", has_text="slow").inner_text()
    silences = page.page.locator("table.silences tr", has_text="known: the demo is slow")
    assert silences.count() == 1
    with Query(f"sqlite:///{server.db}") as query:
        [silence] = [s for s in list_silences(query) if s.rule == "slow"]
    assert 23.9 * 3600e9 < silence.until_ns - time.time_ns() <= 24 * 3600e9
    with page.page.expect_navigation():
        silences.get_by_role("button", name="Unsilence").click()
    assert page.page.locator("table.silences tr", has_text="known: the demo is slow").count() == 0
    assert "(silenced)" not in page.page.locator("table.alerts tr", has_text="slow").inner_text()
    assert page.console_errors == []


def test_a_form_posted_from_another_page_without_the_token_is_refused(server: Server, page: Watched) -> None:
    target = _detail_pages(server)[0]
    page.goto(server.url + target)
    # Strip the token from the form, as a forged form would lack it, and submit.
    page.page.evaluate("document.querySelectorAll('input[name=csrf]').forEach(i => i.value = 'forged')")
    with page.page.expect_navigation():
        page.page.get_by_role("button", name="Resolve").click()
    assert "security token" in page.page.locator("main").inner_text()
    with Query(f"sqlite:///{server.db}") as query:
        detail = errors_query.error_detail(query, target.rsplit("/", 1)[1])
    assert detail is not None and detail.group.status != "resolved"


def test_fifty_xss_payloads_never_run_on_any_page(server: Server, page: Watched) -> None:
    page.page.add_init_script("window.__xss = 0;")
    paths = [
        *PAGES,
        "/logs?range=1h&limit=1000",
        "/logs?q=__xss&limit=1000",
        "/errors?status=",
        f"/traces/{HOSTILE_TRACE}",
        *_detail_pages(server)[1:],
    ]
    for path in paths:
        page.goto(server.url + path)
        for probe in ("input[autofocus]", "details[ontoggle]", "img[onerror]", "svg[onload]"):
            assert page.page.locator(probe).count() == 0, (path, probe)
        page.page.mouse.move(200, 300)  # onmouseover bait
        assert page.xss() == 0, path
    shown = page.page.content()
    assert "window.__xss" in shown  # the payloads are there, as text
    # The live tail writes new lines into the page: hostile ones must stay text there too.
    page.goto(server.url + "/logs")
    page.page.wait_for_selector("#live.on")
    server.send("/v1/logs", log_body(list(XSS_PAYLOADS[:10]), service=XSS_PAYLOADS[1]))
    page.page.locator("#log-rows tr.fresh").nth(9).wait_for(timeout=5000)
    page.page.wait_for_timeout(200)
    assert page.xss() == 0
    assert page.dialogs == [] and page.console_errors == []


def test_the_logs_page_works_without_javascript(server: Server, browser: Browser) -> None:
    context = browser.new_context(java_script_enabled=False)
    try:
        tab = context.new_page()
        tab.set_default_timeout(TIMEOUT_MS)
        tab.goto(server.url + "/logs")
        assert "Live updates need JavaScript" in tab.locator("#live").inner_text()
        assert tab.locator("#log-rows tr").count() > 10
        tab.fill("input[name=q]", "live-test")
        with tab.expect_navigation():
            tab.get_by_role("button", name="Filter").click()
        assert "q=live-test" in tab.url
        tab.goto(server.url + "/traces")
        tab.locator("a[href^='/traces/']").first.click()
        assert tab.locator("svg.waterfall").count() == 1
    finally:
        context.close()
