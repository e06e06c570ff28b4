"""Processes and tasks the Dask tests run; workers import them by reference.

Every task appends ``run_id/key`` to a side-channel file (``side``) with one
``O_APPEND`` write, so a test counts executions independently of the journal.
"""

from __future__ import annotations

import os
import time
from typing import Any

from replay_engine import task, task_context


def _note(side: str | None) -> None:
    if side:
        ctx = task_context()
        line = f"{ctx.idempotency_key} {ctx.attempt} {os.getpid()}\n".encode()
        fd = os.open(side, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


@task
def square(i: int, side: str | None = None) -> int:
    _note(side)
    return i * i


@task(retries=3)
def slow_square(i: int, side: str | None = None, seconds: float = 0.05) -> int:
    _note(side)
    time.sleep(seconds)
    return i * i


@task
def boom(i: int) -> int:
    raise ValueError(f"boom {i}")


async def fan_out(inputs: dict[str, Any], ctx: Any) -> int:
    """``parallel.map`` of ``square`` (or ``slow_square``) over ``n`` items."""
    n = inputs["n"]
    side = inputs.get("side")
    if inputs.get("seconds"):
        seconds = inputs["seconds"]
        outs = await ctx.parallel.map(
            range(n),
            lambda i: ctx.task(slow_square, {"i": i, "side": side, "seconds": seconds}),
        )
    else:
        outs = await ctx.parallel.map(
            range(n), lambda i: ctx.task(square, {"i": i, "side": side})
        )
    assert outs == [i * i for i in range(n)]
    return sum(outs)


async def one_failure(inputs: dict[str, Any], ctx: Any) -> str:
    try:
        await ctx.task(boom, {"i": 7})
    except Exception as exc:  # TaskFailed, live and on replay
        return type(exc).__name__
    return "no error"


def executing_count(dask_worker: Any) -> int:
    """Tasks a worker is executing right now (for ``client.run``)."""
    return int(dask_worker.state.executing_count)
