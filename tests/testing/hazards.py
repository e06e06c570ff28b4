"""Processes that break determinism, one way each (and the tasks they call).

Each is what a user would plausibly write; the tests check that
``assert_deterministic`` and ``replay-engine check`` both catch it, and that
the messages point at the right line. Lines marked ``# HAZARD`` are the ones
the static check must flag; ``# SITE n`` marks the ``ctx`` call at which the
difference shows.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from replay_engine import task


@task
def fetch(n: int) -> dict[str, int]:
    return {"n": n, "square": n * n}


@task
def record(**fields: Any) -> dict[str, Any]:
    return {"recorded": sorted(fields)}


@task
def greet(name: str) -> str:
    return f"hello {name}"


@task
async def work(n: int) -> int:
    await asyncio.sleep(0.001 * (n % 3))
    return n * 10


async def wall_clock(inputs: Any, ctx: Any) -> Any:
    started = time.time()  # HAZARD RE101
    first = await ctx.task(fetch, {"n": 1})
    return await ctx.task(record, {"first": first, "started": started})  # SITE 1


async def direct_random(inputs: Any, ctx: Any) -> Any:
    pick = random.randint(0, 10**9)  # HAZARD RE102
    return await ctx.task(fetch, {"n": pick})  # SITE 2


async def set_iteration(inputs: Any, ctx: Any) -> Any:
    names = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta"}
    out = []
    for name in names:  # HAZARD RE107
        out.append(await ctx.task(greet, {"name": name}))  # SITE 3
    return out


async def completion_order(inputs: Any, ctx: Any) -> Any:
    finished: list[int] = []

    async def branch(n: int) -> int:
        result = await ctx.task(work, {"n": n})
        finished.append(n)  # HAZARD RE112
        return result

    results = await ctx.parallel.map(range(4), branch)
    return await ctx.task(record, {"order": finished, "results": results})  # SITE 4


# -- the same processes, done right ---------------------------------------------------


async def wall_clock_fixed(inputs: Any, ctx: Any) -> Any:
    started = ctx.now().isoformat()
    first = await ctx.task(fetch, {"n": 1})
    return await ctx.task(record, {"first": first, "started": started})


async def random_fixed(inputs: Any, ctx: Any) -> Any:
    pick = ctx.random().randint(0, 10**9)
    return await ctx.task(fetch, {"n": pick})


async def set_iteration_fixed(inputs: Any, ctx: Any) -> Any:
    names = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta"}
    return [await ctx.task(greet, {"name": name}) for name in sorted(names)]


async def completion_order_fixed(inputs: Any, ctx: Any) -> Any:
    results = await ctx.parallel.map(range(4), lambda n: ctx.task(work, {"n": n}))
    return await ctx.task(record, {"order": list(range(4)), "results": results})


FIXED = (wall_clock_fixed, random_fixed, set_iteration_fixed, completion_order_fixed)
"""Each hazard above, fixed the way its error message says."""


# -- hazards only some schedules reveal -------------------------------------------


@task(executor="inline")
def quick(n: Any) -> Any:
    """Completes during the dispatching loop iteration: no natural reordering."""
    return n


async def order_dependent(inputs: Any, ctx: Any) -> Any:
    done: list[int] = []

    async def branch(n: int) -> int:
        result = await ctx.task(quick, {"n": n})
        done.append(n)
        return result

    await ctx.parallel.map(range(3), branch)
    return await ctx.task(quick, {"n": done})


async def random_log(inputs: Any, ctx: Any) -> Any:
    await ctx.task(quick, {"n": 1})
    ctx.log("picked", value=random.random())
    return "done"


async def random_result(inputs: Any, ctx: Any) -> Any:
    await ctx.task(quick, {"n": 1})
    return {"token": random.getrandbits(64)}


@task
def lottery() -> int:
    """A nondeterministic *task*: allowed, its result is journaled."""
    return random.getrandbits(64)


async def calls_a_lottery(inputs: Any, ctx: Any) -> Any:
    return await ctx.task(lottery, {})
