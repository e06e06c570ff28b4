"""A plain process for ``test_resume_imports``: inline tasks, in a row and a map."""

from __future__ import annotations

from typing import Any

from replay_engine import Context, task


@task(executor="inline")
def bump(i: int) -> int:
    return i + 1


async def plain(inputs: dict[str, int], ctx: Context) -> int:
    total = 0
    for i in range(inputs["n"]):
        total += await ctx.task(bump, {"i": i})
    mapped: list[Any] = await ctx.parallel.map(
        range(inputs["n"]), lambda i: ctx.task(bump, {"i": i})
    )
    return total + sum(mapped)
