"""Processes and tasks for the cancel and deadline tests.

Tasks append a JSON line to the file named by ``REPLAY_CANCEL_SIDE`` when they
start and when they end (or are cancelled), with the wall time, so a test can
see from the side what ran, and when, without trusting the journal it checks.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from replay_engine import external, task
from tests import side_file
from tests.side_file import append_line

SIDE_ENV = "REPLAY_CANCEL_SIDE"
read_side = side_file.read_side  # the tests read the side channel through here


def note(what: str, **fields: Any) -> None:
    append_line(
        SIDE_ENV, {"what": what, "at": time.time(), "pid": os.getpid(), **fields}
    )


@task
def quick(name: str) -> str:
    note("start", name=name)
    return name


@task
async def async_block(seconds: float) -> str:
    note("start", name="async_block")
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        note("cancelled", name="async_block")
        raise
    note("end", name="async_block")
    return "slept"


@task
def sync_block(seconds: float) -> str:
    note("start", name="sync_block")
    time.sleep(seconds)
    note("end", name="sync_block")  # after the cancel: must not be recorded
    return "slept"


@external(kind="agent")
def review(item: str) -> dict[str, Any]:
    raise AssertionError("external: executed outside the engine")


async def blocked_async(inputs: dict[str, Any], ctx: Any) -> str:
    """``quick`` (key 0), then an async task that blocks (key 1), then ``quick`` (2)."""
    await ctx.task(quick, {"name": "before"})
    await ctx.task(async_block, {"seconds": (inputs or {}).get("seconds", 60.0)})
    await ctx.task(quick, {"name": "after"})
    return "done"


async def blocked_sync(inputs: dict[str, Any], ctx: Any) -> str:
    """``quick`` (key 0), then a sync task that blocks (key 1), then ``quick`` (2)."""
    await ctx.task(quick, {"name": "before"})
    await ctx.task(sync_block, {"seconds": (inputs or {}).get("seconds", 3.0)})
    await ctx.task(quick, {"name": "after"})
    return "done"


async def waits(inputs: dict[str, Any], ctx: Any) -> Any:
    """``quick`` (key 0), then waits on an external review (key 1)."""
    await ctx.task(quick, {"name": "before"})
    verdict = await ctx.task(review, {"item": "x"})
    await ctx.task(quick, {"name": "after"})
    return verdict


async def finishes(inputs: dict[str, Any], ctx: Any) -> str:
    return await ctx.task(quick, {"name": "only"})
