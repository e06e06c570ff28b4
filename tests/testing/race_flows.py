"""Processes with a race (``ctx.parallel.any``) for the determinism tools' tests.

The winner of a race is a recorded choice: which branch finishes first depends
on the schedule, and ``assert_deterministic`` must accept either winner, while
still catching real non-determinism next to a race.
"""

from __future__ import annotations

import time
from typing import Any

from replay_engine import TaskFailed, task


@task
def fetch(source: str) -> str:
    return f"from {source}"


@task
def store(value: str, stamp: float = 0.0) -> str:
    return f"stored {value}"


async def race_two_sources(inputs: Any, ctx: Any) -> Any:
    """Two mirrors raced; the result is stored (deterministic)."""
    index, value = await ctx.parallel.any(
        [
            lambda: ctx.task(fetch, {"source": "a"}),
            lambda: ctx.task(fetch, {"source": "b"}),
        ]
    )
    return await ctx.task(store, {"value": value}), index


async def race_with_clock(inputs: Any, ctx: Any) -> Any:
    """Reads the wall clock after the race: not deterministic."""
    _index, value = await ctx.parallel.any(
        [
            lambda: ctx.task(fetch, {"source": "a"}),
            lambda: ctx.task(fetch, {"source": "b"}),
        ]
    )
    return await ctx.task(store, {"value": value, "stamp": time.time()})  # clock


async def race_timer(inputs: Any, ctx: Any) -> Any:
    """A task raced against a short timer."""

    async def timeout() -> str:
        await ctx.sleep(0.01)
        return "timeout"

    index, value = await ctx.parallel.any(
        [lambda: ctx.task(fetch, {"source": "a"}), timeout]
    )
    await ctx.log("decided", index=index)
    return await ctx.task(store, {"value": value})


async def race_clock_branch(inputs: Any, ctx: Any) -> Any:
    """A branch whose args read the wall clock: not deterministic."""
    _index, value = await ctx.parallel.any(
        [
            lambda: ctx.task(fetch, {"source": f"a-{time.time()}"}),  # clock
            lambda: ctx.task(fetch, {"source": "b"}),
        ]
    )
    return value


@task
def broken(source: str) -> str:
    raise ValueError(f"{source} is down")


async def fail_fast_two_failures(inputs: Any, ctx: Any) -> Any:
    """Two failing branches: which fails first (and is raised) is a recorded choice."""
    try:
        await ctx.parallel.all(
            [
                lambda: ctx.task(broken, {"source": "a"}),
                lambda: ctx.task(broken, {"source": "b"}),
            ],
            fail_fast=True,
        )
    except TaskFailed as exc:
        return await ctx.task(store, {"value": exc.key})
    return None
