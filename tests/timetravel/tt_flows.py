"""Processes the time-travel tests record (imported as the top-level ``tt_flows``).

Every task appends a line to the side-channel file named by the run's
``side`` input, so a test can tell whether anything was dispatched.
"""

from __future__ import annotations

from typing import Any

from replay_engine import TaskFailed, task, task_context


def _mark(side: str | None, what: str) -> None:
    if side:
        with open(side, "a", encoding="utf-8") as fh:
            fh.write(what + "\n")


@task(name="tt.double")
def double(x: int, side: str | None = None) -> int:
    _mark(side, f"double {x}")
    return 2 * x


@task(name="tt.triple")
def triple(x: int, side: str | None = None) -> int:
    _mark(side, f"triple {x}")
    return 3 * x


@task(name="tt.explode")
def explode(reason: str, side: str | None = None) -> None:
    _mark(side, "explode")
    raise ValueError(reason)


@task(name="tt.flaky", retries=2)
def flaky(x: int, side: str | None = None) -> int:
    """Fails its first attempt, succeeds on the retry."""
    attempt = task_context().attempt
    _mark(side, f"flaky attempt {attempt}")
    if attempt < 2:
        raise RuntimeError("transient")
    return x + 100


async def _prefix(inputs: Any, ctx: Any) -> tuple[int, list[int], str | None]:
    """Keys 0 (task), 1 (parallel.all: 1.0.0, 1.1.0 flaky), 2 (explode, caught), 3."""
    side = inputs.get("side")
    first = await ctx.task(double, {"x": 1, "side": side})
    pair = await ctx.parallel.all(
        [
            lambda: ctx.task(double, {"x": 10, "side": side}),
            lambda: ctx.task(flaky, {"x": 3, "side": side}),
        ]
    )
    try:
        await ctx.task(explode, {"reason": "boom", "side": side})
        caught = None
    except TaskFailed as exc:
        caught = exc.message
    ctx.now()  # key 3: a recorded value, not an effect
    return first, pair, caught


async def process(inputs: Any, ctx: Any) -> dict[str, Any]:
    """Then a parallel.map at key 4 (4.j.0) and a log line."""
    first, pair, caught = await _prefix(inputs, ctx)
    side = inputs.get("side")
    outs = await ctx.parallel.map(
        inputs.get("items", [1, 2, 3]),
        lambda x: ctx.task(double, {"x": x, "side": side}),
        limit=2,
    )
    ctx.log("mapped", items=len(outs))
    return {"first": first, "pair": pair, "caught": caught, "outs": outs}


async def process_v2(inputs: Any, ctx: Any) -> dict[str, Any]:
    """``process`` with the map stage changed: it triples instead of doubling."""
    first, pair, caught = await _prefix(inputs, ctx)
    side = inputs.get("side")
    outs = await ctx.parallel.map(
        inputs.get("items", [1, 2, 3]),
        lambda x: ctx.task(triple, {"x": x, "side": side}),
        limit=2,
    )
    ctx.log("mapped", items=len(outs))
    return {"first": first, "pair": pair, "caught": caught, "outs": outs}
