"""User metrics on ``/metrics``: what a program marks ``expose=True`` (or the server is told to
expose) is served as Prometheus series, exact, parseable, with hostile names made safe."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("uvicorn", reason="the server extra is not installed")
from prometheus_client.parser import text_string_to_metric_families

from clisight.query.exposed import ExposedSeries
from clisight.server.prometheus import label_name, metric_name, render
from tests.cli.clirun import CLISIGHT
from tests.server.conftest import serve

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
HOSTILE_VALUE = 'we"ird\\ value\nwith a newline'

PROGRAM = """
import sys
import clisight

clisight.init(service="shop", store=sys.argv[1])
jobs = clisight.counter("jobs.done", unit="1", description="jobs finished", expose=True)
jobs.add(3, queue="mail")
clisight.flush()
jobs.add(2, queue="mail")
jobs.add(0.5, queue=sys.argv[2])
clisight.flush()
jobs.add(4, queue="mail")
depth = clisight.gauge("queue.depth", expose=True)
depth.set(7, queue="mail")
depth.set(5, queue="mail")
clisight.counter("hidden.count").add(9)
clisight.gauge("hidden.gauge").set(1)
clisight.counter("9 bad-name{x}", expose=True).add(1, **{"0weird-key": "v", "__name__": "n"})
"""


def families(text: str) -> dict[str, Any]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def samples(family: Any) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(s.labels.items())): s.value for s in family.samples}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def running_serve(db: Path, home: Path, *extra: str) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [str(CLISIGHT), "serve", "--port", str(port), "--store", str(db), *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "CLISIGHT_HOME": str(home)},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.communicate(timeout=10)
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, "clisight serve did not listen within 30 s"
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate(timeout=10)


def test_a_programs_exposed_counter_and_gauge_are_scraped_exactly_from_clisight_serve(tmp_path: Path) -> None:
    db = tmp_path / "program.db"
    program = tmp_path / "program.py"
    program.write_text(textwrap.dedent(PROGRAM))
    ran = subprocess.run(
        [sys.executable, str(program), f"sqlite:///{db}", HOSTILE_VALUE],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CLISIGHT_HOME": str(tmp_path / "home"), "CLISIGHT_RESOURCE_SAMPLING": "off"},
    )
    assert ran.returncode == 0, ran.stderr
    for url in running_serve(db, tmp_path / "home"):
        answer = httpx.get(f"{url}/metrics", timeout=30)
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
        found = families(answer.text)
        # Three collections of the counter (two flushes, then exit): 3, then 2 + 0.5, then 4.
        assert found["jobs_done"].type == "counter"
        assert found["jobs_done"].documentation == "jobs.done (1), exposed by clisight"
        assert samples(found["jobs_done"]) == {
            (("queue", "mail"), ("service", "shop")): 9.0,
            (("queue", HOSTILE_VALUE), ("service", "shop")): 0.5,
        }
        assert [s.name for s in found["jobs_done"].samples] == ["jobs_done_total"] * 2
        assert found["queue_depth"].type == "gauge"
        assert samples(found["queue_depth"]) == {(("queue", "mail"), ("service", "shop")): 5.0}
        # Hostile names: a valid metric name, and label names Prometheus accepts (no leading __).
        assert samples(found["_9_bad_name_x_"]) == {
            (("_0weird_key", "v"), ("_name__", "n"), ("service", "shop")): 1.0
        }
        assert not [name for name in found if "hidden" in name]
        assert "hidden" not in answer.text
        # clisight's own series are still there, untouched.
        assert found["clisight_pipeline_records"].type == "counter"
        # A second scrape reads only what is new, and gives the same totals.
        again = families(httpx.get(f"{url}/metrics", timeout=30).text)
        assert samples(again["jobs_done"]) == samples(found["jobs_done"])


def otlp_metrics(points: list[tuple[str, float]], start_ns: int) -> bytes:
    """A cumulative monotonic sum ``otlp.requests`` and a gauge ``otlp.temperature``, one point each
    per (attribute value, value) pair; cumulative totals as an SDK reports them."""
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    request = ExportMetricsServiceRequest()
    resource = request.resource_metrics.add()
    kv = resource.resource.attributes.add(key="service.name")
    kv.value.string_value = "sdk-app"
    scope = resource.scope_metrics.add()
    total = scope.metrics.add(name="otlp.requests", unit="1")
    total.sum.is_monotonic = True
    total.sum.aggregation_temporality = 2  # cumulative
    gauge = scope.metrics.add(name="otlp.temperature", unit="Cel")
    for i, (route, value) in enumerate(points):
        point = total.sum.data_points.add(start_time_unix_nano=start_ns, time_unix_nano=start_ns + i + 1)
        point.as_double = value
        point.attributes.add(key="route").value.string_value = route
        g = gauge.gauge.data_points.add(time_unix_nano=start_ns + i + 1)
        g.as_double = value / 10
        g.attributes.add(key="route").value.string_value = route
    return request.SerializeToString()


def test_metrics_received_over_otlp_are_exposed_when_named_and_only_then(tmp_path: Path) -> None:
    from clisight.query import Query
    from clisight.query.exposed import ExposedMetrics

    store_url = f"sqlite:///{tmp_path / 'served.db'}"
    query = Query(store_url)
    try:
        exposed = ExposedMetrics(query, ["otlp.requests"])
        for served in serve(tmp_path, exposed=exposed):
            start = time.time_ns() - 10**9
            body = otlp_metrics([("/a", 10.0), ("/b", 1.0), ("/a", 25.0)], start)
            answer = httpx.post(
                f"{served.url}/v1/metrics",
                content=body,
                headers={"Content-Type": "application/x-protobuf"},
                timeout=30,
            )
            assert answer.status_code == 200
            assert served.pipeline.flush(timeout=10)
            found = families(httpx.get(f"{served.url}/metrics", timeout=30).text)
            # Cumulative totals 10 then 25 on /a are stored as increases 10 and 15: 25 in all.
            assert samples(found["otlp_requests"]) == {
                (("route", "/a"), ("service", "sdk-app")): 25.0,
                (("route", "/b"), ("service", "sdk-app")): 1.0,
            }
            assert "otlp_temperature" not in found  # not named, not marked: not served
    finally:
        query.close()


@settings(max_examples=300)
@given(st.text(max_size=40))
def test_any_name_becomes_a_valid_metric_and_label_name(name: str) -> None:
    assert METRIC_NAME.fullmatch(metric_name(name))
    label = label_name(name)
    assert LABEL_NAME.fullmatch(label) and not label.startswith("__")


_labels = st.dictionaries(st.text(max_size=12), st.text(max_size=20), max_size=4)


@settings(max_examples=200)
@given(
    series=st.lists(
        st.tuples(
            st.text(max_size=16),
            st.sampled_from(["counter", "gauge"]),
            _labels,
            st.floats(allow_nan=False, allow_infinity=False, width=32),
        ),
        max_size=8,
    )
)
def test_any_exposed_series_renders_an_exposition_prometheus_parses(
    series: list[tuple[str, str, dict[str, str], float]],
) -> None:
    exposed = [
        ExposedSeries(name, kind, "", tuple(sorted({"service": "s", **labels}.items())), value, i)
        for i, (name, kind, labels, value) in enumerate(series)
    ]
    text = render([], [], [], sorted(exposed, key=lambda s: (s.name, s.kind, s.labels)))
    parsed = list(text_string_to_metric_families(text))  # raises on anything malformed
    names = [family.name for family in parsed]
    assert len(names) == len(set(names))
    for family in parsed:
        keys = [(s.name, tuple(sorted(s.labels.items()))) for s in family.samples]
        assert len(keys) == len(set(keys)), family.name  # no sample twice
    # Label values come from the series, never from anywhere else.
    served_values = {v for family in parsed for s in family.samples for v in s.labels.values()}
    assert served_values <= {v for s in exposed for _, v in s.labels}


@settings(max_examples=200)
@given(
    name=st.text(max_size=30),
    kind=st.sampled_from(["counter", "gauge"]),
    labels=_labels,
    value=st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**53), 2**53).map(float),
)
def test_one_series_round_trips_exactly_through_the_prometheus_parser(
    name: str, kind: str, labels: dict[str, str], value: float
) -> None:
    given_labels = {"service": "s", **labels}
    series = ExposedSeries(name, kind, "ms", tuple(sorted(given_labels.items())), value, 1)
    [family] = [f for f in text_string_to_metric_families(render([], [], [], [series])) if f.type == kind][
        -1:
    ]
    base = metric_name(name)
    assert family.name == (base.removesuffix("_total") if kind == "counter" else base)
    [sample] = family.samples
    assert sample.value == value
    expected: dict[str, str] = {}
    for key, text in sorted(given_labels.items()):
        expected.setdefault(label_name(key), text)
    assert sample.labels == expected
