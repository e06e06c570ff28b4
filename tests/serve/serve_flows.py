"""Processes the server tests run (imported as ``serve_flows:...`` by the CLI).

The server never imports these: runs are started with ``replay-engine run``
and carried on by ``replay-engine worker`` subprocesses.
"""

from __future__ import annotations

from typing import Any

from replay_engine import external, task


@external(kind="agent", name="serve_flows.review")
def review(part: int) -> dict[str, Any]:
    """Posted back by an agent; never executed by the engine."""
    raise NotImplementedError


@task(name="serve_flows.shout")
def shout(text: str) -> str:
    return text.upper()


async def approval(inputs: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """A breakpoint at key 0 (title and payload from the inputs), then a task."""
    answer = await ctx.breakpoint(inputs["title"], inputs.get("payload"))
    ctx.log(inputs["title"])
    loud = await ctx.task(shout, {"text": str(answer.get("response"))})
    return {"answer": answer, "loud": loud}


async def agents(inputs: dict[str, Any], ctx: Any) -> list[Any]:
    """``n`` external effects in parallel (keys ``0.i.0``)."""
    return await ctx.parallel.all(
        [lambda i=i: ctx.task(review, {"part": i}) for i in range(inputs["n"])]
    )


async def fails(inputs: dict[str, Any], ctx: Any) -> None:
    """Fails with a ValueError whose message comes from the inputs."""
    raise ValueError(inputs["message"])


async def signalled(inputs: dict[str, Any], ctx: Any) -> Any:
    """Waits for the event ``go`` at key 0 and returns its payload."""
    return await ctx.wait_for_event("go")
