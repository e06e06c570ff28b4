"""The worked examples of docs/evolving-code.md, as code the tests run.

Each example is a process in versions: ``*_v1`` is what the stored runs were
recorded with, ``*_v2`` the change made naively, ``*_patched`` the same change
guarded by ``ctx.patched`` (or, for the safe cases, nothing more). Every
process ends by waiting for an approval when ``inputs["wait"]`` is set, so the
tests have both completed runs and runs still waiting when the code changes.

The versions the guide shows are its example files (``docs/examples/evolving/``,
on the path through pytest's ``pythonpath``), imported here rather than copied:
the guide includes those files verbatim and ``tests/typing`` type-checks them,
so the code the guide shows is the code these tests run. The versions it only
describes in prose are written below.
"""

from __future__ import annotations

from typing import Any

from evo_add import add_v1, add_v2
from evo_add_deprecated import add_deprecated
from evo_add_patched import add_patched
from evo_args_patched import args_patched
from evo_impl import impl_v2, run_tests_faster
from evo_remove import remove_v1
from evo_remove_patched import remove_patched
from evo_rename_patched import check, rename_patched
from evo_rename_pinned import check_pinned, rename_pinned
from evo_reorder_patched import reorder_patched
from evo_tasks import approve, fetch, finish, lint, run_tests

from replay_engine import Context

__all__ = [
    "add_deprecated",
    "add_patched",
    "add_v1",
    "add_v2",
    "approve",
    "args_patched",
    "args_v1",
    "args_v2",
    "check",
    "check_pinned",
    "fetch",
    "finish",
    "impl_v2",
    "lint",
    "remove_patched",
    "remove_v1",
    "remove_v2",
    "rename_patched",
    "rename_pinned",
    "rename_v2",
    "reorder_patched",
    "reorder_v1",
    "reorder_v2",
    "run_tests",
    "run_tests_faster",
]


# -- 2. remove a step: the naive change ---------------------------------------


async def remove_v2(inputs: dict[str, Any], ctx: Context) -> object:
    code = await ctx.task(fetch, {"repo": inputs["repo"]})
    report = await ctx.task(run_tests, {"code": code})
    return await finish(inputs, ctx, report)


# -- 3. change a call's args: the old code and the naive change ---------------


async def args_v1(inputs: dict[str, Any], ctx: Context) -> object:
    code = await ctx.task(fetch, {"repo": inputs["repo"]})
    report = await ctx.task(run_tests, {"code": code, "level": 1})
    return await finish(inputs, ctx, report)


async def args_v2(inputs: dict[str, Any], ctx: Context) -> object:
    code = await ctx.task(fetch, {"repo": inputs["repo"]})
    report = await ctx.task(run_tests, {"code": code, "level": 2})
    return await finish(inputs, ctx, report)


# -- 4. reorder parallel branches: the old code and the naive change ----------


async def reorder_v1(inputs: dict[str, Any], ctx: Context) -> object:
    code = await ctx.task(fetch, {"repo": inputs["repo"]})
    lint_report, test_report = await ctx.parallel.all(
        [
            lambda: ctx.task(lint, {"code": code}),
            lambda: ctx.task(run_tests, {"code": code}),
        ]
    )
    return await finish(inputs, ctx, [lint_report, test_report])


async def reorder_v2(inputs: dict[str, Any], ctx: Context) -> object:
    code = await ctx.task(fetch, {"repo": inputs["repo"]})
    test_report, lint_report = await ctx.parallel.all(
        [
            lambda: ctx.task(run_tests, {"code": code}),
            lambda: ctx.task(lint, {"code": code}),
        ]
    )
    return await finish(inputs, ctx, [lint_report, test_report])


# -- 6. rename a task: the naive rename ---------------------------------------


async def rename_v2(inputs: dict[str, Any], ctx: Context) -> object:
    """``add_v1`` with ``evo.test`` renamed ``evo.check``."""
    code = await ctx.task(fetch, {"repo": inputs["repo"]})
    report = await ctx.task(check, {"code": code})
    return await finish(inputs, ctx, report)
