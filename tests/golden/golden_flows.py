"""The processes of the golden journal (``tests/golden/v*/``): never edit them.

The golden journal records these functions by reference
(``tests.golden.golden_flows:basics``) and replays them in
``test_golden.py``: a changed body would diverge from what the journal holds.
A new golden journal (for a new format version) may use new processes: add
them here under new names.
"""

from __future__ import annotations

from typing import Any

from replay_engine import external, task, task_context

CHECKPOINTED_STEPS = 20
"""In-process steps before the external wait: enough events for a checkpoint."""


@task(retries=1)
def flaky(n: int) -> int:
    """Fails its first attempt (an ``attempt_failed`` event), then answers."""
    if task_context().attempt == 1:
        raise RuntimeError("first attempt fails on purpose")
    return n * 2


@task
def step(i: int) -> int:
    return i + 1


@task
def boom(message: str) -> None:
    raise ValueError(message)


@external
def review(item: str) -> Any:
    """Done by an outside worker, which claims it and posts its result."""
    raise AssertionError("external tasks are never run in-process")


async def basics(inputs: dict[str, Any], ctx: Any) -> Any:
    """A retried task, a log line, recorded values and a timer; completes."""
    doubled = await ctx.task(flaky, {"n": inputs["n"]})
    ctx.log("doubled", value=doubled)
    now = ctx.now()
    coin = ctx.random().random()
    ident = ctx.uuid()
    await ctx.sleep(0.001)
    return {"doubled": doubled, "now": now.isoformat(), "coin": coin, "id": str(ident)}


async def externals(inputs: dict[str, Any], ctx: Any) -> Any:
    """Many steps (a checkpoint), a claimed and posted external, then a signal."""
    total = 0
    for i in range(CHECKPOINTED_STEPS):
        total += await ctx.task(step, {"i": i})
    verdict = await ctx.task(review, {"item": inputs["item"]})
    go = await ctx.wait_for_event("go")
    return {"total": total, "verdict": verdict, "go": go}


async def abandons(inputs: dict[str, Any], ctx: Any) -> Any:
    """Branch 0 fails; branch 1's external is abandoned; the run fails."""

    async def branch(i: int) -> Any:
        if i == 0:
            return await ctx.task(boom, {"message": "branch 0 fails"})
        return await ctx.task(review, {"item": f"branch {i}"})

    return await ctx.parallel.map(range(2), branch)
