"""The web dashboard without a browser: every page's HTML over a real store filled by ``clisight
demo``, escaping of hostile data sent over OTLP, CSRF, the security headers and the token login.
(The browser tests, in headless Chromium, are test_dashboard_browser.py.)"""

from __future__ import annotations

import html
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

pytest.importorskip("jinja2", reason="the server extra (jinja2) is not installed")

from starlette.testclient import TestClient

from clisight.pipeline.redact import PatternRedactor
from clisight.pipeline.store_sink import StoreSink
from clisight.pipeline.writer import Pipeline
from clisight.query import Query
from clisight.query import errors as errors_query
from clisight.server.app import create_app
from clisight.server.dashboard.security import CSP, CSRF_COOKIE, SESSION_COOKIE, Csrf
from tests.cli.clirun import CLISIGHT
from tests.server.xss import XSS_PAYLOADS, hostile_bodies, log_body

PAGES = ("/", "/logs", "/traces", "/errors", "/usage", "/alerts", "/health")
BASE = "http://127.0.0.1"
JSON = {"content-type": "application/json"}


RULES = """
[[rule]]
name = "busy"
metric = "count"
window = "30d"
above = 0
summary = "operations were recorded"

[[rule]]
name = "slow"
metric = "latency_p95"
window = "30d"
above = 0.001
severity = "error"
"""


def demo_store(folder: Path, sessions: int = 30) -> Path:
    """A store ``clisight demo`` filled, with two alert rules evaluated once (both firing)."""
    db = folder / "demo.db"
    subprocess.run(
        [str(CLISIGHT), "demo", "--store", str(db), "--sessions", str(sessions), "--seed", "5"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    rules = folder / "alerts.toml"
    rules.write_text(RULES)
    check = subprocess.run(
        [str(CLISIGHT), "alerts", "check", "--store", str(db), "--rules", str(rules), "--wait", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 1, check.stdout + check.stderr  # 1: something is firing
    return db


class App:
    def __init__(self, db: Path, **options: Any) -> None:
        self.url = f"sqlite:///{db}"
        self.pipeline = Pipeline([StoreSink(self.url)], queue_size=50_000)
        self.query = Query(self.url)
        self.app = create_app(
            self.pipeline, PatternRedactor(), pipeline_stats=self.pipeline.stats, query=self.query, **options
        )

    def client(self) -> TestClient:
        return TestClient(self.app, base_url=BASE, follow_redirects=False)

    def send(self, client: TestClient, path: str, body: dict[str, Any]) -> None:
        answer = client.post(path, content=orjson.dumps(body), headers=JSON)
        assert answer.status_code == 200, answer.text
        assert self.pipeline.flush(timeout=10)

    def close(self) -> None:
        self.pipeline.shutdown(timeout=10)
        self.query.close()


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_store(tmp_path_factory.mktemp("dash"))


@pytest.fixture
def served(demo_db: Path, tmp_path: Path) -> Iterator[App]:
    copy = tmp_path / "demo.db"
    copy.write_bytes(demo_db.read_bytes())  # each test changes its own copy (resolve, hostile data)
    app = App(copy)
    yield app
    app.close()


def test_every_page_is_html_with_the_security_headers(served: App) -> None:
    with served.client() as client:
        for path in PAGES:
            answer = client.get(path)
            assert answer.status_code == 200, (path, answer.text[:500])
            assert answer.headers["content-type"].startswith("text/html")
            assert answer.headers["content-security-policy"] == CSP
            assert "script-src 'self'" in CSP and "frame-ancestors 'none'" in CSP and "unsafe" not in CSP
            assert answer.headers["x-content-type-options"] == "nosniff"
            assert answer.headers["referrer-policy"] == "no-referrer"
            assert "<script>" not in answer.text and " style=" not in answer.text  # nothing inline
            assert re.search(r"<h1>[^<]+</h1>", answer.text)


def test_every_page_works_on_an_empty_store(tmp_path: Path) -> None:
    from clisight.query import Query as OpenQuery

    db = tmp_path / "empty.db"
    OpenQuery(f"sqlite:///{db}").store.migrate()  # a new store: created, nothing in it
    app = App(db)
    try:
        with app.client() as client:
            for path in (*PAGES, "/errors?status=", "/usage?days=1", "/alerts?range=1h"):
                answer = client.get(path)
                assert answer.status_code == 200, (path, answer.text[:300])
            assert "No log line matches." in client.get("/logs").text
            assert "No trace is stored yet." in client.get("/traces").text
    finally:
        app.close()


def test_pages_show_what_the_demo_stored(served: App) -> None:
    with served.client() as client:
        overview = client.get("/").text
        assert "Events/s" in overview and "process.memory.rss" in overview and "<svg" in overview
        assert "Latency by command" in overview and "<td>chat</td>" in overview  # the demo CLI's runs
        traces = client.get("/traces").text
        trace_ids = re.findall(r'href="/traces/([0-9a-f]{32})"', traces)
        assert trace_ids
        trace = client.get(f"/traces/{trace_ids[0]}").text
        assert 'class="waterfall"' in trace and "<rect" in trace
        errors = client.get("/errors?status=").text
        groups = re.findall(r'href="/errors/([0-9a-f]+)"', errors)
        assert groups
        error = client.get(f"/errors/{groups[0]}").text
        assert "Latest occurrence" in error and "Breadcrumbs" in error
        assert "claude-cli" in client.get("/logs").text
        usage = client.get("/usage?days=30").text
        assert "Cost by model per day" in usage and "claude-" in usage
        assert client.get("/alerts?range=30d").text.count('class="chart"') >= 5
        assert "Pipeline" in client.get("/health").text


def test_logs_filter_by_level_service_and_text(served: App) -> None:
    with served.client() as client:
        served.send(client, "/v1/logs", log_body(["needle-one in the haystack"], service="svc-a"))
        served.send(client, "/v1/logs", log_body(["needle-two"], service="svc-b", severity=17))
        page = client.get("/logs", params={"q": "NEEDLE"}).text
        assert "needle-one" in page and "needle-two" in page
        page = client.get("/logs", params={"q": "needle", "service": "svc-b"}).text
        assert "needle-two" in page and "needle-one" not in page
        page = client.get("/logs", params={"q": "needle", "level": "error"}).text
        assert "needle-two" in page and "needle-one" not in page


def test_logs_page_back_through_older_lines(served: App) -> None:

    now = time.time_ns()
    with served.client() as client:
        for i, message in enumerate(("pager-oldest", "pager-middle", "pager-newest")):
            served.send(client, "/v1/logs", log_body([message], time_ns=now - (3 - i) * 1_000_000_000))
        first = client.get("/logs", params={"q": "pager-", "limit": "1"}).text
        assert "pager-newest" in first and "pager-middle" not in first and 'id="live"' in first
        older = re.search(r'<a href="\?([^"]+)">older lines</a>', first)
        assert older
        second = client.get("/logs?" + html.unescape(older.group(1))).text
        assert "pager-middle" in second and "pager-newest" not in second
        assert 'id="live"' not in second and "back to the newest" in second  # no live tail into the past
        third = client.get(
            "/logs?" + html.unescape(re.findall(r'<a href="\?([^"]+)">older lines</a>', second)[0])
        )
        assert "pager-oldest" in third.text and "pager-middle" not in third.text
        assert client.get("/logs?before=soon").status_code == 400


def test_bad_filters_are_a_clear_400(served: App) -> None:
    with served.client() as client:
        for path, words in (
            ("/logs?level=loud", "unknown level"),
            ("/logs?limit=0", "limit must be"),
            ("/logs?range=1y", "unknown range"),
            ("/usage?days=x", "days must be"),
            ("/alerts?range=2y", "range is one of"),
            ("/errors?status=gone", "status is one of"),
            ("/errors?range=2y", "range is one of"),  # it said "status is one of": the wrong parameter
        ):
            answer = client.get(path)
            assert answer.status_code == 400 and words in answer.text, path
        assert client.get("/traces/" + "0" * 32).status_code == 404
        assert client.get("/errors/nosuchgroup").status_code == 404


def test_hostile_data_is_escaped_on_every_page(served: App) -> None:
    trace_id = "ab" * 16
    with served.client() as client:
        for path, body in hostile_bodies(trace_id):
            served.send(client, path, body)
        pages = [*PAGES, "/errors?status=", f"/traces/{trace_id}", "/logs?limit=1000&range=1h"]
        groups = errors_query.error_groups(served.query, top=500)
        pages += [f"/errors/{g.fingerprint}" for g in groups if g.type.startswith("Xss")][:5]
        seen = 0
        for path in pages:
            html = client.get(path).text
            for payload in XSS_PAYLOADS:
                if any(c in payload for c in "<>\"'"):
                    assert payload not in html, (path, payload)  # only ever its escaped form
            seen += html.count("window.__xss")
            if path == "/usage":
                assert html.count("window.__xss") >= 10  # event names, in the chart's labels
        assert seen >= 50 * 3  # the payloads are shown, as text


def test_a_state_change_without_a_csrf_token_is_refused(served: App) -> None:
    fingerprint = errors_query.error_groups(served.query, top=1)[0].fingerprint
    with served.client() as client:
        page = client.get(f"/errors/{fingerprint}")
        token = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
        assert token and CSRF_COOKIE in client.cookies
        action = f"/errors/{fingerprint}/status"
        assert client.post(action, data={"status": "resolved"}).status_code == 403
        assert client.post(action, data={"status": "resolved", "csrf": "0" * 64}).status_code == 403
        forged = {"status": "resolved", "csrf": token.group(1)}
        other_site = client.post(action, data=forged, headers={"origin": "http://evil.example"})
        assert other_site.status_code == 403
        assert errors_query.error_detail(served.query, fingerprint).group.status != "resolved"  # type: ignore[union-attr]
        done = client.post(action, data=forged)
        assert done.status_code == 303 and done.headers["location"] == f"/errors/{fingerprint}"
    assert errors_query.error_detail(served.query, fingerprint).group.status == "resolved"  # type: ignore[union-attr]


def test_silence_and_unsilence_an_alert_by_the_forms(served: App) -> None:
    from clisight.alerts import list_silences

    with served.client() as client:
        page = client.get("/alerts").text
        assert "busy" in page and "firing" in page and "(silenced)" not in page
        token = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
        assert token
        form = {"rule": "busy", "matchers": "{}", "hours": "4", "comment": "deploying <now>"}
        assert client.post("/alerts/silence", data=form).status_code == 403  # no token
        done = client.post("/alerts/silence", data={**form, "csrf": token.group(1)})
        assert done.status_code == 303 and done.headers["location"] == "/alerts"
        [silence] = list_silences(served.query)
        assert (
            silence.rule == "busy" and silence.comment == "deploying <now>" and silence.author == "dashboard"
        )
        page = client.get("/alerts").text
        assert "(silenced)" in page and "deploying &lt;now&gt;" in page
        for bad, words in (
            ({"hours": "0"}, "a silence lasts"),
            ({"matchers": "[1]"}, "JSON object"),
            ({"rule": ""}, "which rule"),
        ):
            answer = client.post("/alerts/silence", data={**form, "csrf": token.group(1), **bad})
            assert answer.status_code == 400 and words in answer.text
        gone = client.post("/alerts/unsilence", data={"silence_id": silence.id, "csrf": token.group(1)})
        assert gone.status_code == 303 and list_silences(served.query) == []
        again = client.post("/alerts/unsilence", data={"silence_id": silence.id, "csrf": token.group(1)})
        assert again.status_code == 400 and "no silence" in again.text
        assert "(silenced)" not in client.get("/alerts").text


def test_the_silence_menu_offers_humane_durations_and_each_silences_that_long(served: App) -> None:
    from clisight.alerts import list_silences, remove_silence

    with served.client() as client:
        page = client.get("/alerts").text
        menus = re.findall(r'<select name="hours">(.*?)</select>', page)  # one per alert
        assert menus and len(set(menus)) == 1
        menu = menus[0]
        options = re.findall(r'<option value="([^"]+)"( selected)?>([^<]+)</option>', menu)
        assert [shown for _, _, shown in options] == ["30 min", "1 h", "4 h", "1 d", "7 d"]
        assert [shown for _, chosen, shown in options if chosen] == ["1 h"]  # the default stays an hour
        options = [(value, shown) for value, _, shown in options]
        assert "168 h" not in page and "24 h" not in page
        token = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
        assert token
        for value, shown in options:  # what the menu says is what the silence lasts
            form = {"rule": "busy", "matchers": "{}", "hours": value, "csrf": token.group(1)}
            before = time.time_ns()
            assert client.post("/alerts/silence", data=form).status_code == 303
            [silence] = list_silences(served.query)
            words = shown.split()
            seconds = int(words[0]) * {"min": 60, "h": 3600, "d": 86_400}[words[1]]
            assert 0 <= silence.until_ns - before - seconds * 10**9 < 60 * 10**9
            assert remove_silence(served.query, silence.id)
        too_long = client.post("/alerts/silence", data={**form, "hours": "100000"})
        assert too_long.status_code == 400 and "a few minutes to 90 d" in too_long.text


def test_firing_alerts_show_on_the_overview(served: App) -> None:
    with served.client() as client:
        page = client.get("/").text
    assert (
        re.search(r'<p class="big bad" data-key="firing">2</p>', page) and 'href="/alerts">busy</a>' in page
    )


def test_a_csrf_token_from_another_cookie_or_process_is_refused() -> None:
    mine, other = Csrf(), Csrf()
    nonce = Csrf.new_nonce()
    assert mine.check(nonce, mine.token(nonce))
    assert not mine.check(nonce, other.token(nonce))
    assert not mine.check(Csrf.new_nonce(), mine.token(nonce))
    assert not mine.check(None, mine.token(nonce)) and not mine.check(nonce, None)
    assert not mine.check("../../etc", mine.token("../../etc"))


def test_with_a_token_the_browser_logs_in_once_by_the_address(demo_db: Path) -> None:
    app = App(demo_db, token="s3cret-token")
    try:
        with app.client() as client:
            refused = client.get("/", headers={"accept": "text/html"})
            assert refused.status_code == 401 and "?token=" in refused.text
            assert client.get("/?token=wrong").status_code == 401
            login = client.get("/logs?level=error&token=s3cret-token")
            assert login.status_code == 303 and login.headers["location"] == "/logs?level=error"
            cookie = login.headers["set-cookie"]
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "s3cret-token" not in cookie
            assert client.get("/logs?level=error").status_code == 200
            assert client.get("/api/v1/health").status_code == 200
            # The OTLP endpoints still want the header: a cookie is not a sender's credential.
            sent = client.post("/v1/logs", content=orjson.dumps(log_body(["x"])), headers=JSON)
            assert sent.status_code == 401
        with app.client() as fresh:
            fresh.cookies.set(SESSION_COOKIE, "0" * 64)
            assert fresh.get("/").status_code == 401
            bearer = fresh.get("/", headers={"authorization": "Bearer s3cret-token"})
            assert bearer.status_code == 200
    finally:
        app.close()


def test_a_token_with_any_characters_logs_in(demo_db: Path) -> None:
    app = App(demo_db, token="clé-ünï-tøken")
    try:
        with app.client() as client:
            login = client.get("/?token=cl%C3%A9-%C3%BCn%C3%AF-t%C3%B8ken")
            assert login.status_code == 303
            assert client.get("/").status_code == 200
    finally:
        app.close()


def test_the_health_page_counts_what_the_receiver_took(served: App) -> None:
    with served.client() as client:
        served.send(client, "/v1/logs", log_body(["one", "two", "three"]))
        page = client.get("/health").text
    receiver = page.split("OTLP receiver", 1)[1]
    row = re.search(r"<tr><td>logs</td>(.*?)</tr>", receiver, re.S)
    assert row and '<td class="n">3</td>' in row.group(1) and "200: 1" in row.group(1)


def test_the_host_check_covers_the_dashboard(served: App) -> None:
    with TestClient(served.app, base_url="http://attacker.example") as client:
        assert client.get("/").status_code == 403
        assert client.get("/logs/stream").status_code == 403


def test_the_dashboard_can_be_left_out(demo_db: Path) -> None:
    app = App(demo_db)
    bare = create_app(app.pipeline, PatternRedactor(), query=app.query, dashboard=False)
    try:
        with TestClient(bare, base_url=BASE) as client:
            assert client.get("/").status_code == 404
            assert client.get("/api/v1/health").status_code == 200
    finally:
        app.close()


def test_the_live_tail_streams_lines_stored_after_it_started(served: App) -> None:
    """The SSE endpoint over real HTTP: a line sent after the stream opened arrives as an event."""
    import socket
    import threading

    import httpx
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(served.app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    try:
        with (
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http,
            http.stream("GET", "/logs/stream", params={"q": "streamed-line"}) as stream,
        ):
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.iter_lines()
            assert next(lines).startswith("retry:")
            sent = http.post("/v1/logs", content=orjson.dumps(log_body(["streamed-line <b>"])), headers=JSON)
            assert sent.status_code == 200
            started = time.monotonic()
            for line in lines:
                if line.startswith("data:"):
                    event = orjson.loads(line[5:])
                    assert event["message"] == "streamed-line <b>"
                    break
                assert time.monotonic() - started < 5, "no event within 5 s"
            assert time.monotonic() - started < 2
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def test_the_conversations_tile_says_none_were_recorded_rather_than_averaging_nothing(served: App) -> None:
    tile = re.compile(r"<h2>Conversations</h2>(.*?)</div>", re.S)
    with served.client() as client:
        [empty] = tile.findall(client.get("/usage").text)  # the demo records no conversation.* metrics
        assert "on average" not in empty and "none recorded" in empty  # it said "0.0 ms response on average"
        now = str(time.time_ns())

        def gauge(name: str, value: float) -> dict[str, Any]:
            return {"name": name, "gauge": {"dataPoints": [{"timeUnixNano": now, "asDouble": value}]}}

        metrics = [gauge("conversation.messages", 4), gauge("conversation.tokens", 900)]
        metrics.append(gauge("conversation.response_time", 1.5))
        served.send(client, "/v1/metrics", {"resourceMetrics": [{"scopeMetrics": [{"metrics": metrics}]}]})
        [one] = tile.findall(client.get("/usage").text)
        assert "4.0 messages" in one and "900 tokens" in one and "on average" in one


def test_log_and_span_attributes_show_as_json_not_python_reprs(served: App) -> None:
    body = log_body(["structured line"], service="attrs-app")
    record = body["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
    record["attributes"] = [
        {"key": "ok", "value": {"boolValue": True}},
        {"key": "tags", "value": {"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": "2"}]}}},
    ]
    with served.client() as client:
        served.send(client, "/v1/logs", body)
        page = html.unescape(client.get("/logs", params={"service": "attrs-app"}).text)
    # they showed as True and ['a', 2]: Python's spelling, not what was sent or what the API returns
    assert "<dd>true</dd>" in page and '<dd>["a",2]</dd>' in page
