from typing import Any

from evo_tasks import fetch, finish

from replay_engine import Context, task


@task(name="evo.test")  # renamed in Python only: the journal's name is kept
def check_pinned(code: str, level: int = 1) -> str:
    return f"tests ok at level {level}"


async def rename_pinned(inputs: dict[str, Any], ctx: Context) -> object:
    code = await ctx.task(fetch, {"repo": inputs["repo"]})
    report = await ctx.task(check_pinned, {"code": code})  # was run_tests
    return await finish(inputs, ctx, report)
