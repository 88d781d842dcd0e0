"""query.analytics.funnel's one-pass walk pinned to the brute-force walk it replaced, and journey
histories read from hour cells equal to the minute ones (a real SQLite store)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from clisight.query import analytics as qa
from clisight.store import SqliteStore
from clisight.store.base import Selection
from clisight.types import Record, Resource

SVC = Resource("tool", version="1.0", host="box", pid=1)
T0 = int(datetime(2025, 6, 2, tzinfo=UTC).timestamp()) * 10**9
MINUTE = 60 * 10**9
HOUR = 60 * MINUTE
EVERYTHING = Selection(since_ns=T0 - 24 * HOUR, until_ns=T0 + 72 * HOUR)


def brute_depth(history: Sequence[tuple[int, str]], steps: Sequence[str], window: int) -> int:
    """From every occurrence of the first step, take each next step at its first occurrence after
    the previous one within the window; the deepest of those walks."""
    best = 0
    for i, (start, step) in enumerate(history):
        if not steps or step != steps[0]:
            continue
        depth = 1
        for when, name in history[i + 1 :]:
            if when - start > window or depth >= len(steps):
                break
            if name == steps[depth]:
                depth += 1
        best = max(best, depth)
    return best


NAMES = st.sampled_from(["a", "b", "c", "d"])
HISTORY = st.lists(st.tuples(st.integers(0, 12), NAMES), max_size=14).map(sorted)


@given(
    st.dictionaries(st.text("uvw", min_size=1, max_size=2), HISTORY, max_size=5),
    st.lists(NAMES, max_size=4),
    st.integers(-1, 12),
)
@settings(max_examples=400)
@example({"u": [(0, "a"), (5, "b")]}, ["a", "b"], 5)  # a step exactly at the window's end counts
@example({"u": [(0, "a"), (1, "a"), (2, "b"), (5, "a"), (11, "c")]}, ["a", "b", "c"], 10)
def test_funnel_walk_matches_the_brute_force_walk(
    actors: dict[str, list[tuple[int, str]]], steps: list[str], window_ns: int
) -> None:
    found = qa.funnel(actors, steps, window_ns / 1e9)
    depths = [brute_depth(h, steps, int(window_ns / 1e9 * 1e9)) for h in actors.values()]
    assert [s.entered for s in found.steps] == [sum(d > k for d in depths) for k in range(len(steps))]
    assert found.actors == (sum(d > 0 for d in depths) if steps else 0)


def step(user: str, name: str, at_ns: int) -> Record:
    attrs = {"step": name, "user_id": user, "actor": user, "model": user}
    return Record("event", at_ns, "journey:" + name, "", 0, attrs, SVC, f"s-{user}")


def test_hour_cells_give_the_minute_history_when_a_step_repeats_within_an_hour(tmp_path: Path) -> None:
    # u_x installs three times in one hour: the hour cell keeps only the first and last, but the
    # walk from the middle one (0:10) is the only one that reaches first_chat within a day.
    records = [
        step("u_x", "install", T0),
        step("u_x", "install", T0 + 10 * MINUTE),
        step("u_x", "first_run", T0 + 20 * MINUTE),
        step("u_x", "install", T0 + 50 * MINUTE),
        step("u_x", "first_chat", T0 + 24 * HOUR + 5 * MINUTE),
        step("u_y", "install", T0 + 2 * HOUR),
        step("u_y", "install", T0 + 2 * HOUR + 30 * MINUTE),
        step("u_y", "first_run", T0 + 3 * HOUR),
    ]
    store = SqliteStore(tmp_path / "j.db")
    try:
        store.write_batch(records)
        steps = ["install", "first_run", "first_chat"]
        by_minute = qa.journey_steps(store, EVERYTHING, steps, resolution=60)
        by_hour = qa.journey_steps(store, EVERYTHING, steps, resolution=3600)
    finally:
        store.close()
    assert by_hour == by_minute
    assert len(by_hour["u_x"]) == 5 and len(by_hour["u_y"]) == 3
    found = qa.funnel(by_hour, steps, 86_400)
    assert [s.entered for s in found.steps] == [2, 2, 1]
