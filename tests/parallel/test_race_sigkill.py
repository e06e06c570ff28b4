"""Races killed with SIGKILL at random points, then resumed (issue 15).

A child process runs the race (three sync branches of different lengths, then
a step for the winner) and is SIGKILLed after a random time; the test resumes
it here. Whatever the moment of death: the run completes; an effect whose
completion the journal held at the kill never runs again; a decision the
journal held at the kill is the final winner; and a replay of the whole
history picks the same winner without dispatching anything.
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest

import journal_format as jf
from replay_engine import Engine
from tests.children import start_python

from .par_flows import SIDE_ENV, race_steps, read_side

CHILD = r"""
import sys
from replay_engine import Engine
from tests.parallel.par_flows import race_steps
engine = Engine(sys.argv[1])
print("ready", flush=True)
engine.run(race_steps, {"delays": [0.4, 0.15, 0.3]}, run_id="r")
print("done", flush=True)
"""

INPUTS = {"delays": [0.4, 0.15, 0.3]}


def _journal_state(journal: Path) -> tuple[set[str], int | None]:
    with Engine(str(journal)) as engine:
        try:
            events = [s.event for s in engine.events("r")]
        except Exception:
            return set(), None
    completed = {
        jf.key_bytes_to_text(e.key) for e in events if isinstance(e, jf.EffectCompleted)
    }
    won = [e.winner for e in events if isinstance(e, jf.RaceWon)]
    return completed, (won[0] if won else None)


@pytest.mark.parametrize("seed", range(6))
def test_sigkill_at_a_random_point(tmp_path: Path, seed: int) -> None:
    journal = tmp_path / "journal"
    side = tmp_path / "side.jsonl"
    with start_python(CHILD, str(journal), **{SIDE_ENV: str(side)}) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
            time.sleep(random.Random(seed).uniform(0.0, 0.7))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
    completed, decided = _journal_state(journal)
    lines_at_kill = len(read_side(side))
    with Engine(str(journal)) as engine:
        if decided is None and not completed and not engine.runs():
            run = engine.run(race_steps, INPUTS, run_id="r")
        else:
            run = engine.resume("r", process=race_steps)
        assert run.status == "completed"
        winner = run.result["winner"]
        assert run.result == {
            "winner": winner,
            "value": 10 * winner,
            "after": 10 * (100 + winner),
        }
        if decided is not None:
            assert winner == decided
        events = [s.event for s in engine.events("r")]
        assert [e.winner for e in events if isinstance(e, jf.RaceWon)] == [winner]
        engine.fork("r", at=len(events) - 1, new_run_id="again")
        again = engine.resume("again", process=race_steps)
        assert again.result == run.result and again.stats.dispatched == 0
    # Nothing whose completion was journaled at the kill ran again.
    later = read_side(side)[lines_at_kill:]
    rerun = {x["key"] for x in later if x["what"] == "start"} & completed
    assert rerun == set()
