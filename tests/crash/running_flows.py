"""Processes for test_running_checkpoint.py (imported by child interpreters).

Every inline task notes its call in the side file (``SIDE``), so "no completed
effect ran again" is seen from outside the journal. ``gate`` (a thread task)
says ``ready`` on stdout and waits, bounded, for a file to appear: the test
SIGKILLs the child there, or posts to the run and then opens the gate.
"""

from __future__ import annotations

import os
import time
from typing import Any

from replay_engine import task

SIDE = "RUNNING_CP_SIDE"
GATE = "RUNNING_CP_GATE"
RESUMING = "RUNNING_CP_RESUMING"


@task(executor="inline")
def step(i: int) -> int:
    fd = os.open(os.environ[SIDE], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{i}\n".encode())
    finally:
        os.close(fd)
    return i


@task
def gate(name: str) -> str:
    """Print ``ready <name>`` and wait (at most 60 s) for the gate file."""
    if os.environ.get(RESUMING) == "1":
        return name
    print(f"ready {name}", flush=True)
    path = os.environ[GATE]
    deadline = time.monotonic() + 60
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the gate {path} was never opened")
        time.sleep(0.01)
    return name


async def steps_then_gate(inputs: dict[str, int], ctx: Any) -> int:
    """``n`` sequential steps, the gate, then ``after`` more steps."""
    total = 0
    for i in range(inputs["n"]):
        total += await ctx.task(step, {"i": i})
    await ctx.task(gate, {"name": "middle"})
    for i in range(inputs["n"], inputs["n"] + inputs.get("after", 0)):
        total += await ctx.task(step, {"i": i})
    return total


async def fan_then_gate(inputs: dict[str, int], ctx: Any) -> int:
    """One ``parallel.map`` of ``n`` steps, then the gate."""
    out = await ctx.parallel.map(range(inputs["n"]), lambda i: ctx.task(step, {"i": i}))
    await ctx.task(gate, {"name": "middle"})
    return sum(out)
