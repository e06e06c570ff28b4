"""Processes for the lazy-start tests (``tests.parallel.lazy_flows``): wide maps."""

from __future__ import annotations

import asyncio
from typing import Any

from replay_engine import external, task


@task(name="lazy.step", executor="inline")
def step(i: int) -> int:
    return i * 10


@task(name="lazy.fail", executor="inline")
def fail_at(i: int, bad: int) -> int:
    if i == bad:
        raise ValueError(f"branch {i} failed")
    return i


@external(kind="gate", name="lazy.gate")
def gate(i: int) -> Any:
    """Executed outside the engine: a result is posted."""


async def wide_steps(inputs: Any, ctx: Any) -> Any:
    """One map of ``n`` dispatched steps."""
    return await ctx.parallel.map(
        range(inputs["n"]), lambda i: ctx.task(step, {"i": i})
    )


async def step_then_gate(inputs: Any, ctx: Any) -> Any:
    """Each branch leaves the dispatcher for an external wait after its step.

    ``foreign``: after its step the branch awaits a bare ``asyncio.sleep(0)``,
    which hands it to an asyncio Task (not driven by the group's callbacks).
    """

    async def branch(i: int) -> Any:
        await ctx.task(step, {"i": i})
        if inputs.get("foreign"):
            await asyncio.sleep(0)
        return await ctx.task(gate, {"i": i})

    return await ctx.parallel.map(range(inputs["n"]), branch)


async def nested(inputs: Any, ctx: Any) -> Any:
    """A map of maps, ``outer`` by ``inner`` steps."""

    async def row(r: int) -> Any:
        return await ctx.parallel.map(
            range(inputs["inner"]), lambda i: ctx.task(step, {"i": r * 1000 + i})
        )

    return await ctx.parallel.map(range(inputs["outer"]), row)


async def wide_fail_fast(inputs: Any, ctx: Any) -> Any:
    """A fail-fast map of ``n`` steps; branch ``bad`` fails."""
    return await ctx.parallel.map(
        range(inputs["n"]),
        lambda i: ctx.task(fail_at, {"i": i, "bad": inputs["bad"]}),
        fail_fast=True,
    )


async def wide_settled(inputs: Any, ctx: Any) -> Any:
    """A settled map of ``n`` steps; branch ``bad`` fails."""
    out = await ctx.parallel.map(
        range(inputs["n"]),
        lambda i: ctx.task(fail_at, {"i": i, "bad": inputs["bad"]}),
        settled=True,
    )
    return [x if isinstance(x, int) else "failed" for x in out]
