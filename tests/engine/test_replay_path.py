"""The replay path of ``ctx.task`` and of ``parallel.map`` (issue 17).

A completed call with short args is decided inside ``ctx.task`` (the same
test as ``RunJournal.answer``), a replayed map branch runs its first step
without ``_first_step``'s frame, and ``ctx.task`` returns a bare generator
outside a branch's first call. These tests pin what must not change with it:
results and their types, the journal's keys, divergence on changed args (short
and long), a branch's own context, branches that make more than one call or
something new, and the awaitable's use with asyncio.

Real engine, real LMDB journal in ``tmp_path``; runs end waiting on an
``@external`` gate, so every resume re-executes the whole process.
"""

from __future__ import annotations

import asyncio
import contextvars
from pathlib import Path
from typing import Any

import pytest

from replay_engine import Engine, NonDeterminismError, external, task
from tests.journal_views import keys_of

SEEN: contextvars.ContextVar[str] = contextvars.ContextVar("seen", default="parent")
RAN: list[int] = []
seen: list[Any] = []
"""What the processes saw (their inputs are decoded anew on a resume)."""


@task(executor="inline", name="replay_path.echo")
def echo(i: int, pad: str = "") -> int:
    RAN.append(i)
    return i


@task(executor="inline", name="replay_path.pair")
def pair(i: int) -> tuple[int, str]:
    return (i, str(i))


@external(name="replay_path.gate")
def gate() -> None:
    """Never posted in these tests: the run waits here."""


def _resumed(tmp_path: Path, process: Any, inputs: Any = None) -> tuple[Any, Any]:
    """Record ``process`` (it ends waiting), then resume it: both runs."""
    RAN.clear()
    seen.clear()
    with Engine(str(tmp_path / "j"), durability="process") as engine:
        first = engine.run(process, inputs, run_id="r")
        assert first.status == "waiting", first
        RAN.clear()
        again = engine.resume("r", process=process)
    return first, again


async def seq_then_gate(inputs: Any, ctx: Any) -> Any:
    pad = inputs["pad"]
    out = [await ctx.task(echo, {"i": i, "pad": pad}) for i in range(5)]
    pairs = [await ctx.task(pair, {"i": i}) for i in range(2)]
    seen.extend([out, pairs])
    return await ctx.task(gate, {})


@pytest.mark.parametrize("pad", ["", "x" * 40], ids=["inline-args", "long-args"])
def test_sequential_replay_answers_every_call_with_its_type(
    tmp_path: Path, pad: str
) -> None:
    # Short args take ctx.task's own decision, long ones (a blob address) the
    # journal's: both replay every call, dispatch nothing, and give the
    # annotated type (a tuple, not the list msgpack returns).
    seen.clear()
    _, again = _resumed(tmp_path, seq_then_gate, {"pad": pad})
    assert again.status == "waiting"
    assert again.stats.replayed == 7 and again.stats.dispatched == 0
    assert RAN == []
    live, replayed = seen[0:2], seen[2:4]
    assert replayed == live == [[0, 1, 2, 3, 4], [(0, "0"), (1, "1")]]
    assert all(type(p) is tuple for p in replayed[1])


async def changed_args(inputs: Any, ctx: Any) -> Any:
    await ctx.task(echo, {"i": 0, "pad": inputs["pad"]})
    return await ctx.task(gate, {})


@pytest.mark.parametrize("pad", ["", "x" * 40], ids=["inline-args", "long-args"])
def test_changed_args_still_diverge_at_their_key(tmp_path: Path, pad: str) -> None:
    with Engine(str(tmp_path / "j"), durability="process") as engine:
        engine.run(changed_args, {"pad": pad}, run_id="r")

        async def other(inputs: Any, ctx: Any) -> Any:
            await ctx.task(echo, {"i": 1, "pad": inputs["pad"]})
            return await ctx.task(gate, {})

        with pytest.raises(NonDeterminismError) as err:
            engine.resume("r", process=other)
    assert "key 0" in str(err.value) and "replay_path.echo" in str(err.value)


async def map_sets_a_var(inputs: Any, ctx: Any) -> Any:
    def branch(i: int) -> Any:
        # What the previous sibling set must not be seen here: each branch
        # runs in its own copy of the context, live and replayed alike (a
        # leak would change the args and diverge).
        before = SEEN.get()
        seen.append(before)
        SEEN.set(f"branch {i}")
        return ctx.task(echo, {"i": i, "pad": before})

    out = await ctx.parallel.map(range(6), branch)
    seen.append((out, SEEN.get()))
    return await ctx.task(gate, {})


def test_a_branch_context_var_stays_in_its_branch_on_replay(tmp_path: Path) -> None:
    seen.clear()
    _, again = _resumed(tmp_path, map_sets_a_var, {})
    assert again.status == "waiting" and again.stats.replayed == 6
    expected = [*(["parent"] * 6), ([0, 1, 2, 3, 4, 5], "parent")]
    assert seen == expected * 2


async def map_two_calls(inputs: Any, ctx: Any) -> Any:
    async def branch(i: int) -> int:
        a = await ctx.task(echo, {"i": i})
        b = await ctx.task(echo, {"i": 100 + i})
        return int(a) + int(b)

    out = await ctx.parallel.map(range(4), branch)
    seen.append(out)
    return await ctx.task(gate, {})


def test_a_branch_making_two_calls_replays_both(tmp_path: Path) -> None:
    seen.clear()
    with Engine(str(tmp_path / "j"), durability="process") as engine:
        engine.run(map_two_calls, {}, run_id="r")
        keys = keys_of(engine, "r", "requested")
        RAN.clear()
        again = engine.resume("r", process=map_two_calls)
        assert keys_of(engine, "r", "requested") == keys
    assert sorted(keys) == sorted(
        [f"0.{j}.{c}" for j in range(4) for c in range(2)] + ["1"]
    )
    assert again.stats.replayed == 8 and again.stats.dispatched == 0
    assert RAN == [] and seen == [[100, 102, 104, 106]] * 2


async def map_of(inputs: Any, ctx: Any) -> Any:
    out = await ctx.parallel.map(range(inputs["n"]), lambda i: ctx.task(echo, {"i": i}))
    seen.append(out)
    return await ctx.task(gate, {})


def test_new_branches_run_beside_replayed_ones(tmp_path: Path) -> None:
    # The resumed code maps over more items: the recorded branches are
    # answered from the journal, the new ones (a call the journal has not
    # seen) are dispatched at their own keys.
    seen.clear()
    with Engine(str(tmp_path / "j"), durability="process") as engine:
        engine.run(map_of, {"n": 3}, run_id="r")
        RAN.clear()

        async def wider(inputs: Any, ctx: Any) -> Any:
            return await map_of({"n": 5}, ctx)

        again = engine.resume("r", process=wider)
        assert again.stats.replayed == 3 and again.stats.dispatched == 2
        assert sorted(RAN) == [3, 4]
        assert "0.4.0" in keys_of(engine, "r", "completed")
    assert seen == [[0, 1, 2], [0, 1, 2, 3, 4]]


async def gathered(inputs: Any, ctx: Any) -> Any:
    a, b = await asyncio.gather(ctx.task(echo, {"i": 1}), ctx.task(echo, {"i": 2}))
    pending = ctx.task(echo, {"i": 3})  # taken now, awaited after another call
    c = await ctx.task(echo, {"i": 4})
    d = await pending
    seen.append([a, b, c, d])
    return await ctx.task(gate, {})


def test_a_replayed_call_is_awaitable_as_a_live_one_is(tmp_path: Path) -> None:
    seen.clear()
    _, again = _resumed(tmp_path, gathered, {})
    assert again.stats.replayed == 4 and again.stats.dispatched == 0
    assert seen == [[1, 2, 4, 3]] * 2
