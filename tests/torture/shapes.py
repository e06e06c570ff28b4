"""Random process shapes, and one generic process that interprets them.

A *shape* is a small tree, in JSON-able lists so it can be a run's inputs:

=============================  ==================================================
``["task", kind, n]``          ``ctx.task`` of a leaf task (kinds below)
``["seq", [node, ...]]``       children one after another; each child's salt
                               depends on the results before it
``["all", [node, ...]]``       ``ctx.parallel.all`` of the children
``["map", count, node, lim]``  ``ctx.parallel.map`` over ``range(count)``
``["try", node]``              the child, with ``TaskFailed`` caught
``["value", what]``            ``ctx.uuid()``, ``ctx.random()`` or ``ctx.now()``
``["log", n]``                 ``ctx.log``
``["sleep"]``                  ``ctx.sleep(0.001)``
=============================  ==================================================

Leaf tasks are deterministic functions of their args (and, for the flaky one,
of the attempt number), so the interpreter is a deterministic process and any
difference between executions is the engine's.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from hypothesis import strategies as st

from replay_engine import TaskFailed, task, task_context


def _value(n: int, salt: int) -> int:
    return (n * 7919 + salt * 104729) % 10007


@task
def leaf_sync(n: int, salt: int) -> int:
    return _value(n, salt)


@task
async def leaf_async(n: int, salt: int) -> int:
    await asyncio.sleep(((n + salt) % 3) * 0.001)
    return _value(n, salt)


@task(executor="inline")
def leaf_inline(n: int, salt: int) -> int:
    return _value(n, salt)


@task
def leaf_fail(n: int, salt: int) -> int:
    raise ValueError(f"leaf {n}/{salt} fails")


@task(retries=2)
def leaf_flaky(n: int, salt: int) -> int:
    if task_context().attempt < 2:
        raise RuntimeError(f"leaf {n}/{salt} flakes once")
    return _value(n, salt)


LEAVES = {
    "sync": leaf_sync,
    "async": leaf_async,
    "inline": leaf_inline,
    "fail": leaf_fail,
    "flaky": leaf_flaky,
}


def fold(salt: int, index: int, value: Any = None) -> int:
    """A new salt from the old one, a position and a result (stable everywhere)."""
    data = f"{salt}/{index}/{value!r}".encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=4).digest(), "big")


async def run_node(ctx: Any, node: list[Any], salt: int) -> Any:
    """Interpret one node of a shape."""
    kind = node[0]
    if kind == "task":
        return await ctx.task(LEAVES[node[1]], {"n": node[2], "salt": salt})
    if kind == "seq":
        out = []
        for index, child in enumerate(node[1]):
            value = await run_node(ctx, child, salt)
            out.append(value)
            salt = fold(salt, index, value)
        return out
    if kind == "all":
        return await ctx.parallel.all(
            [
                lambda child=child, j=j: run_node(ctx, child, fold(salt, j))
                for j, child in enumerate(node[1])
            ]
        )
    if kind == "map":
        _, count, child, limit = node
        return await ctx.parallel.map(
            range(count),
            lambda i: run_node(ctx, child, fold(salt, 100 + i)),
            limit=limit,
        )
    if kind == "try":
        try:
            return await run_node(ctx, node[1], salt)
        except TaskFailed as exc:
            return f"caught {exc.error_type}: {exc.message}"
    if kind == "value":
        if node[1] == "uuid":
            return str(ctx.uuid())
        if node[1] == "random":
            return ctx.random().randint(0, 999)
        return ctx.now().isoformat()
    if kind == "log":
        ctx.log("node", n=node[1], salt=salt)
        return node[1]
    if kind == "sleep":
        await ctx.sleep(0.001)
        return "slept"
    raise ValueError(f"unknown node {node!r}")


async def interpret(inputs: dict[str, Any], ctx: Any) -> Any:
    """The process: interpret ``inputs["shape"]``."""
    return await run_node(ctx, inputs["shape"], inputs.get("salt", 0))


# -- strategies --------------------------------------------------------------------

_leaf = st.one_of(
    st.builds(
        lambda kind, n: ["task", kind, n],
        st.sampled_from(["sync", "async", "inline"] * 3 + ["fail", "flaky"]),
        st.integers(0, 9),
    ),
    st.sampled_from([["value", "uuid"], ["value", "random"], ["value", "now"]]),
    st.builds(lambda n: ["log", n], st.integers(0, 9)),
    st.just(["sleep"]),
)


def _extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    many = st.lists(children, min_size=1, max_size=5)
    return st.one_of(
        many.map(lambda c: ["seq", c]),
        many.map(lambda c: ["all", c]),
        st.builds(
            lambda count, child, limit: ["map", count, child, limit],
            st.integers(0, 6),
            children,
            st.none() | st.integers(1, 3),
        ),
        children.map(lambda c: ["try", c]),
    )


def shapes(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Process shapes with at most ``max_leaves`` leaves (a ``seq`` at the root)."""
    tree = st.recursive(_leaf, _extend, max_leaves=max_leaves)
    return st.lists(tree, min_size=1, max_size=6).map(lambda c: ["seq", c])


def size(shape: Any) -> int:
    """Leaves in a shape (for statistics)."""
    if not isinstance(shape, list):
        return 0
    if shape[0] in ("seq", "all"):
        return sum(size(c) for c in shape[1])
    if shape[0] == "map":
        return max(1, shape[1]) * size(shape[2])
    if shape[0] == "try":
        return size(shape[1])
    return 1
