"""Async tasks start eagerly (``_run/executors.py``): their first step runs in the
dispatcher's pump, as the current asyncio Task.

A task that never suspends completes where it is dispatched, like an inline
one, so a fan-out of them commits as rarely as inline tasks do; one that
suspends goes on as an ordinary Task, the same Task it started as.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from replay_engine import Engine, task, task_context

SEEN: dict[str, Any] = {}


@task
async def quick(i: int) -> int:
    return i * 2


@task(executor="inline")
def quick_inline(i: int) -> int:
    return i * 2


@task
async def identity(i: int) -> dict[str, Any]:
    first = asyncio.current_task()
    # asyncio.timeout needs a current Task: it raises without one.
    async with asyncio.timeout(30):
        key = task_context().key
    await asyncio.sleep(0)  # suspends: the rest runs as a scheduled step
    after = asyncio.current_task()
    await asyncio.sleep(0.001)
    return {
        "task": first is not None and first is after is asyncio.current_task(),
        "key": key,
        "key_after": task_context().key,
    }


async def fan_out_quick(inputs: Any, ctx: Any) -> list[int]:
    out: list[int] = await ctx.parallel.map(
        range(inputs["n"]), lambda i: ctx.task(quick, {"i": i})
    )
    return out


async def fan_out_inline(inputs: Any, ctx: Any) -> list[int]:
    out: list[int] = await ctx.parallel.map(
        range(inputs["n"]), lambda i: ctx.task(quick_inline, {"i": i})
    )
    return out


async def fan_out_identity(inputs: Any, ctx: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = await ctx.parallel.map(
        range(inputs["n"]), lambda i: ctx.task(identity, {"i": i})
    )
    return out


def test_an_async_task_is_the_current_task_before_and_after_it_suspends(
    make_engine: Callable[..., Engine],
) -> None:
    engine = make_engine(durability="process")
    run = engine.run(fan_out_identity, {"n": 50}, run_id="r")
    assert run.status == "completed", run.error
    assert [r["task"] for r in run.result] == [True] * 50
    assert [r["key"] for r in run.result] == [f"0.{i}.0" for i in range(50)]
    assert [r["key_after"] for r in run.result] == [r["key"] for r in run.result]


def test_async_tasks_that_never_suspend_commit_as_rarely_as_inline_ones(
    make_engine: Callable[..., Engine],
) -> None:
    # With the Task's first step deferred to the next loop iteration, each
    # batch of async completions came back one iteration after its dispatch
    # and took a commit of its own: 3,000 such tasks took 5 commits to inline
    # tasks' 3. Started eagerly, they complete inside the dispatching pump.
    engine = make_engine(durability="process")
    n = 3000
    inline = engine.run(fan_out_inline, {"n": n}, run_id="inline")
    eager = engine.run(fan_out_quick, {"n": n}, run_id="async")
    assert inline.status == eager.status == "completed"
    assert eager.result == inline.result == [i * 2 for i in range(n)]
    assert eager.stats.commits <= inline.stats.commits, (
        eager.stats.commits,
        inline.stats.commits,
    )
    # The same journal, event for event, but for the task's name.
    kinds = [
        (type(e.event).__name__, getattr(e.event, "key", None))
        for e in engine.events("async")
    ]
    assert kinds == [
        (type(e.event).__name__, getattr(e.event, "key", None))
        for e in engine.events("inline")
    ]


@task
async def nap(i: int) -> int:
    await asyncio.sleep(0)  # every one resumes in the same loop iteration
    return i


async def fan_out_nap(inputs: Any, ctx: Any) -> list[int]:
    out: list[int] = await ctx.parallel.map(
        range(inputs["n"]), lambda i: ctx.task(nap, {"i": i})
    )
    return out


def test_completions_of_one_loop_iteration_share_one_commit(
    make_engine: Callable[..., Engine],
) -> None:
    # The pump waits for the callbacks already queued in the loop (each
    # task's resumption, each branch's wake-up) before it commits, so the
    # 500 completions are one commit: the requests, the completions, the end.
    # Committing as soon as the first completion's wake-up ran split them.
    engine = make_engine(durability="process")
    run = engine.run(fan_out_nap, {"n": 500}, run_id="r")
    assert run.status == "completed", run.error
    assert run.result == list(range(500))
    assert run.stats.commits == 3
