from typing import Any

from evo_tasks import fetch, finish, lint, run_tests

from replay_engine import Context


async def add_v1(inputs: dict[str, Any], ctx: Context) -> object:
    code = await ctx.task(fetch, {"repo": inputs["repo"]})
    report = await ctx.task(run_tests, {"code": code})
    return await finish(inputs, ctx, report)


async def add_v2(inputs: dict[str, Any], ctx: Context) -> object:  # naive
    code = await ctx.task(fetch, {"repo": inputs["repo"]})
    await ctx.task(lint, {"code": code})  # new step: shifts every later key
    report = await ctx.task(run_tests, {"code": code})
    return await finish(inputs, ctx, report)
