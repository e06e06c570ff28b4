"""``replay-engine check`` rules of issue 15: RE113 a task called directly, RE114 a
ctx call never awaited, RE115 module-level state written by a process (RE116 is
in ``test_check_follow.py``).

Each test writes a small package to ``tmp_path`` and checks its process, so the
checker reads real files as it does for users.
"""

from __future__ import annotations

from replay_engine.check import check_process

from .user_packages import Write, found, package

__all__ = ["package"]  # the fixture, used by name


# -- RE113: a task called directly ----------------------------------------------------

STEPS = """
from replay_engine import external, task

@task
def step(n):
    return n * 2

@external(kind="agent")
def review(diff):
    ...
"""


def test_calling_a_task_directly_is_flagged(package: Write) -> None:
    flows = package(
        {
            "steps": STEPS,
            "flows": """\
            from replay_engine import task
            from . import steps
            from .steps import step

            @task
            def local_step(n):
                return n

            async def process(inputs, ctx):
                a = step(n=3)
                b = steps.review(diff="x")
                c = local_step(1)
                d = await ctx.task(step, {"n": 3})
                return [a, b, c, d]
            """,
        }
    )
    findings = check_process(flows.process)
    assert [(f.code, f.line) for f in findings] == [
        ("RE113", 10),
        ("RE113", 11),
        ("RE113", 12),
    ]
    assert "step(...) calls a @task directly" in findings[0].message
    assert "steps.review(...) calls a @external directly" in findings[1].message
    assert findings[0].replacement.startswith("await ctx.task(step,")


def test_a_local_name_shadowing_a_task_is_not_flagged(package: Write) -> None:
    flows = package(
        {
            "steps": STEPS,
            "flows": """\
            from .steps import step

            async def process(inputs, ctx):
                step = lambda n: n + 1
                return step(2) + await ctx.task(print, {})
            """,
        }
    )
    assert found(flows) == []


# -- RE114: a ctx call nobody awaits ----------------------------------------------


def test_unawaited_ctx_calls_are_flagged(package: Write) -> None:
    flows = package(
        {
            "flows": """\
            async def process(inputs, context):
                context.task(print, {"x": 1})
                context.parallel.all([lambda: context.task(print, {})])
                forgotten = context.task(print, {"x": 2})
                context.sleep(5)
                kept = context.task(print, {"x": 3})
                both = [context.task(print, {}), context.task(print, {})]
                context.call(print)(x=5)
                await context.parallel.all([lambda: kept])
                return await context.task(print, {"x": 4})
            """,
        }
    )
    findings = check_process(flows.process)
    assert [(f.code, f.line) for f in findings] == [
        ("RE114", 2),
        ("RE114", 3),
        ("RE114", 4),
        ("RE114", 5),
        ("RE114", 8),
    ]
    assert findings[0].message.startswith("context.task(...) is never awaited")
    assert findings[4].message.startswith("context.call(...)(...) is never awaited")
    assert "context.parallel.all(...)" in findings[1].message


def test_awaited_and_returned_ctx_calls_are_not_flagged(package: Write) -> None:
    flows = package(
        {
            "flows": """\
            import asyncio

            def later(ctx, n):
                return ctx.task(print, {"n": n})   # the caller awaits it

            async def process(inputs, ctx):
                first = ctx.task(print, {})
                a = await first
                b = await later(ctx, 1)
                c = await ctx.parallel.map([1, 2], lambda n: ctx.task(print, {"n": n}))
                d = await asyncio.gather(ctx.task(print, {}), ctx.task(print, {}))
                return [a, b, c, d]
            """,
        }
    )
    assert found(flows) == []


# -- RE115: module-level state ---------------------------------------------


def test_writes_to_module_level_state_are_flagged(package: Write) -> None:
    flows = package(
        {
            "flows": """\
            COUNT = 0
            SEEN: list[int] = []
            CACHE = {}
            LIMIT = 10

            def remember(k, v):
                CACHE[k] = v

            async def process(inputs, ctx):
                global COUNT
                COUNT = COUNT + 1
                SEEN.append(inputs["n"])
                remember("k", await ctx.task(print, {}))
                mine = []
                mine.append(LIMIT)
                return mine
            """,
        }
    )
    findings = check_process(flows.process)
    assert [(f.code, f.line) for f in findings] == [
        ("RE115", 7),
        ("RE115", 11),
        ("RE115", 12),
    ]
    assert "the module-level 'CACHE'" in findings[0].message
    assert findings[0].function.endswith(".remember")
    assert "assigns (through `global`) the module-level 'COUNT'" in findings[1].message
    assert "calls .append() on the module-level 'SEEN'" in findings[2].message


def test_writes_to_state_imported_from_another_module_are_flagged(
    package: Write,
) -> None:
    flows = package(
        {
            "state": """\
            import collections
            SEEN = []
            COUNTS = collections.Counter()
            NAME = "fixed"
            """,
            "flows": """\
            from .state import COUNTS, NAME, SEEN

            async def process(inputs, ctx):
                SEEN.append(NAME)
                COUNTS["runs"] += 1
                return await ctx.task(print, {})
            """,
        }
    )
    assert found(flows) == [("RE115", 4), ("RE115", 5)]


def test_locals_shadowing_module_names_and_closures_are_not_flagged(
    package: Write,
) -> None:
    flows = package(
        {
            "flows": """\
            CACHE = {}

            async def process(inputs, ctx):
                CACHE = {}
                CACHE["k"] = 1
                results = []
                async def branch(n):
                    results.append(n)
                    return n
                await ctx.parallel.all([lambda: branch(1)])
                return CACHE, results
            """,
        }
    )
    assert found(flows) == []
