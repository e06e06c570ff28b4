"""Processes for the timeline tests (``tests.timetravel.timeline_flows``)."""

from __future__ import annotations

from typing import Any

from replay_engine import external, task, task_context

HOSTILE = '</script><script>alert(1)</script>"><img src=x onerror=alert(2)>\x1b[2J'
"""Journal text that must reach the page as text, never as markup."""


@task(name="tl.square", executor="inline", retries=1)
def square(i: int) -> int:
    # Every 1000th item fails its first attempt: a retried member of the map.
    if i % 1000 == 7 and task_context().attempt == 1:
        raise ValueError(f"flaky {i}")
    return i * i


@task(name="tl.echo", executor="inline")
def echo(text: str, big: str = "") -> dict[str, Any]:
    return {"echo": text, "size": len(big), "tail": big[-50:]}


@external(name="tl.approval")
def approval(step: int) -> Any: ...


async def wide(inputs: dict[str, Any], ctx: Any) -> int:
    """One map of ``n`` calls, then a sequential loop of ``loop`` calls."""
    squares = await ctx.parallel.map(
        list(range(inputs["n"])), lambda i: ctx.task(square, {"i": i})
    )
    for i in range(inputs.get("loop", 0)):
        await ctx.task(echo, {"text": str(i)})
    return sum(squares)


async def hostile(inputs: dict[str, Any], ctx: Any) -> Any:
    return await ctx.task(echo, {"text": HOSTILE, "big": HOSTILE * 200})


async def approvals(inputs: dict[str, Any], ctx: Any) -> list[Any]:
    """Waits several times in a row: many executions close together."""
    return [await ctx.task(approval, {"step": i}) for i in range(inputs["steps"])]


async def alternating(inputs: dict[str, Any], ctx: Any) -> int:
    """A loop that alternates two tasks: no stretch of one task to fold."""
    total = 0
    for i in range(inputs["n"]):
        if i % 2:
            total += await ctx.task(square, {"i": i})
        else:
            await ctx.task(echo, {"text": str(i)})
    return total
