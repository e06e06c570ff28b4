"""Lazy branch start: a wide map holds a window of started branches, not all.

Branches start in input order while the run's dispatcher has room
(``parallel.Feed``); room counts dispatched attempts only, so branches waiting
on external effects hold none and every branch still records its request
before the run waits.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import journal_format as jf
from replay_engine import Engine
from replay_engine._run.state import BRANCH_WINDOW

from . import lazy_flows as f


def _tags(engine: Engine, run_id: str) -> list[str]:
    return [jf.event_tag(s.event) for s in engine.events(run_id)]


@pytest.mark.parametrize("foreign", [False, True], ids=["driven", "as-task"])
def test_a_wide_map_of_waits_records_every_request(
    journal: Path, foreign: bool
) -> None:
    # More branches than the window; each leaves the dispatcher for an
    # external wait after a dispatched step, so no branch ever finishes and
    # only the pump's feed can start the rest (``as-task``: branches driven
    # by asyncio Tasks, whose wake-ups the group never sees).
    n = 3 * BRANCH_WINDOW + 5 if foreign else 50_000
    engine = Engine(str(journal), max_in_flight=8)
    try:
        run = engine.run(f.step_then_gate, {"n": n, "foreign": foreign}, run_id="w")
        assert run.status == "waiting"
        assert len(run.pending) == n
        assert run.pending[0] == "0.0.1" and run.pending[-1] == f"0.{n - 1}.1"
        # A resume replays them all (no room is used) and waits on the same.
        again = engine.iterate("w")
        assert again.status == "waiting" and len(again.pending) == n
        assert again.stats.dispatched == 0 and again.stats.replayed == n
        engine.post("w", "0.3.1", result="ok")
        assert len(engine.iterate("w").pending) == n - 1
    finally:
        engine.close()


def test_a_wide_map_starts_branches_as_room_frees(engine: Engine) -> None:
    n = 3 * BRANCH_WINDOW
    run = engine.run(f.wide_steps, {"n": n}, run_id="m")
    assert run.status == "completed"
    assert run.result == [i * 10 for i in range(n)]
    tags = _tags(engine, "m")
    first_done = tags.index("completed")
    # Not every branch started before the first completion (all at once did).
    assert tags[:first_done].count("requested") <= BRANCH_WINDOW
    assert tags.count("requested") == tags.count("completed") == n
    again = engine.resume("m")
    assert again.result == run.result


def test_a_small_map_still_starts_every_branch_at_once(engine: Engine) -> None:
    engine.run(f.wide_steps, {"n": 1000}, run_id="s")
    tags = _tags(engine, "s")
    assert tags[1:1001] == ["requested"] * 1000


def test_nested_wide_maps_complete_in_order(engine: Engine) -> None:
    run = engine.run(f.nested, {"outer": 6, "inner": 1500}, run_id="n")
    assert run.status == "completed"
    assert run.result == [[(r * 1000 + i) * 10 for i in range(1500)] for r in range(6)]


def test_wide_fail_fast_and_settled_maps(engine: Engine) -> None:
    n = 2 * BRANCH_WINDOW + 7
    bad = BRANCH_WINDOW + 3
    run = engine.run(f.wide_fail_fast, {"n": n, "bad": bad}, run_id="ff")
    assert run.status == "failed" and f"branch {bad} failed" in str(run.error)
    tags = _tags(engine, "ff")
    # Forked and replayed from its recorded decision: the same failure.
    engine.fork("ff", at=len(tags) - 1, new_run_id="ff2")
    again = engine.resume("ff2")
    assert again.status == "failed" and f"branch {bad} failed" in str(again.error)
    run = engine.run(f.wide_settled, {"n": n, "bad": bad}, run_id="st")
    expected: list[object] = list(range(n))
    expected[bad] = "failed"
    assert run.result == expected
