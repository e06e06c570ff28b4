"""Processes for replaying complete histories (imported as ``hist_flows``).

``process`` is recorded; each variant is what a later deploy might replay it
with. Tasks append to the side file named by the ``side`` input, so a test
sees that a replay dispatched nothing.
"""

from __future__ import annotations

from typing import Any

from replay_engine import external, task


def _mark(side: str | None, what: str) -> None:
    if side:
        with open(side, "a", encoding="utf-8") as fh:
            fh.write(what + "\n")


@task(name="hist.add")
def add(x: int, y: int, side: str | None = None) -> int:
    _mark(side, f"add {x} {y}")
    return x + y


@task(name="hist.fail")
def fail(reason: str, side: str | None = None) -> None:
    _mark(side, "fail")
    raise ValueError(reason)


@external(kind="agent", name="hist.review")
def review(text: str) -> dict[str, Any]:
    raise AssertionError("executed outside the engine")


async def process(inputs: Any, ctx: Any) -> dict[str, Any]:
    """Keys 0 and 1 (tasks), 2 (a parallel group: 2.0.0, 2.1.0)."""
    side = inputs.get("side")
    a = await ctx.task(add, {"x": 1, "y": 2, "side": side})
    b = await ctx.task(add, {"x": a, "y": 10, "side": side})
    pair = await ctx.parallel.all(
        [
            lambda: ctx.task(add, {"x": b, "y": 1, "side": side}),
            lambda: ctx.task(add, {"x": b, "y": 2, "side": side}),
        ]
    )
    return {"a": a, "b": b, "pair": pair}


async def extra_call(inputs: Any, ctx: Any) -> dict[str, Any]:
    """``process``, then one more call after the recorded ones (key 3)."""
    out = await process(inputs, ctx)
    out["c"] = await ctx.task(add, {"x": 0, "y": 0, "side": inputs.get("side")})
    return out


async def extra_value(inputs: Any, ctx: Any) -> dict[str, Any]:
    """``process``, then a ``ctx.now()`` the journal never recorded (key 3)."""
    out = await process(inputs, ctx)
    out["at"] = ctx.now().isoformat()
    return out


async def skips_last(inputs: Any, ctx: Any) -> dict[str, Any]:
    """``process`` without its parallel group: the calls at 2.j.0 are skipped."""
    side = inputs.get("side")
    a = await ctx.task(add, {"x": 1, "y": 2, "side": side})
    b = await ctx.task(add, {"x": a, "y": 10, "side": side})
    return {"a": a, "b": b, "pair": [b + 1, b + 2]}


async def other_result(inputs: Any, ctx: Any) -> dict[str, Any]:
    """The same calls as ``process``, another result."""
    out = await process(inputs, ctx)
    out["b"] = -1
    return out


async def raises_instead(inputs: Any, ctx: Any) -> dict[str, Any]:
    """The same calls as ``process``, then it raises."""
    await process(inputs, ctx)
    raise RuntimeError("changed my mind")


async def failing(inputs: Any, ctx: Any) -> None:
    """Key 0, then a failing task at key 1 that the process lets through."""
    side = inputs.get("side")
    await ctx.task(add, {"x": 1, "y": 2, "side": side})
    await ctx.task(fail, {"reason": "boom", "side": side})


async def failing_other_reason(inputs: Any, ctx: Any) -> None:
    """``failing``, but it raises its own error after the recorded failure."""
    try:
        await failing(inputs, ctx)
    except Exception as exc:
        raise RuntimeError("another reason") from exc


async def failing_recovers(inputs: Any, ctx: Any) -> str:
    """``failing``, but it catches the failure and returns."""
    try:
        await failing(inputs, ctx)
    except Exception:
        return "recovered"
    return "unreachable"


async def waits(inputs: Any, ctx: Any) -> Any:
    """Key 0, then an external effect at key 1 (the run waits; it is then cancelled)."""
    side = inputs.get("side")
    await ctx.task(add, {"x": 1, "y": 2, "side": side})
    return await ctx.task(review, {"text": "please"})


async def waits_changed(inputs: Any, ctx: Any) -> Any:
    """``waits`` with other args at key 0."""
    side = inputs.get("side")
    await ctx.task(add, {"x": 1, "y": 3, "side": side})
    return await ctx.task(review, {"text": "please"})
