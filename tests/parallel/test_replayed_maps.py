"""The replay of a ``parallel.map`` whose branches do different things (issue 17).

A map's replayed one-call branches are settled in one loop
(``_run/replay_batch.py``) that hands the first branch doing anything else
back to ``refill``'s general path, and re-enters after the next replayed one.
One map here mixes, in one group: replayed one-call branches, a branch making
two calls, one logging before its call, one setting a context variable, one
new on the resume (its call is not in the journal), one failing, and a branch
whose args changed (divergence). The resume must answer, dispatch, log, raise
and diverge exactly as the recorded execution and the general path do.

Real engine, real LMDB journal in ``tmp_path``; the run ends waiting on an
``@external`` gate, so each resume re-executes the whole map.
"""

from __future__ import annotations

import contextvars
from pathlib import Path
from typing import Any

import pytest

from replay_engine import Engine, NonDeterminismError, external, task
from tests.journal_views import keys_of

TAG: contextvars.ContextVar[str] = contextvars.ContextVar("mixed_tag", default="caller")
RAN: list[int] = []
SEEN: list[Any] = []
CHANGE: dict[str, Any] = {}
"""How the resumed code differs: ``new`` (a branch that now calls), ``diverge``."""

N = 14


@task(executor="inline", name="mixed.echo")
def echo(i: int, tag: str = "", second: bool = False) -> int:
    RAN.append(i)
    return i * 10 + (1 if second else 0)


@external(name="mixed.gate")
def gate() -> None:
    """Never posted: the run waits here."""


def _branch(ctx: Any, i: int) -> Any:
    kind = i % 7
    if kind == 1:
        return _two_calls(ctx, i)
    if kind in (2, 3):
        # Two siblings in a row log: each line has its own anchor, ordinal 0.
        ctx.log("before its call", i=i)
    if kind == 3:
        TAG.set(f"branch {i}")  # its own: a leak to the next one changes its args
    if kind == 5 and not CHANGE.get("new"):
        return -i  # no call recorded: the resumed code's call is new
    if kind == 6 and i > 7:
        raise ValueError(f"branch {i} fails")
    pad = "changed" if CHANGE.get("diverge") == i else ""
    return ctx.task(echo, {"i": i, "tag": TAG.get() + pad})


async def _two_calls(ctx: Any, i: int) -> int:
    a = await ctx.task(echo, {"i": i})
    b = await ctx.task(echo, {"i": i, "second": True})
    return int(a) + int(b)


def _plain(ctx: Any, i: int) -> Any:
    if i == 2 and not CHANGE.get("new"):
        return -i
    return ctx.task(echo, {"i": 100 + i})


async def mixed(inputs: Any, ctx: Any) -> Any:
    try:
        branches = ctx.parallel.map(
            range(N), lambda i: _branch(ctx, i), limit=inputs["limit"]
        )
        SEEN.append(await branches)
    except ValueError as exc:
        SEEN.append(str(exc))
    # Branch 2 is new on the resume ("new"); with limit=1 the replayed ones
    # after it start from its completion, up to the map's last branch.
    ok = ctx.parallel.map(range(N), lambda i: _plain(ctx, i), limit=inputs["limit"])
    SEEN.append(await ok)
    return await ctx.task(gate, {})


def _record(engine: Engine, limit: int | None = None) -> None:
    CHANGE.clear()
    RAN.clear()
    SEEN.clear()
    run = engine.run(mixed, {"limit": limit}, run_id="r")
    assert run.status == "waiting", run
    RAN.clear()


@pytest.mark.parametrize("limit", [None, 1])
def test_a_mixed_map_replays_as_it_ran(tmp_path: Path, limit: int | None) -> None:
    with Engine(str(tmp_path / "j"), durability="process") as engine:
        _record(engine, limit)
        first = list(SEEN)
        requested = keys_of(engine, "r", "requested")
        logs = [e for e in engine.events("r") if "Log" in type(e.event).__name__]
        again = engine.resume("r", process=mixed)
        assert again.status == "waiting"
        # Nothing dispatched, nothing journaled twice, no log line again.
        assert RAN == [] and again.stats.dispatched == 0
        assert keys_of(engine, "r", "requested") == requested
        assert [
            e for e in engine.events("r") if "Log" in type(e.event).__name__
        ] == logs
    assert SEEN[2:] == first
    # Branch 13 (kind 6) failed: the lowest failure; the second map replayed.
    assert first == [
        "branch 13 fails",
        [-2 if i == 2 else 1000 + i * 10 for i in range(N)],
    ]


@pytest.mark.parametrize("limit", [None, 1])
def test_a_branch_new_on_the_resume_runs_between_replayed_ones(
    tmp_path: Path, limit: int | None
) -> None:
    with Engine(str(tmp_path / "j"), durability="process") as engine:
        _record(engine, limit)
        CHANGE["new"] = True  # branches 0.5, 0.12 and 1.2 now make a call
        again = engine.resume("r", process=mixed)
        assert again.status == "waiting"
        assert sorted(RAN) == [5, 12, 102]  # only the new calls ran
        assert again.stats.dispatched == 3
        assert {"0.5.0", "0.12.0", "1.2.0"} <= set(keys_of(engine, "r", "completed"))
    assert SEEN[0] == SEEN[2] == "branch 13 fails"
    assert SEEN[3] == [1000 + i * 10 for i in range(N)]


@pytest.mark.parametrize("at", [0, 4, 9, 11])
def test_changed_args_in_a_map_diverge_at_their_branch(tmp_path: Path, at: int) -> None:
    with Engine(str(tmp_path / "j"), durability="process") as engine:
        _record(engine)
        CHANGE["diverge"] = at
        with pytest.raises(NonDeterminismError) as err:
            engine.resume("r", process=mixed)
    assert f"key 0.{at}.0" in str(err.value)
    assert RAN == []  # no branch was dispatched instead
