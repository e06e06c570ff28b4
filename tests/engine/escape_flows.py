"""Processes for tests/engine/test_escape.py: effects that would escape the journal.

Tasks count their executions in ``RAN`` (in this interpreter), so a test sees
whether an effect ran outside the journal.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from replay_engine import Context, external, task

RAN: Counter[str] = Counter()


@task
def step(n: int) -> int:
    RAN["step"] += 1
    return n * 10


@task(executor="inline")
def step_inline(n: int) -> int:
    RAN["step_inline"] += 1
    return step(n=n) + 1  # a @task used as a helper inside a task body


@task
def step_thread(n: int) -> int:
    RAN["step_thread"] += 1
    return step(n=n) + 2


@task
async def step_async(n: int) -> int:
    RAN["step_async"] += 1
    await asyncio.sleep(0)
    return step(n=n) + 3


@task(executor="process")
def step_pool(n: int) -> int:
    return step(n=n) + 4


@external(kind="agent")
def approve(title: str) -> bool:
    raise NotImplementedError


async def direct(inputs: Any, ctx: Context) -> Any:
    return step(n=3)  # DIRECT-CALL


async def direct_external(inputs: Any, ctx: Context) -> Any:
    return approve(title="ship?")


async def direct_in_branch(inputs: Any, ctx: Context) -> Any:
    async def branch() -> int:
        await ctx.task(step, {"n": 1})
        return step(n=2)

    return await ctx.parallel.all([branch, lambda: ctx.task(step, {"n": 3})])


async def helpers_in_tasks(inputs: Any, ctx: Context) -> Any:
    return [
        await ctx.call(step_inline)(1),
        await ctx.call(step_thread)(1),
        await ctx.call(step_async)(1),
        await ctx.call(step_pool)(1),
        await asyncio.to_thread(len, "plain functions are not tasks"),
    ]


async def dropped(inputs: Any, ctx: Context) -> Any:
    await ctx.task(step, {"n": 1})
    ctx.task(step, {"n": 2})  # DROPPED
    return "returned"


async def dropped_in_branch(inputs: Any, ctx: Context) -> Any:
    async def branch() -> int:
        ctx.call(step)(n=5)  # DROPPED-BRANCH
        return 1

    return await ctx.parallel.all([branch, branch])


async def awaited_later(inputs: Any, ctx: Context) -> Any:
    first = ctx.task(step, {"n": 1})
    second = ctx.task(step, {"n": 2})
    return [await second, await first]
