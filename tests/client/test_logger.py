"""The client API as a CLI author uses it: loggers, sessions, spans, usage events, errors."""

from __future__ import annotations

import logging
import time
import warnings

import pytest

import clisight
from clisight.client import core
from clisight.testing import MemorySink, capture
from clisight.types import CRITICAL, DEBUG, ERROR_LEVEL, INFO, PERFORMANCE, WARNING
from tests.helpers import run_python


def test_every_level_reaches_the_store_with_its_fields() -> None:
    with capture(service="mycli", version="1.2") as sink:
        log = clisight.get_logger("api")
        log.debug("d", a=1)
        log.info("i", b="two")
        log.warning("w")
        log.error("e")
        log.critical("c")
    logs = sink.of_kind("log")
    assert [(r.severity, r.body) for r in logs] == [
        (DEBUG, "d"),
        (INFO, "i"),
        (WARNING, "w"),
        (ERROR_LEVEL, "e"),
        (CRITICAL, "c"),
    ]
    assert logs[0].attributes == {"a": 1} and logs[1].attributes == {"b": "two"}
    assert all(r.resource.service == "mycli" and r.resource.version == "1.2" for r in logs)
    assert all(r.name == "api" for r in logs)


def test_records_below_the_configured_level_are_not_recorded() -> None:
    with capture(level="WARNING") as sink:
        log = clisight.get_logger("api")
        log.info("quiet")
        log.warning("loud")
    assert [r.body for r in sink.of_kind("log")] == ["loud"]


def test_bind_adds_context_and_call_fields_win() -> None:
    with capture() as sink:
        log = clisight.get_logger("api").bind(request="r1", model="a")
        log.info("x", model="b")
    assert sink.of_kind("log")[0].attributes == {"request": "r1", "model": "b"}


def test_log_performance_is_its_own_level_with_duration() -> None:
    with capture() as sink:
        clisight.get_logger("db").log_performance("query", 0.125, rows=3)
    rec = sink.of_kind("log")[0]
    assert rec.severity == PERFORMANCE
    assert rec.attributes == {"rows": 3, "operation": "query", "duration": 0.125}


def test_every_record_carries_a_session_id_even_when_none_was_set() -> None:
    with capture() as sink:
        clisight.get_logger("a").info("x")
        clisight.track("command", name="run")
    assert all(r.session_id and len(r.session_id) == 32 for r in sink.records)
    assert len({r.session_id for r in sink.records}) == 1


def test_session_context_manager_scopes_records_and_records_the_outcome() -> None:
    with capture() as sink:
        log = clisight.get_logger("chat")
        with clisight.session(user="alice@example.com", conversation="c1") as sid:
            log.info("turn")
        with pytest.raises(RuntimeError), clisight.session(session_id="given-id"):
            raise RuntimeError("x")
        log.info("after")
    turn = next(r for r in sink.of_kind("log") if r.body == "turn")
    assert turn.session_id == sid
    assert turn.attributes["conversation"] == "c1"
    assert turn.attributes["user_id"].startswith("u_")  # a pseudonym, not the address
    assert "alice" not in str(sink.records)
    ends = [r for r in sink.of_kind("session") if r.end_ns is not None]
    outcome = {r.session_id: r.attributes["exit_code"] for r in ends if "exit_code" in r.attributes}
    assert outcome == {sid: 0, "given-id": 1}
    after = next(r for r in sink.of_kind("log") if r.body == "after")
    assert after.session_id not in (sid, "given-id")


def test_set_session_context_applies_to_later_records() -> None:
    with capture() as sink:
        sid = clisight.set_session_context(user="bob", plan="pro")
        clisight.get_logger("a").info("x")
    rec = sink.of_kind("log")[0]
    assert rec.session_id == sid and rec.attributes["plan"] == "pro"


def test_records_inside_a_span_carry_its_trace_and_span_ids() -> None:
    with capture() as sink:
        log = clisight.get_logger("a")
        with clisight.span("outer") as outer, clisight.span("inner") as inner:
            log.info("deep")
        log.info("outside")
    spans = {r.name: r for r in sink.of_kind("span")}
    deep = next(r for r in sink.of_kind("log") if r.body == "deep")
    assert deep.span_id == inner and deep.trace_id == spans["inner"].trace_id == spans["outer"].trace_id
    assert spans["inner"].parent_span_id == outer
    assert spans["outer"].end_ns is not None and spans["outer"].end_ns >= spans["inner"].end_ns  # type: ignore[operator]
    outside = next(r for r in sink.of_kind("log") if r.body == "outside")
    assert outside.span_id is None


def test_a_failing_span_is_marked_and_the_exception_still_propagates() -> None:
    with capture() as sink, pytest.raises(KeyError), clisight.span("lookup"):
        raise KeyError("k")
    span = sink.of_kind("span")[0]
    assert span.severity == ERROR_LEVEL and span.attributes["exception.type"] == "KeyError"


def test_exception_logs_the_stack_and_records_an_error_occurrence() -> None:
    with capture() as sink:
        try:
            {}["missing"]
        except KeyError:
            clisight.get_logger("api").exception("lookup failed", key="missing")
    log = sink.of_kind("log")[0]
    assert log.severity == ERROR_LEVEL and "KeyError" in log.attributes["exception.stacktrace"]
    err = sink.of_kind("error")[0]
    assert err.name == "KeyError" and "test_logger.py" in err.attributes["stack"]


def test_track_records_usage_events_unless_do_not_track(monkeypatch: pytest.MonkeyPatch) -> None:
    with capture() as sink:
        clisight.track("llm.request", model="m", input_tokens=10, output_tokens=2)
    assert sink.of_kind("event")[0].attributes["input_tokens"] == 10
    monkeypatch.setenv("DO_NOT_TRACK", "1")
    with capture() as sink:
        clisight.track("command", name="run")
        clisight.get_logger("a").info("logs stay on")
    assert sink.of_kind("event") == [] and sink.of_kind("session") == []
    assert [r.body for r in sink.of_kind("log")] == ["logs stay on"]


def test_clisight_disabled_records_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLISIGHT_DISABLED", "1")
    client = clisight.init(service="off")
    clisight.get_logger("a").info("x")
    assert client.pipeline.channels == []
    assert clisight.pipeline_stats()["sinks"] == {}


def test_init_is_idempotent() -> None:
    sink = MemorySink()
    first = clisight.init(service="one", sinks=[sink])
    assert clisight.init(service="two") is first
    assert first.resource.service == "one"


def test_calls_before_init_are_ignored() -> None:
    core.shutdown()
    clisight.get_logger("a").info("nobody listening")
    clisight.track("x")
    assert clisight.flush() is True


def test_stdlib_logging_lands_with_its_extra_fields() -> None:
    std = logging.getLogger("legacy.module")
    handler = clisight.LoggingHandler()
    std.addHandler(handler)
    std.setLevel(logging.DEBUG)
    try:
        with capture() as sink:
            std.info("hello %s", "world", extra={"request_id": "r-1"})
            try:
                _ = 1 / 0
            except ZeroDivisionError:
                std.exception("math")
    finally:
        std.removeHandler(handler)
    hello, math = sink.of_kind("log")
    assert (hello.name, hello.body, hello.severity) == ("legacy.module", "hello world", INFO)
    assert hello.attributes["request_id"] == "r-1"
    assert math.severity == ERROR_LEVEL and "ZeroDivisionError" in math.attributes["exception.stacktrace"]
    assert logging.getLogger().handlers == [] or handler not in logging.getLogger().handlers


def test_warnings_are_captured_when_asked() -> None:
    with capture(capture_warnings=True) as sink, warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("old api", DeprecationWarning, stacklevel=1)
    clisight.capture_warnings(False)
    rec = sink.of_kind("log")[0]
    assert rec.name == "py.warnings" and rec.body == "old api"
    assert rec.attributes["category"] == "DeprecationWarning"


def test_an_internal_error_is_counted_as_a_lost_record_and_never_reaches_the_host() -> None:
    # A redactor is an extension point: one that raises must cost only the record it was given.
    out = run_python(
        """
        import clisight
        from clisight.client import core
        from clisight.testing import MemorySink

        class BrokenRedactor:
            def message(self, text): raise RuntimeError("redactor bug")
            def attributes(self, attrs): raise RuntimeError("redactor bug")

        clisight.init(service="x", sinks=[MemorySink()], usage=False)
        core.get_client().redactor = BrokenRedactor()
        clisight.get_logger("a").info("lost")
        clisight.flush()
        stats = clisight.pipeline_stats()
        sink = stats["sinks"]["memory"]
        print("host carried on", stats["internal_errors"], sink["emitted"], sink["dropped"], sink["stored"])
    """,
        env={"CLISIGHT_RAISE_INTERNAL": "0"},
    )
    assert out.stdout.strip() == "host carried on 1 1 1 0"


def test_an_unprintable_message_is_recorded_as_a_placeholder() -> None:
    class Evil:
        def __str__(self) -> str:
            raise RuntimeError("cannot print me")

    with capture() as sink:
        clisight.get_logger("a").info(Evil())  # type: ignore[arg-type]
    assert sink.of_kind("log")[0].body == "<unprintable Evil: str() raised RuntimeError>"


def test_a_message_that_is_not_a_string_is_recorded_as_its_text() -> None:
    with capture() as sink:
        clisight.get_logger("a").info({"not": "a string"})  # type: ignore[arg-type]
        clisight.get_logger("a").info(42)  # type: ignore[arg-type]
    assert [r.body for r in sink.of_kind("log")] == ["{'not': 'a string'}", "42"]


def test_a_bad_environment_value_warns_and_the_program_carries_on(monkeypatch: pytest.MonkeyPatch) -> None:
    from clisight.exceptions import ConfigWarning

    monkeypatch.setenv("CLISIGHT_QUEUE_SIZE", "lots")
    with pytest.warns(ConfigWarning, match=r"queue_size.*CLISIGHT_QUEUE_SIZE"):
        client = clisight.init(service="x", sinks=[MemorySink()])
    assert client.config["queue_size"] == 20_000
    assert "invalid" in client.config.source("queue_size")


def test_a_bad_keyword_argument_is_the_programs_own_error() -> None:
    from clisight.exceptions import ConfigError

    with pytest.raises(ConfigError, match="queue_size"):
        clisight.init(service="x", sinks=[MemorySink()], queue_size=-1)
    with pytest.raises(ConfigError, match="queue_sise"):
        clisight.init(service="x", sinks=[MemorySink()], queue_sise=10)


def test_an_unknown_store_scheme_from_the_code_raises_and_from_the_environment_warns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from clisight.exceptions import ConfigWarning, UnsupportedStoreURL

    with pytest.raises(UnsupportedStoreURL, match="mysql"):
        clisight.init(service="x", store="mysql://db/x")
    monkeypatch.setenv("CLISIGHT_STORE", "mysql://db/x")
    with pytest.warns(ConfigWarning, match="mysql"):
        client = clisight.init(service="x")
    assert client.store_url is not None and client.store_url.endswith("clisight.db")


def test_printf_style_arguments_are_formatted_as_stdlib_logging_does() -> None:
    with capture() as sink:
        log = clisight.get_logger("api")
        log.info("a %s took %.1f s", "request", 1.25)
        log.info("%(user)s logged in", {"user": "bob"})
        log.info("100% done")  # no arguments: never formatted, as in logging
    assert [r.body for r in sink.of_kind("log")] == ["a request took 1.2 s", "bob logged in", "100% done"]


def test_arguments_are_formatted_only_when_the_record_is_built() -> None:
    formatted = []

    class Costly:
        def __str__(self) -> str:
            formatted.append(1)
            return "costly"

    with capture(level="INFO") as sink:
        clisight.get_logger("api").debug("value %s", Costly())
        clisight.get_logger("api").info("value %s", Costly())
    assert len(formatted) == 1 and sink.of_kind("log")[0].body == "value costly"


def test_arguments_that_do_not_fit_the_message_keep_it_unformatted_with_the_error() -> None:
    with capture() as sink:
        clisight.get_logger("api").info("count", 5)
        clisight.get_logger("api").info("%d items", "many")
    first, second = sink.of_kind("log")
    assert first.body == "count" and first.attributes["log.args"] == ["5"]
    assert first.attributes["log.args_error"].startswith("TypeError: not all arguments converted")
    assert second.body == "%d items" and second.attributes["log.args"] == ["'many'"]


def test_a_field_may_be_named_message() -> None:
    with capture() as sink:
        clisight.get_logger("api").info("m", message="y")
    rec = sink.of_kind("log")[0]
    assert rec.body == "m" and rec.attributes == {"message": "y"}


def test_log_performance_with_a_duration_that_is_not_a_number_keeps_it_as_text() -> None:
    with capture() as sink:
        log = clisight.get_logger("db")
        log.log_performance("op", "12ms")  # type: ignore[arg-type]
        log.log_performance(None, None)  # type: ignore[arg-type]
        log.log_performance("op", float("nan"))
        log.log_performance("op", 10**400)
    records = sink.of_kind("log")
    assert [r.body for r in records] == [
        "op took 12ms",
        "None took None",
        "op took nan",
        f"op took {10**400}",
    ]
    assert all("duration" not in r.attributes for r in records)
    assert records[0].attributes == {"operation": "op", "duration_text": "12ms"}


def test_a_10_mb_message_or_field_costs_the_caller_milliseconds_and_is_marked_truncated() -> None:
    huge = "x" * 10_000_000
    with capture(max_field_chars=1000) as sink:
        log = clisight.get_logger("api")
        log.info("warm up", detail="x" * 2000)  # first use compiles the patterns it needs
        start = time.perf_counter()
        log.info(huge)
        message_cost = time.perf_counter() - start
        start = time.perf_counter()
        log.info("payload", body=huge, nested={"list": [huge]})
        field_cost = time.perf_counter() - start
    message, fields = sink.of_kind("log")[1:]
    # Scanning 10 MB cost ~10 s before the cut; the bound is 1 s so a loaded machine cannot flake it.
    # bench/bench_hostile.py measures the real cost (about 1 ms).
    assert message_cost < 1.0 and field_cost < 1.0, (message_cost, field_cost)
    assert message.body == "x" * 1000 + "…[truncated: 10000000 chars]"
    assert fields.attributes["body"] == message.body
    assert fields.attributes["nested"] == {"list": [message.body]}


def test_a_secret_cut_by_the_truncation_is_still_redacted() -> None:
    secret = "sk-ant-api03-Zx9QeLw8Rk2Tn5Vb7Mc1Hd4Jf6Gs0Pa3Yu"
    with capture(max_field_chars=1000) as sink:
        text = "a" * 990 + " " + secret + " tail" * 1000  # the cut at 1000 goes through the key
        clisight.get_logger("api").info(text)
    body = sink.of_kind("log")[0].body
    assert secret[:9] not in body
    assert body == "a" * 990 + " [REDACTED" + f"…[truncated: {len(text)} chars]"


def test_truncation_applies_with_redaction_turned_off() -> None:
    with capture(max_field_chars=10, redact=False) as sink:
        clisight.get_logger("api").info("y" * 20, body="z" * 20)
    rec = sink.of_kind("log")[0]
    assert rec.body == "y" * 10 + "…[truncated: 20 chars]"
    assert rec.attributes["body"] == "z" * 10 + "…[truncated: 20 chars]"


def test_deep_and_cyclic_fields_are_cut_not_recursed_into_forever() -> None:
    deep: object = "bottom"
    for _ in range(5000):
        deep = {"k": deep}
    cyclic: list[object] = []
    cyclic.append(cyclic)
    with capture() as sink:
        clisight.get_logger("api").info("m", deep=deep, cyclic=cyclic)
    attrs = sink.of_kind("log")[0].attributes
    depth, value = 0, attrs["deep"]
    while isinstance(value, dict):
        depth, value = depth + 1, value["k"]
    assert value == "[clisight: nested too deep]" and depth < 40
