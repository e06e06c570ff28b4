"""Branch wake-ups are batched (``_run/executors.py``, ``Wakes``): a parallel
branch whose effect completes in a batch of outcomes (inline and eager async
attempts started by one pump, a pool job's chunk) resumes right after that
batch, not through one ``loop.call_soon`` and one loop iteration per branch.

The loop class here counts the wake-ups that still go through ``call_soon``;
the journals must be those of the unbatched path (the same events in the same
order), and failures and retries inside a fan-out keep their outcomes.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import journal_format as jf
from replay_engine import Engine, TaskFailed, task
from replay_engine._run.executors import Wakes

N = 300
ATTEMPTS: dict[int, int] = {}


@task(executor="inline")
def double_inline(i: int) -> int:
    return i * 2


@task
def double_thread(i: int) -> int:
    return i * 2


@task
async def double_async(i: int) -> int:
    return i * 2


@task(executor="inline", retries=1)
def flaky(i: int) -> int:
    ATTEMPTS[i] = ATTEMPTS.get(i, 0) + 1
    if i % 7 == 3 and ATTEMPTS[i] == 1:
        raise ValueError(f"first attempt of {i}")
    if i == 250:
        raise KeyError("always")
    return i


TASKS = {"inline": double_inline, "thread": double_thread, "async": double_async}


async def fan_out(inputs: Any, ctx: Any) -> list[int]:
    out: list[int] = await ctx.parallel.map(
        range(inputs["n"]), lambda i: ctx.task(TASKS[inputs["kind"]], {"i": i})
    )
    return out


async def fan_out_flaky(inputs: Any, ctx: Any) -> Any:
    try:
        await ctx.parallel.map(range(inputs["n"]), lambda i: ctx.task(flaky, {"i": i}))
    except TaskFailed as exc:
        return f"failed at {exc.key}"
    return "no failure"


class CountingLoop(asyncio.SelectorEventLoop):
    """Counts the branch wake-ups scheduled through ``call_soon``."""

    branch_wakes = 0

    def call_soon(self, callback: Any, *args: Any, context: Any = None) -> Any:
        if type(callback).__name__ == "_Branch":  # a suspended branch's wake-up
            CountingLoop.branch_wakes += 1
        return super().call_soon(callback, *args, context=context)


def run_on(loop: asyncio.AbstractEventLoop, journal: Path, kind: str) -> Any:
    with Engine(journal) as engine:
        run = loop.run_until_complete(
            engine.run_async(fan_out, {"n": N, "kind": kind}, run_id=f"r-{kind}")
        )
    assert run.status == "completed"
    return run.result


@pytest.mark.parametrize("kind", ["inline", "thread", "async"])
def test_fan_out_wakes_skip_the_loop_queue(tmp_path: Path, kind: str) -> None:
    CountingLoop.branch_wakes = 0
    loop = CountingLoop()
    try:
        result = run_on(loop, tmp_path / "j", kind)
    finally:
        loop.close()
    assert result == [i * 2 for i in range(N)]
    # Every branch suspends on its effect once; unbatched, each of the N
    # wake-ups would go through call_soon.
    assert CountingLoop.branch_wakes == 0


@pytest.mark.parametrize("kind", ["inline", "async"])
def test_same_journal_as_unbatched_wakes(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same events in the same order as with every wake-up queued."""

    def shape(path: Path) -> list[tuple[str, bytes | None]]:
        with Engine(path) as engine:
            return [
                (type(s.event).__name__, getattr(s.event, "key", None))
                for s in engine.events(f"r-{kind}")
            ]

    for name, batched in (("a", True), ("b", False)):
        if not batched:  # a loop that cannot be shadowed takes this path
            monkeypatch.setattr(Wakes, "open", lambda self: False)
        CountingLoop.branch_wakes = 0
        loop = CountingLoop()
        try:
            run_on(loop, tmp_path / name, kind)
        finally:
            loop.close()
        assert (CountingLoop.branch_wakes == 0) is batched
    assert shape(tmp_path / "a") == shape(tmp_path / "b")


def test_failures_and_retries_inside_a_batched_fan_out(tmp_path: Path) -> None:
    ATTEMPTS.clear()
    with Engine(tmp_path / "j") as engine:
        run = engine.run(fan_out_flaky, {"n": N}, run_id="flaky")
    assert run.status == "completed"
    assert run.result == f"failed at {jf.key_bytes_to_text(_branch_key(250))}"
    # Retried once each: the first attempts that failed, and the one that
    # always fails (retries=1: two attempts).
    assert all(ATTEMPTS[i] == 2 for i in range(N) if i % 7 == 3 or i == 250)
    assert all(ATTEMPTS[i] == 1 for i in range(N) if not (i % 7 == 3 or i == 250))


def _branch_key(index: int) -> bytes:
    return jf.encode_key((0, index, 0))
