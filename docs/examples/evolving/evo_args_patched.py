from typing import Any

from evo_tasks import fetch, finish, run_tests

from replay_engine import Context


async def args_patched(inputs: dict[str, Any], ctx: Context) -> object:
    code = await ctx.task(fetch, {"repo": inputs["repo"]})
    level = 2 if ctx.patched("strict-tests") else 1
    report = await ctx.task(run_tests, {"code": code, "level": level})
    return await finish(inputs, ctx, report)
