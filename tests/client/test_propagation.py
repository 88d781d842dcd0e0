"""W3C trace context: parsing and formatting ``traceparent``, ``tracestate``, and the child env."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clisight.client import context as ctx
from clisight.client import propagation
from clisight.client.propagation import (
    TraceParent,
    child_env,
    continue_from_env,
    parse_traceparent,
    trace_headers,
    valid_tracestate,
)
from clisight.query import Filter, Query
from clisight.query.traces import recent_traces, trace_tree
from tests.helpers import GENEROUS_EXIT

SPEC = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_the_specifications_example_parses() -> None:
    assert parse_traceparent(SPEC) == TraceParent("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", 1)
    assert parse_traceparent(SPEC).sampled  # type: ignore[union-attr]
    assert not parse_traceparent(SPEC[:-2] + "00").sampled  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "header",
    [
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version ff is invalid
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # zero parent id
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  # short trace id
        SPEC + "-extra",  # version 00 has exactly four fields
        "",
        "00-xyz",
    ],
)
def test_invalid_headers_are_ignored(header: str) -> None:
    assert parse_traceparent(header) is None


def test_a_future_version_is_read_by_its_first_four_fields() -> None:
    assert parse_traceparent("cc" + SPEC[2:] + "-what-comes-later") == parse_traceparent(SPEC)


@given(st.binary(min_size=16, max_size=16), st.binary(min_size=8, max_size=8), st.integers(0, 255))
def test_format_and_parse_round_trip(trace: bytes, span: bytes, flags: int) -> None:
    parent = TraceParent(trace.hex(), span.hex(), flags)
    parsed = parse_traceparent(parent.header())
    if any(trace) and any(span):
        assert parsed == parent
    else:
        assert parsed is None


@given(st.one_of(st.text(), st.none(), st.integers(), st.binary()))
def test_any_value_parses_or_is_ignored_never_raises(value: object) -> None:
    parse_traceparent(value)
    valid_tracestate(value)


def test_tracestate_members_are_checked() -> None:
    assert (
        valid_tracestate("rojo=00f067aa0ba902b7, congo=t61rcWkgMzE")
        == "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
    )
    assert valid_tracestate("no-equals-sign") is None
    assert valid_tracestate(",".join(f"k{i}=v" for i in range(33))) is None


@pytest.fixture
def restore_default() -> object:
    saved, state = ctx.process_default[0], propagation._received_state[0]
    yield
    ctx.process_default[0], propagation._received_state[0] = saved, state


def test_a_process_started_in_a_trace_continues_it_and_passes_it_on(restore_default: object) -> None:
    assert continue_from_env({"TRACEPARENT": SPEC, "TRACESTATE": "rojo=1"})
    assert trace_headers() == {"traceparent": SPEC, "tracestate": "rojo=1"}
    env = child_env({"PATH": "/bin", "TRACEPARENT": "stale"})
    assert env == {"PATH": "/bin", "TRACEPARENT": SPEC, "TRACESTATE": "rojo=1"}


def test_outside_a_trace_a_child_starts_its_own(restore_default: object) -> None:
    ctx.process_default[0] = ctx.EMPTY
    assert not continue_from_env({"TRACEPARENT": "garbage"})
    assert trace_headers() == {}
    assert child_env({"PATH": "/bin", "TRACEPARENT": SPEC}) == {"PATH": "/bin"}


PARENT = """
import subprocess, sys
import clisight
clisight.init(service="parent-cli", store=sys.argv[1])
with clisight.span("parent work"):
    child = [sys.executable, "-c", sys.argv[2], sys.argv[1]]
    subprocess.run(child, env=clisight.child_env(), check=True, timeout=60)
"""
CHILD = """
import sys
import clisight
clisight.init(service="child-tool", store=sys.argv[1])
with clisight.span("child work"):
    clisight.get_logger("child").info("inside the child")
"""


def test_a_child_process_started_with_child_env_continues_the_trace(tmp_path: Path) -> None:
    db = tmp_path / "trace.db"
    env = {k: v for k, v in os.environ.items() if k not in ("TRACEPARENT", "TRACESTATE")}
    env["CLISIGHT_EXIT_TIMEOUT"] = str(GENEROUS_EXIT)  # stored, not spooled, on a loaded machine
    proc = subprocess.run(
        [sys.executable, "-c", PARENT, str(db), CHILD], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    with Query(f"sqlite:///{db}") as query:
        [summary] = recent_traces(query)
        tree = trace_tree(query, summary.trace_id)
        [log] = list(query.export(Filter(), kinds=("log",)))
    assert [(n.name, n.service, n.depth) for n in tree] == [
        ("parent work", "parent-cli", 0),
        ("child work", "child-tool", 1),
    ]
    assert tree[1].parent_span_id == tree[0].span_id
    assert (log["trace_id"], log["span_id"]) == (summary.trace_id, tree[1].span_id)
