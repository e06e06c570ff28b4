"""The ctx services around effects: log, now, random, uuid and durable sleep.

Every test runs a real engine on a real LMDB journal in ``tmp_path`` and counts
dispatches on the side channel (``flows.note``), never in the journal under
test.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import journal_format as jf
from replay_engine import Engine
from replay_engine._run.hooks import Hooks  # the testing seam: Engine(hooks=...)
from tests.journal_views import key_of, keys_of, tags

from . import flows
from .flows import read_side, starts
from .replay_helpers import FLAGS, SEEN, MakeEngine, run_and_cancel_when, stop_if_asked

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
    # The real clock, moved a second on before the resume (instead of a real
    # wait): a replay that read the clock again would see another time.
    shift = [0]
    engine = make_engine(hooks=Hooks(clock_ns=lambda: time.time_ns() + shift[0]))
    FLAGS["stop"] = True
    before = dt.datetime.now(dt.UTC)
    assert engine.run(deterministic_values, run_id="r").status == "failed"
    after = dt.datetime.now(dt.UTC)
    shift[0] = 1_000_000_000
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


class FakeTime:
    """Hooks whose clock the test moves and whose timers report, not wait.

    A timer asked to sleep during the first run blocks (for an hour, so the
    test can interrupt it there); every later sleep returns at once. The test
    reads what the engine asked for in ``slept``.
    """

    def __init__(self) -> None:
        self.now_ns = time.time_ns()
        self.slept: list[tuple[str, float]] = []
        self.block = True

    def sleep(self, key: str, seconds: float) -> float:
        self.slept.append((key, seconds))
        return 3600.0 if self.block else 0.0

    def hooks(self) -> Hooks:
        return Hooks(sleep=self.sleep, clock_ns=lambda: self.now_ns)


def test_sleep_is_durable_resume_after_due_does_not_sleep_again(
    make_engine: MakeEngine, side: Path
) -> None:
    fake = FakeTime()
    engine = make_engine(hooks=fake.hooks())
    began = fake.now_ns
    run_and_cancel_when(
        engine, sleeper, {"seconds": 1.0}, "r", timer_started(engine, "r")
    )
    timers = [
        s.event for s in engine.events("r") if isinstance(s.event, jf.TimerStarted)
    ]
    assert len(timers) == 1
    assert key_of(timers[0]) == "1"
    due = timers[0].due_ns
    assert due == began + 1_000_000_000
    assert "timer_fired" not in tags(engine, "r")
    assert fake.slept == [("1", 1.0)]
    fake.block = False
    fake.now_ns = due + 20_000_000  # the timer is past due
    run = engine.resume("r")
    assert fake.slept == [("1", 1.0)]  # not the 1 s sleep again
    assert run.result == [2, 4]
    assert tags(engine, "r").count("timer_fired") == 1
    assert tags(engine, "r").count("timer_started") == 1
    assert [x["key"] for x in starts(read_side(side))] == ["0", "2"]


def test_sleep_resumed_before_due_sleeps_only_what_is_left(
    make_engine: MakeEngine,
) -> None:
    fake = FakeTime()
    engine = make_engine(hooks=fake.hooks())
    # Interrupted half way through a 1 s sleep.
    run_and_cancel_when(
        engine, sleeper, {"seconds": 1.0}, "r", timer_started(engine, "r")
    )
    fake.block = False
    fake.now_ns += 500_000_000
    run = engine.resume("r")
    assert run.result == [2, 4]
    assert fake.slept == [("1", 1.0), ("1", 0.5)]
