"""Processes for tests/engine/test_typed.py and tests/crash (issue 15, typed values).

Each typed process returns a *description* of what it received — every value's
type and repr — so a test compares what a live execution saw with what a replay
(or a resume after SIGKILL) saw, although the process result itself crosses
the journal as msgpack.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import uuid
from typing import Any

import msgspec

from replay_engine import Context, external, task

SIDE_ENV = "TYPED_FLOWS_SIDE"


def _note(what: str) -> None:
    """Append a line to the side file (dispatches seen from outside the journal)."""
    path = os.environ.get(SIDE_ENV)
    if path:
        with open(path, "a") as side:
            side.write(what + "\n")


@dataclasses.dataclass
class Point:
    x: int
    when: dt.date
    span: tuple[int, int]


class Tag(msgspec.Struct):
    names: frozenset[str]
    at: dt.datetime


class Verdict(msgspec.Struct):
    ok: bool
    reviewer: str


WHEN = dt.datetime(2026, 5, 4, 3, 2, 1, tzinfo=dt.UTC)


@task
def move(p: Point, by: tuple[int, int], when: dt.datetime) -> Point:
    _note("move")
    # The task receives the annotated types, not lists and strings.
    assert isinstance(p, Point) and isinstance(p.when, dt.date), p
    assert isinstance(p.span, tuple) and isinstance(by, tuple), (p, by)
    assert isinstance(when, dt.datetime), when
    return Point(p.x + by[0], p.when + dt.timedelta(days=by[1]), (p.span[1], p.x))


@task
async def tag(names: set[str], at: dt.datetime) -> Tag:
    _note("tag")
    assert isinstance(names, set) and isinstance(at, dt.datetime), (names, at)
    return Tag(frozenset(names), at)


@task(executor="process")
def ident(n: int) -> tuple[uuid.UUID, dt.date]:
    _note("ident")
    return (uuid.UUID(int=n), dt.date(2026, 1, n))


@task
def untyped(x):  # type: ignore[no-untyped-def]
    _note("untyped")
    return {"got": type(x).__name__, "x": x}


@task
def pair(a: int, b: str = "b") -> tuple[int, str]:
    return (a, b)


@external(kind="agent")
def review(diff: str) -> Verdict:
    raise NotImplementedError


def describe(value: Any) -> Any:
    """Types and reprs, deep enough to tell a tuple from a list."""
    return f"{type(value).__name__}:{value!r}"


async def typed_process(inputs: dict[str, Any], ctx: Context) -> list[Any]:
    start = Point(1, dt.date(2026, 2, 28), (0, 1))
    moved = await ctx.task(move, {"p": start, "by": (2, 1), "when": WHEN})
    again = await ctx.call(move)(moved, (1, 1), when=WHEN)
    tagged = await ctx.call(tag)({"b", "a"}, at=WHEN)
    ids = await ctx.parallel.map([1, 2], ctx.call(ident))  # each call in its branch
    plain = await ctx.task(untyped, {"x": (1, 2)})
    return [describe(v) for v in (moved, again, tagged, ids, plain)]


async def external_process(inputs: dict[str, Any], ctx: Context) -> str:
    verdict = await ctx.call(review)(diff="+1 line")
    return describe(verdict)


async def bad_argument(inputs: dict[str, Any], ctx: Context) -> Any:
    # inputs come from JSON (`run --input`): "when" may be any string.
    return await ctx.task(
        move,
        {
            "p": {"x": 1, "when": "2026-01-01", "span": [0, 1]},
            "by": [1, 1],
            "when": inputs["when"],
        },
    )


@task
def wrong_result() -> Point:
    return "not a point"  # type: ignore[return-value]


async def bad_result(inputs: dict[str, Any], ctx: Context) -> Any:
    return await ctx.task(wrong_result)


async def same_calls_task_form(inputs: dict[str, Any], ctx: Context) -> Any:
    first = await ctx.task(pair, {"a": 1})
    second = await ctx.task(pair, {"a": 2, "b": "c"})
    return [describe(first), describe(second)]


async def same_calls_call_form(inputs: dict[str, Any], ctx: Context) -> Any:
    first = await ctx.call(pair)(1)
    second = await ctx.call(pair)(2, b="c")
    return [describe(first), describe(second)]
