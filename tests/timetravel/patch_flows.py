"""Processes for the ``ctx.patched`` tests: one process in its versions.

``v1`` is the code runs were recorded with; ``v2`` adds a step behind
``ctx.patched("extra")``; ``v3`` retires the patch with ``deprecate_patch``.
Each is a separate function so one test can record with one and replay or
resume with another (``process=``), as a deploy would.
"""

from __future__ import annotations

from typing import Any

from replay_engine import external, task

CALLS: list[str] = []
"""Every task body that ran in this process, in order (nothing may re-run)."""


@task(name="pf.step")
def step(n: int) -> int:
    CALLS.append(f"step:{n}")
    return n * 10


@task(name="pf.extra")
def extra(n: int) -> int:
    CALLS.append(f"extra:{n}")
    return n + 1000


@external(kind="agent", name="pf.ask")
def ask(question: str) -> Any:
    """Answered by a post."""


async def v1(inputs: dict[str, Any], ctx: Any) -> list[Any]:
    a = await ctx.task(step, {"n": 1})
    b = await ctx.task(step, {"n": 2})
    if inputs.get("ask"):
        b = await ctx.task(ask, {"question": "go?"})
    return [a, b]


async def v2(inputs: dict[str, Any], ctx: Any) -> list[Any]:
    a = await ctx.task(step, {"n": 1})
    if ctx.patched("extra"):
        a = await ctx.task(extra, {"n": a})
    b = await ctx.task(step, {"n": 2})
    if inputs.get("ask"):
        b = await ctx.task(ask, {"question": "go?"})
    return [a, b]


async def v3(inputs: dict[str, Any], ctx: Any) -> list[Any]:
    a = await ctx.task(step, {"n": 1})
    ctx.deprecate_patch("extra")
    a = await ctx.task(extra, {"n": a})
    b = await ctx.task(step, {"n": 2})
    if inputs.get("ask"):
        b = await ctx.task(ask, {"question": "go?"})
    return [a, b]


async def ask_first_v1(inputs: dict[str, Any], ctx: Any) -> list[Any]:
    """Waits on its first call: a run of it has recorded nothing past key 0."""
    a = await ctx.task(ask, {"question": "start?"})
    b = await ctx.task(step, {"n": 2})
    return [a, b]


async def ask_first_v2(inputs: dict[str, Any], ctx: Any) -> list[Any]:
    a = await ctx.task(ask, {"question": "start?"})
    if ctx.patched("extra"):
        a = await ctx.task(extra, {"n": 7})
    b = await ctx.task(step, {"n": 2})
    return [a, b]


async def branches_v2(inputs: dict[str, Any], ctx: Any) -> list[Any]:
    async def one(n: int) -> Any:
        if ctx.patched("extra"):
            return await ctx.task(extra, {"n": n})
        return await ctx.task(step, {"n": n})

    return list(await ctx.parallel.map([1, 2, 3], one))


async def reused_v2(inputs: dict[str, Any], ctx: Any) -> list[Any]:
    """The same id at two places: fine while they agree."""
    a = await ctx.task(step, {"n": 1})
    if ctx.patched("extra"):
        a = await ctx.task(extra, {"n": a})
    b = await ctx.task(step, {"n": 2})
    if ctx.patched("extra"):
        b = await ctx.task(extra, {"n": b})
    return [a, b]


async def reused_late_v2(inputs: dict[str, Any], ctx: Any) -> list[Any]:
    """``extra`` reused *before* the place a run recorded it at: they disagree."""
    if ctx.patched("extra"):
        await ctx.task(extra, {"n": 0})
    return await v2(inputs, ctx)


async def bad_id(inputs: dict[str, Any], ctx: Any) -> bool:
    return bool(ctx.patched(inputs["id"]))
