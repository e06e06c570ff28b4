"""Processes for the sub-run tests (importable by child interpreters).

Tasks append a line to the file named by ``$CHILD_SIDE`` when they run, so a
test counts executions from outside the journal.
"""

from __future__ import annotations

import os
import time
from typing import Any

from replay_engine import external, task

SIDE_ENV = "CHILD_SIDE"


def _note(what: str) -> None:
    side = os.environ.get(SIDE_ENV)
    if side:
        with open(side, "a", encoding="utf-8") as f:
            f.write(what + "\n")


@task(name="child_flows.step")
def step(name: str, n: int) -> int:
    _note(f"step {name} {n}")
    # CHILD_SLOW=NAME:SECONDS makes the steps of one name slow.
    slow_name, _, seconds = os.environ.get("CHILD_SLOW", "").partition(":")
    if slow_name == name:
        time.sleep(float(seconds))
    return n * 10


@task(name="child_flows.boom")
def boom(message: str) -> None:
    _note(f"boom {message}")
    raise ValueError(message)


@external(kind="agent", name="child_flows.review")
def review(item: str) -> dict[str, Any]:
    raise AssertionError("external: never executed")


async def leaf(inputs: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """Two steps."""
    a = await ctx.task(step, {"name": inputs["name"], "n": inputs["n"]})
    b = await ctx.task(step, {"name": inputs["name"], "n": inputs["n"] + 1})
    return {"name": inputs["name"], "sum": a + b}


async def failing(inputs: dict[str, Any], ctx: Any) -> None:
    await ctx.task(step, {"name": "f", "n": 1})
    await ctx.task(boom, {"message": inputs["message"]})


async def waiting(inputs: dict[str, Any], ctx: Any) -> Any:
    got = await ctx.task(review, {"item": inputs["item"]})
    return {"reviewed": got}


async def parent(inputs: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """A step, one child, a step."""
    first = await ctx.task(step, {"name": "p", "n": 1})
    child = await ctx.run_child(leaf, {"name": "c", "n": 2})
    last = await ctx.task(step, {"name": "p", "n": 3})
    return {"first": first, "child": child, "last": last}


async def catches(inputs: dict[str, Any], ctx: Any) -> dict[str, Any]:
    from replay_engine import ChildRunFailed

    try:
        await ctx.run_child(failing, {"message": "bad input"})
    except ChildRunFailed as exc:
        return {"caught": exc.error_type, "message": exc.message}
    return {"caught": None}


async def waits_on_child(inputs: dict[str, Any], ctx: Any) -> dict[str, Any]:
    got = await ctx.run_child(waiting, {"item": "x"})
    return {"child": got}


async def middle(inputs: dict[str, Any], ctx: Any) -> dict[str, Any]:
    inner = await ctx.run_child(leaf, {"name": f"m{inputs['i']}", "n": inputs["i"]})
    return {"inner": inner}


async def grand(inputs: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """Children that start children."""
    a = await ctx.run_child(middle, {"i": 1})
    return {"a": a}


async def fan(inputs: dict[str, Any], ctx: Any) -> list[Any]:
    """A parallel map over children."""
    return list(
        await ctx.parallel.map(
            list(range(inputs["n"])),
            lambda i: ctx.run_child(leaf, {"name": f"f{i}", "n": i}),
            limit=inputs.get("limit"),
        )
    )


async def named_twice(inputs: dict[str, Any], ctx: Any) -> list[Any]:
    """Two branches await one child by its run id."""
    return list(
        await ctx.parallel.all(
            [
                lambda: ctx.run_child(leaf, {"name": "s", "n": 5}, run_id=inputs["id"]),
                lambda: ctx.run_child(leaf, {"name": "s", "n": 5}, run_id=inputs["id"]),
            ]
        )
    )


async def named(inputs: dict[str, Any], ctx: Any) -> Any:
    return await ctx.run_child(leaf, {"name": "n", "n": 1}, run_id=inputs["id"])
