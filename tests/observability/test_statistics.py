"""``Engine.statistics()`` (issue 16): journal-wide counts and this engine's.

A real LMDB journal; a second engine (another process's view, here another
``Engine`` object) sees the same journal-wide counts and only its own
counters; an interrupted run (a real child SIGKILLed mid-task) counts as
``interrupted``, and its resume as one re-dispatch.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from replay_engine import Engine, EngineStatistics, task
from tests.executions.conftest import (
    cli,
    cli_json,
    killed_in_gate,
)
from tests.executions.exec_flows import count


async def three(inputs: dict[str, int], ctx: object) -> list[int]:
    return [await ctx.task(count, {"i": i}) for i in range(3)]  # type: ignore[attr-defined]


@task(name="stats.echo")
def echo(text: str) -> str:
    return text


async def blob(inputs: dict[str, int], ctx: object) -> int:
    text = await ctx.task(echo, {"text": "x" * inputs["size"]})  # type: ignore[attr-defined]
    return len(text)


def test_counts_of_the_journal_and_of_this_engine(tmp_path: Path) -> None:
    path = str(tmp_path / "j")
    with Engine(path, durability="process") as eng:
        empty = eng.statistics()
        assert isinstance(empty, EngineStatistics)
        assert (empty.runs, empty.runs_by_status, empty.events) == (0, {}, 0)
        assert (empty.executions, empty.dispatched, empty.commits) == (0, 0, 0)

        first = eng.run(three, {}, run_id="a")
        eng.run(three, {}, run_id="b")
        eng.resume("a")  # completed: nothing executes, nothing counted
        stats = eng.statistics()
        assert stats.runs == 2 and stats.runs_by_status == {"completed": 2}
        assert stats.events == len(eng.events("a")) + len(eng.events("b"))
        assert (stats.executions, stats.dispatched, stats.replayed) == (2, 6, 0)
        assert stats.commits == 2 * first.stats.commits
        assert stats.events_written == 2 * first.stats.events_written
        assert stats.used_bytes > 0 and stats.map_size >= stats.used_bytes

        before = stats.used_bytes
        assert eng.run(blob, {"size": 3_000_000}, run_id="c").status == "completed"
        grown = eng.statistics()
        assert grown.used_bytes >= before + 3_000_000  # read from LMDB's pages
        assert grown.payloads >= 1

    with Engine(path, durability="process") as other:
        seen = other.statistics()
        assert seen.runs == 3 and seen.events == grown.events
        assert (seen.executions, seen.dispatched) == (0, 0)  # its own counters


def test_an_interrupted_run_and_its_redispatch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal, side, gate = tmp_path / "journal", tmp_path / "side", tmp_path / "gate"
    journal.mkdir()
    killed_in_gate(journal, side, gate)
    monkeypatch.setenv("REPLAY_EXEC_SIDE", str(side))
    # The command counts the same (a real subprocess; it only inspects).
    doc = cli_json(journal, "stats")
    assert doc["runs"] == 1 and doc["runs_by_status"] == {"interrupted": 1}
    human = cli(journal, "stats").stdout
    assert "interrupted" in human and f"{doc['events']:,}" in human
    with Engine(str(journal), durability="process") as eng:
        stats = eng.statistics()
        assert stats.runs_by_status == {"interrupted": 1}
        assert (stats.events, stats.used_bytes) == (doc["events"], doc["used_bytes"])
        gate.touch()
        assert eng.resume("r").status == "completed"
        stats = eng.statistics()
        assert stats.runs_by_status == {"completed": 1}
        assert (stats.replayed, stats.dispatched, stats.redispatched) == (2, 2, 1)
        assert stats.executions == 1
