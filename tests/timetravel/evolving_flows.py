"""The worked examples of docs/evolving-code.md, as code the tests run.

Each example is a process in versions: ``*_v1`` is what the stored runs were
recorded with, ``*_v2`` the change made naively, ``*_patched`` the same change
guarded by ``ctx.patched`` (or, for the safe cases, nothing more). Every
process ends by waiting for an approval when ``inputs["wait"]`` is set, so the
tests have both completed runs and runs still waiting when the code changes.
"""

from __future__ import annotations

from typing import Any

from replay_engine import external, task


@task(name="evo.fetch")
def fetch(repo: str) -> str:
    return f"code of {repo}"


@task(name="evo.lint")
def lint(code: str) -> str:
    return "lint ok"


@task(name="evo.test")
def run_tests(code: str, level: int = 1) -> str:
    return f"tests ok at level {level}"


@task(name="evo.test")  # the same task, reimplemented: same name, same args
def run_tests_faster(code: str, level: int = 1) -> str:
    return f"tests ok at level {level}"  # (imagine a faster runner here)


@task(name="evo.check")  # renamed: a different task as far as the journal knows
def check(code: str, level: int = 1) -> str:
    return f"tests ok at level {level}"


@task(name="evo.test")  # renamed in Python only: the journal's name is kept
def check_pinned(code: str, level: int = 1) -> str:
    return f"tests ok at level {level}"


@external(kind="person", name="evo.approve")
def approve(report: Any) -> Any:
    """Answered by a post."""


async def _finish(inputs: dict[str, Any], ctx: Any, report: Any) -> Any:
    if inputs.get("wait"):
        return await ctx.task(approve, {"report": report})
    return report


# -- 1. add a step -----------------------------------------------------------


async def add_v1(inputs: dict[str, Any], ctx: Any) -> Any:
    code = await ctx.task(fetch, {"repo": inputs["repo"]})
    report = await ctx.task(run_tests, {"code": code})
    return await _finish(inputs, ctx, report)


async def add_v2(inputs: dict[str, Any], ctx: Any) -> Any:
    code = await ctx.task(fetch, {"repo": inputs["repo"]})
    await ctx.task(lint, {"code": code})  # new step: shifts every later key
    report = await ctx.task(run_tests, {"code": code})
    return await _finish(inputs, ctx, report)


async def add_patched(inputs: dict[str, Any], ctx: Any) -> Any:
    code = await ctx.task(fetch, {"repo": inputs["repo"]})
    if ctx.patched("add-lint"):
        await ctx.task(lint, {"code": code})
    report = await ctx.task(run_tests, {"code": code})
    return await _finish(inputs, ctx, report)


async def add_deprecated(inputs: dict[str, Any], ctx: Any) -> Any:
    code = await ctx.task(fetch, {"repo": inputs["repo"]})
    ctx.deprecate_patch("add-lint")
    await ctx.task(lint, {"code": code})
    report = await ctx.task(run_tests, {"code": code})
    return await _finish(inputs, ctx, report)


# -- 2. remove a step --------------------------------------------------------


async def remove_v1(inputs: dict[str, Any], ctx: Any) -> Any:
    code = await ctx.task(fetch, {"repo": inputs["repo"]})
    await ctx.task(lint, {"code": code})
    report = await ctx.task(run_tests, {"code": code})
    return await _finish(inputs, ctx, report)


async def remove_v2(inputs: dict[str, Any], ctx: Any) -> Any:
    code = await ctx.task(fetch, {"repo": inputs["repo"]})
    report = await ctx.task(run_tests, {"code": code})
    return await _finish(inputs, ctx, report)


async def remove_patched(inputs: dict[str, Any], ctx: Any) -> Any:
    code = await ctx.task(fetch, {"repo": inputs["repo"]})
    if not ctx.patched("drop-lint"):
        await ctx.task(lint, {"code": code})
    report = await ctx.task(run_tests, {"code": code})
    return await _finish(inputs, ctx, report)


# -- 3. change a call's args -------------------------------------------------


async def args_v1(inputs: dict[str, Any], ctx: Any) -> Any:
    code = await ctx.task(fetch, {"repo": inputs["repo"]})
    report = await ctx.task(run_tests, {"code": code, "level": 1})
    return await _finish(inputs, ctx, report)


async def args_v2(inputs: dict[str, Any], ctx: Any) -> Any:
    code = await ctx.task(fetch, {"repo": inputs["repo"]})
    report = await ctx.task(run_tests, {"code": code, "level": 2})
    return await _finish(inputs, ctx, report)


async def args_patched(inputs: dict[str, Any], ctx: Any) -> Any:
    code = await ctx.task(fetch, {"repo": inputs["repo"]})
    level = 2 if ctx.patched("strict-tests") else 1
    report = await ctx.task(run_tests, {"code": code, "level": level})
    return await _finish(inputs, ctx, report)


# -- 4. reorder parallel branches --------------------------------------------


async def reorder_v1(inputs: dict[str, Any], ctx: Any) -> Any:
    code = await ctx.task(fetch, {"repo": inputs["repo"]})
    lint_report, test_report = await ctx.parallel.all(
        [
            lambda: ctx.task(lint, {"code": code}),
            lambda: ctx.task(run_tests, {"code": code}),
        ]
    )
    return await _finish(inputs, ctx, [lint_report, test_report])


async def reorder_v2(inputs: dict[str, Any], ctx: Any) -> Any:
    code = await ctx.task(fetch, {"repo": inputs["repo"]})
    test_report, lint_report = await ctx.parallel.all(
        [
            lambda: ctx.task(run_tests, {"code": code}),
            lambda: ctx.task(lint, {"code": code}),
        ]
    )
    return await _finish(inputs, ctx, [lint_report, test_report])


async def reorder_patched(inputs: dict[str, Any], ctx: Any) -> Any:
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
    return await _finish(inputs, ctx, [lint_report, test_report])


# -- 5. change a task's implementation only (safe) ---------------------------


async def impl_v2(inputs: dict[str, Any], ctx: Any) -> Any:
    """``add_v1`` with ``evo.test`` reimplemented: the same calls."""
    code = await ctx.task(fetch, {"repo": inputs["repo"]})
    report = await ctx.task(run_tests_faster, {"code": code})
    return await _finish(inputs, ctx, report)


# -- 6. rename a task --------------------------------------------------------


async def rename_v2(inputs: dict[str, Any], ctx: Any) -> Any:
    """``add_v1`` with ``evo.test`` renamed ``evo.check``."""
    code = await ctx.task(fetch, {"repo": inputs["repo"]})
    report = await ctx.task(check, {"code": code})
    return await _finish(inputs, ctx, report)


async def rename_pinned(inputs: dict[str, Any], ctx: Any) -> Any:
    """The Python function renamed, its task name (the journal's) kept."""
    code = await ctx.task(fetch, {"repo": inputs["repo"]})
    report = await ctx.task(check_pinned, {"code": code})
    return await _finish(inputs, ctx, report)


async def rename_patched(inputs: dict[str, Any], ctx: Any) -> Any:
    """A real rename, old runs keeping the old name."""
    code = await ctx.task(fetch, {"repo": inputs["repo"]})
    tests = check if ctx.patched("rename-check") else run_tests
    report = await ctx.task(tests, {"code": code})
    return await _finish(inputs, ctx, report)
