from typing import Any

from replay_engine import Context, external, task


@task(name="evo.fetch")
def fetch(repo: str) -> str:
    return f"code of {repo}"


@task(name="evo.lint")
def lint(code: str) -> str:
    return "lint ok"


@task(name="evo.test")
def run_tests(code: str, level: int = 1) -> str:
    return f"tests ok at level {level}"


@external(kind="person", name="evo.approve")
def approve(report: object) -> str:
    """Answered by a post: `replay-engine post RUN KEY --result '"approved"'`."""
    raise NotImplementedError


async def finish(inputs: dict[str, Any], ctx: Context, report: object) -> object:
    """The report; with ``inputs["wait"]``, the approver's answer to it."""
    if inputs.get("wait"):
        return await ctx.task(approve, {"report": report})
    return report
