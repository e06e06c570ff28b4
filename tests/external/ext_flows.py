"""Processes and tasks for the external-effect tests (``tests.external.ext_flows``).

In-process tasks report each execution on a side channel (a JSON line appended
to the file named by ``REPLAY_EXT_SIDE``), so a test can tell an execution
from a replay without looking at the journal it checks.
"""

from __future__ import annotations

import os
import time
from typing import Any

from replay_engine import Expired, TaskFailed, external, task, task_context
from tests import side_file
from tests.side_file import append_line

SIDE_ENV = "REPLAY_EXT_SIDE"
read_side = side_file.read_side  # the tests read the side channel through here


def note(what: str, **fields: Any) -> None:
    tc = task_context()
    line = {"what": what, "run": tc.run_id, "key": tc.key, "pid": os.getpid()}
    append_line(SIDE_ENV, {**line, **fields})


# -- tasks ---------------------------------------------------------------------


@task(name="ext.prepare")
def prepare(feature: str) -> dict[str, Any]:
    note("prepare")
    return {"feature": feature, "files": ["a.py", "b.py", "c.py"]}


@task(name="ext.combine")
def combine(parts: list[Any]) -> dict[str, Any]:
    note("combine")
    return {"n": len(parts), "parts": parts}


@task(name="ext.slow_step")
def slow_step(i: int, delay: float) -> int:
    note("slow_step", i=i)
    time.sleep(delay)
    return i * i


@task(name="ext.boom")
def boom(message: str) -> None:
    note("boom")
    raise RuntimeError(message)


@external(kind="agent", name="ext.implement")
def implement(part: str) -> dict[str, Any]:
    """Posted by an agent."""
    raise NotImplementedError


@external(kind="review", name="ext.review")
def review(file: str) -> dict[str, Any]:
    """Posted by a reviewer."""
    raise NotImplementedError


@external(kind="agent", name="ext.work")
def work(i: int) -> Any:
    """One unit of posted work."""
    raise NotImplementedError


@external(kind="agent", name="ext.quick", timeout=0.5)
def quick(i: int) -> Any:
    """An external effect that expires after half a second."""
    raise NotImplementedError


# -- processes -----------------------------------------------------------------


async def one_external(inputs: Any, ctx: Any) -> Any:
    """Key 0: in-process prepare; key 1: an external agent task."""
    prep = await ctx.task(prepare, {"feature": "x"})
    out = await ctx.task(work, {"i": 1})
    return {"prep": prep["feature"], "out": out}


async def fan(inputs: dict[str, Any], ctx: Any) -> Any:
    """A parallel.map over ``n`` external work items (keys 0.j.0)."""
    outs = await ctx.parallel.map(
        range(inputs["n"]), lambda i: ctx.task(work, {"i": i})
    )
    return {"sum": sum(int(o) for o in outs), "outs": outs}


async def sequential(inputs: dict[str, Any], ctx: Any) -> Any:
    """``n`` sequential external effects (keys 0..n-1)."""
    total = 0
    for i in range(inputs["n"]):
        total += int(await ctx.task(work, {"i": i}))
    return total


async def fail_fast(inputs: dict[str, Any], ctx: Any) -> Any:
    """Branch 0 fails in-process; branches 1..n wait on external work."""

    async def branch(i: int) -> Any:
        if i == 0:
            return await ctx.task(boom, {"message": "branch 0 failed"})
        return await ctx.task(work, {"i": i})

    return await ctx.parallel.map(range(inputs["n"]), branch)


async def caught_group(inputs: dict[str, Any], ctx: Any) -> Any:
    """``fail_fast`` inside try/except, then an external gate: the run goes on."""
    caught: str | None = None
    try:
        await fail_fast(inputs, ctx)
    except TaskFailed as exc:
        caught = exc.error_type
    gate = await ctx.task(work, {"i": -1})
    return {"caught": caught, "gate": gate}


async def approval(inputs: dict[str, Any], ctx: Any) -> Any:
    """A breakpoint (key 0) with an optional timeout; the answer decides."""
    try:
        answer = await ctx.breakpoint(
            "deploy?", {"env": "prod"}, timeout=inputs.get("timeout")
        )
    except Expired as exc:
        return {"expired": True, "error_type": exc.error_type}
    if answer["approved"]:
        return {"deployed": True, "response": answer.get("response")}
    return {"deployed": False, "response": answer.get("response")}


async def signals(inputs: dict[str, Any], ctx: Any) -> Any:
    """Key 0: prepare; then wait for ``go`` twice (keys 1, 2), optional timeout."""
    await ctx.task(prepare, {"feature": "sig"})
    first = await ctx.wait_for_event("go", timeout=inputs.get("timeout"))
    second = await ctx.wait_for_event("go", timeout=inputs.get("timeout"))
    return [first, second]


async def gated_signal(inputs: Any, ctx: Any) -> Any:
    """An external gate (0), then a wait for ``go`` (1): the signal can come first."""
    gate = await ctx.task(work, {"i": 0})
    payload = await ctx.wait_for_event("go")
    return {"gate": gate, "go": payload}


async def signal_timeout(inputs: dict[str, Any], ctx: Any) -> Any:
    """Wait for ``never`` with a timeout and handle the expiry."""
    try:
        return await ctx.wait_for_event("never", timeout=inputs["timeout"])
    except Expired as exc:
        return {"expired": exc.error_type}


async def timers(inputs: dict[str, Any], ctx: Any) -> Any:
    """prepare (0), an external gate (1), a durable sleep (2), prepare (3).

    ``run`` stops at the gate; after the post, ``iterate`` parks the timer
    and reports when it falls due; an ``iterate`` after that fires it.
    """
    await ctx.task(prepare, {"feature": "before"})
    await ctx.task(work, {"i": 0})
    await ctx.sleep(inputs["seconds"])
    after = await ctx.task(prepare, {"feature": "after"})
    return after["feature"]


async def mixed_kinds(inputs: Any, ctx: Any) -> Any:
    """An agent task (0.0.0), a review (0.1.0) and a breakpoint (0.2.0) at once."""
    return await ctx.parallel.all(
        [
            lambda: ctx.task(implement, {"part": "core"}),
            lambda: ctx.task(review, {"file": "core.py"}),
            lambda: ctx.breakpoint("merge?", {"pr": 7}),
        ]
    )


async def expiring(inputs: Any, ctx: Any) -> Any:
    """An @external(timeout=0.5) whose expiry is caught."""
    try:
        return await ctx.task(quick, {"i": 0})
    except Expired:
        return "expired"
    except TaskFailed as exc:  # pragma: no cover - would be a bug
        return f"failed: {exc.error_type}"


async def crashy(inputs: dict[str, Any], ctx: Any) -> Any:
    """An external gate (0), ``n`` slow in-process steps (1..n), a last external.

    ``run`` stops at the gate; after the post, one ``iterate`` executes the
    steps (the tests kill it midway), then waits at key ``n + 1``.
    """
    await ctx.task(work, {"i": -1})
    outs = []
    for i in range(inputs["n"]):
        outs.append(await ctx.task(slow_step, {"i": i, "delay": inputs["delay"]}))
    last = await ctx.task(work, {"i": -2})
    return {"outs": outs, "last": last}


async def pipeline(inputs: dict[str, Any], ctx: Any) -> Any:
    """The end-to-end process: agents, a map of reviews, a breakpoint.

    0: prepare (in-process)
    1: parallel.all of three agent tasks (keys 1.j.0)
    2: parallel.map over external reviews of the files (keys 2.j.0)
    3: combine (in-process)
    4: breakpoint
    """
    prep = await ctx.task(prepare, {"feature": inputs["feature"]})
    parts = await ctx.parallel.all(
        [
            lambda: ctx.task(implement, {"part": "api"}),
            lambda: ctx.task(implement, {"part": "ui"}),
            lambda: ctx.task(implement, {"part": "docs"}),
        ]
    )
    reviews = await ctx.parallel.map(
        prep["files"], lambda f: ctx.task(review, {"file": f})
    )
    summary = await ctx.task(combine, {"parts": [*parts, *reviews]})
    answer = await ctx.breakpoint("ship it?", {"n": summary["n"]})
    return {
        "parts": parts,
        "reviews": reviews,
        "n": summary["n"],
        "approved": answer["approved"],
        "response": answer.get("response"),
    }
