"""Processes for the fault tests (``fault_flows`` on the child's PYTHONPATH).

Tasks note what they do in the file named by ``FAULT_SIDE`` (one line each,
``what i pid``), so a test can count executions without the journal.
``FAULT_VARIANT`` lets a resume run different code without changing the
module's source.
"""

from __future__ import annotations

import os
import time
from typing import Any

from replay_engine import external, task


def note(what: str, i: Any = "-") -> None:
    path = os.environ.get("FAULT_SIDE")
    if not path:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{what} {i} {os.getpid()}\n".encode())
    finally:
        os.close(fd)


@task(name="fault.step")
def step(i: int, delay: float) -> int:
    note("start", i)
    time.sleep(delay)
    note("end", i)
    return i


@task(name="fault.hold")
def hold(i: int, delay: float) -> int:
    """Like ``step``, but returns at once with ``FAULT_VARIANT=fast`` (a resume)."""
    note("start", i)
    if os.environ.get("FAULT_VARIANT") != "fast":
        time.sleep(delay)
    note("end", i)
    return i * i


@task(name="fault.big")
def big(i: int, size: int) -> str:
    note("big", i)
    return f"{i:08d}" + os.urandom(size // 2).hex()


@task(name="fault.fork")
def fork_and_sleep(hold: float) -> int:
    """Fork a child that sleeps ``hold`` seconds (it inherits every fd), then
    sleep in the parent too, so the executor can be killed meanwhile. With
    ``FAULT_VARIANT=no-fork`` (the resume) it returns at once instead."""
    if os.environ.get("FAULT_VARIANT") == "no-fork":
        return 0
    pid = os.fork()
    if pid == 0:
        try:
            note("grandchild", 0)
            time.sleep(hold)
        finally:
            os._exit(0)
    note("forked", pid)
    time.sleep(hold)
    return pid


@task(name="fault.ok")
def ok(i: int) -> int:
    note("ok", i)
    return i


@task(name="fault.interrupt", retries=2, backoff=0.0)
def interrupt(kind: str) -> None:
    note("interrupt", kind)
    if kind == "KeyboardInterrupt":
        raise KeyboardInterrupt
    raise SystemExit(3)


@task(name="fault.a")
def task_a(i: int) -> int:
    note("a", i)
    return i


@task(name="fault.b")
def task_b(i: int) -> int:
    note("b", i)
    return i


@external(kind="agent", name="fault.agent")
def agent(what: str) -> Any:
    """Posted from outside."""
    raise NotImplementedError


# -- processes ------------------------------------------------------------------


async def slow(inputs: dict[str, Any], ctx: Any) -> int:
    """``n`` sequential steps of ``delay`` seconds."""
    total = 0
    for i in range(inputs.get("n", 30)):
        total += await ctx.task(step, {"i": i, "delay": inputs.get("delay", 0.2)})
    return total


async def parallel_slow(inputs: dict[str, Any], ctx: Any) -> list[int]:
    """``n`` steps of ``delay`` seconds, all at once (for process pools)."""
    n, delay = inputs.get("n", 4), inputs.get("delay", 30.0)
    return await ctx.parallel.all(
        [lambda i=i: ctx.task(step, {"i": i, "delay": delay}) for i in range(n)]
    )


async def holding(inputs: dict[str, Any], ctx: Any) -> list[int]:
    """``n`` sequential ``hold`` steps of ``delay`` seconds."""
    delay = inputs.get("delay", 30.0)
    return [await ctx.task(hold, {"i": i, "delay": delay}) for i in range(inputs["n"])]


async def fill(inputs: dict[str, Any], ctx: Any) -> int:
    """Results of ``size`` bytes until the disk is full."""
    for i in range(inputs.get("n", 1000)):
        await ctx.task(big, {"i": i, "size": inputs.get("size", 200_000)})
    return 0


async def forker(inputs: dict[str, Any], ctx: Any) -> int:
    result: int = await ctx.task(fork_and_sleep, {"hold": inputs.get("hold", 30.0)})
    return result


async def interrupted(inputs: dict[str, Any], ctx: Any) -> list[Any]:
    """Siblings that return normally, batched with one that raises ``kind``
    (branch 3 of 24: tiny sync tasks dispatched together share pool jobs)."""
    thunks = [lambda i=i: ctx.task(ok, {"i": i}) for i in range(24)]
    thunks[3] = lambda: ctx.task(interrupt, {"kind": inputs["kind"]})
    return await ctx.parallel.all(thunks)


async def waiter(inputs: dict[str, Any], ctx: Any) -> Any:
    """A task, then an external agent (the run waits), then a task.

    ``FAULT_VARIANT=diverge`` calls another task first (non-determinism);
    ``FAULT_VARIANT=raise`` raises before reaching any recorded call.
    """
    variant = os.environ.get("FAULT_VARIANT")
    if variant == "raise":
        raise ValueError("boom-before-any-call")
    first = task_b if variant == "diverge" else task_a
    a = await ctx.task(first, {"i": 0})
    answer = await ctx.task(agent, {"what": "go"})
    b = await ctx.task(task_a, {"i": 2})
    return {"a": a, "answer": answer, "b": b}


async def echo(inputs: Any, ctx: Any) -> Any:
    return inputs


# -- not processes ----------------------------------------------------------------


def sync_process(inputs: Any, ctx: Any) -> Any:
    return inputs


async def one_argument(inputs: Any) -> Any:
    return inputs
