"""Races under any completion order and simulated crash points (``testing``).

A :class:`~replay_engine.testing.Schedule` holds back each branch's completion
by its own delay (so branches finish in any order) and kills the execution
after *k* journal events, then resumes it until it ends. Whatever the order
and the crash points: the run completes, the result names the winner the
journal recorded (exactly one ``race_won``), nothing is recorded for a loser
after the decision, and a replay of the whole history picks the same winner
without dispatching anything.
"""

from __future__ import annotations

import tempfile
from typing import Any

from hypothesis import given, settings, strategies as st

import journal_format as jf
from replay_engine import Engine
from replay_engine.testing import Schedule, run_schedule

from .par_flows import race_steps

BRANCHES = 3


@settings(max_examples=25)
@given(
    order=st.permutations(range(BRANCHES)),
    crash_after=st.lists(st.integers(1, 14), max_size=2),
)
def test_the_winner_is_the_one_the_journal_recorded(
    order: list[int], crash_after: list[int]
) -> None:
    # Branch order[0] finishes first, order[1] 0.1 s later ...
    delays = {f"0.{branch}.0": 0.1 * rank for rank, branch in enumerate(order)}
    schedule = Schedule(delays=delays, crash_after=tuple(crash_after))
    inputs = {"delays": [0.0] * BRANCHES}
    with tempfile.TemporaryDirectory() as path:
        execution = run_schedule(race_steps, inputs, schedule, path=path)
        assert execution.status == "completed"
        result: dict[str, Any] = execution.result
        with Engine(path) as engine:
            events = [s.event for s in engine.events("determinism")]
            won = [e for e in events if isinstance(e, jf.RaceWon)]
            assert len(won) == 1
            assert result["winner"] == won[0].winner
            assert result == {
                "winner": won[0].winner,
                "value": 10 * won[0].winner,
                "after": 10 * (100 + won[0].winner),
            }
            if not execution.crashes:
                assert won[0].winner == order[0]
            # Nothing completes in a losing branch after the decision.
            at = events.index(won[0])
            for event in events[at:]:
                if isinstance(event, jf.EffectCompleted):
                    assert not jf.key_bytes_to_text(event.key).startswith("0.")
            engine.fork("determinism", at=len(events) - 1, new_run_id="again")
            again = engine.resume("again", process=race_steps)
            assert again.result == result
            assert again.stats.dispatched == 0
