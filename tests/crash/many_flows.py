"""Processes for the many-runs crash test (``test_many_runs_crash.py``).

Each step reports to the side file named by ``$MANY_SIDE`` (run, step, pid),
so what ran, and how often, is seen from outside the journal.
"""

from __future__ import annotations

import asyncio
from typing import Any

from replay_engine import task
from tests.side_file import append_line

SIDE_ENV = "MANY_SIDE"
STEPS = 6


@task
async def step(run: str, i: int, acc: int) -> int:
    append_line(SIDE_ENV, {"run": run, "i": i})
    # Yield once: the runs' steps interleave, so commits carry many runs.
    await asyncio.sleep(0)
    return acc * 3 + i + len(run)


async def steps(inputs: dict[str, Any], ctx: Any) -> int:
    acc = inputs["seed"]
    for i in range(STEPS):
        acc = await ctx.task(step, {"run": inputs["run"], "i": i, "acc": acc})
    return acc


def expected(run: str, seed: int) -> int:
    acc = seed
    for i in range(STEPS):
        acc = acc * 3 + i + len(run)
    return acc
