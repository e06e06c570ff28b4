from typing import Any

from evo_tasks import fetch, finish, lint, run_tests

from replay_engine import Context


async def reorder_patched(inputs: dict[str, Any], ctx: Context) -> object:
    code = await ctx.task(fetch, {"repo": inputs["repo"]})
    if ctx.patched("tests-first"):
        test_report, lint_report = await ctx.parallel.all(
            [
                lambda: ctx.task(run_tests, {"code": code}),
                lambda: ctx.task(lint, {"code": code}),
            ]
        )
    else:
        lint_report, test_report = await ctx.parallel.all(
            [
                lambda: ctx.task(lint, {"code": code}),
                lambda: ctx.task(run_tests, {"code": code}),
            ]
        )
    return await finish(inputs, ctx, [lint_report, test_report])
