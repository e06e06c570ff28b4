"""Invocation keys, replay from the journal, and the ctx services around them.

Every test runs a real engine on a real LMDB journal in ``tmp_path`` and counts
dispatches on the side channel (``flows.note``), never in the journal under
test.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import datetime as dt
import multiprocessing
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import journal_format as jf
from replay_engine import (
    Engine,
    NonDeterminismError,
    PayloadError,
    ReplayEngineError,
    RunLockedError,
    TaskFailed,
)
from tests.journal_views import key_of, keys_of, requested_tasks, tags

from . import flows
from .flows import read_side, starts

MakeEngine = Callable[..., Engine]

# Module flags the processes below read: a process that fails until the test
# says otherwise stands for "the run broke, the code was fixed, resume it".
FLAGS: dict[str, Any] = {}
SEEN: list[Any] = []


@pytest.fixture(autouse=True)
def _clean_flags() -> None:
    FLAGS.clear()
    SEEN.clear()


def stop_if_asked() -> None:
    if FLAGS.get("stop"):
        raise RuntimeError("stopped on purpose before the end")


async def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition never became true")
        await asyncio.sleep(0.005)


def run_and_cancel_when(
    engine: Engine,
    process: Any,
    inputs: Any,
    run_id: str,
    ready: Callable[[], bool],
    then_wait: float = 0.0,
) -> None:
    """Start a run, cancel its asyncio task once ``ready()`` (and ``then_wait``
    seconds more), expect CancelledError."""

    async def main() -> None:
        task = asyncio.create_task(engine.run_async(process, inputs, run_id=run_id))
        await wait_for(lambda: ready() or task.done())
        await asyncio.sleep(then_wait)
        assert not task.done(), "the run ended before it could be interrupted"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


# -- keys are structural ---------------------------------------------------------


async def three_in_a_row(inputs: Any, ctx: Any) -> list[int]:
    a = await ctx.task(flows.add, {"a": 1, "b": 2})
    b = await ctx.task(flows.double, {"x": a})
    c = await ctx.task(flows.add, {"a": a, "b": b})
    return [a, b, c]


def test_root_calls_take_keys_0_1_2(make_engine: MakeEngine, side: Path) -> None:
    engine = make_engine()
    run = engine.run(three_in_a_row, run_id="r")
    assert run.status == "completed"
    assert run.result == [3, 6, 9]
    assert keys_of(engine, "r", "requested") == ["0", "1", "2"]
    assert keys_of(engine, "r", "completed") == ["0", "1", "2"]
    assert requested_tasks(engine, "r") == {
        "0": "tests.engine.flows.add",
        "1": "tests.engine.flows.double",
        "2": "tests.engine.flows.add",
    }
    assert [line["key"] for line in starts(read_side(side))] == ["0", "1", "2"]


async def branches(inputs: Any, ctx: Any) -> Any:
    first = await ctx.task(flows.echo, {"value": "first"})  # 0

    async def two_steps() -> list[int]:
        x = await ctx.task(flows.add, {"a": 1, "b": 1})  # 1.1.0
        for _ in range(inputs["extra"]):  # 1.1.1 … (a conditional extra call)
            await ctx.task(flows.echo, {"value": "extra"})
        y = await ctx.task(flows.double, {"x": x})  # 1.1.1 (or later)
        return [x, y]

    group = await ctx.parallel.all(  # 1
        [
            lambda: ctx.task(flows.slow_echo, {"value": "b0", "delay": 0.02}),  # 1.0.0
            two_steps,
            lambda: ctx.task(flows.echo, {"value": "b2"}),  # 1.2.0
        ]
    )
    last = await ctx.task(flows.echo, {"value": "last"})  # 2
    return [first, group, last]


def test_parallel_all_branch_keys_are_k_j_i(make_engine: MakeEngine) -> None:
    engine = make_engine()
    run = engine.run(branches, {"extra": 0}, run_id="r")
    assert run.result == ["first", ["b0", [2, 4], "b2"], "last"]
    assert requested_tasks(engine, "r") == {
        "0": "tests.engine.flows.echo",
        "1.0.0": "tests.engine.flows.slow_echo",
        "1.1.0": "tests.engine.flows.add",
        "1.1.1": "tests.engine.flows.double",
        "1.2.0": "tests.engine.flows.echo",
        "2": "tests.engine.flows.echo",
    }
    # Branch 0 sleeps, so it completes after its siblings: keys do not care.
    completed = keys_of(engine, "r", "completed")
    assert completed.index("1.0.0") > completed.index("1.2.0")


def test_an_extra_call_in_one_branch_does_not_shift_other_keys(
    make_engine: MakeEngine,
) -> None:
    engine = make_engine()
    engine.run(branches, {"extra": 0}, run_id="plain")
    engine.run(branches, {"extra": 2}, run_id="extra")
    plain = requested_tasks(engine, "plain")
    extra = requested_tasks(engine, "extra")
    assert extra["1.1.1"] == extra["1.1.2"] == "tests.engine.flows.echo"
    assert extra["1.1.3"] == "tests.engine.flows.double"
    # Every key outside branch 1 names the same call in both runs.
    for key, name in plain.items():
        if not key.startswith("1.1."):
            assert extra[key] == name, key


async def nested(inputs: Any, ctx: Any) -> Any:
    async def item(i: int) -> list[int]:
        first = await ctx.task(flows.add, {"a": i, "b": 0})  # …i.0
        pair = await ctx.parallel.all(  # …i.1
            [
                lambda: ctx.task(flows.double, {"x": first}),  # …i.1.0.0
                lambda: ctx.task(flows.add, {"a": first, "b": 100}),  # …i.1.1.0
            ]
        )
        return [first, *pair]

    async def left() -> list[list[int]]:
        return await ctx.parallel.map([1, 2], item)  # 0.0.0

    out = await ctx.parallel.all(  # 0
        [left, lambda: ctx.task(flows.echo, {"value": "right"})]  # 0.1.0
    )
    last = await ctx.task(flows.echo, {"value": "end"})  # 1
    return [out, last]


def test_nested_parallel_inside_map_inside_parallel(make_engine: MakeEngine) -> None:
    engine = make_engine()
    run = engine.run(nested, run_id="r")
    assert run.result == [[[[1, 2, 101], [2, 4, 102]], "right"], "end"]
    assert requested_tasks(engine, "r") == {
        "0.0.0.0.0": "tests.engine.flows.add",
        "0.0.0.0.1.0.0": "tests.engine.flows.double",
        "0.0.0.0.1.1.0": "tests.engine.flows.add",
        "0.0.0.1.0": "tests.engine.flows.add",
        "0.0.0.1.1.0.0": "tests.engine.flows.double",
        "0.0.0.1.1.1.0": "tests.engine.flows.add",
        "0.1.0": "tests.engine.flows.echo",
        "1": "tests.engine.flows.echo",
    }
    # The args recorded at a nested key are the ones that branch passed.
    by_key = {
        key_of(s.event): engine.payload(s.event.args)
        for s in engine.events("r")
        if isinstance(s.event, jf.EffectRequested)
    }
    assert by_key["0.0.0.1.1.1.0"] == {"a": 2, "b": 100}


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
    assert live["type"] == "ValueError"
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


# -- retries and timeouts -----------------------------------------------------------


async def retried(inputs: Any, ctx: Any) -> Any:
    good = await ctx.task(flows.flaky, {"x": 4})
    try:
        await ctx.task(flows.always_fails, {"x": 5})
        bad: Any = None
    except TaskFailed as exc:
        bad = [exc.error_type, exc.message]
    stop_if_asked()
    return [good, bad]


def test_retries_record_every_failed_attempt(
    make_engine: MakeEngine, side: Path
) -> None:
    engine = make_engine()
    FLAGS["stop"] = True
    assert engine.run(retried, run_id="r").status == "failed"
    attempts = [
        (key_of(s.event), s.event.attempt, s.event.error.type, s.event.error.message)
        for s in engine.events("r")
        if isinstance(s.event, jf.AttemptFailed)
    ]
    assert attempts == [
        ("0", 1, "ConnectionError", "transient failure of attempt 1 for 4"),
        ("1", 1, "ConnectionError", "attempt 1 failed for 5"),
        ("1", 2, "ConnectionError", "attempt 2 failed for 5"),
    ]
    failed = [
        s.event for s in engine.events("r") if isinstance(s.event, jf.EffectFailed)
    ]
    assert len(failed) == 1
    assert failed[0].attempts == 3
    assert failed[0].error.message == "attempt 3 failed for 5"
    lines = starts(read_side(side))
    assert [(x["key"], x["attempt"]) for x in lines] == [
        ("0", 1),
        ("0", 2),
        ("1", 1),
        ("1", 2),
        ("1", 3),
    ]
    FLAGS["stop"] = False
    run = engine.resume("r")
    assert run.result == [40, ["ConnectionError", "attempt 3 failed for 5"]]
    assert run.stats.dispatched == 0
    assert len(starts(read_side(side))) == 5
    assert tags(engine, "r").count("attempt_failed") == 3


async def backing_off(inputs: Any, ctx: Any) -> int:
    return await ctx.task(flows.backed_off, {"x": 7})


def test_backoff_doubles_between_attempts(make_engine: MakeEngine, side: Path) -> None:
    engine = make_engine()
    assert engine.run(backing_off, run_id="r").result == 7
    retry_in = [
        s.event.retry_in
        for s in engine.events("r")
        if isinstance(s.event, jf.AttemptFailed)
    ]
    assert retry_in == [0.05, 0.1]
    at = [line["at"] for line in starts(read_side(side))]
    assert len(at) == 3
    assert at[1] - at[0] >= 0.045
    assert at[2] - at[1] >= 0.095


async def times_out(inputs: Any, ctx: Any) -> Any:
    try:
        await ctx.task(inputs["task"], {"seconds": inputs["seconds"]})
    except TaskFailed as exc:
        return [exc.error_type, exc.key]
    return "no timeout"


@pytest.mark.parametrize(
    ("which", "seconds"), [("sleepy", 5.0), ("sleepy_sync", 2.5)], ids=["async", "sync"]
)
def test_timeout_fails_the_attempt_with_timeouterror(
    make_engine: MakeEngine, which: str, seconds: float
) -> None:
    engine = make_engine()
    task_def = getattr(flows, which)

    async def process(inputs: Any, ctx: Any) -> Any:
        return await times_out({"task": task_def, "seconds": seconds}, ctx)

    began = time.monotonic()
    run = engine.run(process, run_id="r")
    elapsed = time.monotonic() - began
    assert run.result == ["TimeoutError", "0"]
    assert elapsed < 1.5  # the 0.2 s timeout, not the task's sleep
    failed = [
        s.event for s in engine.events("r") if isinstance(s.event, jf.EffectFailed)
    ]
    assert [f.error.type for f in failed] == ["TimeoutError"]


# -- ctx.log, now, random, uuid, sleep ------------------------------------------------


async def logs(inputs: Any, ctx: Any) -> str:
    ctx.log("starting", n=1)

    async def branch() -> int:
        ctx.log("in branch", where="b0")
        return await ctx.task(flows.add, {"a": 1, "b": 1})

    await ctx.parallel.all([branch, lambda: ctx.task(flows.double, {"x": 1})])
    stop_if_asked()
    return "done"


def test_ctx_log_is_emitted_once_per_run(make_engine: MakeEngine) -> None:
    engine = make_engine()
    emitted: list[tuple[str, str, dict[str, Any]]] = []

    def on_log(key: str, message: str, fields: dict[str, Any]) -> None:
        emitted.append((key, message, fields))

    FLAGS["stop"] = True
    assert engine.run(logs, run_id="r", on_log=on_log).status == "failed"
    FLAGS["stop"] = False
    assert engine.resume("r", on_log=on_log).status == "completed"
    assert engine.resume("r", on_log=on_log).status == "completed"
    assert emitted == [
        ("0", "starting", {"n": 1}),
        ("0.0.0", "in branch", {"where": "b0"}),
    ]
    lines = [s.event for s in engine.events("r") if isinstance(s.event, jf.LogLine)]
    assert [(key_of(e), e.ordinal, e.message) for e in lines] == [
        ("0", 0, "starting"),
        ("0.0.0", 0, "in branch"),
    ]
    # Log lines take no key: the group is still at key 0.
    assert sorted(keys_of(engine, "r")) == ["0.0.0", "0.1.0"]


async def deterministic_values(inputs: Any, ctx: Any) -> list[Any]:
    now = ctx.now()
    rnd = ctx.random()
    uid = ctx.uuid()
    seen = [now.isoformat(), now.utcoffset(), rnd.random(), rnd.random(), str(uid)]
    SEEN.append(seen)
    stop_if_asked()
    return [seen[0], seen[2], seen[3], seen[4]]


def test_now_random_uuid_are_identical_on_replay(make_engine: MakeEngine) -> None:
    engine = make_engine()
    FLAGS["stop"] = True
    before = dt.datetime.now(dt.UTC)
    assert engine.run(deterministic_values, run_id="r").status == "failed"
    after = dt.datetime.now(dt.UTC)
    time.sleep(0.02)
    FLAGS["stop"] = False
    run = engine.resume("r")
    live, replayed = SEEN
    assert replayed == live
    assert live[1] == dt.timedelta(0)  # timezone-aware, UTC
    now = dt.datetime.fromisoformat(live[0])
    assert before - dt.timedelta(milliseconds=1) <= now <= after
    assert uuid.UUID(live[4]).version == 4
    assert run.result == [live[0], live[2], live[3], live[4]]
    kinds = [
        (key_of(s.event), s.event.kind)
        for s in engine.events("r")
        if isinstance(s.event, jf.ValueRecorded)
    ]
    assert kinds == [("0", "now"), ("1", "random"), ("2", "uuid")]


def test_random_and_uuid_derive_from_run_id_and_key(make_engine: MakeEngine) -> None:
    a = make_engine("a").run(deterministic_values, run_id="same")
    b = make_engine("b").run(deterministic_values, run_id="same")
    c = make_engine("c").run(deterministic_values, run_id="other")
    assert a.result[1:] == b.result[1:]
    assert a.result[1] != c.result[1]
    assert a.result[3] != c.result[3]


async def sleeper(inputs: Any, ctx: Any) -> list[int]:
    a = await ctx.task(flows.add, {"a": 1, "b": 1})  # 0
    await ctx.sleep(inputs["seconds"])  # 1
    b = await ctx.task(flows.double, {"x": a})  # 2
    return [a, b]


def timer_started(engine: Engine, run_id: str) -> Callable[[], bool]:
    def ready() -> bool:
        return any(r.run_id == run_id for r in engine.runs()) and (
            "timer_started" in tags(engine, run_id)
        )

    return ready


def test_sleep_is_durable_resume_after_due_does_not_sleep_again(
    make_engine: MakeEngine, side: Path
) -> None:
    engine = make_engine()
    began = time.time_ns()
    run_and_cancel_when(
        engine, sleeper, {"seconds": 1.0}, "r", timer_started(engine, "r")
    )
    timers = [
        s.event for s in engine.events("r") if isinstance(s.event, jf.TimerStarted)
    ]
    assert len(timers) == 1
    assert key_of(timers[0]) == "1"
    due = timers[0].due_ns
    assert began + 1e9 <= due <= time.time_ns() + 1e9
    assert "timer_fired" not in tags(engine, "r")
    time.sleep(max(0.0, (due - time.time_ns()) / 1e9) + 0.02)
    clock = time.monotonic()
    run = engine.resume("r")
    assert time.monotonic() - clock < 0.6  # not the 1 s sleep again
    assert run.result == [2, 4]
    assert tags(engine, "r").count("timer_fired") == 1
    assert tags(engine, "r").count("timer_started") == 1
    assert [x["key"] for x in starts(read_side(side))] == ["0", "2"]


def test_sleep_resumed_before_due_sleeps_only_what_is_left(
    make_engine: MakeEngine,
) -> None:
    engine = make_engine()
    began = time.monotonic()
    # Interrupted half way through a 1 s sleep.
    run_and_cancel_when(
        engine,
        sleeper,
        {"seconds": 1.0},
        "r",
        timer_started(engine, "r"),
        then_wait=0.5,
    )
    clock = time.monotonic()
    run = engine.resume("r")
    resumed_for = time.monotonic() - clock
    assert run.result == [2, 4]
    assert time.monotonic() - began >= 1.0
    assert resumed_for < 0.85, resumed_for


# -- payloads ----------------------------------------------------------------------


async def bad_args_caught(inputs: Any, ctx: Any) -> Any:
    try:
        await ctx.task(flows.add, {"a": object(), "b": 1})
    except PayloadError as exc:
        SEEN.append(exc)
    return await ctx.task(flows.add, {"a": 1, "b": 1})


def test_unencodable_args_raise_payloaderror_and_record_nothing(
    make_engine: MakeEngine, side: Path
) -> None:
    engine = make_engine()
    run = engine.run(bad_args_caught, run_id="r")
    assert run.status == "completed"
    (exc,) = SEEN
    assert isinstance(exc, PayloadError)
    assert isinstance(exc, TypeError)
    assert isinstance(exc, ReplayEngineError)
    assert "tests.engine.flows.add" in str(exc)
    assert f"{__file__}:" in str(exc)
    # Only the valid call was recorded, and only it ran.
    assert tags(engine, "r") == [
        "run_started",
        "requested",
        "completed",
        "run_completed",
    ]
    payloads = [
        engine.payload(s.event.args)
        for s in engine.events("r")
        if isinstance(s.event, jf.EffectRequested)
    ]
    assert payloads == [{"a": 1, "b": 1}]
    assert len(starts(read_side(side))) == 1


async def bad_args_uncaught(inputs: Any, ctx: Any) -> Any:
    await ctx.task(flows.add, {"a": 1, "b": 1})
    return await ctx.task(flows.add, {"a": [object()], "b": 1})


def test_unencodable_args_fail_the_run_without_recording_the_call(
    make_engine: MakeEngine,
) -> None:
    engine = make_engine()
    run = engine.run(bad_args_uncaught, run_id="r")
    assert run.status == "failed"
    assert run.error is not None
    assert run.error.type == "replay_engine.errors.PayloadError"
    assert keys_of(engine, "r") == ["0"]


async def bad_result(inputs: Any, ctx: Any) -> Any:
    return await ctx.task(flows.unencodable_result, {"x": 1})


def test_an_unencodable_task_result_raises_payloaderror_at_the_await(
    make_engine: MakeEngine,
) -> None:
    engine = make_engine()
    run = engine.run(bad_result, run_id="r")
    assert run.status == "failed"
    assert run.error is not None
    assert run.error.type == "replay_engine.errors.PayloadError"
    assert "completed" not in tags(engine, "r")


def test_unencodable_inputs_raise_payloaderror_and_create_no_run(
    make_engine: MakeEngine,
) -> None:
    engine = make_engine()
    with pytest.raises(PayloadError) as info:
        engine.run(three_in_a_row, {"when": object()}, run_id="r")
    assert isinstance(info.value, TypeError)
    assert engine.runs() == []


# -- idempotency keys ---------------------------------------------------------------


async def probes(inputs: Any, ctx: Any) -> Any:
    root = await ctx.task(flows.idem_probe, {"tag": "root"})
    pair = await ctx.parallel.all(
        [
            lambda: ctx.task(flows.idem_probe, {"tag": "b0"}),
            lambda: ctx.task(flows.idem_probe, {"tag": "b1"}),
        ]
    )
    return [root, *pair]


def test_idempotency_key_is_run_id_slash_key(make_engine: MakeEngine) -> None:
    engine = make_engine()
    run = engine.run(probes, run_id="idem-run")
    assert run.result == ["idem-run/0", "idem-run/1.0.0", "idem-run/1.1.0"]


# -- executors -----------------------------------------------------------------------


async def on_processes(inputs: Any, ctx: Any) -> Any:
    outs = await ctx.parallel.map(
        inputs["xs"],
        lambda x: ctx.task(flows.cpu_square, {"x": x, "side": inputs["side"]}),
    )
    try:
        await ctx.task(flows.cpu_fail, {"x": 3})
        failure = None
    except TaskFailed as exc:
        failure = [exc.error_type, exc.message]
    return {"outs": outs, "failure": failure}


def test_process_executor_tasks_run_in_other_processes(
    make_engine: MakeEngine, side: Path
) -> None:
    engine = make_engine()
    run = engine.run(on_processes, {"xs": [1, 2, 3], "side": str(side)}, run_id="r")
    assert run.status == "completed", run.error
    outs = run.result["outs"]
    assert [o["square"] for o in outs] == [1, 4, 9]
    assert all(o["pid"] != os.getpid() for o in outs)
    assert run.result["failure"] == ["ArithmeticError", "cannot square 3"]
    lines = starts(read_side(side), task="cpu_square")
    assert sorted(x["key"] for x in lines) == ["0.0.0", "0.1.0", "0.2.0"]
    assert {x["idem"] for x in lines} == {"r/0.0.0", "r/0.1.0", "r/0.2.0"}


async def where_tasks_run(inputs: Any, ctx: Any) -> Any:
    return await ctx.parallel.all(
        [
            lambda: ctx.task(flows.whoami, {"tag": "a"}),
            lambda: ctx.task(flows.whoami, {"tag": "b"}),
            lambda: ctx.task(flows.plain_square, {"x": 5}),
            lambda: ctx.task(flows.slow_echo, {"value": "async", "delay": 0.0}),
        ]
    )


def test_a_user_thread_pool_runs_the_sync_tasks(tmp_path: Path) -> None:
    with cf.ThreadPoolExecutor(2, thread_name_prefix="user-pool") as pool:
        engine = Engine(str(tmp_path / "j"), executor=pool)
        run = engine.run(where_tasks_run, run_id="r")
        engine.close()
        a, b, square, text = run.result
        assert a["thread"].startswith("user-pool")
        assert b["thread"].startswith("user-pool")
        assert a["idem"] == "r/0.0.0"
        assert square == {"square": 25, "pid": os.getpid()}
        assert text == "async"
        # The engine does not shut down a pool it was given.
        assert pool.submit(lambda: 42).result() == 42


def test_a_user_process_pool_runs_the_sync_tasks_by_reference(tmp_path: Path) -> None:
    context = multiprocessing.get_context("forkserver")
    with cf.ProcessPoolExecutor(2, mp_context=context) as pool:
        engine = Engine(str(tmp_path / "j"), executor=pool)
        run = engine.run(where_tasks_run, run_id="r")
        assert run.status == "completed", run.error
        engine.close()
        a, b, square, text = run.result
        assert a["pid"] != os.getpid()
        assert a["idem"] == "r/0.0.0" and b["idem"] == "r/0.1.0"
        assert square["square"] == 25 and square["pid"] != os.getpid()
        assert text == "async"
        assert pool.submit(abs, -3).result() == 3


# -- concurrency bounds ---------------------------------------------------------------


async def fan_out(inputs: Any, ctx: Any) -> list[int]:
    t = flows.held_async if inputs.get("async") else flows.held
    return await ctx.parallel.map(
        range(inputs["n"]),
        lambda i: ctx.task(t, {"i": i, "hold": inputs["hold"]}),
        limit=inputs.get("limit"),
    )


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_max_in_flight_bounds_one_run(make_engine: MakeEngine, is_async: bool) -> None:
    engine = make_engine(max_in_flight=3)
    inputs = {"n": 6, "hold": 0.15, "async": is_async}
    run = engine.run(fan_out, inputs, run_id="r")
    assert run.result == list(range(6))
    assert flows.GAUGE.peak == 3


def test_max_in_flight_is_engine_wide_across_concurrent_runs(
    make_engine: MakeEngine,
) -> None:
    engine = make_engine(max_in_flight=3)
    inputs = {"n": 6, "hold": 0.1, "async": True}

    async def both() -> list[Any]:
        return await asyncio.gather(
            engine.run_async(fan_out, inputs, run_id="a"),
            engine.run_async(fan_out, inputs, run_id="b"),
        )

    runs = asyncio.run(both())
    assert [r.result for r in runs] == [list(range(6))] * 2
    assert flows.GAUGE.peak <= 3, (
        f"{flows.GAUGE.peak} effects executed at once on an engine with max_in_flight=3"
    )


def test_parallel_map_limit_bounds_concurrent_branches(
    make_engine: MakeEngine,
) -> None:
    engine = make_engine()
    inputs = {"n": 6, "hold": 0.05, "async": True, "limit": 2}
    run = engine.run(fan_out, inputs, run_id="r")
    assert run.result == list(range(6))
    assert flows.GAUGE.peak == 2


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
    assert engine.status("r").status == "running"
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


# -- keys are taken at call time, not at await time ------------------------------------


async def awaits_out_of_order(inputs: Any, ctx: Any) -> list[int]:
    early = ctx.task(flows.add, {"a": 1, "b": 1})  # key 0, awaited later
    b = await ctx.task(flows.double, {"x": 5})  # key 1
    if FLAGS.get("stop"):
        early.close()  # type: ignore[attr-defined]
        raise RuntimeError("stopped on purpose before the end")
    a = await early
    return [a, b]


def test_a_call_awaited_after_a_later_one_resumes(
    make_engine: MakeEngine, side: Path
) -> None:
    """Keys are taken when ctx.task is called; awaiting in another order is legal,
    so a resume must not call the not-yet-recorded earlier key an inserted call."""
    engine = make_engine()
    FLAGS["stop"] = True
    assert engine.run(awaits_out_of_order, run_id="r").status == "failed"
    assert keys_of(engine, "r") == ["1"]
    FLAGS["stop"] = False
    try:
        run = engine.resume("r")
    except NonDeterminismError as exc:
        pytest.fail(f"false divergence on a legal await order:\n{exc}")
    assert run.result == [2, 10]
    assert sorted(keys_of(engine, "r")) == ["0", "1"]
    assert [x["key"] for x in starts(read_side(side))] == ["1", "0"]
