from typing import Any

from replay_engine import Context, task


@task
def lint(files: list[str]) -> list[str]:
    return []


@task
def run_tests(files: list[str]) -> bool:
    return True


async def process(inputs: dict[str, Any], ctx: Context) -> bool:
    files: list[str] = inputs["files"]
    if ctx.patched("add-lint"):  # new runs: True (a marker is recorded)
        await ctx.task(lint, {"files": files})  # older runs: False, the old path
    return await ctx.task(run_tests, {"files": files})
