"""Small processes the CLI tests run (imported as ``cli_flows:...``).

Tasks that need to be counted append a line to the file named by the run's
``counter`` input, so a test can tell an execution from a replay.
"""

from __future__ import annotations

import os
from typing import Any

from replay_engine import external, task


def _count(counter: str | None, what: str) -> None:
    if counter:
        with open(counter, "a", encoding="utf-8") as fh:
            fh.write(what + "\n")


@task(name="cli_flows.add_marker_task")
def add(a: int, b: int, counter: str | None = None) -> int:
    _count(counter, "add")
    return a + b


@task(name="cli_flows.double")
def double(x: int) -> int:
    return 2 * x


@task(name="cli_flows.explode")
def explode(reason: str) -> None:
    raise ValueError(reason)


@external(kind="agent", name="cli_flows.review")
def review(diff: str) -> dict[str, Any]:
    """Posted back by an agent; never executed by the engine."""
    raise NotImplementedError


async def simple(inputs: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """Two root calls (keys 0, 1): completes with ``{"sum": a+b, "double": …}``."""
    inputs = inputs or {}
    counter = inputs.get("counter")
    total = await ctx.task(
        add, {"a": inputs["a"], "b": inputs["b"], "counter": counter}
    )
    doubled = await ctx.task(double, {"x": total})
    return {"sum": total, "double": doubled}


async def failing(inputs: dict[str, Any], ctx: Any) -> None:
    """Key 0 succeeds, key 1 raises ValueError, which the process lets through."""
    await ctx.task(double, {"x": 1})
    await ctx.task(explode, {"reason": (inputs or {}).get("reason", "boom")})


async def fanout(inputs: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """Root call 0, a parallel.all at 1, a parallel.map at 2, then a log line."""
    first = await ctx.task(double, {"x": 1})
    pair = await ctx.parallel.all(
        [
            lambda: ctx.task(double, {"x": 10}),
            lambda: ctx.task(add, {"a": 1, "b": 2}),
        ]
    )
    outs = await ctx.parallel.map(
        (inputs or {}).get("items", [1, 2, 3]),
        lambda x: ctx.task(double, {"x": x}),
        limit=2,
    )
    ctx.log("fanned out", items=len(outs))
    return {"first": first, "pair": pair, "outs": outs}


async def waits(inputs: dict[str, Any], ctx: Any) -> Any:
    """Key 0 is a task, key 1 an external review the run waits for."""
    await ctx.task(double, {"x": 2})
    return await ctx.task(review, {"diff": (inputs or {}).get("diff", "+1 line")})


async def diverges(inputs: dict[str, Any], ctx: Any) -> Any:
    """Calls ``double`` at key 0 unless the flag file exists, then waits at key 1.

    Creating the flag file between run and resume makes the replay diverge.
    """
    if os.path.exists(inputs["flag"]):
        await ctx.task(add, {"a": 1, "b": 1})
    else:
        await ctx.task(double, {"x": 1})
    return await ctx.task(review, {"diff": "x"})
