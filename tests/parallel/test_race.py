"""``ctx.parallel.any``: the first branch to succeed wins, the rest are cancelled.

Issue 15.

Real LMDB; what ran is read from the tasks' side channel, not from the engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import journal_format as jf
from replay_engine import Engine, PostRejected

from .par_flows import (
    race_all_fail,
    race_async,
    race_composite,
    race_failure_then_win,
    race_steps,
    race_waits,
    read_side,
)


def _events(engine: Engine, run_id: str, kind: type[Any]) -> list[Any]:
    return [e.event for e in engine.events(run_id) if isinstance(e.event, kind)]


def _key(text: str) -> bytes:
    return jf.encode_key(jf.parse_key(text))


@pytest.mark.spec("JF-140")
def test_first_to_finish_wins_and_the_decision_is_journaled(
    engine: Engine, side: Path
) -> None:
    run = engine.run(race_steps, {"delays": [1.0, 0.0, 1.0]}, run_id="r")
    assert run.status == "completed"
    assert run.result == {"winner": 1, "value": 10, "after": 1010}
    (won,) = _events(engine, "r", jf.RaceWon)
    assert won.key == _key("0") and won.winner == 1 and won.cancelled == [0, 2]
    abandoned = {e.key for e in _events(engine, "r", jf.EffectAbandoned)}
    assert abandoned == {_key("0.0.0"), _key("0.2.0")}
    # The losers' results are never recorded, even once their threads end.
    completed = {e.key for e in _events(engine, "r", jf.EffectCompleted)}
    assert completed == {_key("0.1.0"), _key("1")}


@pytest.mark.spec("JF-140")
def test_replay_serves_the_winner_whatever_the_timing(
    engine: Engine, side: Path
) -> None:
    engine.run(race_steps, {"delays": [1.0, 0.0, 1.0]}, run_id="r")
    # A fork of the whole history re-executes the process against the journal:
    # only the winning branch runs again, from the journal; the losers (whose
    # calls are open in the journal) are not dispatched again.
    before = len(read_side(side))
    engine.fork("r", at=len(engine.events("r")) - 1, new_run_id="f")
    again = engine.resume("f")
    assert again.result == {"winner": 1, "value": 10, "after": 1010}
    assert again.stats.dispatched == 0
    assert len(read_side(side)) == before


def test_an_async_loser_is_cancelled(engine: Engine, side: Path) -> None:
    run = engine.run(race_async, None, run_id="r")
    assert run.result == [1, 10]
    lines = read_side(side)
    assert {"cancelled"} == {x["what"] for x in lines if x["i"] == 0} - {"start"}


def test_a_lost_external_and_event_wait_refuse_posts(engine: Engine) -> None:
    run = engine.run(race_waits, {"timer": 0.05}, run_id="r")
    assert run.status == "completed" and run.result == [2, None]
    with pytest.raises(PostRejected) as info:
        engine.post("r", "0.0.0", result={"late": True})
    assert info.value.reason in ("abandoned", "run_finished")
    assert [(p.key, p.abandoned) for p in engine.pending("r")] == [("0.0.0", True)]


def test_an_external_wins_a_race_against_an_event_wait(engine: Engine) -> None:
    run = engine.run(race_waits, None, run_id="r")
    assert run.status == "waiting"
    engine.post("r", "0.0.0", result="agent done")
    run = engine.resume("r")
    assert run.status == "completed" and run.result == [0, "agent done"]
    (won,) = _events(engine, "r", jf.RaceWon)
    assert won.winner == 0 and won.cancelled == [1, 2]
    abandoned = {e.key for e in _events(engine, "r", jf.EffectAbandoned)}
    assert abandoned == {_key("0.1.0")}


def test_a_lost_external_in_a_waiting_run_refuses_posts(engine: Engine) -> None:
    run = engine.run(race_waits, None, run_id="r")
    assert run.status == "waiting"
    engine.post_event("r", "go", {"green": True})
    run = engine.resume("r")
    assert run.result == [1, {"green": True}]
    with pytest.raises(PostRejected) as info:
        engine.post("r", "0.0.0", result="too late")
    assert info.value.reason in ("abandoned", "run_finished")


@pytest.mark.spec("JF-143")
def test_a_post_to_a_lost_branch_of_a_waiting_run_is_refused(engine: Engine) -> None:
    from .par_flows import race_then_wait

    run = engine.run(race_then_wait, None, run_id="r")
    assert run.status == "waiting"  # the race is decided; the run waits at key 1
    with pytest.raises(PostRejected) as info:
        engine.post("r", "0.0.0", result="late")
    assert info.value.reason == "abandoned"
    assert "race" in str(info.value)
    assert [p.key for p in engine.pending("r") if not p.abandoned] == ["1"]
    assert [p.key for p in engine.claim("r", "w1", lease=60, limit=None)] == ["1"]


def test_composite_branches(engine: Engine, side: Path) -> None:
    run = engine.run(race_composite, {"delay": 1.0}, run_id="r")
    assert run.result == [1, [30, 40]]
    engine.fork("r", at=len(engine.events("r")) - 1, new_run_id="f")
    assert engine.resume("f").result == [1, [30, 40]]


def test_a_failure_does_not_win(engine: Engine, side: Path) -> None:
    assert engine.run(race_failure_then_win, None, run_id="r").result == [1, 10]


def test_all_failing_raises_the_lowest_index_failure(
    engine: Engine, side: Path
) -> None:
    run = engine.run(race_all_fail, None, run_id="r")
    assert run.result == {"failed": "0.0.0", "message": "branch 0 failed"}
    assert _events(engine, "r", jf.RaceWon) == []


def test_a_group_at_a_race_key_diverges(engine: Engine, journal: Path) -> None:
    from replay_engine import NonDeterminismError

    from .par_flows import race_steps_as_all

    engine.run(race_steps, {"delays": [0.0]}, run_id="r")
    engine.fork("r", at=len(engine.events("r")) - 1, new_run_id="f")
    with pytest.raises(NonDeterminismError, match=r"parallel\.any"):
        engine.resume("f", process=race_steps_as_all)


def test_a_failed_event_wait_does_not_win(engine: Engine) -> None:
    from .par_flows import race_wait_or_agent

    assert engine.run(race_wait_or_agent, None, run_id="r").status == "waiting"
    engine.post("r", "0.0.0", error="no CI today")
    assert engine.resume("r").status == "waiting"  # the agent may still win
    engine.post("r", "0.1.0", result="reviewed")
    assert engine.resume("r").result == [1, "reviewed"]
