from typing import Any

from evo_tasks import fetch, finish

from replay_engine import Context, task


@task(name="evo.test")  # the same name and args, a new body
def run_tests_faster(code: str, level: int = 1) -> str:
    return f"tests ok at level {level}"  # (imagine a faster runner here)


async def impl_v2(inputs: dict[str, Any], ctx: Context) -> object:
    code = await ctx.task(fetch, {"repo": inputs["repo"]})
    report = await ctx.task(run_tests_faster, {"code": code})  # was run_tests
    return await finish(inputs, ctx, report)
