"""clisight.llm: exact token and cost totals (direct calls, and the anthropic/openai SDKs against a
local server, streaming included), unknown models, price overrides and budgets."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import clisight
from clisight import _prices
from clisight.client import llm
from clisight.query import Query
from clisight.store.base import Selection
from tests.client.llm_server import ANTHROPIC_USAGE, OPENAI_USAGE, llm_server

SONNET_CALL = round((1200 * 3.0 + 345 * 15.0 + 5000 * 0.3 + 800 * 3.75) / 1e6, 10)  # 0.013275
MINI_CALL = round((1500 * 0.15 + 150 * 0.6 + 500 * 0.075) / 1e6, 10)  # 0.0003525


def _totals(db: Path) -> dict[str, dict[str, Any]]:
    clisight.flush(10)
    with Query(db) as q:
        rows = q.reader.aggregate(
            "event",
            Selection(name="llm.request"),
            ("model",),
            (
                "count",
                "sum:input_tokens",
                "sum:output_tokens",
                "sum:cache_read_tokens",
                "sum:cache_creation_tokens",
                "sum:cost_usd",
            ),
        )
    return {r["model"]: r for r in rows if r["count"]}


def _events(db: Path, name: str = "llm.request") -> list[dict[str, Any]]:
    clisight.flush(10)
    with Query(db) as q:
        return q.reader.rows("event", Selection(name=name), limit=100).rows


# -- prices ------------------------------------------------------------------------------------------


def test_price_table_has_a_date_and_prices_known_models_by_their_dated_names() -> None:
    table = _prices.shipped()
    dates = re.findall(r"\d{4}-\d{2}-\d{2}", table.as_of)
    assert dates and min(dates) >= "2025-01-01", table.as_of
    assert table.cost("claude-sonnet-4-5-20250929", 1200, 345, 5000, 800) == SONNET_CALL
    assert table.cost("anthropic/claude-sonnet-4-5", 1200, 345, 5000, 800) == SONNET_CALL
    assert table.cost("gpt-4o-mini-2024-07-18", 1500, 150, 500) == MINI_CALL
    assert table.cost("my-local-llama", 1000, 1000) is None


def test_price_table_knows_the_claude_models_of_its_date_and_claude_codes_window_tag() -> None:
    """Anthropic's pricing page of 2026-11-30 (dollars per million tokens: input, output, cache
    read, 5-minute cache write); Claude Code names the 1M-token window ``[1m]``."""
    table = _prices.shipped()
    million = 1_000_000
    expected = {
        "claude-opus-5-5": (4, 20, 0.2, 5),
        "claude-opus-4-6": (5, 25, 0.5, 6.25),
        "claude-opus-4-8": (5, 25, 0.5, 6.25),
        "claude-sonnet-4-6": (3, 15, 0.3, 3.75),
        "claude-sonnet-5": (2, 10, 0.2, 2.5),
        "claude-sonnet-5-5": (2, 10, 0.1, 2.5),
        "claude-haiku-5-5": (0.1, 0.5, 0.01, 0.125),
        "claude-fable-5-1": (10, 50, 0.25, 12.5),
    }
    for model, (inp, out, read, write) in expected.items():
        for name in (model, f"{model}[1m]", f"anthropic/{model}"):
            got = [table.cost(name, *(million if i == kind else 0 for i in range(4))) for kind in range(4)]
            assert got == [inp, out, read, write], name
    assert table.cost("claude-opus-4-6[1m]-x") is None  # a tag only at the end


@given(
    st.integers(0, 10**9),
    st.integers(0, 10**9),
    st.integers(0, 10**9),
    st.integers(0, 10**9),
    st.sampled_from(sorted(_prices.shipped().models)),
)
def test_cost_is_each_kind_at_its_price_and_never_negative(
    a: int, b: int, c: int, d: int, model: str
) -> None:
    price = _prices.shipped().find(model)
    assert price is not None
    cost = _prices.compute(price, a, b, c, d)
    assert cost >= 0
    parts = sum(
        _prices.compute(price, *(v if i == j else 0 for j, v in enumerate((a, b, c, d)))) for i in range(4)
    )
    assert cost == pytest.approx(parts, rel=1e-9, abs=1e-9)


@given(st.text(max_size=40))
def test_any_model_name_is_priced_or_unknown_never_an_error(name: str) -> None:
    result = _prices.shipped().cost(name, 10, 10, 10, 10)
    assert result is None or result >= 0


def test_llm_prices_parameter_overrides_and_adds_models(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    clisight.init(
        store=db, llm_prices={"my-llama": {"input": 1.0, "output": 2.0}, "gpt-4o-mini": {"input": 1.0}}
    )
    assert clisight.llm.record(model="my-llama", input_tokens=1_000_000, output_tokens=500_000) == 2.0
    assert clisight.llm.record(model="gpt-4o-mini", input_tokens=1_000_000, output_tokens=1_000_000) == 1.6


# -- record ------------------------------------------------------------------------------------------


def test_record_totals_tokens_and_cost_exactly_and_unknown_models_stay_unknown(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    clisight.init(store=db)
    for _ in range(7):
        assert (
            clisight.llm.record(
                model="claude-sonnet-4-5",
                input_tokens=1200,
                output_tokens=345,
                cache_read_tokens=5000,
                cache_creation_tokens=800,
                latency=1.5,
                ttft=0.2,
                tool_calls=2,
                stop_reason="tool_use",
            )
            == SONNET_CALL
        )
    assert clisight.llm.record(model="my-local-llama", input_tokens=10, output_tokens=5) is None
    totals = _totals(db)
    sonnet = totals["claude-sonnet-4-5"]
    assert (sonnet["count"], sonnet["sum:input_tokens"], sonnet["sum:output_tokens"]) == (7, 8400, 2415)
    assert (sonnet["sum:cache_read_tokens"], sonnet["sum:cache_creation_tokens"]) == (35000, 5600)
    assert round(sonnet["sum:cost_usd"], 9) == round(7 * SONNET_CALL, 9)
    assert totals["my-local-llama"]["sum:cost_usd"] in (None, 0)
    [unknown] = [e for e in _events(db) if e["attributes"]["model"] == "my-local-llama"]
    assert unknown["attributes"]["priced"] is False and "cost_usd" not in unknown["attributes"]
    known = _events(db)[0]["attributes"]
    assert (known["ttft"], known["tool_calls"], known["stop_reason"], known["duration"]) == (
        0.2,
        2,
        "tool_use",
        1.5,
    )


def test_prompts_are_not_stored_unless_enabled_and_then_scrubbed(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    clisight.init(store=db)
    clisight.llm.record(
        model="gpt-4o", input_tokens=1, prompt="my key is sk-ant-api03-" + "a" * 40, completion="ok"
    )
    assert "prompt" not in _events(db)[0]["attributes"]
    clisight.shutdown()
    db2 = tmp_path / "s2.db"
    clisight.init(store=db2, llm_content=True)
    clisight.llm.record(
        model="gpt-4o", input_tokens=1, prompt="my key is sk-ant-api03-" + "a" * 40, completion="ok"
    )
    attrs = _events(db2)[0]["attributes"]
    assert (
        attrs["completion"] == "ok"
        and "a" * 40 not in attrs["prompt"]
        and attrs["prompt"].startswith("my key is")
    )


def test_budgets_warn_once_per_session_and_day_and_call_back(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    clisight.init(store=db, llm_budgets={"session_usd": 0.03})
    alerts: list[llm.BudgetAlert] = []
    clisight.llm.set_budget(daily_tokens=20_000, on_exceeded=alerts.append)
    for _ in range(4):  # 4 x 0.013275 $ and 4 x 7345 tokens
        clisight.llm.record(
            model="claude-sonnet-4-5",
            input_tokens=1200,
            output_tokens=345,
            cache_read_tokens=5000,
            cache_creation_tokens=800,
        )
    assert [(a.scope, a.measure) for a in alerts] == [("day", "tokens"), ("session", "usd")]
    assert alerts[0].value == 22035 and alerts[0].limit == 20_000
    assert alerts[1].value == round(3 * SONNET_CALL, 10)
    warnings = [e for e in _events(db, "llm.budget_exceeded")]
    assert len(warnings) == 2
    clisight.flush(10)
    with Query(db) as q:
        logs = q.reader.rows("log", Selection(component="clisight.llm"), limit=10).rows
    assert [log["severity_text"] for log in logs] == ["WARNING", "WARNING"]
    assert "0.039825 >= $0.03" in logs[1]["message"]


def test_do_not_track_records_no_llm_calls_but_still_returns_their_cost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DO_NOT_TRACK", "1")
    db = tmp_path / "s.db"
    clisight.init(store=db)
    # The program may show its user the cost: an end user's DO_NOT_TRACK must not change that.
    expected = _prices.shipped().cost("gpt-4o", 5, 0, 0, 0)
    assert expected is not None and expected > 0
    assert clisight.llm.record(model="gpt-4o", input_tokens=5) == expected
    assert clisight.llm.record(model="no-such-model", input_tokens=5) is None
    assert _events(db) == []


def test_llm_calls_never_raise_into_the_program(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from clisight import _safety

    monkeypatch.setattr(_safety, "_raise_internal", False)
    assert clisight.llm.record(model="gpt-4o", input_tokens=5) is None  # before init
    clisight.init(store=tmp_path / "s.db")
    odd: Any = object()
    clisight.llm.record(model=odd, input_tokens=odd, output_tokens=float("nan"), latency="x", tool_calls=odd)
    clisight.llm.set_budget(daily_usd=odd)
    clisight.llm.set_budget(session_usd=1e-12, on_exceeded=lambda alert: 1 / 0)
    clisight.llm.record(model="gpt-4o", input_tokens=5)


# -- the SDKs against a local server ------------------------------------------------------------------


def test_anthropic_sdk_sync_async_and_streaming_calls_give_exact_totals(tmp_path: Path) -> None:
    anthropic = pytest.importorskip("anthropic")
    db = tmp_path / "s.db"
    clisight.init(store=db)
    assert clisight.llm.instrument_anthropic()
    args: dict[str, Any] = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
    }
    with llm_server() as url:
        client = anthropic.Anthropic(base_url=url, api_key="test", max_retries=0, timeout=10)
        message = client.messages.create(**args)
        assert message.usage.output_tokens == ANTHROPIC_USAGE["output_tokens"]
        assert "".join(e.type for e in client.messages.create(**args, stream=True))
        with client.messages.stream(**args) as stream:
            assert stream.get_final_text() == "Hello"

        async def calls() -> None:
            aclient = anthropic.AsyncAnthropic(base_url=url, api_key="test", max_retries=0, timeout=10)
            await aclient.messages.create(**args)
            async for _ in await aclient.messages.create(**args, stream=True):
                pass
            async with aclient.messages.stream(**args) as astream:
                await astream.get_final_message()

        asyncio.run(calls())
    sonnet = _totals(db)["claude-sonnet-4-6"]
    assert sonnet["count"] == 6
    assert (sonnet["sum:input_tokens"], sonnet["sum:output_tokens"]) == (6 * 1200, 6 * 345)
    assert (sonnet["sum:cache_read_tokens"], sonnet["sum:cache_creation_tokens"]) == (6 * 5000, 6 * 800)
    assert round(sonnet["sum:cost_usd"], 9) == round(6 * SONNET_CALL, 9)
    events = [e["attributes"] for e in _events(db)]
    assert events[0]["tool_calls"] == 1 and events[0]["stop_reason"] == "tool_use"
    assert events[1]["stop_reason"] == "end_turn" and events[1]["ttft"] >= 0
    assert all(e["provider"] == "anthropic" for e in events)


def test_openai_sdk_sync_async_and_streaming_calls_give_exact_totals(tmp_path: Path) -> None:
    openai = pytest.importorskip("openai")
    db = tmp_path / "s.db"
    clisight.init(store=db)
    assert clisight.llm.instrument_openai()
    args: dict[str, Any] = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    with llm_server() as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="test", max_retries=0, timeout=10)
        completion = client.chat.completions.create(**args)
        assert completion.usage.prompt_tokens == OPENAI_USAGE["prompt_tokens"]
        text = "".join(
            c.choices[0].delta.content or ""
            for c in client.chat.completions.create(
                **args, stream=True, stream_options={"include_usage": True}
            )
            if c.choices
        )
        assert text == "Hi there"
        for _ in client.chat.completions.create(**args, stream=True):  # no usage asked for
            pass

        async def calls() -> None:
            aclient = openai.AsyncOpenAI(base_url=url + "/v1", api_key="test", max_retries=0, timeout=10)
            await aclient.chat.completions.create(**args)
            stream = await aclient.chat.completions.create(
                **args, stream=True, stream_options={"include_usage": True}
            )
            async for _ in stream:
                pass

        asyncio.run(calls())
    mini = _totals(db)["gpt-4o-mini"]
    assert mini["count"] == 5
    assert (mini["sum:input_tokens"], mini["sum:output_tokens"], mini["sum:cache_read_tokens"]) == (
        4 * 1500,
        4 * 150,
        4 * 500,
    )
    assert round(mini["sum:cost_usd"], 9) == round(4 * MINI_CALL, 9)
    missing = [e["attributes"] for e in _events(db) if e["attributes"].get("usage_missing")]
    assert len(missing) == 1 and missing[0]["stop_reason"] == "stop"


def test_budgets_and_prices_come_from_the_configuration_table() -> None:
    from clisight import _config
    from clisight.exceptions import ConfigError

    env = {
        "CLISIGHT_LLM_BUDGETS": "daily_usd=5, session_tokens=2e5",
        "CLISIGHT_LLM_PRICES": '{"x": {"input": 1}}',
    }
    config = _config.resolve(environ=env, pyproject=False)
    assert config["llm_budgets"] == {"daily_usd": 5.0, "session_tokens": 200_000.0}
    assert config["llm_prices"] == {"x": {"input": 1}}
    for bad in ({"CLISIGHT_LLM_BUDGETS": "weekly_usd=5"}, {"CLISIGHT_LLM_PRICES": '{"x": {"input": -1}}'}):
        with pytest.raises(ConfigError):
            _config.resolve(environ=bad, pyproject=False)
