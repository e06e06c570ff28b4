"""The bitmap a resume marks reached calls in (``_run/decisions.py``, issue 17).

It replaced a set of keys; what ``RunJournal`` asks of it must not change:
membership of recorded keys, a count of distinct reached calls, nothing for
a key without an entry, and room for entries recorded after the load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import journal_format as jf
from replay_engine import Engine, task
from replay_engine._run.decisions import Reached
from replay_engine._run.journal import RunJournal


def _entries(n: int) -> dict[bytes, jf.CallEntry]:
    return {jf.encode_key((i,)): jf.CallEntry(jf.EFFECT, 2 * i + 1) for i in range(n)}


def test_reached_counts_distinct_recorded_calls_only() -> None:
    entries = _entries(20)
    reached = Reached(entries, 41)
    k3, k7 = jf.encode_key((3,)), jf.encode_key((7,))
    reached.add(k3)
    reached.add(k3)
    reached.add(jf.encode_key((99,)))  # no entry: not a recorded call
    assert len(reached) == 1
    assert k3 in reached and k7 not in reached
    assert jf.encode_key((99,)) not in reached and "x" not in reached


def test_an_entry_recorded_after_the_load_fits() -> None:
    entries = _entries(2)
    reached = Reached(entries, 5)
    late = jf.encode_key((50,))
    entries[late] = jf.CallEntry(jf.EFFECT, 1000)
    assert late not in reached
    reached.add(late)
    assert late in reached and len(reached) == 1


@task(executor="inline", name="reached.add")
def add_one(i: int) -> int:
    return i + 1


async def two_calls(inputs: dict[str, Any], ctx: Any) -> int:
    return int(await ctx.task(add_one, {"i": 1})) + int(
        await ctx.task(add_one, {"i": 2})
    )


def test_a_resume_reaches_every_recorded_call(tmp_path: Path) -> None:
    # Every loaded journal, short or long, marks reached calls by seq (a set
    # of keys before); every recorded call reached: none unvisited.
    with Engine(str(tmp_path / "j")) as engine:
        engine.run(two_calls, {}, run_id="r")
        journal = RunJournal(engine._store, "r", read_only=True)
        journal.load()
        assert isinstance(journal.visited, Reached)
        assert journal.marks is journal.visited.marks
        assert [jf.key_bytes_to_text(k) for k, _ in journal.unvisited()] == [
            "0",
            "1",
        ]
        for key in list(journal.index.calls):
            journal.visited.add(key)
        assert journal.unvisited() == []


async def first_only(inputs: dict[str, Any], ctx: Any) -> int:
    return int(await ctx.task(add_one, {"i": 1}))


def test_a_replayed_task_is_marked_reached_by_its_seq(tmp_path: Path) -> None:
    # ctx.task's replay stores into the loaded journal's marks itself (no
    # visited.add): compat of the same process reaches every recorded call,
    # and one that makes only the first call leaves the second unreached.
    with Engine(str(tmp_path / "j")) as engine:
        engine.run(two_calls, {}, run_id="r")
        [same] = engine.check_compatible(two_calls, ["r"])
        [fewer] = engine.check_compatible(first_only, ["r"])
    assert same.compatible, same
    assert not fewer.compatible and "1" in str(fewer), fewer
