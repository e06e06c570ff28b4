"""Processes and tasks for the race, settle and failed-wait tests (``tests.parallel``).

In-process tasks report each execution on a side channel (a JSON line appended
to the file named by ``REPLAY_PAR_SIDE``), so a test sees from outside the
journal what ran, and how often.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from replay_engine import TaskFailed, external, task, task_context
from tests import side_file
from tests.side_file import append_line

SIDE_ENV = "REPLAY_PAR_SIDE"
read_side = side_file.read_side  # the tests read the side channel through here


def note(what: str, **fields: Any) -> None:
    tc = task_context()
    line = {"what": what, "run": tc.run_id, "key": tc.key, "pid": os.getpid()}
    append_line(SIDE_ENV, {**line, **fields})


@task(name="par.step")
def step(i: int, delay: float = 0.0) -> int:
    note("start", i=i)
    if delay:
        time.sleep(delay)
    note("end", i=i)
    return i * 10


@task(name="par.astep")
async def astep(i: int, delay: float = 0.0) -> int:
    note("start", i=i)
    try:
        await asyncio.sleep(delay)
    except asyncio.CancelledError:
        note("cancelled", i=i)
        raise
    note("end", i=i)
    return i * 10


@task(name="par.fail")
def fail(i: int, delay: float = 0.0) -> None:
    note("start", i=i)
    if delay:
        time.sleep(delay)
    raise ValueError(f"branch {i} failed")


@external(kind="agent", name="par.agent")
def agent(i: int) -> Any:
    """Executed outside the engine: a result is posted."""


# -- failing a wait ---------------------------------------------------------------


async def wait_once(inputs: Any, ctx: Any) -> Any:
    """One wait for ``go`` (key 0); a failure comes back as a value."""
    try:
        return {"ok": await ctx.wait_for_event("go")}
    except TaskFailed as exc:
        return {"failed": exc.error_type, "message": exc.message, "key": exc.key}


async def wait_twice(inputs: Any, ctx: Any) -> Any:
    """Two waits for ``go`` (keys 0, 1); failures come back as values."""
    out = []
    for _ in range(2):
        try:
            out.append({"ok": await ctx.wait_for_event("go")})
        except TaskFailed as exc:
            out.append({"failed": exc.error_type, "message": exc.message})
    return out


# -- races ------------------------------------------------------------------------


async def race_steps(inputs: Any, ctx: Any) -> Any:
    """A race (key 0) of ``step(i, delays[i])``, then a step for the winner (key 1)."""
    delays = inputs["delays"]
    index, value = await ctx.parallel.any(
        [
            lambda i=i: ctx.task(step, {"i": i, "delay": delays[i]})
            for i in range(len(delays))
        ]
    )
    after = await ctx.task(step, {"i": 100 + index})
    return {"winner": index, "value": value, "after": after}


async def race_async(inputs: Any, ctx: Any) -> Any:
    """A slow async task against a quick sync one: the async one is cancelled."""
    return await ctx.parallel.any(
        [
            lambda: ctx.task(astep, {"i": 0, "delay": 60.0}),
            lambda: ctx.task(step, {"i": 1}),
        ]
    )


async def race_waits(inputs: Any, ctx: Any) -> Any:
    """An agent (0.0.0) against an event wait (0.1.0) against a long timer (0.2.0)."""
    return await ctx.parallel.any(
        [
            lambda: ctx.task(agent, {"i": 0}),
            lambda: ctx.wait_for_event("go"),
            lambda: ctx.sleep(inputs.get("timer", 3600.0)),
        ]
    )


async def race_composite(inputs: Any, ctx: Any) -> Any:
    """Composite branches: two steps in a row, and a parallel pair."""

    async def two_steps() -> Any:
        a = await ctx.task(step, {"i": 1, "delay": inputs["delay"]})
        return a + await ctx.task(step, {"i": 2})

    async def pair() -> Any:
        return await ctx.parallel.all(
            [lambda: ctx.task(step, {"i": 3}), lambda: ctx.task(step, {"i": 4})]
        )

    return await ctx.parallel.any([two_steps, pair])


async def race_all_fail(inputs: Any, ctx: Any) -> Any:
    try:
        await ctx.parallel.any(
            [
                lambda: ctx.task(fail, {"i": 0, "delay": 0.2}),
                lambda: ctx.task(fail, {"i": 1}),
            ]
        )
    except TaskFailed as exc:
        return {"failed": exc.key, "message": exc.message}
    return "no failure"


async def race_failure_then_win(inputs: Any, ctx: Any) -> Any:
    """A quick failure does not win: the slower success does."""
    return await ctx.parallel.any(
        [
            lambda: ctx.task(fail, {"i": 0}),
            lambda: ctx.task(step, {"i": 1, "delay": 0.2}),
        ]
    )


# -- settle and fail fast ---------------------------------------------------------


async def settled_all(inputs: Any, ctx: Any) -> Any:
    results = await ctx.parallel.all(
        [
            lambda: ctx.task(step, {"i": 0}),
            lambda: ctx.task(fail, {"i": 1}),
            lambda: ctx.task(step, {"i": 2}),
        ],
        settled=True,
    )
    return [
        {"error": r.error_type, "key": r.key} if isinstance(r, TaskFailed) else r
        for r in results
    ]


async def settled_map(inputs: Any, ctx: Any) -> Any:
    results = await ctx.parallel.map(
        list(range(4)),
        lambda i: ctx.task(fail if i % 2 else step, {"i": i}),
        limit=2,
        settled=True,
    )
    return [r.error_type if isinstance(r, TaskFailed) else r for r in results]


async def fail_fast_all(inputs: Any, ctx: Any) -> Any:
    """A slow async branch (60 s) and a failing one: fail fast cancels the slow one."""
    try:
        await ctx.parallel.all(
            [
                lambda: ctx.task(astep, {"i": 0, "delay": 60.0}),
                lambda: ctx.task(agent, {"i": 1}),
                lambda: ctx.task(fail, {"i": 2}),
            ],
            fail_fast=True,
        )
    except TaskFailed as exc:
        return {"failed": exc.key}
    return "no failure"


async def fail_fast_map(inputs: Any, ctx: Any) -> Any:
    """Branch 1 fails; with a limit of 2, branches 3.. never start."""
    try:
        await ctx.parallel.map(
            list(range(6)),
            lambda i: ctx.task(
                fail if i == 1 else step, {"i": i, "delay": 0.3 if i == 0 else 0.0}
            ),
            limit=2,
            fail_fast=True,
        )
    except TaskFailed as exc:
        return {"failed": exc.key}
    return "no failure"


async def race_then_wait(inputs: Any, ctx: Any) -> Any:
    """An agent (0.0.0) loses to a quick step (0.1.0); then the run waits for 1."""
    await ctx.parallel.any(
        [lambda: ctx.task(agent, {"i": 0}), lambda: ctx.task(step, {"i": 1})]
    )
    return await ctx.task(agent, {"i": 2})


async def race_steps_as_all(inputs: Any, ctx: Any) -> Any:
    """``race_steps`` changed: a parallel.all where the race was."""
    return await ctx.parallel.all([lambda: ctx.task(step, {"i": 0, "delay": 0.0})])


async def fail_fast_three(inputs: Any, ctx: Any) -> Any:
    """Three branches (0.j.0), branch 1 fails; the options come from inputs."""
    try:
        results = await ctx.parallel.all(
            [
                lambda: ctx.task(step, {"i": 0}),
                lambda: ctx.task(fail, {"i": 1}),
                lambda: ctx.task(step, {"i": 2}),
            ],
            settled=inputs["settled"],
            fail_fast=inputs["fail_fast"],
        )
    except TaskFailed as exc:
        return {"failed": exc.key}
    return [r.key if isinstance(r, TaskFailed) else r for r in results]


async def race_wait_or_agent(inputs: Any, ctx: Any) -> Any:
    """An event wait (0.0.0) against an agent (0.1.0); a failed wait does not win."""
    return await ctx.parallel.any(
        [lambda: ctx.wait_for_event("go"), lambda: ctx.task(agent, {"i": 1})]
    )


async def settled_with_a_bug(inputs: Any, ctx: Any) -> Any:
    """A composite branch raising a plain exception: settled does not swallow it."""

    async def buggy() -> Any:
        await ctx.task(step, {"i": 0})
        raise KeyError("bug in the process")

    try:
        await ctx.parallel.all([buggy, lambda: ctx.task(fail, {"i": 1})], settled=True)
    except KeyError as exc:
        return {"raised": str(exc)}
    return "swallowed"


async def fail_fast_agents(inputs: Any, ctx: Any) -> Any:
    """Two agents (0.0.0, 0.1.0) with fail fast: the run waits for both."""
    try:
        return await ctx.parallel.all(
            [lambda: ctx.task(agent, {"i": 0}), lambda: ctx.task(agent, {"i": 1})],
            fail_fast=True,
        )
    except TaskFailed as exc:
        return {"failed": exc.key}


async def fail_fast_napper(inputs: Any, ctx: Any) -> Any:
    """Branch 0 sleeps (0.0.0) then steps (0.0.1); branch 1 fails; then key 1.

    Fail fast cancels branch 0 on its timer, where it has no effect to
    abandon. ``then`` picks what key 1 is: an agent (the run waits) or a step
    lasting ``delay`` seconds.
    """

    async def napper() -> Any:
        await ctx.sleep(inputs["nap"])
        return await ctx.task(step, {"i": 0})

    try:
        await ctx.parallel.all(
            [napper, lambda: ctx.task(fail, {"i": 1})], fail_fast=True
        )
    except TaskFailed as exc:
        failed = exc.key
    else:
        failed = None
    if inputs.get("then") == "agent":
        after = await ctx.task(agent, {"i": 9})
    else:
        after = await ctx.task(step, {"i": 9, "delay": inputs.get("delay", 0.0)})
    return {"failed": failed, "after": after}


async def fail_fast_three_plain(inputs: Any, ctx: Any) -> Any:
    """``fail_fast_three`` changed: a plain ``parallel.all`` (no fail fast)."""
    try:
        return await ctx.parallel.all(
            [
                lambda: ctx.task(step, {"i": 0}),
                lambda: ctx.task(fail, {"i": 1}),
                lambda: ctx.task(step, {"i": 2}),
            ]
        )
    except TaskFailed as exc:
        return {"failed": exc.key}
