"""Resume: completed effects are served from the journal, failures replay the
same way, and interrupted (cancelled, locked, waiting) runs pick up where they
stopped.

Every test runs a real engine on a real LMDB journal in ``tmp_path`` and counts
dispatches on the side channel (``flows.note``), never in the journal under
test.
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

import pytest

import journal_format as jf
from replay_engine import Engine, ReplayEngineError, RunLockedError, TaskFailed
from tests.journal_views import key_of, keys_of, tags

from . import flows
from .flows import read_side, starts
from .replay_helpers import (
    FLAGS,
    SEEN,
    MakeEngine,
    run_and_cancel_when,
    stop_if_asked,
    wait_for,
)

# -- resume ----------------------------------------------------------------------


def test_resume_of_a_completed_run_returns_the_recorded_result(
    make_engine: MakeEngine, side: Path
) -> None:
    engine = make_engine()
    first = engine.run(flows.mixed_process, {"x": 2, "items": [0, 1]}, run_id="r")
    assert first.status == "completed"
    dispatched = len(starts(read_side(side)))
    events = len(engine.events("r"))
    again = engine.resume("r")
    assert again.status == "completed"
    assert again.result == first.result
    assert again.stats.dispatched == 0
    assert len(starts(read_side(side))) == dispatched
    assert len(engine.events("r")) == events
    assert engine.status("r").status == "completed"
    # Another engine on the journal sees the same recorded result.
    with Engine(str(engine.path)) as other:
        assert other.resume("r").result == first.result


async def gated(inputs: Any, ctx: Any) -> list[Any]:
    a = await ctx.task(flows.add, {"a": 1, "b": 2})  # 0
    b = await ctx.task(flows.double, {"x": a})  # 1
    c = await ctx.task(flows.wait_gate, {"name": inputs["gate"]})  # 2
    d = await ctx.task(flows.add, {"a": a, "b": b})  # 3
    return [a, b, c, d]


def test_resume_of_an_interrupted_run_serves_completed_effects(
    make_engine: MakeEngine, side: Path
) -> None:
    engine = make_engine()
    g = flows.gate("g")
    run_and_cancel_when(engine, gated, {"gate": "g"}, "r", g.entered.is_set)
    assert keys_of(engine, "r", "completed") == ["0", "1"]
    assert "2" in keys_of(engine, "r", "requested")
    g.release.set()
    before = len(read_side(side))
    run = engine.resume("r")
    assert run.status == "completed"
    assert run.result == [3, 6, "passed g", 9]
    assert run.stats.replayed == 2
    assert run.stats.dispatched == 2
    resumed = starts(read_side(side)[before:])
    assert sorted(line["key"] for line in resumed) == ["2", "3"]
    everything = starts(read_side(side))
    assert [x["key"] for x in everything if x["task"] != "wait_gate"] == ["0", "1", "3"]
    # The effect in flight at the interruption is re-dispatched under its key.
    gate_lines = starts(everything, task="wait_gate")
    assert [x["idem"] for x in gate_lines] == ["r/2", "r/2"]
    assert engine.verify("r").ok


async def catches_failure(inputs: Any, ctx: Any) -> dict[str, Any]:
    try:
        await ctx.task(flows.boom, {"message": "the disk is full"})
        caught: dict[str, Any] = {}
    except TaskFailed as exc:
        caught = {
            "type": exc.error_type,
            "message": exc.message,
            "key": exc.key,
            "task": exc.task,
            "traceback": exc.traceback,
        }
    SEEN.append(caught)
    stop_if_asked()
    return caught


def test_a_failed_effect_raises_the_same_taskfailed_on_replay(
    make_engine: MakeEngine, side: Path
) -> None:
    engine = make_engine()
    FLAGS["stop"] = True
    first = engine.run(catches_failure, run_id="r")
    assert first.status == "failed"
    assert first.error is not None and first.error.type == "RuntimeError"
    FLAGS["stop"] = False
    run = engine.resume("r")
    assert run.status == "completed"
    live, replayed = SEEN
    assert live["type"] == "builtins.ValueError"
    assert live["message"] == "the disk is full"
    assert live["key"] == "0"
    assert live["task"] == "tests.engine.flows.boom"
    assert "ValueError: the disk is full" in live["traceback"]
    assert replayed == live
    assert run.result == live
    assert run.stats.dispatched == 0 and run.stats.replayed == 1
    assert len(starts(read_side(side), task="boom")) == 1


async def uncaught_failure(inputs: Any, ctx: Any) -> None:
    await ctx.task(flows.add, {"a": 1, "b": 1})
    await ctx.task(flows.boom, {"message": "no route to host"})


def test_an_uncaught_failure_fails_the_run_and_resume_fails_it_again(
    make_engine: MakeEngine, side: Path
) -> None:
    engine = make_engine()
    run = engine.run(uncaught_failure, run_id="r")
    assert run.status == "failed"
    assert run.error is not None
    assert run.error.type == "replay_engine.errors.TaskFailed"
    assert "no route to host" in run.error.message
    events = len(engine.events("r"))
    again = engine.resume("r")
    assert again.status == "failed"
    assert again.error is not None
    assert (again.error.type, again.error.message) == (
        run.error.type,
        run.error.message,
    )
    assert again.stats.dispatched == 0
    assert len(starts(read_side(side))) == 2
    # The same failure is not recorded twice.
    assert len(engine.events("r")) == events
    assert tags(engine, "r").count("run_failed") == 1


# -- locking -------------------------------------------------------------------------


def test_a_second_engine_cannot_execute_a_running_run(
    make_engine: MakeEngine,
) -> None:
    first = make_engine()
    g = flows.gate("lock")
    outcome: list[Any] = []
    thread = threading.Thread(
        target=lambda: outcome.append(first.run(gated, {"gate": "lock"}, run_id="r"))
    )
    thread.start()
    try:
        assert g.entered.wait(10)
        second = Engine(str(first.path))
        with pytest.raises(RunLockedError) as info:
            second.resume("r")
        assert info.value.run_id == "r"
        assert info.value.pid == os.getpid()
        assert isinstance(info.value, ReplayEngineError)
        with pytest.raises(RunLockedError):
            first.resume("r")
    finally:
        g.release.set()
        thread.join(10)
    assert outcome[0].status == "completed"
    assert second.resume("r").result == [3, 6, "passed lock", 9]
    second.close()


# -- cancellation ---------------------------------------------------------------------


async def cancellable(inputs: Any, ctx: Any) -> Any:
    return await ctx.parallel.all(
        [
            lambda: ctx.task(flows.add, {"a": 2, "b": 2}),
            lambda: ctx.task(flows.wait_gate, {"name": "c"}),
            lambda: ctx.task(flows.double, {"x": 21}),
        ]
    )


def test_cancelled_run_resumes_without_redispatching_completed_effects(
    make_engine: MakeEngine, side: Path
) -> None:
    engine = make_engine()
    g = flows.gate("c")

    def both_done() -> bool:
        done = {x["task"] for x in starts(read_side(side))}
        return g.entered.is_set() and {"add", "double"} <= done

    run_and_cancel_when(engine, cancellable, None, "r", both_done)
    # Stored running; the cancelled call released the lock: interrupted.
    info = engine.status("r")
    assert (info.stored_status, info.status) == ("running", "interrupted")
    g.release.set()
    before = len(read_side(side))
    run = engine.resume("r")
    assert run.status == "completed"
    assert run.result == [4, "passed c", 42]
    resumed = starts(read_side(side)[before:])
    assert [x["task"] for x in resumed] == ["wait_gate"]
    assert resumed[0]["idem"] == "r/0.1.0"
    assert len(starts(read_side(side), task="add")) == 1
    assert len(starts(read_side(side), task="double")) == 1
    assert engine.verify("r").ok


def test_cancelling_a_run_cancels_its_in_flight_async_attempts(
    make_engine: MakeEngine, side: Path
) -> None:
    """An attempt left running after its run was cancelled would finish unrecorded,
    and the resume would run it a second time, concurrently with the first."""
    engine = make_engine()
    g = flows.gate("c")
    observed: list[list[str]] = []

    async def main() -> None:
        task = asyncio.create_task(engine.run_async(cancellable, None, run_id="r"))
        await wait_for(g.entered.is_set)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.05)
        observed.append(
            [x["kind"] for x in read_side(side) if x["task"] == "wait_gate"]
        )
        g.release.set()
        await asyncio.sleep(0.05)
        observed.append(
            [x["kind"] for x in read_side(side) if x["task"] == "wait_gate"]
        )

    asyncio.run(main())
    assert observed == [["start", "cancelled"], ["start", "cancelled"]]


# -- external effects -----------------------------------------------------------------


async def needs_review(inputs: Any, ctx: Any) -> Any:
    diff = await ctx.task(flows.echo, {"value": "+1 -1"})
    return await ctx.task(flows.review, {"diff": diff})


def test_an_external_effect_is_recorded_and_the_run_waits(
    make_engine: MakeEngine, side: Path
) -> None:
    engine = make_engine()
    run = engine.run(needs_review, run_id="r")
    assert run.status == "waiting"
    assert run.pending == ["1"]
    requested = [
        s.event for s in engine.events("r") if isinstance(s.event, jf.EffectRequested)
    ]
    assert [(key_of(e), e.kind) for e in requested] == [("0", "task"), ("1", "agent")]
    assert engine.payload(requested[1].args) == {"diff": "+1 -1"}
    again = engine.resume("r")
    assert again.status == "waiting"
    assert again.pending == ["1"]
    assert keys_of(engine, "r") == ["0", "1"]
    engine.post("r", "1", result={"approved": True})
    done = engine.resume("r")
    assert done.status == "completed"
    assert done.result == {"approved": True}
    assert done.stats.dispatched == 0
    # The engine never executed the external function, nor re-ran echo.
    assert [x["task"] for x in starts(read_side(side))] == ["echo"]


async def review_or_error(inputs: Any, ctx: Any) -> Any:
    try:
        return await ctx.task(flows.review, {"diff": "x"})
    except TaskFailed as exc:
        return [exc.error_type, exc.message]


def test_a_posted_external_error_raises_taskfailed(make_engine: MakeEngine) -> None:
    engine = make_engine()
    assert engine.run(review_or_error, run_id="r").status == "waiting"
    engine.post("r", "0", error="reviewer rejected the diff")
    run = engine.resume("r")
    assert run.result == ["ExternalError", "reviewer rejected the diff"]
