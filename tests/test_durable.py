"""The one-line embedding form: ``@engine.durable`` starts or resumes by run id."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from replay_engine import DurableProcess, Engine, Run, task

_SIDE = "REPLAY_TEST_DURABLE_SIDE"


@task
def shout(word: str) -> str:
    with open(os.environ[_SIDE], "a") as f:
        f.write(word + "\n")
    return word.upper()


async def pipeline(inputs: dict[str, Any], ctx: Any) -> list[str]:
    return list(
        await ctx.parallel.map(inputs["words"], lambda w: ctx.task(shout, {"word": w}))
    )


def test_start_is_idempotent_per_run_id(tmp_path: Path, monkeypatch: Any) -> None:
    side = tmp_path / "side.log"
    monkeypatch.setenv(_SIDE, str(side))
    with Engine(str(tmp_path / "j")) as engine:
        durable = engine.durable(pipeline)
        first = durable.start({"words": ["a", "b"]}, run_id="d1")
        again = durable.start({"words": ["a", "b"]}, run_id="d1")
    assert first.status == again.status == "completed"
    assert first.result == again.result == ["A", "B"]
    # The second start found the completed run: nothing ran twice.
    assert sorted(side.read_text().split()) == ["a", "b"]


def test_durable_process_is_still_a_process_function(
    tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv(_SIDE, str(tmp_path / "side.log"))
    with Engine(str(tmp_path / "j")) as engine:
        durable = engine.durable(pipeline)
        run = engine.run(durable, {"words": ["x"]}, run_id="d2")
    assert run.result == ["X"]
    assert durable.__name__ == "pipeline"


def test_start_async_starts_then_resumes(tmp_path: Path, monkeypatch: Any) -> None:
    side = tmp_path / "side.log"
    monkeypatch.setenv(_SIDE, str(side))

    async def twice(durable: DurableProcess) -> tuple[Run, Run]:
        first = await durable.start_async({"words": ["c", "d"]}, run_id="d3")
        again = await durable.start_async({"words": ["c", "d"]}, run_id="d3")
        return first, again

    with Engine(str(tmp_path / "j")) as engine:
        first, again = asyncio.run(twice(engine.durable(pipeline)))
    assert first.status == again.status == "completed"
    assert first.result == again.result == ["C", "D"]
    assert again.stats.dispatched == 0  # the second start found the run
    assert sorted(side.read_text().split()) == ["c", "d"]
