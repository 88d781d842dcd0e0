"""The helpers users get for their own tests work as documented."""

from __future__ import annotations

import clisight
from clisight.query import Filter, Query
from clisight.testing import capture, capture_store


def test_capture_store_gives_the_real_schema_and_queries_without_a_file() -> None:
    with capture_store(service="mycli") as store:
        log = clisight.get_logger("api")
        log.info("request done", status=200)
        log.error("request failed", status=500)
        clisight.track("llm.request", model="m", input_tokens=10, output_tokens=5, cost_usd=0.01)
    query = Query(store)
    assert [line.message for line in query.tail(Filter())] == ["request done", "request failed"]
    assert query.usage(Filter()).llm[0].model == "m"


def test_capture_collects_records_and_leaves_no_client_running() -> None:
    with capture() as sink:
        clisight.get_logger("a").info("x")
    assert [r.body for r in sink.of_kind("log")] == ["x"]
    from clisight.client import core

    assert core.get_client() is None
