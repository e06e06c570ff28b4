"""Processes and tasks for the worker tests and bench (``tests.worker.worker_flows``).

Every task execution appends one line to a side file named in its args
(``side``): a test counts dispatches and observes overlap from the side, not
from the engine's own counters. ``append_line`` writes with ``O_APPEND`` in
one ``write``, so lines of concurrent processes never interleave.
"""

from __future__ import annotations

import os
import time
from typing import Any

from replay_engine import external, task, task_context


def append_line(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def read_lines(path: str | os.PathLike[str]) -> list[list[str]]:
    try:
        with open(path, encoding="utf-8") as fh:
            return [line.split() for line in fh if line.strip()]
    except FileNotFoundError:
        return []


@task(name="worker.step")
def step(side: str, i: int, delay: float) -> int:
    tc = task_context()
    append_line(side, f"step {tc.run_id} {tc.key} {os.getpid()}")
    time.sleep(delay)
    return i * i


@task(name="worker.stamped")
def stamped(side: str, delay: float) -> str:
    """Appends start and end stamps: the maximum overlap is computed from them."""
    tc = task_context()
    append_line(side, f"start {tc.run_id} {time.time_ns()}")
    time.sleep(delay)
    append_line(side, f"end {tc.run_id} {time.time_ns()}")
    return tc.run_id


@external(kind="agent", name="worker.review")
def review(what: str) -> Any: ...


async def steps(inputs: dict[str, Any], ctx: Any) -> int:
    """``n`` sequential steps of ``delay`` seconds; returns the sum of squares."""
    total = 0
    for i in range(inputs["n"]):
        total += await ctx.task(
            step, {"side": inputs["side"], "i": i, "delay": inputs.get("delay", 0.0)}
        )
    return total


async def sleeper(inputs: Any, ctx: Any) -> str:
    await ctx.sleep(inputs.get("seconds", 1.0) if isinstance(inputs, dict) else 1.0)
    return "slept"


async def asks(inputs: Any, ctx: Any) -> Any:
    answer = await ctx.task(review, {"what": "diff"})
    return {"answer": answer}


async def queued_job(inputs: dict[str, Any], ctx: Any) -> str:
    result: str = await ctx.task(
        stamped, {"side": inputs["side"], "delay": inputs.get("delay", 0.05)}
    )
    return result


async def other(inputs: Any, ctx: Any) -> str:
    return "other"


def not_a_process(x: int) -> int:
    return x
