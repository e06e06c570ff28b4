"""Processes for the security tests (``sec_flows`` on the child's PYTHONPATH).

Tasks note each execution in the file named by ``SEC_SIDE`` (one line each).
"""

from __future__ import annotations

import os
from typing import Any

from replay_engine import task


def note(what: str) -> None:
    path = os.environ.get("SEC_SIDE")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(what + "\n")


@task(name="sec.step")
def step(i: int) -> int:
    note(f"step {i}")
    return i


async def process(inputs: dict[str, Any], ctx: Any) -> dict[str, Any]:
    a = await ctx.task(step, {"i": 0})
    go = await ctx.wait_for_event("go")
    b = await ctx.task(step, {"i": 1})
    return {"sum": a + b, "go": go}


@task(name="sec.keyed")
def keyed(k: list[int]) -> int:
    note(f"keyed {k}")
    return len(k)


async def catching(inputs: dict[str, Any], ctx: Any) -> str:
    """Catches everything its task raises: a damaged journal must still win."""
    try:
        await ctx.task(keyed, {"k": [0]})
    except Exception as exc:
        return f"caught {type(exc).__name__}"
    return "no error"
