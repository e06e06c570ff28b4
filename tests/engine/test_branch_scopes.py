"""A map's branches: their own context variables and their own keys (issue 17).

``parallel.run_group`` gives every branch its own copy of the context the
group started in, and lets the branches that complete without suspending (a
replayed map's) take turns in one ``Scope``. These tests pin what that must
not change: a branch never sees what a sibling set in a context variable, live
(also a branch started later, from a sibling's wake, with ``limit``) and
replayed; a branch that suspends keeps its keys while siblings complete
around it; log lines, nested maps and failures keep their places.

Real engine, real LMDB journal in ``tmp_path``; runs end waiting on an
``@external`` gate, so every resume re-executes the whole process.
"""

from __future__ import annotations

import asyncio
import contextvars
from pathlib import Path
from typing import Any

import pytest

from replay_engine import Engine, TaskFailed, external, task
from tests.journal_views import keys_of, tags

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("branch_var", default="-")
seen: list[Any] = []


@task(executor="inline", name="branch_scopes.echo")
def echo(i: int) -> int:
    return i


@task(name="branch_scopes.later")
async def later(i: int) -> int:
    await asyncio.sleep(0)  # suspends: the branch waits on its effect
    return i


@task(executor="inline", name="branch_scopes.boom")
def boom(i: int) -> int:
    raise ValueError(f"boom {i}")


@external(name="branch_scopes.gate")
def gate() -> None:
    """Never posted: the run waits here."""


async def _branch_sets_var(ctx: Any, i: int) -> int:
    seen.append((i, VAR.get()))
    VAR.set(f"branch {i}")
    value = await ctx.task(later, {"i": i})
    seen.append((i, "after", VAR.get()))
    return int(value)


async def limited_sets_var(inputs: Any, ctx: Any) -> Any:
    VAR.set("parent")
    out = await ctx.parallel.map(
        range(4), lambda i: _branch_sets_var(ctx, i), limit=inputs["limit"]
    )
    seen.append(("parent", VAR.get(), out))
    return await ctx.task(gate, {})


@pytest.mark.parametrize("limit", [1, 2, None])
def test_a_branch_started_from_a_siblings_wake_sees_the_parents_vars(
    tmp_path: Path, limit: int | None
) -> None:
    # With a limit, branch 1 starts when branch 0 completes, from branch 0's
    # wake-up (run in branch 0's context): it must still start from the
    # parent's context, as it does on replay, where every branch starts at once.
    expected_starts = [(i, "parent") for i in range(4)]
    with Engine(str(tmp_path / "j"), durability="process") as engine:
        seen.clear()
        first = engine.run(limited_sets_var, {"limit": limit}, run_id="r")
        assert first.status == "waiting"
        live = list(seen)
        seen.clear()
        again = engine.resume("r", process=limited_sets_var)
        assert again.status == "waiting" and again.stats.replayed == 4
        replayed = list(seen)
    for got in (live, replayed):
        starts = [s for s in got if len(s) == 2]
        assert sorted(starts) == expected_starts
        afters = sorted(s for s in got if len(s) == 3 and s[1] == "after")
        assert afters == [(i, "after", f"branch {i}") for i in range(4)]
        assert got[-1] == ("parent", "parent", [0, 1, 2, 3])


async def mixed_branches(inputs: Any, ctx: Any) -> Any:
    """Branch 0 suspends (a new async call) while its siblings complete at once."""

    async def branch(i: int) -> Any:
        if i == 0:
            a = await ctx.task(later, {"i": 0})
            b = await ctx.task(echo, {"i": 100})  # its second key: K.0.1
            return [a, b]
        VAR.set(f"branch {i}")
        ctx.log("branch", i=i)
        return str(ctx.uuid())  # recorded at once: no suspension

    out = await ctx.parallel.map(range(5), branch)
    seen.append(out)
    return await ctx.task(gate, {})


def test_a_suspended_branch_keeps_its_keys_while_siblings_complete(
    tmp_path: Path,
) -> None:
    with Engine(str(tmp_path / "j"), durability="process") as engine:
        seen.clear()
        first = engine.run(mixed_branches, {}, run_id="r")
        assert first.status == "waiting"
        assert keys_of(engine, "r") == ["0.0.0", "0.0.1", "1"]
        logs_before = tags(engine, "r").count("log")
        assert logs_before == 4
        again = engine.resume("r", process=mixed_branches)
        assert again.status == "waiting" and again.stats.dispatched == 0
        # Nothing new: the same calls at the same keys, no log line twice.
        assert keys_of(engine, "r") == ["0.0.0", "0.0.1", "1"]
        assert tags(engine, "r").count("log") == logs_before
    assert seen[0] == seen[1] and seen[0][0] == [0, 100]


async def replayed_with_logs_and_nesting(inputs: Any, ctx: Any) -> Any:
    def branch(i: int) -> Any:
        # Completes through a Resolved (the shared-scope path), after a log
        # line at the same anchor in every branch.
        ctx.log("b", i=i)
        if i % 3 == 2:
            return ctx.parallel.map(
                range(2), lambda j: ctx.task(echo, {"i": 10 * i + j})
            )
        return ctx.task(echo, {"i": i})

    out = await ctx.parallel.map(range(7), branch)
    seen.append(out)
    return await ctx.task(gate, {})


def test_replayed_branches_keep_log_anchors_and_nested_keys(tmp_path: Path) -> None:
    with Engine(str(tmp_path / "j"), durability="process") as engine:
        seen.clear()
        engine.run(replayed_with_logs_and_nesting, {}, run_id="r")
        keys = keys_of(engine, "r")
        events = tags(engine, "r")
        again = engine.resume("r", process=replayed_with_logs_and_nesting)
        assert again.status == "waiting" and again.stats.dispatched == 0
        assert keys_of(engine, "r") == keys and tags(engine, "r") == events
    assert "0.2.0.0.0" in keys and "0.5.0.1.0" in keys and "0.6.0" in keys
    assert seen[0] == seen[1] == [0, 1, [20, 21], 3, 4, [50, 51], 6]


async def failing_branch(inputs: Any, ctx: Any) -> Any:
    def branch(i: int) -> Any:
        if i == 1:
            raise KeyError("before any call")  # fails while starting
        return ctx.task(boom if i == 3 else echo, {"i": i})

    try:
        await ctx.parallel.map(range(6), branch)
    except (KeyError, TaskFailed) as exc:
        seen.append(type(exc).__name__)
    out = await ctx.parallel.map(range(3), lambda i: ctx.task(echo, {"i": 50 + i}))
    seen.append(out)
    return await ctx.task(gate, {})


def test_failing_branches_leave_their_siblings_keys_alone(tmp_path: Path) -> None:
    with Engine(str(tmp_path / "j"), durability="process") as engine:
        seen.clear()
        engine.run(failing_branch, {}, run_id="r")
        keys = keys_of(engine, "r")
        again = engine.resume("r", process=failing_branch)
        assert again.status == "waiting" and again.stats.dispatched == 0
        assert keys_of(engine, "r") == keys
    assert keys == [
        "0.0.0",
        "0.2.0",
        "0.3.0",
        "0.4.0",
        "0.5.0",
        "1.0.0",
        "1.1.0",
        "1.2.0",
        "2",
    ]
    assert seen == ["KeyError", [50, 51, 52]] * 2
