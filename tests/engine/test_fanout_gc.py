"""A fresh fan-out's window of suspended branches stays under the young-GC threshold.

A ``parallel.map`` keeps a window of suspended branches (``BRANCH_WINDOW``),
each a handful of GC-tracked objects (its context, coroutine, future, scope,
call …). While the run executes, ``gc_relax`` collects the young generation
every 50,000 net allocations: a window that holds more than that is walked
again every few thousand effects (a cell per captured variable in the effect's
coroutine frame was enough: 24 passes per 100k effects, a fifth of the CPU).
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest

from replay_engine import Engine, task

N = 30_000


@task(executor="inline")
def one_inline(i: int) -> int:
    return i


@task
def one_thread(i: int) -> int:
    return i


@task
async def one_async(i: int) -> int:
    return i


TASKS = {"inline": one_inline, "thread": one_thread, "async": one_async}


async def fan_out(inputs: Any, ctx: Any) -> int:
    fn = TASKS[inputs["kind"]]
    out = await ctx.parallel.map(range(inputs["n"]), lambda i: ctx.task(fn, {"i": i}))
    return len(out)


@pytest.mark.parametrize("kind", ["inline", "thread", "async"])
def test_a_fan_out_rarely_walks_its_window(tmp_path: Path, kind: str) -> None:
    young: list[int] = []

    def count(phase: str, info: dict[str, Any]) -> None:
        if phase == "start" and info["generation"] == 0:
            young.append(1)

    with Engine(tmp_path / "j") as engine:
        engine.run(fan_out, {"n": 100, "kind": kind}, run_id="warm")
        gc.collect()
        gc.callbacks.append(count)
        try:
            run = engine.run(fan_out, {"n": N, "kind": kind}, run_id="r")
        finally:
            gc.callbacks.remove(count)
    assert run.result == N
    # One window's worth of suspended branches is about 41k tracked objects;
    # one more per branch and the young generation is walked every ~4k effects
    # (7 or more passes here).
    assert len(young) <= 3, f"{len(young)} young collections during {N} effects"
