"""Processes for the retention tests: payloads of their own and shared ones."""

from __future__ import annotations

import os
import time
from typing import Any

from replay_engine import external, task


@task
def produce(value: Any) -> Any:
    """Echo ``value``: its result is a payload stored as a blob when large."""
    return value


@task
def fail(message: str) -> None:
    """Fail for good."""
    raise RuntimeError(message)


@task
def hold(path: str, seconds: float) -> str:
    """Write ``path`` (the test's signal that the run is executing), then sleep."""
    with open(path, "w") as file:
        file.write(str(os.getpid()))
    time.sleep(seconds)
    return "held"


async def pipeline(inputs: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """Two effects with payloads: ``shared`` (the same for many runs) and ``own``."""
    shared = await ctx.task(produce, {"value": inputs.get("shared", "s" * 200)})
    own = await ctx.task(produce, {"value": inputs["own"]})
    return {"shared": len(shared), "own": own[:8]}


async def failing(inputs: dict[str, Any], ctx: Any) -> None:
    """Record one effect, then fail."""
    await ctx.task(produce, {"value": inputs["own"]})
    await ctx.task(fail, {"message": "no"})


async def holding(inputs: dict[str, Any], ctx: Any) -> str:
    """Execute for ``seconds`` inside one effect (so the run lock is held)."""
    result: str = await ctx.task(
        hold, {"path": inputs["path"], "seconds": inputs["seconds"]}
    )
    return result


@external(kind="agent")
def review(diff: str) -> dict[str, Any]:
    """Answered by a post."""
    raise NotImplementedError  # executed outside the engine


async def awaiting(inputs: dict[str, Any], ctx: Any) -> Any:
    """Many small effects (so the stop is checkpointed), then wait for a review."""
    for i in range(20):
        await ctx.task(produce, {"value": i})
    return await ctx.task(review, {"diff": inputs["own"]})


async def awaiting_shared(inputs: dict[str, Any], ctx: Any) -> Any:
    """Record an effect whose result is ``shared``, then wait (a run gc keeps)."""
    await ctx.task(produce, {"value": inputs["shared"]})
    return await ctx.task(review, {"diff": "d"})
