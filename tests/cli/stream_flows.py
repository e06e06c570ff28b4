"""Long runs for the streaming tests (imported as ``stream_flows:...``)."""

from __future__ import annotations

from typing import Any

from replay_engine import task


@task(name="stream_flows.inc")
def inc(x: int) -> int:
    return x + 1


async def long_run(inputs: dict[str, Any], ctx: Any) -> int:
    """About ``n`` events: n/4 log lines, then 3n/8 calls of ``inc`` (2 events each)."""
    n = inputs["n"]
    for i in range(n // 4):
        ctx.log("step", i=i)
    out = await ctx.parallel.map(
        list(range(n * 3 // 8)), lambda i: ctx.task(inc, {"x": i}), limit=64
    )
    return len(out)


def _check(a: int) -> None:
    if a == 2:
        raise ValueError(f"bad value a={a}")  # the line `status` must name


async def raises(inputs: dict[str, Any], ctx: Any) -> None:
    """One call, then the process itself raises (no task failed)."""
    await ctx.task(inc, {"x": 1})
    _check(inputs["a"])


async def long_run_marked(inputs: dict[str, Any], ctx: Any) -> int:
    """``long_run``, touching ``$STREAM_MARK`` when it starts executing.

    A test replays ``long_run``'s journal with it to see whether lines were
    printed before the re-execution began.
    """
    import os
    from pathlib import Path

    mark = os.environ.get("STREAM_MARK")
    if mark:
        Path(mark).touch()
    return await long_run(inputs, ctx)
