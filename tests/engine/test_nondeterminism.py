"""A process that diverges from its journal stops with NonDeterminismError.

The recorded run is ``original`` below, stopped (by a flag) after its calls so
that it can be resumed with changed code: ``resume(run_id, process=other)``.
Each divergence must name the run, the key, the recorded event's seq, the
recorded and replayed calls, and the ``file:line`` of the diverging call in
the process source; nothing may be recorded for it, and resuming with the
original code must still work.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import journal_format as jf
from replay_engine import Engine, NonDeterminismError, ReplayEngineError
from tests.journal_views import key_of

from . import flows
from .flows import read_side, starts

MakeEngine = Callable[..., Engine]

STOP: dict[str, bool] = {"on": True}

ADD = "tests.engine.flows.add"
DOUBLE = "tests.engine.flows.double"
ECHO = "tests.engine.flows.echo"


@pytest.fixture(autouse=True)
def _stop_flag() -> None:
    STOP["on"] = True


async def original(inputs: Any, ctx: Any) -> list[Any]:
    a = await ctx.task(flows.add, {"a": 1, "b": 2})  # 0
    b = await ctx.task(flows.double, {"x": a})  # 1
    pair = await ctx.parallel.all(  # 2
        [
            lambda: ctx.task(flows.echo, {"value": "left"}),  # 2.0.0
            lambda: ctx.task(flows.echo, {"value": "right"}),  # 2.1.0
        ]
    )
    c = await ctx.task(flows.add, {"a": b, "b": 1})  # 3
    if STOP["on"]:
        raise RuntimeError("stopped on purpose before the end")
    return [a, b, pair, c]


async def changed_task(inputs: Any, ctx: Any) -> Any:
    a = await ctx.task(flows.add, {"a": 1, "b": 2})
    b = await ctx.task(flows.echo, {"value": a})  # <-- diverges
    return [a, b]


async def changed_args(inputs: Any, ctx: Any) -> Any:
    a = await ctx.task(flows.add, {"a": 1, "b": 2})
    b = await ctx.task(flows.double, {"x": a + 1})  # <-- diverges
    return [a, b]


async def changed_args_in_branch(inputs: Any, ctx: Any) -> Any:
    a = await ctx.task(flows.add, {"a": 1, "b": 2})
    b = await ctx.task(flows.double, {"x": a})
    return await ctx.parallel.all(
        [
            lambda: ctx.task(flows.echo, {"value": "left"}),
            lambda: ctx.task(flows.echo, {"value": "RIGHT"}),  # <-- diverges
            lambda: b,
        ]
    )


async def fewer_calls(inputs: Any, ctx: Any) -> Any:
    a = await ctx.task(flows.add, {"a": 1, "b": 2})
    b = await ctx.task(flows.double, {"x": a})
    pair = await ctx.parallel.all(
        [
            lambda: ctx.task(flows.echo, {"value": "left"}),
            lambda: ctx.task(flows.echo, {"value": "right"}),
        ]
    )
    return [a, b, pair]  # <-- diverges: the call at key 3 is gone


async def inserted_call(inputs: Any, ctx: Any) -> Any:
    a = await ctx.task(flows.add, {"a": 1, "b": 2})
    await ctx.task(flows.echo, {"value": "new step"})  # <-- diverges
    b = await ctx.task(flows.double, {"x": a})
    return [a, b]


async def inserted_before_group(inputs: Any, ctx: Any) -> Any:
    a = await ctx.task(flows.add, {"a": 1, "b": 2})
    b = await ctx.task(flows.double, {"x": a})
    await ctx.task(flows.add, {"a": 0, "b": 0})  # <-- diverges
    return [a, b]


async def group_instead_of_task(inputs: Any, ctx: Any) -> Any:
    a = await ctx.task(flows.add, {"a": 1, "b": 2})
    thunks = [lambda: ctx.task(flows.double, {"x": a})]
    return await ctx.parallel.all(thunks)  # <-- diverges


async def value_instead_of_task(inputs: Any, ctx: Any) -> Any:
    ctx.uuid()  # <-- diverges
    return None


async def swallows_divergence(inputs: Any, ctx: Any) -> Any:
    a = await ctx.task(flows.add, {"a": 1, "b": 2})
    try:  # noqa: SIM105 (the catch-all users write)
        await ctx.task(flows.echo, {"value": a})  # <-- diverges
    except Exception:
        pass
    try:  # noqa: SIM105
        # Every later ctx call re-raises: the run cannot go on recording.
        await ctx.task(flows.add, {"a": 5, "b": 5})
    except Exception:
        pass
    return "swallowed"


def site_of(fn: Callable[..., Any]) -> str:
    """``file:line`` of the line marked ``# <-- diverges`` in ``fn``."""
    lines, first = inspect.getsourcelines(fn)
    (index,) = [i for i, line in enumerate(lines) if "# <-- diverges" in line]
    return f"{fn.__code__.co_filename}:{first + index}"


def seq_at(engine: Engine, run_id: str, key: str, tag: str = "requested") -> int:
    (seq,) = [
        s.seq
        for s in engine.events(run_id)
        if key_of(s.event) == key and jf.event_tag(s.event) == tag
    ]
    return seq


def args_hash(args: Any) -> str:
    """How a divergence message names args: small ones by value, others by address."""
    data = jf.encode_payload(args)
    if jf.ref_is_inline(jf.payload_ref(data)):
        return repr(args)
    return "b3:" + jf.address_of(data).hex()[:12]


@pytest.fixture
def recorded(make_engine: MakeEngine, side: Path) -> Engine:
    engine = make_engine()
    run = engine.run(original, run_id="r")
    assert run.status == "failed"
    return engine


def diverge(engine: Engine, process: Callable[..., Any]) -> NonDeterminismError:
    before = [s.digest for s in engine.events("r")]
    with pytest.raises(NonDeterminismError) as info:
        engine.resume("r", process=process)
    # Nothing is recorded for a divergence.
    assert [s.digest for s in engine.events("r")] == before
    exc = info.value
    assert isinstance(exc, ReplayEngineError)
    assert exc.run_id == "r"
    assert "'r'" in str(exc)
    return exc


def test_changed_task(recorded: Engine) -> None:
    exc = diverge(recorded, changed_task)
    assert exc.key == "1"
    assert exc.seq == seq_at(recorded, "r", "1")
    message = str(exc)
    assert DOUBLE in message and ECHO in message
    assert DOUBLE in exc.recorded and ECHO in exc.replayed
    assert "key 1" in message
    assert site_of(changed_task) in message


def test_changed_args(recorded: Engine) -> None:
    exc = diverge(recorded, changed_args)
    assert exc.key == "1"
    assert exc.seq == seq_at(recorded, "r", "1")
    message = str(exc)
    assert message.count(DOUBLE) >= 2
    assert args_hash({"x": 3}) in exc.recorded
    assert args_hash({"x": 4}) in exc.replayed
    assert site_of(changed_args) in message


def test_changed_args_in_a_parallel_branch(recorded: Engine) -> None:
    exc = diverge(recorded, changed_args_in_branch)
    assert exc.key == "2.1.0"
    assert exc.seq == seq_at(recorded, "r", "2.1.0")
    assert args_hash({"value": "right"}) in exc.recorded
    assert args_hash({"value": "RIGHT"}) in exc.replayed
    assert site_of(changed_args_in_branch) in str(exc)


def test_fewer_calls(recorded: Engine) -> None:
    exc = diverge(recorded, fewer_calls)
    assert exc.key == "3"
    assert exc.seq == seq_at(recorded, "r", "3")
    assert ADD in str(exc)
    assert "fewer calls" in str(exc)


def test_fewer_calls_message_points_at_the_process_source(recorded: Engine) -> None:
    """The user must learn which process (file:line) stopped short of the journal."""
    exc = diverge(recorded, fewer_calls)
    source = fewer_calls.__code__.co_filename
    assert f"{source}:" in str(exc), str(exc)


def test_inserted_call(recorded: Engine) -> None:
    exc = diverge(recorded, inserted_call)
    assert exc.key == "1"
    assert exc.seq == seq_at(recorded, "r", "1")
    message = str(exc)
    assert DOUBLE in exc.recorded and ECHO in exc.replayed
    assert site_of(inserted_call) in message


def test_call_inserted_before_a_parallel_group(recorded: Engine) -> None:
    exc = diverge(recorded, inserted_before_group)
    assert exc.key == "2"
    # The seq of the recorded call found where the new one would go.
    assert exc.seq == seq_at(recorded, "r", "2.0.0")
    message = str(exc)
    assert site_of(inserted_before_group) in message
    assert ECHO in exc.recorded
    assert ADD in exc.replayed, (
        "the message does not say which call was inserted:\n" + message
    )


def test_parallel_group_where_a_task_was_recorded(recorded: Engine) -> None:
    exc = diverge(recorded, group_instead_of_task)
    assert exc.key == "1"
    assert exc.seq == seq_at(recorded, "r", "1")
    assert DOUBLE in exc.recorded
    assert "parallel" in exc.replayed
    assert site_of(group_instead_of_task) in str(exc)


def test_ctx_value_where_a_task_was_recorded(recorded: Engine) -> None:
    exc = diverge(recorded, value_instead_of_task)
    assert exc.key == "0"
    assert ADD in exc.recorded
    assert "uuid" in exc.replayed
    assert site_of(value_instead_of_task) in str(exc)


def test_a_caught_divergence_still_ends_the_run_with_it(
    recorded: Engine, side: Path
) -> None:
    before = len(read_side(side))
    exc = diverge(recorded, swallows_divergence)
    assert exc.key == "1"
    assert site_of(swallows_divergence) in str(exc)
    # The call made after the swallowed error was not dispatched either.
    assert len(read_side(side)) == before


def test_after_a_divergence_the_original_code_resumes(
    recorded: Engine, side: Path
) -> None:
    dispatched = starts(read_side(side))
    assert [x["key"] for x in dispatched[:2]] == ["0", "1"]
    for changed in (changed_task, changed_args, inserted_call, fewer_calls):
        diverge(recorded, changed)
    STOP["on"] = False
    run = recorded.resume("r", process=original)
    assert run.status == "completed"
    assert run.result == [3, 6, ["left", "right"], 7]
    assert run.stats.replayed == 5
    assert run.stats.dispatched == 0
    assert starts(read_side(side)) == dispatched
    assert recorded.verify("r").ok


def test_a_divergent_resume_dispatches_nothing(recorded: Engine, side: Path) -> None:
    before = len(read_side(side))
    diverge(recorded, changed_args_in_branch)
    assert len(read_side(side)) == before
