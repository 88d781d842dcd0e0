"""Error tracking: grouping a real program's exceptions, LLM-aware groups, occurrences' contents,
regressions, and the uncaught-exception hooks (chained, stored before the process exits)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import clisight
from clisight._shape import message_shape
from clisight.client.errors import fingerprint_of, llm_error_kind
from clisight.query import Query
from clisight.query.errors import error_groups, newer_version, set_status
from clisight.testing import capture
from tests.helpers import run_python

# A small program with bugs at a few places.  Each run raises them with different ids, paths,
# numbers and quoted values, and the file is written with a different number of blank lines in front,
# so every line number moves between runs; the groups must not.
PROGRAM = """
import os, sys, uuid, random
import clisight

class RateLimitError(Exception):  # named as in the anthropic and openai SDKs
    status_code = 429

class APITimeoutError(Exception):
    pass

def load_user(users, user_id):
    return users[user_id]

def read_config(path):
    with open(path) as fh:
        return fh.read()

def charge(order_id, amount):
    if amount > 100:
        raise ValueError(f"amount {amount} too large for order {order_id}")
    return amount

def parse_port(text):
    raise ValueError(f"bad port {text!r} in {uuid.uuid4()}")

def call_llm(model):
    raise RateLimitError(f"429 rate limit for request req_{uuid.uuid4().hex[:12]} ({model})")

def wait_llm(model):
    raise APITimeoutError(f"timed out after {random.uniform(30, 90):.1f} s")

def attempt(fn, *args, **context):
    try:
        fn(*args)
    except Exception:
        clisight.capture_exception(**context)

seed = int(sys.argv[1])
rng = random.Random(seed)
clisight.init(service="corpus", version=sys.argv[2], store=sys.argv[3])
for i in range(4):
    n = rng.randint(1, 10**6)
    attempt(load_user, {}, f"user-{n}")
    attempt(read_config, f"/srv/app{n}/conf/{uuid.uuid4().hex}.toml")
    attempt(charge, f"ord_{n:x}", 100 + n)
    attempt(parse_port, str(n))
    model = ("claude-sonnet-4", "claude-haiku-3.5")[i % 2]
    attempt(call_llm, model, model=model)
    attempt(wait_llm, model, model="claude-opus-4")
clisight.shutdown(30)
"""
EXPECTED_GROUPS = {
    ("KeyError", None),
    ("FileNotFoundError", None),
    ("ValueError", "charge"),
    ("ValueError", "parse_port"),
    ("RateLimitError", "claude-sonnet-4"),
    ("RateLimitError", "claude-haiku-3.5"),
    ("APITimeoutError", "claude-opus-4"),
}


def _run_corpus(tmp_path: Path, db: Path, seed: int, version: str) -> None:
    script = tmp_path / f"app{seed}" / "corpus.py"
    script.parent.mkdir(exist_ok=True)
    script.write_text("\n" * (seed * 7) + textwrap.dedent(PROGRAM))
    run_python(
        f"import runpy, sys; sys.argv = ['corpus', '{seed}', '{version}', {str(db)!r}];"
        f" runpy.run_path({str(script)!r}, run_name='__main__')"
    )


def test_a_corpus_of_raised_exceptions_groups_into_exactly_the_expected_groups(tmp_path: Path) -> None:
    db = tmp_path / "corpus.db"
    for seed, version in ((1, "1.0"), (2, "1.0"), (3, "1.1")):
        _run_corpus(tmp_path, db, seed, version)
    with Query(db) as q:
        occurrences = list(q.export(kinds=["error"]))
        groups = list(q.export(kinds=["error_group"]))
    assert len(occurrences) == 3 * 4 * 6 >= 40
    assert len({o["message"] for o in occurrences}) > 60  # the messages really vary
    assert len({o["attributes"]["exception.frames"][-1]["line"] for o in occurrences}) > 10  # and lines
    found = {}
    for occurrence in occurrences:
        attrs = occurrence["attributes"]
        detail = attrs.get("llm.model") or (
            attrs["exception.frames"][-1]["function"] if occurrence["type"] == "ValueError" else None
        )
        found.setdefault((occurrence["type"], detail), set()).add(occurrence["fingerprint"])
    assert set(found) == EXPECTED_GROUPS
    assert all(len(fingerprints) == 1 for fingerprints in found.values()), found
    assert len(groups) == len(EXPECTED_GROUPS)
    assert sorted(g["count"] for g in groups) == sorted([12] * 4 + [6, 6, 12])


def test_an_occurrence_carries_frames_chain_breadcrumbs_and_command() -> None:
    with capture(breadcrumbs=3) as sink:
        log = clisight.get_logger("db")
        for i in range(5):
            log.info("step %d", i)
        with clisight.span("query"):
            pass
        try:
            try:
                {}["missing"]
            except KeyError as exc:
                raise RuntimeError("lookup failed") from exc
        except RuntimeError:
            clisight.capture_exception(table="users")
        clisight.flush(5)
    (error,) = sink.of_kind("error")
    attrs = error.attributes
    frames = attrs["exception.frames"]
    assert frames[-1]["function"].endswith("test_an_occurrence_carries_frames_chain_breadcrumbs_and_command")
    assert frames[-1]["in_app"] is True and isinstance(frames[-1]["line"], int)
    (link,) = attrs["exception.chain"]
    assert link["relation"] == "cause" and link["type"] == "KeyError"
    assert [c["kind"] for c in attrs["breadcrumbs"]] == ["log", "log", "span"]
    assert attrs["breadcrumbs"][1]["message"] == "step 4"
    assert attrs["table"] == "users" and attrs["command"]
    assert "locals" not in attrs  # only when asked


def test_locals_are_recorded_only_when_enabled_and_scrubbed() -> None:
    def handler(password: str, count: int) -> None:
        raise ValueError("nope")

    secret = "hunter" + "2-very-secret"  # not in any source line the stack shows
    with capture(capture_locals=True) as sink:
        try:
            handler(secret, 3)
        except ValueError:
            clisight.capture_exception()
        clisight.flush(5)
    (error,) = sink.of_kind("error")
    local_vars = error.attributes["locals"]
    assert local_vars["count"] == "3" and "REDACTED" in local_vars["password"]
    assert "hunter2" not in str(error.attributes)


def test_custom_fingerprints_win() -> None:
    with capture() as sink:
        for message in ("a", "b"):
            clisight.capture_exception(ValueError(message), fingerprint=["billing", "card-declined"])
        clisight.capture_exception(KeyError("x"), fingerprint="mine")
        clisight.flush(5)
    prints = [e.attributes["fingerprint"] for e in sink.of_kind("error")]
    assert prints[0] == prints[1] != prints[2] == "mine"


# -- LLM-aware groups -------------------------------------------------------------------------------
def _error(name: str, module: str = "anthropic", **attrs: Any) -> BaseException:
    cls = type(name, (Exception,), {"__module__": module, **attrs})
    return cls("boom")  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (_error("RateLimitError"), "rate_limit"),
        (_error("APIStatusError", status_code=429), "rate_limit"),
        (_error("OverloadedError"), "overloaded"),
        (_error("InternalServerError", status_code=529), "overloaded"),
        (_error("AuthenticationError", "openai"), "authentication"),
        (_error("PermissionDeniedError", "openai"), "authentication"),
        (_error("APITimeoutError", "openai"), "timeout"),
        (_error("ReadTimeout", "httpx"), "timeout"),
        (_error("ConnectError", "httpx"), "connection"),
        (_error("APIConnectionError"), "connection"),
        (
            type("BadRequestError", (Exception,), {"__module__": "anthropic", "status_code": 400})(
                "prompt is too long: 210000 tokens > 200000 maximum"
            ),
            "context_length",
        ),
        (ValueError("plain"), None),
        (TimeoutError("a plain timeout is not an LLM error"), None),
        (ConnectionError("nor a plain connection error"), None),
    ],
)
def test_llm_errors_are_recognised_by_type_name_and_status(exc: BaseException, kind: str | None) -> None:
    assert llm_error_kind(exc) == kind


def test_llm_errors_group_by_kind_and_model_not_message() -> None:
    with capture() as sink:
        for i in range(3):
            clisight.capture_exception(_error("RateLimitError"), model="sonnet", note=i)
        clisight.capture_exception(_error("RateLimitError"), model="haiku")
        clisight.capture_exception(_error("OverloadedError"), model="haiku")
        clisight.flush(5)
    prints = [e.attributes["fingerprint"] for e in sink.of_kind("error")]
    assert prints[0] == prints[1] == prints[2]
    assert len(set(prints)) == 3


# -- normalisation -----------------------------------------------------------------------------------
TEMPLATES = [
    "user {n} not found",
    "cannot open {path}: errno {n}",
    "request {hexid} to {url} failed after {f} s",
    "key {quoted} missing in {uuid}",
    "order {n} for {email} declined",
]


@settings(max_examples=200, deadline=None)
@given(
    template=st.sampled_from(TEMPLATES),
    a=st.integers(0, 10**12),
    b=st.integers(0, 10**12),
    f=st.floats(0, 1e6, allow_nan=False),
    word=st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12),
    uuid=st.uuids(),
)
def test_messages_differing_only_in_variable_parts_have_one_shape(
    template: str, a: int, b: int, f: float, word: str, uuid: Any
) -> None:
    def fill(n: int) -> str:
        return template.format(
            n=n,
            path=f"/home/{word}/proj{n}/file.txt",
            hexid=f"{n:x}9deadbeef",
            url=f"https://api.example.com/v1/{word}?id={n}",
            f=f + n,
            quoted=repr(f"{word}{n}"),
            uuid=uuid,
            email=f"{word}{n}@example.com",
        )

    assert message_shape(fill(a)) == message_shape(fill(b))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_a_shape_is_its_own_shape_and_never_raises(text: str) -> None:
    shape = message_shape(text)
    assert message_shape(shape) == shape
    assert len(shape) <= 300


def test_different_bugs_keep_different_shapes_and_groups() -> None:
    assert message_shape("user 5 not found") != message_shape("user 5 not allowed")
    frames = [{"file": "/app/x.py", "function": "f", "line": 3, "in_app": True}]
    moved = [{"file": "/other/checkout/x.py", "function": "f", "line": 90, "in_app": True}]
    assert fingerprint_of("KeyError", "'u1'", frames) == fingerprint_of("KeyError", "'u2'", moved)
    assert fingerprint_of("KeyError", "'u1'", frames) != fingerprint_of("IndexError", "'u1'", frames)
    other = [{"file": "/app/x.py", "function": "g", "line": 3, "in_app": True}]
    assert fingerprint_of("KeyError", "'u1'", frames) != fingerprint_of("KeyError", "'u1'", other)


# -- status and regressions ----------------------------------------------------------------------------
def _raise_in(version: str, db: Path) -> None:
    clisight.init(service="svc", version=version, store=str(db))
    try:
        {}["k"]
    except KeyError:
        clisight.capture_exception()
    clisight.shutdown(30)


def test_a_resolved_group_seen_again_in_a_newer_version_reopens_as_a_regression(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    _raise_in("1.2.0", db)
    with Query(db) as q:
        (group,) = error_groups(q)
        assert group.status == "unresolved"
        assert set_status(q, group.fingerprint[:8], "resolved") is not None
        assert error_groups(q)[0].status == "resolved"
    _raise_in("1.2.0", db)  # the fix is not released yet: still resolved
    with Query(db) as q:
        assert error_groups(q)[0].status == "resolved"
    _raise_in("1.10.0", db)
    with Query(db) as q:
        (group,) = error_groups(q)
        assert group.status == "regression" and group.regressed_ns is not None and group.count == 3
        set_status(q, group.fingerprint, "ignored")
        assert error_groups(q)[0].status == "ignored"


@pytest.mark.parametrize(
    ("candidate", "than", "newer"),
    [
        ("1.10", "1.9", True),
        ("1.9", "1.10", False),
        ("2.0.0", "2.0.0", False),
        ("1.0", "", True),
        ("", "1.0", False),
    ],
)
def test_versions_compare_by_their_numbers(candidate: str, than: str, newer: bool) -> None:
    assert newer_version(candidate, than) is newer


# -- uncaught exceptions ------------------------------------------------------------------------------
def test_hooks_are_chained_and_an_uncaught_exception_is_stored_before_the_process_exits(
    tmp_path: Path,
) -> None:
    db = tmp_path / "u.db"
    proc = run_python(
        f"""
        import sys, threading
        def mine(*args):
            print("my excepthook ran", args[0].__name__, flush=True)
        def my_thread_hook(args):
            print("my thread hook ran", args.exc_type.__name__, flush=True)
        sys.excepthook = mine
        threading.excepthook = my_thread_hook
        import clisight
        clisight.init(service="u", store={str(db)!r})
        clisight.get_logger("main").info("about to fail")
        t = threading.Thread(target=lambda: 1 / 0)
        t.start(); t.join()
        raise LookupError("uncaught in main")
        """,
        check=False,
    )
    assert proc.returncode == 1
    assert "my excepthook ran LookupError" in proc.stdout
    assert "my thread hook ran ZeroDivisionError" in proc.stdout
    with Query(db) as q:
        errors = {e["type"]: e for e in q.export(kinds=["error"])}
    assert set(errors) == {"LookupError", "ZeroDivisionError"}
    assert errors["LookupError"]["attributes"]["component"] == "uncaught"
    assert errors["ZeroDivisionError"]["attributes"]["component"] == "uncaught.thread"
    assert errors["LookupError"]["attributes"]["breadcrumbs"][0]["message"] == "about to fail"


def test_an_asyncio_loop_exception_is_captured_and_passed_on(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    proc = run_python(
        f"""
        import asyncio, clisight
        async def main():
            clisight.init(service="a", store={str(db)!r})
            loop = asyncio.get_running_loop()
            loop.call_soon(lambda: 1 / 0)
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        asyncio.run(main())
        """
    )
    assert "ZeroDivisionError" in proc.stderr  # the loop's own handler still ran
    with Query(db) as q:
        (error,) = q.export(kinds=["error"])
    assert error["type"] == "ZeroDivisionError" and error["attributes"]["component"] == "asyncio"


def test_a_float_in_exponent_notation_is_a_number_not_a_hex_id() -> None:
    # Found by the property test above: the mantissa 23456789e of 1.23456789e-05 looked like hex.
    from clisight._shape import message_shape

    assert message_shape("failed after 1.23456789e-05 s") == message_shape("failed after 0.5 s")
    assert message_shape("failed after 1.23456789e-05 s") == "failed after <n> s"
