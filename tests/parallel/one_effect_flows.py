"""Processes for ``test_one_effect_branches``: the same map, written three ways.

``fast_map``'s branches are each exactly one ``ctx.task`` (the lambda returns
the call), which ``parallel.refill`` runs in a shared context; ``general_map``
awaits the same call inside an ``async def`` (its own context, the general
path); ``mixed_map`` alternates the two. Their journals must be the same.
"""

from __future__ import annotations

import contextvars
from typing import Any

from replay_engine import TaskFailed, task

# What a branch's function sees of a context variable its caller set.
tag: contextvars.ContextVar[str] = contextvars.ContextVar("one_effect_tag")
SEEN: list[tuple[int, str]] = []


@task(name="one.work", retries=1)
def work(i: int) -> int:
    return i * 10


async def _one(ctx: Any, i: int) -> int:
    return await ctx.task(work, {"i": i})


async def _map(ctx: Any, inputs: dict[str, Any], fn: Any) -> Any:
    try:
        return await ctx.parallel.map(range(inputs["n"]), fn, limit=inputs["limit"])
    except TaskFailed as exc:
        return {"failed": exc.key}


async def fast_map(inputs: dict[str, Any], ctx: Any) -> Any:
    return await _map(ctx, inputs, lambda i: ctx.task(work, {"i": i}))


async def general_map(inputs: dict[str, Any], ctx: Any) -> Any:
    return await _map(ctx, inputs, lambda i: _one(ctx, i))


async def mixed_map(inputs: dict[str, Any], ctx: Any) -> Any:
    return await _map(
        ctx,
        inputs,
        lambda i: ctx.task(work, {"i": i}) if i % 2 else _one(ctx, i),
    )


def _set_then_call(ctx: Any, i: int) -> Any:
    SEEN.append((i, tag.get("unset")))
    tag.set(f"branch {i}")  # a branch's own: no sibling may see it
    return ctx.task(work, {"i": i})


async def _set_then_await(ctx: Any, i: int) -> int:
    SEEN.append((i, tag.get("unset")))
    tag.set(f"branch {i}")
    return await ctx.task(work, {"i": i})


async def setting_map(inputs: dict[str, Any], ctx: Any) -> Any:
    """Branches that set a context variable, then call (or await) one task."""
    tag.set("caller")
    one = _set_then_await if inputs["await"] else _set_then_call
    return await ctx.parallel.map(
        range(inputs["n"]), lambda i: one(ctx, i), limit=inputs["limit"]
    )
