"""Inline attempts of one dispatch batch: each sees its own task context.

The dispatcher sets the task context for each inline attempt and puts it back
once, after the batch (``Dispatcher._inline_token``): every attempt must still
see its own key and attempt (a retried one its second), and an async task
started in the same batch its own.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from replay_engine import Engine, task, task_context

FAILED_ONCE: set[int] = set()


@task(name="batch.inline", executor="inline", retries=1)
def inline_who(i: int) -> str:
    current = task_context()
    if i % 5 == 2 and i not in FAILED_ONCE:
        FAILED_ONCE.add(i)
        raise ValueError("first attempt fails")
    return f"{current.key}#{current.attempt}"


@task(name="batch.async")
async def async_who(i: int) -> str:
    current = task_context()
    await asyncio.sleep(0)
    again = task_context()
    assert again == current
    return f"{current.key}#{current.attempt}"


async def mixed(inputs: Any, ctx: Any) -> list[str]:
    return await ctx.parallel.map(
        range(40),
        lambda i: ctx.task(async_who if i % 4 == 3 else inline_who, {"i": i}),
    )


def test_each_inline_attempt_of_a_batch_sees_its_own_task_context(
    tmp_path: Path,
) -> None:
    FAILED_ONCE.clear()
    with Engine(str(tmp_path / "j")) as engine:
        run = engine.run(mixed, None)
    assert run.status == "completed", run.error
    expected = [
        f"0.{i}.0#2" if i % 5 == 2 and i % 4 != 3 else f"0.{i}.0#1" for i in range(40)
    ]
    assert run.result == expected
