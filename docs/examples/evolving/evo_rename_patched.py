from typing import Any

from evo_tasks import fetch, finish, run_tests

from replay_engine import Context, task


@task(name="evo.check")  # renamed: a different task as far as the journal knows
def check(code: str, level: int = 1) -> str:
    return f"tests ok at level {level}"


async def rename_patched(inputs: dict[str, Any], ctx: Context) -> object:
    code = await ctx.task(fetch, {"repo": inputs["repo"]})
    tests = check if ctx.patched("rename-check") else run_tests
    report = await ctx.task(tests, {"code": code})
    return await finish(inputs, ctx, report)
