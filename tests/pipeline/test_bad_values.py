"""One bad value costs only itself: never the batch it travels in, never the host program."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
from hypothesis import given, settings

import clisight
from clisight._values import CYCLE, TOO_DEEP, clean_record, safe_value
from clisight.pipeline.writer import Pipeline
from clisight.store.sqlite import SqliteStore
from clisight.testing import MemorySink
from clisight.types import LOG, Record, Resource


class Unprintable:
    def __str__(self) -> str:
        raise TypeError("no text for you")

    __repr__ = __str__


def deep_dict(depth: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    node = root
    for _ in range(depth):
        node["d"] = {}
        node = node["d"]
    return root


BAD_VALUES: dict[str, tuple[str, dict[str, Any]]] = {
    "surrogate message": ("opened " + os.fsdecode(b"r-\xff.txt"), {}),
    "unprintable attribute": ("ok", {"obj": Unprintable()}),
    "100k-deep dict": ("ok", {"deep": deep_dict(100_000)}),
    "huge integer": ("ok", {"n": 10**30}),
}


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def test_one_bad_record_among_600_good_ones_costs_nothing_but_its_bad_value(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    client = clisight.init(store=db, redact=False, batch_size=2048)
    log = clisight.get_logger("batch")
    for i in range(300):
        log.info("good", i=i)
    for message, fields in BAD_VALUES.values():
        log.info(message, **fields)
    for i in range(300, 600):
        log.info("good", i=i)
    assert clisight.flush(10.0)
    (stats,) = client.pipeline.stats()
    assert stats.dropped == 0
    assert stats.emitted == stats.stored + stats.dropped + stats.spooled + stats.queue_depth
    assert _rows(db, "SELECT count(*) FROM logs WHERE message = 'good'") == [(600,)]
    assert _rows(db, "SELECT count(*) FROM logs") == [(600 + len(BAD_VALUES),)]
    (surrogate,) = _rows(db, "SELECT message FROM logs WHERE message LIKE 'opened %'")
    assert surrogate[0] == "opened r-\\udcff.txt"
    attrs = "\n".join(row[0] for row in _rows(db, "SELECT attributes FROM logs WHERE message = 'ok'"))
    assert "<unrepresentable: TypeError>" in attrs
    assert TOO_DEEP in attrs
    assert str(10**30) in attrs


def test_a_nul_character_is_stored_whole(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    clisight.init(store=db)
    clisight.get_logger("c").info("nul\x00 b", field="x\x00y")
    clisight.track("evt", text="a\x00b")
    assert clisight.flush(5.0)
    assert _rows(db, "SELECT message FROM logs") == [("nul\x00 b",)]
    assert "x\\u0000y" in _rows(db, "SELECT attributes FROM logs")[0][0]


def test_a_batch_the_sink_refuses_for_one_record_keeps_the_others() -> None:
    """Any sink, not only SQLite: the writer halves the batch until it finds what is refused."""

    class Picky(MemorySink):
        def write(self, batch: Any, deadline: Any = None, key: str = "") -> None:
            if any(r.body == "poison" for r in batch):
                raise ValueError("poison")
            super().write(batch, deadline)

    sink = Picky()
    pipe = Pipeline([sink], batch_size=1000, flush_interval=0.05)
    res = Resource("t")
    for i in range(1000):
        pipe.emit(Record(LOG, i, "c", "poison" if i == 517 else "fine", 9, {}, res))
    assert pipe.flush(5.0)
    (stats,) = pipe.stats()
    assert (stats.stored, stats.dropped, stats.errors) == (999, 1, 1)
    assert len(sink.records) == 999
    pipe.shutdown(1.0)


def test_a_dead_sink_drops_and_counts_the_batch_without_retrying_record_by_record() -> None:
    sink = MemorySink(fail=True)  # raises OSError: the destination, not the data
    pipe = Pipeline([sink], batch_size=100, flush_interval=0.05)
    for i in range(100):
        pipe.emit(Record(LOG, i, "c", "m", 9, {}, Resource("t")))
    assert pipe.flush(5.0)
    (stats,) = pipe.stats()
    assert (stats.stored, stats.dropped, stats.errors) == (0, 100, 1)
    pipe.shutdown(1.0)


def test_cycles_and_shared_references_are_cleaned_without_blowing_up() -> None:
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    shared = ["x"] * 3
    cleaned = safe_value({"c": cyclic, "a": shared, "b": shared})
    assert cleaned == {"c": {"self": CYCLE}, "a": ["x"] * 3, "b": ["x"] * 3}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=60, deadline=None)
@given(json_values)
def test_values_that_need_no_cleaning_come_back_equal(value: Any) -> None:
    if isinstance(value, int) and not -(2**63) <= value < 2**64:
        value = 0
    cleaned = safe_value(value)
    if _has_big_int(value) or _has_surrogate(value):
        return
    assert cleaned == value


def _has_big_int(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_has_big_int(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_big_int(v) for v in value)
    return type(value) is int and not -(2**63) <= value < 2**64


def _has_surrogate(value: Any) -> bool:
    text = repr(value)
    return any(0xD800 <= ord(ch) <= 0xDFFF for ch in text)


odd = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), max_size=4),
    st.binary(max_size=8),
    st.integers(min_value=2**64, max_value=2**80),
    st.just(Unprintable()),
    st.floats(),
)


@settings(max_examples=80, deadline=None)
@given(st.dictionaries(st.text(max_size=4), odd, max_size=4), odd)
def test_every_cleaned_record_is_storable(attributes: dict[str, Any], body: Any) -> None:
    record = Record(LOG, 1, "c", body, 9, attributes, Resource("t"))
    cleaned = clean_record(record)
    store = SqliteStore(":memory:")
    try:
        store.write_batch([cleaned])
    finally:
        store.close()
