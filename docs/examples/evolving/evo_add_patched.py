from typing import Any

from evo_tasks import fetch, finish, lint, run_tests

from replay_engine import Context


async def add_patched(inputs: dict[str, Any], ctx: Context) -> object:
    code = await ctx.task(fetch, {"repo": inputs["repo"]})
    if ctx.patched("add-lint"):
        await ctx.task(lint, {"code": code})
    report = await ctx.task(run_tests, {"code": code})
    return await finish(inputs, ctx, report)
