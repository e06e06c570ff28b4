"""What a type checker sees of tasks, ctx.task and ctx.call (checked by test_mypy).

A comment ``R: T`` ending a ``reveal_type`` line: the revealed type must be T;
``E: text``: mypy must report an error on that line containing ``text``. Any
other error fails the test.
"""

from typing import Any, reveal_type

from replay_engine import Context, TaskDef, external, task


@task
def add(a: int, b: int = 2) -> int:
    return a + b


@task(retries=2, timeout=5.0)
async def fetch(url: str, *, tries: int = 1) -> dict[str, int]:
    return {url: tries}


@external(kind="agent")
def review(diff: str) -> bool:
    """Posted back by an agent; the body documents the signature."""
    raise NotImplementedError


@external
def approve(title: str) -> str:
    raise NotImplementedError


def plain(n: int) -> list[str]:
    return [str(n)]


async def process(inputs: dict[str, Any], ctx: Context) -> int:
    reveal_type(add)  # R: replay_engine._run.tasks.TaskDef[[a: int, b: int =], int]
    reveal_type(add(1))  # R: int
    reveal_type(await ctx.task(add, {"a": 1}))  # R: int
    reveal_type(await ctx.task(fetch, {"url": "u"}))  # R: dict[str, int]
    reveal_type(await ctx.task(review, {"diff": "d"}))  # R: bool
    reveal_type(await ctx.task(approve, {"title": "t"}))  # R: str
    reveal_type(await ctx.task(plain, {"n": 1}))  # R: list[str]
    reveal_type(ctx.task(add, {"a": 1}))  # R: typing.Awaitable[int]
    reveal_type(await ctx.call(add)(1, b=3))  # R: int
    reveal_type(await ctx.call(fetch)("u", tries=2))  # R: dict[str, int]
    reveal_type(await ctx.call(review)(diff="d"))  # R: bool
    reveal_type(await ctx.call(plain)(n=4))  # R: list[str]
    reveal_type(ctx.call(add))  # R: def (a: int, b: int =) -> typing.Awaitable[int]
    fanned = await ctx.parallel.map([1, 2], lambda n: ctx.call(add)(a=n))
    reveal_type(fanned)  # R: list[int]
    pair = await ctx.parallel.all([lambda: ctx.task(add, {"a": 1})])
    reveal_type(pair)  # R: list[int]
    reveal_type(ctx.now())  # R: datetime.datetime
    return await ctx.task(add, {"a": 1})


async def wrong(inputs: dict[str, Any], ctx: Context) -> None:
    await ctx.call(add)(a="one")  # E: Argument "a" has incompatible type "str"
    await ctx.call(add)(c=1)  # E: Unexpected keyword argument "c"
    await ctx.call(add)()  # E: Too few arguments
    await ctx.call(fetch)("u", 2)  # E: Too many positional arguments
    await ctx.call(review)(diff=b"x")  # E: "diff" has incompatible type "bytes"
    await ctx.task(add, [1, 2])  # E: No overload variant of "task" of "Context"
    n: str = await ctx.task(add, {"a": 1})  # E: type "TaskDef[[int, int], int]"
    s: str = await ctx.call(fetch)("u")  # E: Incompatible types in assignment
    add("1")  # E: Argument 1 to "__call__" of "TaskDef" has incompatible type
    await fetch(url=3)  # E: Argument "url" to "__call__" of "TaskDef"
    del n, s


def typed_defs() -> None:
    t: TaskDef[[int], int] = task(lambda x: x)
    reveal_type(t)  # R: replay_engine._run.tasks.TaskDef[[int], int]
